"""`radz demo`: the main job until the engine exists (the runtime issue replaces it).

Makes a phantom DICOM study set (real DICOM files: CR/DX, 12-16 bit, MONOCHROME1/2, windows),
reads it back with the DICOM reader in a process pool, and preprocesses it with the C++ core,
printing images/s for each stage and writing a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from .timing import StageTimer


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="radz demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=None, help="folder for the study set and summary (default: a temp folder)")
    p.add_argument("--n", type=int, default=200, help="number of phantom radiographs (default 200)")
    p.add_argument("--dicom-size", type=int, default=1024, help="DICOM image side in pixels (default 1024)")
    p.add_argument("--input-size", type=int, default=224, help="model input side (default 224)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for generation and decoding")
    p.add_argument("--threads", type=int, default=None, help="C++ preprocessing threads (default: all CPUs)")
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.n < 1:
        print("radz demo: --n must be >= 1", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="radz-demo-") as tmp:
        out = args.out or Path(tmp)
        return _run(args, out)


def _run(args, out: Path) -> int:
    from radz_train.data.synth_cli import main as synth_main

    from .dicom import read_dicom_many
    from .errors import RadzInputError
    from .preprocessing import default_threads, preprocess_batch

    timer = StageTimer()
    study = out / "phantom_dicom"
    synth_args = ["--out", str(study), "--n", str(args.n), "--seed", str(args.seed), "--format", "dicom",
                  "--dicom-size", str(args.dicom_size), "--sites", "site_a,site_b,site_c", "--workers", str(args.workers)]
    with timer.stage("generate phantom DICOM", args.n):
        code = synth_main(synth_args)
    if code:
        return code
    paths = sorted(str(p) for p in study.rglob("*.dcm"))
    with timer.stage("decode DICOM (pydicom)", len(paths)):
        decoded = read_dicom_many(paths, workers=args.workers)
    images = [d for d in decoded if not isinstance(d, RadzInputError)]
    failures = [d for d in decoded if isinstance(d, RadzInputError)]
    threads = args.threads or default_threads()
    batch = None
    with timer.stage(f"preprocess C++ ({threads} threads)", len(images)):
        for start in range(0, len(images), 64):
            chunk = images[start : start + 64]
            batch = preprocess_batch([d.pixels for d in chunk], [d.spec for d in chunk], args.input_size, num_threads=threads)
    print()
    print(f"phantom study set: {study} ({len(paths)} files, {len(failures)} unreadable)")
    for failure in failures[:10]:
        print(f"  failed: {failure}")
    print(timer.table())
    if batch is not None:
        print(f"last batch: shape {tuple(batch.shape)}, mean {float(np.mean(batch)):.3f}, std {float(np.std(batch)):.3f}")
    summary = {"files": len(paths), "failed": [str(f) for f in failures], "dicom_size": args.dicom_size,
               "input_size": args.input_size, "stages": timer.as_dict()}
    (out / "demo_summary.json").write_text(json.dumps(summary, indent=2))
    return 1 if failures else 0
