"""`radz index`: build and grow a similar-case index from screening outputs.

    radz index build SCREEN_OUTPUT [...] --out INDEX [--labels CSV] [--factory STRING] [--overwrite]
    radz index add INDEX SCREEN_OUTPUT [...] [--labels CSV]
    radz index info INDEX [--json]

SCREEN_OUTPUT: a `radz screen ... --embeddings` result (.csv, .jsonl or .parquet). --labels: a CSV
with a `path` column and either a `findings` column ("a;b") or one 0/1 column per finding (as
`radz synth` writes); without it each image's findings are the model's positives at screening.
The FAISS factory is chosen by size (exact "Flat" below 100,000 images, approximate with
refinement above); --factory overrides it. Without FAISS in the build, exact numpy search up to
100,000 images.
"""

from __future__ import annotations

import json
import sys

from radz_engine.errors import RadzError


def build_parser():
    from radz_engine.cli.options import add_quiet, parser

    p = parser("radz index", __doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n", 1)[1])
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = sub.add_parser("build", help="a new index from screening outputs", formatter_class=p.formatter_class)
    build.add_argument("outputs", nargs="+", metavar="SCREEN_OUTPUT", help="radz screen --embeddings outputs")
    build.add_argument("--out", required=True, help="the index folder to write")
    build.add_argument("--labels", default=None, help="CSV of confirmed findings (path + findings or 0/1 columns)")
    build.add_argument(
        "--factory", default=None, help="FAISS index factory string, e.g. Flat, HNSW32,Flat (default: by size)"
    )
    build.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    add_quiet(build)
    add = sub.add_parser("add", help="append screening outputs to an index", formatter_class=p.formatter_class)
    add.add_argument("index", metavar="INDEX", help="an index folder (radz index build)")
    add.add_argument("outputs", nargs="+", metavar="SCREEN_OUTPUT", help="radz screen --embeddings outputs")
    add.add_argument("--labels", default=None, help="CSV of confirmed findings for the new images")
    add_quiet(add)
    info = sub.add_parser("info", help="what an index holds", formatter_class=p.formatter_class)
    info.add_argument("index", metavar="INDEX", help="an index folder")
    info.add_argument("--json", action="store_true", help="print the manifest as JSON")
    return p


def _progress(quiet: bool):
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    bar: dict = {}

    def update(done: int, total: int) -> None:
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, desc="radz index: adding", unit="vec")
        bar["bar"].update(done - bar["bar"].n)
        if done >= total:
            bar["bar"].close()

    return update


def _describe(index) -> str:
    m = index.manifest
    bundle = m["bundle"]
    findings = sum(1 for i in range(index.size) if index.row(i).get("findings_from") == "labels") if index.size else 0
    lines = [
        f"index {index.path}: {index.size} images, {index.dim}-d embeddings",
        f"  search: {index.backend} {index.factory!r}"
        + (f" ({m['search']['search_parameters']})" if m["search"].get("search_parameters") else ""),
        f"  bundle: {bundle.get('name')} {bundle.get('version')} (hash {bundle.get('hash')})",
        f"  findings: {findings} from labels, {index.size - findings} from the model's positives",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from radz_engine.retrieval.index import add_to_index, build_index, open_index

    try:
        if args.action == "build":
            index = build_index(
                args.outputs,
                args.out,
                labels=args.labels,
                factory=args.factory,
                overwrite=args.overwrite,
                progress=_progress(args.quiet),
            )
            print(_describe(index))
        elif args.action == "add":
            index, added, skipped = add_to_index(
                args.index, args.outputs, labels=args.labels, progress=_progress(args.quiet)
            )
            print(f"added {added} images ({skipped} already indexed)")
            print(_describe(index))
        else:
            index = open_index(args.index)
            print(json.dumps(index.manifest, indent=2) if args.json else _describe(index))
    except (RadzError, OSError, ValueError, RuntimeError, MemoryError) as error:
        # ValueError: e.g. an unreadable Parquet body (pyarrow); RuntimeError: FAISS.
        print(f"radz index {args.action}: {error}", file=sys.stderr)
        return 2
    return 0
