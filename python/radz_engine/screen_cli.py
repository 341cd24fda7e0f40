"""`radz screen PATH|CSV ... --out results.{csv,parquet,jsonl}`: classify many files.

Folders are searched recursively for DICOM / PNG / JPEG; CSV lists need a `path` column.
Resumable: files already in --out are skipped. A bad file is a row with `error` set, never a
crash. Prints a summary table (files, ok, failed, images/s, positives per class) at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radz screen", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="files, folders (recursive) or CSV lists with a 'path' column")
    parser.add_argument("--out", required=True, help="results file: .csv, .jsonl or .parquet (needs pyarrow)")
    parser.add_argument("--bundle", default=None, help="bundle folder (default: the shipped default bundle)")
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (default: cores - 1; 0: none)")
    parser.add_argument("--batch-size", type=int, default=32, help="model batch size (default 32)")
    parser.add_argument("--backend", default="auto", help="auto, onnxruntime, tensorrt (default auto)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    parser.add_argument("--threads", type=int, default=None, help="model intra-op threads (default: all cores)")
    parser.add_argument("--add-classes", default=None, help="JSON file {name: knowledge description} to add zero-shot")
    parser.add_argument("--embeddings", action="store_true", help="also write each image's embedding")
    parser.add_argument("--no-resume", action="store_true", help="do not skip files already in --out (appends)")
    parser.add_argument("--summary-json", default=None, help="also write the summary as JSON here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .engine import Engine
    from .screen import ResultWriter, done_sources, format_summary, summarize

    try:
        skip = set() if args.no_resume else done_sources(args.out)
    except (ValueError, ImportError) as error:
        print(f"radz screen: {error}", file=sys.stderr)
        return 2
    if args.batch_size < 1:
        print(f"radz screen: --batch-size must be >= 1, got {args.batch_size}", file=sys.stderr)
        return 2
    try:
        engine = Engine(args.bundle, backend=args.backend, device=args.device, max_batch_size=args.batch_size,
                        threads=args.threads)
    except (ValueError, RuntimeError, ImportError, FileNotFoundError) as error:
        print(f"radz screen: {error}", file=sys.stderr)
        return 2
    with engine:
        if args.add_classes:
            with open(args.add_classes) as handle:
                engine.add_classes(json.load(handle))
        print(f"radz screen: {engine.backend.name} on {engine.backend.device}, {len(engine.class_names)} classes"
              + (f", resuming: {len(skip)} files already in {args.out}" if skip else ""), file=sys.stderr)
        try:
            writer = ResultWriter(args.out, engine.class_names, embeddings=args.embeddings)
        except (ValueError, ImportError) as error:
            print(f"radz screen: {error}", file=sys.stderr)
            return 2
        seen = {"ok": 0, "failed": 0, "positives": Counter({name: 0 for name in engine.class_names})}
        start = time.perf_counter()
        with writer:
            for result in engine.screen(args.paths, progress=not args.no_progress, workers=args.workers, skip=skip,
                                        batch_size=args.batch_size):
                writer.write(result)
                if result.ok:
                    seen["ok"] += 1
                    seen["positives"].update(result.positives)
                else:
                    seen["failed"] += 1
        seen["skipped"] = len(skip)
        summary = summarize(seen, time.perf_counter() - start)
    print(format_summary(summary))
    if args.summary_json:
        with open(args.summary_json, "w") as handle:
            json.dump(summary, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
