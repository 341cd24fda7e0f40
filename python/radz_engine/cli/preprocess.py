"""`radz preprocess`: DICOM / PNG / JPEG files -> one model-ready [N, C, H, W] .npy tensor.

A CSV beside it lists every input: its row in the tensor, or the reason it failed. A bad file
never stops the job and is never silently dropped.
"""

from __future__ import annotations

import argparse
import csv
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np


def build_parser() -> argparse.ArgumentParser:
    from radz_engine.cli.options import add_threads, add_workers, alias, parser, positive_int

    p = parser("radz preprocess", __doc__.split("\n\n")[0])
    p.add_argument("inputs", nargs="+", type=Path, help="files or folders (searched recursively, by content)")
    p.add_argument("--out", type=Path, required=True, help="output .npy path; the index goes to OUT.csv")
    p.add_argument("--input-size", type=positive_int, default=224, help="model input side in pixels")
    alias(p, "--size", "input_size", type=positive_int)  # old spelling; --size is an image side elsewhere
    p.add_argument("--aspect", choices=("letterbox", "stretch"), default="letterbox", help="how to fit the square")
    p.add_argument("--dtype", choices=("float32", "float16"), default="float32", help="tensor dtype")
    add_workers(p, default=0, help="decoding processes (0: in this process)")
    add_threads(p, help="C++ preprocessing threads (default: all cores)")
    return p


def list_inputs(inputs: list[Path]) -> list[Path]:
    """Files as given, folders expanded recursively to DICOM / PNG / JPEG files found by content
    (radz_engine.io.discover; skipped files are counted on stderr)."""
    from radz_engine.io.discover import discover

    files: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found = discover(item)
            if found.skipped:
                print(f"radz preprocess: {item}: {found.skipped_line()}", file=sys.stderr)
            files.extend(Path(p) for p in found.files)
        else:
            files.append(item)
    return files


def _read(path: str):
    from radz_engine.errors import RadzInputError
    from radz_engine.io.images import read_any

    try:
        image = read_any(path)
        return image.pixels, image.spec, None
    except RadzInputError as error:
        return None, None, str(error)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from radz_engine.preprocessing.native import preprocess_batch
    from radz_engine.runtime.progress import progress

    files = list_inputs(args.inputs)
    if not files:
        print("radz preprocess: no input files found", file=sys.stderr)
        return 2
    names = [str(f) for f in files]
    if args.workers > 0:
        with ProcessPoolExecutor(args.workers) as pool:
            decoded = list(progress(pool.map(_read, names, chunksize=4), total=len(names), desc="decode"))
    else:
        decoded = [_read(n) for n in progress(names, desc="decode")]
    good = [i for i, (pixels, _, _) in enumerate(decoded) if pixels is not None]
    tensor = preprocess_batch(
        [decoded[i][0] for i in good],
        [decoded[i][1] for i in good],
        args.input_size,
        aspect=args.aspect,
        dtype=args.dtype,
        num_threads=args.threads,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, tensor)
    row_of = {index: row for row, index in enumerate(good)}
    index_path = args.out.with_suffix(".csv")
    with index_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "row", "error"])
        for i, name in enumerate(names):
            writer.writerow([name, row_of.get(i, ""), decoded[i][2] or ""])
    failed = len(names) - len(good)
    print(f"{len(good)} images -> {args.out} {tuple(tensor.shape)}; index {index_path}; {failed} failed")
    return 1 if failed else 0
