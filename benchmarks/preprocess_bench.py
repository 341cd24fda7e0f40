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
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

import radz_engine as rz
from radz_engine import PixelSpec
from radz_engine.preprocessing.reference import (
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("docs/preprocess_bench.json"))
    args = parser.parse_args()

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

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
