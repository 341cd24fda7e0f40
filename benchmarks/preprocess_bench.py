"""Preprocessing throughput, side by side in one run.

    python benchmarks/preprocess_bench.py [--repeats 20] [--out docs/preprocess_bench.json]

Compares, on one 2500x2048 uint16 radiograph (15-bit, window, MONOCHROME1) -> 3x224x224:
  - the numpy reference (the test oracle, float64, written for clarity);
  - a tuned numpy pipeline (lookup table + OpenCV INTER_AREA), when opencv-python is
    installed: what a careful Python user would write instead of the C++ core;
  - the C++ core, `radz_engine.preprocess`, single thread;
and `radz_engine.preprocess_batch` images/s on 1 and 2 threads over 32 images of mixed sizes,
plus phantom generation images/s when radz_train.data.phantom is present.
Prints a table and writes JSON. Numbers are ratios from one process on a shared machine.

    python benchmarks/preprocess_bench.py --compare-core OLD/_core.cpython-311-x86_64-linux-gnu.so

adds the small-image cases (16x16 and 512x512 uint16, 16 and 12 bits stored, the same window
on every call or a new one each call as in a screening of images with their own windows,
min-max) -> 3x128x128, for an older build of the extension and the current one side by side:
each round runs both builds in fresh subprocesses, alternating, and the table shows medians.

    python benchmarks/preprocess_bench.py --dtypes --only-compare --compare-core OLD/_core...so

compares instead the input dtypes (float32 vs uint16 vs uint8, 512x512 and 2048x2048 -> 3x224x224,
min-max and a window; float32 also as the [0, 1] identity window `radz bench` submits and with
SIGMOID, which keeps the exact per-pixel path). --only-compare skips the big-image section.
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

import numpy as np

if os.environ.get("RADZ_BENCH_CORE"):  # --compare-core: this subprocess runs that build of _core
    import importlib.machinery
    import importlib.util

    _loader = importlib.machinery.ExtensionFileLoader("radz_engine._core", os.environ["RADZ_BENCH_CORE"])
    _module = importlib.util.module_from_spec(
        importlib.util.spec_from_file_location("radz_engine._core", _loader.path, loader=_loader)
    )
    sys.modules["radz_engine._core"] = _module
    _loader.exec_module(_module)

import radz_engine as rz  # noqa: E402
from radz_engine import PixelSpec  # noqa: E402
from radz_engine.preprocessing.reference import (  # noqa: E402
    CLIP_MEAN,
    CLIP_STD,
    letterbox_geometry,
    preprocess_reference,
    stored_to_intensity,
)


def timed(fn, repeats: int) -> float:
    """Median seconds of `repeats` calls after one warm-up call."""
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def tuned_numpy(pixels: np.ndarray, spec: PixelSpec, size: int):
    """LUT over all 65536 stored values + cv2 area resize: a fair fast-Python baseline."""
    import cv2

    table = stored_to_intensity(np.arange(65536, dtype=np.uint16).reshape(256, 256), spec).astype(np.float32).ravel()
    mean = np.asarray(CLIP_MEAN, np.float32)[:, None, None]
    std = np.asarray(CLIP_STD, np.float32)[:, None, None]

    def run():
        intensity = np.take(table, pixels)
        nh, nw, top, left = letterbox_geometry(*pixels.shape, size, size, "letterbox")
        canvas = np.zeros((size, size), np.float32)
        canvas[top : top + nh, left : left + nw] = cv2.resize(intensity, (nw, nh), interpolation=cv2.INTER_AREA)
        return (canvas[None] - mean) / std

    return run


SMALL_CASES = (
    # name, shape, bits of random data, spec factory (call index -> spec)
    ("16x16 u16, 16 bits, one window", (16, 16), 16, lambda i: PixelSpec(window_center=3e4, window_width=2e4)),
    ("16x16 u16, 16 bits, min-max", (16, 16), 16, lambda i: None),
    ("16x16 u8, min-max (for scale)", (16, 16), 8, lambda i: None),
    ("512x512 u16, 16 bits, one window", (512, 512), 16, lambda i: PixelSpec(window_center=3e4, window_width=2e4)),
    (
        "512x512 u16, 16 bits, new window per call",
        (512, 512),
        16,
        lambda i: PixelSpec(window_center=3e4 + i, window_width=2e4),
    ),
    ("512x512 u16, 16 bits, min-max", (512, 512), 16, lambda i: None),
    (
        "512x512 u16, 12 bits, new window per call",
        (512, 512),
        12,
        lambda i: PixelSpec(window_center=2000.0 + i, window_width=3000.0, bits_stored=12),
    ),
    (
        "512x512 u16, 12 bits, SIGMOID, one window",
        (512, 512),
        12,
        lambda i: PixelSpec(window_center=2000.0, window_width=3000.0, voi_function="SIGMOID", bits_stored=12),
    ),
)


def _dtype_case(size: int, dtype, spec: PixelSpec | None, unit: bool = False):
    """A size x size image in dtype: the same 12-bit random content (uint8: its top 8 bits; float32 in
    [0, 1) when unit, for the identity window)."""

    def make(rng):
        base = rng.integers(0, 4096, size=(size, size))
        if dtype == np.uint8:
            return (base >> 4).astype(np.uint8)
        if unit:
            return (base / 4096.0).astype(np.float32)
        return base.astype(dtype)

    return make, spec


_WINDOW = PixelSpec(window_center=2048.0, window_width=4096.0)
_IDENTITY = PixelSpec(window_center=0.5, window_width=1.0, voi_function="LINEAR_EXACT")  # radz bench's inputs
DTYPE_CASES = {
    # name -> (pixel factory, spec); output 3x224x224
    f"{size}x{size} {name}": _dtype_case(size, dtype, spec, unit)
    for size in (512, 2048)
    for name, dtype, spec, unit in (
        ("float32, min-max", np.float32, None, False),
        ("uint16, min-max", np.uint16, None, False),
        ("uint8, min-max", np.uint8, None, False),
        ("float32, window", np.float32, _WINDOW, False),
        ("uint16, window", np.uint16, _WINDOW, False),
        ("float32 [0,1], identity window", np.float32, _IDENTITY, True),
        ("float32, SIGMOID (exact path)", np.float32, _WINDOW.with_(voi_function="SIGMOID"), False),
    )
}
DTYPE_CASES["224x224 float32 [0,1], identity window (submit)"] = _dtype_case(224, np.float32, _IDENTITY, True)


def dtype_cases_ms(seconds: float = 0.4) -> dict:
    """Mean ms per rz.preprocess call (-> 3x224x224) for each of DTYPE_CASES, in this process."""
    rng = np.random.default_rng(0)
    out = {}
    for name, (make, spec) in DTYPE_CASES.items():
        pixels = make(rng)
        once = timed(lambda p=pixels, s=spec: rz.preprocess(p, s, 224), 2)
        calls = max(5, int(seconds / max(once, 1e-6)))
        start = time.perf_counter()
        for _ in range(calls):
            rz.preprocess(pixels, spec, 224)
        out[name] = (time.perf_counter() - start) / calls * 1e3
    return out


def small_cases_ms(calls: int = 200) -> dict:
    """Mean ms per rz.preprocess call (-> 3x128x128) for each of SMALL_CASES, in this process."""
    rng = np.random.default_rng(0)
    out = {}
    for name, shape, bits, make_spec in SMALL_CASES:
        dtype = np.uint8 if bits == 8 else np.uint16
        pixels = rng.integers(0, 2**bits, size=shape).astype(dtype)
        specs = [make_spec(i) for i in range(calls + 3)]
        for spec in specs[:3]:
            rz.preprocess(pixels, spec, 128)
        start = time.perf_counter()
        for spec in specs[3:]:
            rz.preprocess(pixels, spec, 128)
        out[name] = (time.perf_counter() - start) / calls * 1e3
    return out


def compare_cores(old_core: Path, rounds: int, dtypes: bool = False) -> dict:
    """SMALL_CASES (or DTYPE_CASES) with an older _core build and the current one, alternating subprocesses."""
    current = Path(rz._core.__file__)
    flag, names = ("--dtype-cases-json", list(DTYPE_CASES)) if dtypes else ("--small-cases-json", SMALL_CASES)
    samples: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
    for r in range(rounds):
        order = [("before", old_core), ("after", current)]
        for label, core in order if r % 2 == 0 else order[::-1]:
            env = dict(os.environ, RADZ_BENCH_CORE=str(core))
            text = subprocess.run(
                [sys.executable, __file__, flag], env=env, check=True, capture_output=True, text=True
            ).stdout
            for name, ms in json.loads(text.strip().splitlines()[-1]).items():
                samples[label].setdefault(name, []).append(ms)
    table = {}
    what = "input dtypes -> 3x224x224" if dtypes else "small images -> 3x128x128"
    print(f"\n{what}, ms per call (median of {rounds} alternated rounds)")
    print(f"{'case':<50} {'before':>8} {'after':>8} {'speed-up':>9}")
    for name in names:
        name = name if isinstance(name, str) else name[0]
        before = statistics.median(samples["before"][name])
        after = statistics.median(samples["after"][name])
        print(f"{name:<50} {before:>8.3f} {after:>8.3f} {before / after:>8.1f}x")
        table[name] = {"before_ms": round(before, 4), "after_ms": round(after, 4)}
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("docs/preprocess_bench.json"))
    parser.add_argument("--compare-core", type=Path, help="an older build of _core*.so to compare small images with")
    parser.add_argument("--rounds", type=int, default=5, help="alternated rounds for --compare-core")
    parser.add_argument("--dtypes", action="store_true", help="compare input dtypes (float32/uint16/uint8) instead")
    parser.add_argument("--only-compare", action="store_true", help="skip the big-image section")
    parser.add_argument("--small-cases-json", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dtype-cases-json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.small_cases_json:
        print(json.dumps(small_cases_ms()))
        return
    if args.dtype_cases_json:
        print(json.dumps(dtype_cases_ms()))
        return
    if args.only_compare:
        if args.compare_core:
            results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"}
            key = "dtypes_before_after" if args.dtypes else "small_images_before_after"
            results[key] = compare_cores(args.compare_core, args.rounds, args.dtypes)
        else:
            results = dtype_cases_ms() if args.dtypes else small_cases_ms()
            for name, ms in results.items():
                print(f"{name:<50} {ms:>8.3f} ms")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
        print(f"\nwrote {args.out}")
        return

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 2**15, size=(2500, 2048)).astype(np.uint16)
    spec = PixelSpec(window_center=16000.0, window_width=24000.0, invert=True, bits_stored=15)
    results: dict = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "image": "2500x2048 uint16 -> 3x224x224 float32",
    }

    ref = timed(lambda: preprocess_reference(pixels, spec, 224), max(3, args.repeats // 5))
    cpp = timed(lambda: rz.preprocess(pixels, spec, 224), args.repeats)
    err = float(np.abs(rz.preprocess(pixels, spec, 224) - preprocess_reference(pixels, spec, 224)).max())
    rows = [("numpy reference (oracle)", ref), ("C++ preprocess, 1 thread", cpp)]
    try:
        fast = tuned_numpy(pixels, spec, 224)
        rows.insert(1, ("numpy LUT + cv2 INTER_AREA", timed(fast, args.repeats)))
    except ImportError:
        print("(opencv-python not installed: tuned numpy baseline skipped)")
    print(f"single image, {results['image']}; max |C++ - reference| = {err:.2e}")
    print(f"{'method':<30} {'ms':>9} {'C++ speed-up':>13}")
    for name, seconds in rows:
        print(f"{name:<30} {seconds * 1e3:>9.2f} {seconds / cpp:>12.1f}x")
    results["single_image_ms"] = {name: round(s * 1e3, 3) for name, s in rows}
    results["speedup_vs_reference"] = round(ref / cpp, 1)
    results["max_abs_error_vs_reference"] = err

    shapes = [
        (2500, 2048),
        (2048, 2500),
        (3000, 2500),
        (1024, 1024),
        (2140, 1760),
        (2992, 2992),
        (512, 640),
        (1760, 2140),
    ]
    batch = [rng.integers(0, 4096, size=shapes[i % len(shapes)]).astype(np.uint16) for i in range(32)]
    batch_spec = PixelSpec(window_center=2048.0, window_width=4096.0, bits_stored=12)
    megapixels = sum(b.size for b in batch) / len(batch) / 1e6
    print(f"\npreprocess_batch: 32 radiographs of mixed sizes (mean {megapixels:.1f} MP) -> 32x3x224x224")
    results["batch"] = {}
    for threads in (1, 2):
        run = lambda n=threads: rz.preprocess_batch(batch, batch_spec, 224, num_threads=n)  # noqa: E731
        seconds = timed(run, max(3, args.repeats // 4))
        print(f"  {threads} thread(s): {len(batch) / seconds:8.1f} images/s")
        results["batch"][f"{threads}_threads_images_per_s"] = round(len(batch) / seconds, 1)

    try:
        from radz_train.data.phantom import generate_case
    except ImportError:
        generate_case = None
    if generate_case is not None:
        results["phantom_images_per_s"] = {}
        for size in (256, 1024):
            n = 40 if size == 256 else 8
            start = time.perf_counter()
            for i in range(n):
                generate_case(i, seed=1, site="site_a", size=size)
            rate = n / (time.perf_counter() - start)
            print(f"phantom generation {size}x{size}, 1 process: {rate:8.1f} images/s")
            results["phantom_images_per_s"][str(size)] = round(rate, 1)

    if args.compare_core:
        key = "dtypes_before_after" if args.dtypes else "small_images_before_after"
        results[key] = compare_cores(args.compare_core, args.rounds, args.dtypes)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
