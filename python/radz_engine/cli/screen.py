"""`radz screen PATH|CSV ... --out results.{csv,parquet,jsonl}`: classify many files.

Folders are searched recursively for DICOM / PNG / JPEG by content (UID-named and suffix-less
DICOM included; skipped files are counted on stderr); CSV lists need a `path` column.
Resumable: files already in --out are skipped, failed ones retried (--no-retry-failed keeps
them); an --out written by another bundle is refused (--overwrite replaces it). A bad file is a
row with `error` set, never a crash. Prints a summary table (files, ok, failed, images/s,
positives per class) at the end, headed by the model card's notice ("For research use only; ...",
docs/MODEL_CARD.md), which the output carries too (Parquet metadata, or `<out>.card.json` beside a
.csv / .jsonl). Exit status: 0 done (a stderr line counts any failed files),
1 every file failed, 2 a usage error (missing path, nothing to screen, bad flag).

With --ray [ADDRESS] the work runs on a Ray cluster (radz_engine.distributed; needs
pip install 'radz-engine[scale]'): --out is then a Parquet dataset folder (local or a URI such as
s3://bucket/results/), inputs may be URIs of any pyarrow filesystem, and one engine actor runs
per GPU (CPU actors otherwise). Put --ray last or write --ray=ADDRESS, so that it does not take
a path as its address.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
import time
from collections import Counter

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    from radz_engine.cli.options import (
        add_batch_size,
        add_bundle,
        add_quiet,
        add_threads,
        add_workers,
        device_type,
        parser,
    )

    p = parser("radz screen", __doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n", 1)[1])
    p.add_argument(
        "paths", nargs="+", help="files, folders (recursive, found by content) or CSV lists with a 'path' column"
    )
    p.add_argument("--out", required=True, help="results file: .csv, .jsonl or .parquet (needs pyarrow)")
    add_bundle(p)
    add_workers(p, help="decode workers (default: from the thread budget, docs/RUNTIME.md; 0: in this thread)")
    p.add_argument(
        "--processes",
        action="store_true",
        help="decode in spawned processes instead of threads",
    )
    add_batch_size(p, default=32)
    p.add_argument(
        "--model-runners",
        type=int,
        default=None,
        help="batches in the model at once (default: 2 for a one-thread CPU model on a multi-core machine, else 1)",
    )
    p.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "onnxruntime", "tensorrt", "openvino", "torch"),
        help="auto (ONNX Runtime on CPU), onnxruntime, tensorrt, openvino, or torch (with --checkpoint)",
    )
    p.add_argument(
        "--checkpoint",
        default=None,
        help="--backend torch: the `radz train` checkpoint folder the bundle was exported from",
    )
    p.add_argument(
        "--int8",
        action="store_true",
        help="ONNX Runtime: the bundle's int8 image encoder (`radz quantize BUNDLE`; faster on CPU)",
    )
    p.add_argument(
        "--device",
        type=device_type,
        default=None,
        help="cpu, cuda, cuda:N or auto (default: cpu; with --ray: auto, GPUs when the cluster has them)",
    )
    add_threads(p, help="model intra-op threads (default on CPU: the cores the decode threads leave, docs/RUNTIME.md)")
    p.add_argument("--add-classes", default=None, help="JSON file {name: knowledge description} to add zero-shot")
    p.add_argument(
        "--embeddings",
        action="store_true",
        help="also store each image's embedding (float16): Parquet column 'embedding', .csv/.jsonl 'embedding_f16' "
        "(base64); read back with radz_engine.runtime.embeddings.read_embeddings",
    )
    p.add_argument("--no-resume", action="store_true", help="do not skip files already in --out (appends)")
    p.add_argument(
        "--no-retry-failed",
        action="store_true",
        help="when resuming, keep the rows of files that failed instead of screening them again",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace --out even if another bundle (or another class list) wrote it",
    )
    p.add_argument("--summary-json", default=None, help="also write the summary as JSON here")
    add_quiet(p)
    p.add_argument(
        "--progress-every",
        type=float,
        default=10.0,
        help="without a terminal (nohup, cron, SLURM): seconds between plain progress lines",
    )
    ray = p.add_argument_group("Ray (scale-out; pip install 'radz-engine[scale]')")
    ray.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run on a Ray cluster: 'auto', 'HOST:PORT', 'ray://HOST:10001' (no ADDRESS: RAY_ADDRESS, "
        "a cluster started here with `ray start`, else a local one); --out is a Parquet folder",
    )
    ray.add_argument(
        "--ray-actors", type=int, default=None, help="engine actors (default: one per GPU, or cluster CPUs / --threads)"
    )
    ray.add_argument(
        "--ray-rows-per-file",
        type=int,
        default=1000,
        help="rows per Parquet part file (smaller: finer-grained resume)",
    )
    return p


_RAY_ADDRESS = re.compile(r"^(auto|local|ray://.+|[A-Za-z0-9_.\-]+:\d+|\[[0-9A-Fa-f:]+\]:\d+)$")


def _ray_address(args) -> str | None:
    """--ray's value, or None for Ray's default; a value that is not an address is a path that
    argparse gave to --ray (`--ray data/ --out r/`), so it goes back to the paths."""
    if args.ray and not _RAY_ADDRESS.match(args.ray):
        args.paths.insert(0, args.ray)
        return None
    return args.ray or None


def _main_ray(args) -> int:
    from radz_engine.runtime.screen_output import format_summary

    address = _ray_address(args)
    missing = _missing_arguments(args.paths)
    if missing:
        return _fail(f"{missing[0]}: no such file or folder")
    if args.out.lower().endswith((".csv", ".jsonl")):
        print(
            f"radz screen: --out {args.out}: with --ray the results are a Parquet dataset folder "
            "(e.g. results/ or s3://bucket/results/)",
            file=sys.stderr,
        )
        return 2
    if args.overwrite:
        return _fail("--overwrite is not supported with --ray: write to a new results folder")
    if args.workers is not None:
        print("radz screen: --workers is ignored with --ray (Ray schedules the decoding tasks)", file=sys.stderr)
    if args.model_runners is not None:
        print(
            "radz screen: --model-runners is ignored with --ray (each actor runs one batch at a time)", file=sys.stderr
        )
    add_classes = None
    if args.add_classes:
        with open(args.add_classes) as handle:
            add_classes = json.load(handle)
    try:
        from radz_engine.distributed import screen_dataset

        summary = screen_dataset(
            args.paths,
            args.out,
            bundle=args.bundle,
            address=address,
            device=args.device or "auto",
            actors=args.ray_actors,
            threads=args.threads,
            batch_size=args.batch_size,
            backend=args.backend,
            add_classes=add_classes,
            embeddings=args.embeddings,
            resume=not args.no_resume,
            retry_failed=not args.no_retry_failed,
            rows_per_file=args.ray_rows_per_file,
            progress=not args.quiet,
        )
    except (ValueError, ImportError, FileNotFoundError, ConnectionError) as error:  # bad input / no Ray / no cluster
        print(f"radz screen: {error}", file=sys.stderr)
        return 2
    print(
        f"radz screen: {summary['actors']} {summary['device']} actor(s) on Ray, results in {summary['out']}",
        file=sys.stderr,
    )
    from radz_engine.bundle.card import notice
    from radz_engine.bundle.loader import load_bundle

    card = load_bundle(args.bundle, verify_hashes=False, check_onnx=False).card()
    summary = {"intended_use": card["intended_use"], "notice": notice(card), **summary}
    print(format_summary(summary))
    if args.summary_json:
        with open(args.summary_json, "w") as handle:
            json.dump(summary, handle, indent=2)
    return _report_failures(summary, None, summary["out"])


class _PlainProgress:
    """Without a terminal: one plain line on stderr every `every` seconds (no carriage returns)."""

    def __init__(self, total: int, every: float) -> None:
        self.total, self.every = total, every
        self.done = self.failed = 0
        self.start = self.last = time.perf_counter()

    def update(self, ok: bool) -> None:
        self.done += 1
        self.failed += not ok
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            print(
                f"radz screen: {self.done}/{self.total} files ({self.failed} failed), {rate:.1f} images/s, "
                f"about {(self.total - self.done) / rate:.0f} s left",
                file=sys.stderr,
                flush=True,
            )


def _fail(message: str, code: int = 2) -> int:
    print(f"radz screen: {message}", file=sys.stderr)
    return code


def _check_numbers(args) -> str | None:
    """The usage error in --batch-size / --workers / --threads, or None."""
    if args.batch_size < 1:
        return f"--batch-size must be >= 1, got {args.batch_size}"
    if args.workers is not None and args.workers < 0:
        return f"--workers must be >= 0 (0: decode in this process), got {args.workers}"
    if args.threads is not None and args.threads < 1:
        return f"--threads must be >= 1, got {args.threads}"
    if args.model_runners is not None and args.model_runners < 1:
        return f"--model-runners must be >= 1, got {args.model_runners}"
    if (args.backend == "torch") != (args.checkpoint is not None):
        return "--checkpoint (a `radz train` checkpoint folder) goes with --backend torch, and only with it"
    if args.checkpoint is not None and args.ray is not None:
        return "--checkpoint: the Ray path runs the bundle's ONNX models; leave out --ray for --backend torch"
    return None


def _missing_arguments(paths) -> list[str]:
    from radz_engine.distributed.sources import is_uri

    return [p for p in paths if not is_uri(str(p)) and not os.path.exists(p)]


def _report_failures(summary: dict, first_error: str | None, out: str) -> int:
    """The exit status: 1 when every file failed (none screened now nor resumed succeeded); a
    line on stderr with the counts when any failed."""
    failed, files = summary["failed"], summary["files"]
    if not failed:
        return 0
    example = f" (first: {first_error})" if first_error else ""
    if failed == files and not summary.get("skipped"):
        return _fail(f"all {files} files failed{example}; every reason is in {out}", 1)
    print(
        f"radz screen: {failed} of {files} files failed{example}; the reasons are in the error column of {out}",
        file=sys.stderr,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    problem = _check_numbers(args)
    if problem:
        return _fail(problem)
    if args.ray is not None:
        return _main_ray(args)
    from radz_engine.io.discover import discover
    from radz_engine.runtime.engine import Engine
    from radz_engine.runtime.screen_output import (
        ResultWriter,
        check_output_model,
        drop_failed,
        format_summary,
        recorded,
        remove_output,
        summarize,
    )

    missing = _missing_arguments(args.paths)
    if missing:
        return _fail(
            f"{missing[0]}: no such file or folder" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    try:
        found = discover(args.paths)
        previous = {} if args.no_resume or args.overwrite else recorded(args.out)
    except (ValueError, ImportError, OSError) as error:
        return _fail(str(error))
    skipped_line = found.skipped_line()
    if not found.files:
        where = ", ".join(found.folders or args.paths)
        return _fail(f"no DICOM, PNG or JPEG files found in {where}" + (f"; {skipped_line}" if skipped_line else ""))
    if skipped_line:
        print(f"radz screen: {len(found.files)} input files; {skipped_line}", file=sys.stderr)
    retry = not args.no_retry_failed
    skip = {s for s, ok in previous.items() if ok or not retry}
    to_retry = len(previous) - len(skip)
    try:
        engine = Engine(
            args.bundle,
            backend=args.backend,
            device=args.device or "cpu",
            max_batch_size=args.batch_size,
            threads=_model_threads(args),
            backend_options=({"int8": True} if args.int8 else {})
            | ({"checkpoint": args.checkpoint} if args.checkpoint else {})
            or None,
        )
    except (ValueError, RuntimeError, ImportError, FileNotFoundError) as error:
        return _fail(str(error))
    with engine:
        try:
            if args.overwrite:
                remove_output(args.out)
            else:
                check_output_model(args.out, engine.model_info)
        except (ValueError, ImportError, OSError) as error:
            return _fail(str(error))
        if args.add_classes:
            try:
                with open(args.add_classes) as handle:
                    engine.add_classes(json.load(handle))
            except (OSError, ValueError) as error:
                return _fail(f"--add-classes {args.add_classes}: {error}")
        model = engine.model_info
        print(
            f"radz screen: bundle {model['name']} {model['version']} (hash {model['hash']}), "
            f"{engine.backend.name} on {engine.backend.device}, {len(engine.class_names)} classes"
            + (f", resuming: {len(skip)} files already in {args.out}" if skip else "")
            + (f", retrying {to_retry} that failed" if to_retry else ""),
            file=sys.stderr,
        )
        try:
            if to_retry:
                drop_failed(args.out)
            writer = ResultWriter(
                args.out,
                engine.class_names,
                embeddings=args.embeddings,
                model=engine.model_info,
                thresholds=engine.thresholds(),
                card=engine.bundle.card(),
                embedding_dim=engine.bundle.embedding_dim,
            )
        except (ValueError, ImportError) as error:
            return _fail(str(error))
        seen = {"ok": 0, "failed": 0, "positives": Counter({name: 0 for name in engine.class_names})}
        first_error = None
        # The readers (pydicom and its plugins: ~0.3 s) are imported before the clock starts, as at
        # the top of a user's script; otherwise the first decode imports them inside the timed loop.
        for readers in ("radz_engine.io.dicom", "radz_engine.io.images"):
            try:
                importlib.import_module(readers)
            except ImportError:
                pass  # no pydicom / Pillow: each file's row then says which extra to install

        start = time.perf_counter()
        interactive = sys.stderr.isatty()
        plain = None if args.quiet or interactive else _PlainProgress(len(set(found.files) - skip), args.progress_every)
        with writer:
            for result in engine.screen(
                found.files,
                progress=not args.quiet and interactive,
                workers=args.workers,
                skip=skip,
                batch_size=args.batch_size,
                processes=args.processes,
                model_runners=args.model_runners,
            ):
                writer.write(result)
                if plain is not None:
                    plain.update(result.ok)
                if result.ok:
                    seen["ok"] += 1
                    seen["positives"].update(result.positives)
                else:
                    seen["failed"] += 1
                    first_error = first_error or result.error
        seen["skipped"] = len(skip)
        summary = summarize(
            seen, time.perf_counter() - start, engine.model_info, engine.thresholds(), card=engine.bundle.card()
        )
    print(format_summary(summary))
    if args.summary_json:
        with open(args.summary_json, "w") as handle:
            json.dump(summary, handle, indent=2)
    return _report_failures(summary, first_error, args.out)


def _model_threads(args) -> int | None:
    """--threads, else on CPU the thread budget's share for the model (decode threads get the
    rest: decode, preprocessing and the model never oversubscribe the cores)."""
    if args.threads is not None:
        return args.threads
    if (args.device or "cpu") != "cpu":
        return None
    from radz_engine.runtime.screen import default_model_threads

    return default_model_threads()


if __name__ == "__main__":
    sys.exit(main())
