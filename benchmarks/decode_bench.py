"""Input -> model tensor per DICOM transfer syntax at realistic sizes: radz against pydicom's
pixel_array path, side by side in one run (one process, one thread, alternating rounds).

    python benchmarks/decode_bench.py --dir /tmp/decode2048 --size 2048 --n 4 --rounds 3 \\
        --out docs/decode_bench.json

Missing folders DIR/<syntax>/images are written first with `radz synth --format dicom
--transfer-syntax <syntax> --size SIZE` (phantoms; sites a, b, c). Per syntax and round, in
alternating order, each side reads every file of the folder:
  - pydicom:   pydicom.dcmread + Dataset.pixel_array (decode only, no resize: what a user's
               own loop starts from);
  - radz full: radz_engine.runtime.prepare.prepare(path, the default bundle's preprocess_args,
               reduced_decode=False): read + full decode + C++ preprocessing to the tensor;
  - radz:      prepare(path, preprocess_args): the same, with JPEG 2000 / HTJ2K decoded by the
               C++ core (OpenJPEG) at the coarsest level >= 2x the model side.
Reported: images/s (median over rounds) and radz / pydicom. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

SYNTAXES = ("explicit-le", "rle", "jpeg-lossless", "jpeg-baseline", "jpeg-ls", "j2k-lossless", "j2k", "htj2k-lossless")


def _make(folder: Path, syntax: str, n: int, size: int) -> None:
    if (folder / "labels.csv").exists():
        return
    cmd = [sys.executable, "-m", "radz_train.data.synth_cli", "--out", str(folder), "--n", str(n), "--seed", "9",
           "--sites", "site_a,site_b,site_c", "--size", str(size), "--format", "dicom",
           "--transfer-syntax", syntax, "--quiet"]  # fmt: skip
    subprocess.run(cmd, check=True)


def _time(fn, files: list[str]) -> float:
    start = time.perf_counter()
    for f in files:
        fn(f)
    return len(files) / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--syntaxes", default=",".join(SYNTAXES))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    syntaxes = [s for s in args.syntaxes.split(",") if s]

    import pydicom

    import radz_engine
    from radz_engine.bundle.loader import load_bundle
    from radz_engine.runtime.prepare import prepare

    preprocess_args = load_bundle().preprocess_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    folders = {}
    for syntax in syntaxes:
        folders[syntax] = Path(args.dir) / syntax
        _make(folders[syntax], syntax, args.n, args.size)

    def pydicom_path(path: str) -> None:
        pydicom.dcmread(path).pixel_array  # noqa: B018 - decoding is the point

    def radz_full(path: str) -> None:
        result = prepare(path, preprocess_args, reduced_decode=False)
        assert not hasattr(result, "error") or result.error is None, result

    def radz_path(path: str) -> None:
        result = prepare(path, preprocess_args)
        assert not hasattr(result, "error") or result.error is None, result

    sides = {"pydicom": pydicom_path, "radz full": radz_full, "radz": radz_path}
    rows = []
    for syntax in syntaxes:
        files = sorted(str(p) for p in (folders[syntax] / "images").glob("*.dcm"))
        for fn in sides.values():  # warm-up: imports, plugin discovery, the core's caches
            fn(files[0])
        rates: dict[str, list[float]] = {name: [] for name in sides}
        for r in range(args.rounds):
            order = list(sides) if r % 2 == 0 else list(reversed(sides))
            for name in order:
                rates[name].append(_time(sides[name], files))
        median = {name: statistics.median(v) for name, v in rates.items()}
        mb = sum(os.path.getsize(f) for f in files) / len(files) / 1e6
        rows.append(
            {
                "syntax": syntax,
                "files": len(files),
                "mb_per_file": round(mb, 2),
                **{f"{name} images/s": round(v, 2) for name, v in median.items()},
                "radz / pydicom": round(median["radz"] / median["pydicom"], 2),
                "rounds": {name: [round(x, 2) for x in v] for name, v in rates.items()},
            }
        )
        print(
            f"{syntax:15s} {mb:6.2f} MB  pydicom {median['pydicom']:7.2f}/s  radz full {median['radz full']:7.2f}/s"
            f"  radz {median['radz']:7.2f}/s  radz/pydicom {median['radz'] / median['pydicom']:6.2f}x",
            flush=True,
        )
    report = {
        "command": " ".join(sys.argv),
        "size": args.size,
        "preprocess_args": {k: (list(v) if isinstance(v, tuple) else v) for k, v in preprocess_args.items()},
        "build_info": radz_engine.build_info(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "rows": rows,
    }
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
