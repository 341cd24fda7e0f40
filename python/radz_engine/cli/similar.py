"""`radz similar`: the indexed images most similar to each given image, with their findings.

    radz similar IMAGE [IMAGE ...] --index INDEX [--k 10] [--json] [--bundle B]

IMAGE: DICOM, PNG or JPEG files. The bundle must be the one the index was built with (its
embeddings); the default is the shipped bundle. --json prints one JSON document per image
({"source", "scores", "positives", "neighbours": [{"source", "similarity", "distance",
"findings", ...}]}) instead of a table.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from radz_engine.errors import RadzError


def build_parser():
    from radz_engine.cli.options import add_bundle, add_device, parser, positive_int

    p = parser("radz similar", __doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n", 1)[1])
    p.add_argument("images", nargs="+", metavar="IMAGE", help="DICOM, PNG or JPEG files")
    p.add_argument("--index", required=True, help="an index folder (radz index build)")
    p.add_argument("--k", type=positive_int, default=10, help="neighbours per image")
    p.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    add_bundle(p)
    p.add_argument("--backend", default="auto", help="auto, onnxruntime or tensorrt")
    add_device(p)
    return p


def _table(result, neighbours) -> str:
    top = ", ".join(f"{name} {score:.2f}" for name, score in result.top(3))
    lines = [f"{result.source}: positives {result.positives or 'none'}; top {top}"]
    lines += ["| # | similarity | source | findings |", "|---|---|---|---|"]
    for rank, n in enumerate(neighbours, start=1):
        tag = "" if n.findings_from == "labels" else " (model)"
        lines.append(f"| {rank} | {n.similarity:.3f} | {n.source} | {';'.join(n.findings) or 'none'}{tag} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from radz_engine.retrieval.index import open_index
    from radz_engine.runtime.engine import Engine

    try:
        index = open_index(args.index)
        with Engine(args.bundle, backend=args.backend, device=args.device) as engine:
            index.check_bundle(engine.model_info)
            results = engine.classify(args.images)
        good = [r for r in results if r.ok]
        found = index.search(np.stack([r.embedding for r in good]), args.k) if good else []
    except (RadzError, OSError, ValueError, RuntimeError, MemoryError) as error:
        # ValueError: e.g. an unknown --backend; RuntimeError: a device or FAISS failure.
        print(f"radz similar: {error}", file=sys.stderr)
        return 2
    by_source = {id(r): n for r, n in zip(good, found)}
    failed = 0
    for result in results:
        if not result.ok:
            failed += 1
            if args.json:
                print(json.dumps({"source": result.source, "error": result.error}))
            else:
                print(f"radz similar: {result.error}", file=sys.stderr)
            continue
        neighbours = by_source[id(result)]
        if args.json:
            doc = {
                "source": result.source,
                "scores": {k: round(float(v), 6) for k, v in result.scores.items()},
                "positives": result.positives,
                "neighbours": [n.to_json() for n in neighbours],
            }
            print(json.dumps(doc))
        else:
            print(_table(result, neighbours) + "\n")
    return 1 if failed == len(results) else 0
