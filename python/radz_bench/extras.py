"""Two engine measurements beyond throughput (from the former benchmarks/engine_bench.py):
submit() latency at low load (one request in flight) against the bare backend's batch-1 time,
and Engine.screen over phantom DICOM files with per-stage times."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from radz_bench.device import time_calls

__all__ = ["submit_latency", "screen_throughput"]


def submit_latency(engine, images: list, requests: int = 300) -> dict:
    """Closed loop, one request at a time: p50/p99 of submit() -> result against the bare
    backend's batch-1 time, and the target p99 <= 1.3 x bare + max_delay.

    Bare calls and submits alternate (bare, submit, bare, submit, ...), so both sides see the
    same machine: on a shared CPU a bare median taken before the submits can be off by 2x, and
    the model's own tail (bare p99) is what a submit p99 cannot go below."""
    x1 = engine.preprocess([__import__("radz_engine.io.inputs", fromlist=["decode"]).decode(images[0])])
    time_calls(lambda: engine.backend.run(x1), 10)  # warm the session
    engine.submit(images[0]).result(30)  # start the runners
    bare, latencies = [], []
    for i in range(requests):
        start = time.perf_counter()
        engine.backend.run(x1)
        bare.append((time.perf_counter() - start) * 1000.0)
        start = time.perf_counter()
        engine.submit(images[i % len(images)]).result(30)
        latencies.append((time.perf_counter() - start) * 1000.0)
    p50, p99 = float(np.percentile(latencies, 50)), float(np.percentile(latencies, 99))
    bare50 = float(np.percentile(bare, 50))
    return {
        "requests": requests,
        "max_delay_ms": engine.max_delay_ms,
        "bare_batch1_ms": round(bare50, 3),
        "bare_batch1_p99_ms": round(float(np.percentile(bare, 99)), 3),
        "submit_p50_ms": round(p50, 3),
        "submit_p99_ms": round(p99, 3),
        "target_p99_ms": round(1.3 * bare50 + engine.max_delay_ms, 3),
    }


def screen_throughput(engine, n: int, workers: int = 1, size: int = 512, batch_size: int = 32) -> dict:
    """Engine.screen over n phantom DICOMs (size x size, 12-bit): images/s and mean stage times."""
    from radz_train.data.dicom_out import write_case
    from radz_train.data.phantom import generate_cases

    with tempfile.TemporaryDirectory(prefix="radz_bench_screen_") as tmp:
        folder = Path(tmp)
        for case in generate_cases(n, seed=11, size=size):
            write_case(case, folder / f"{case.index:05d}.dcm")
        start = time.perf_counter()
        results = list(engine.screen(folder, progress=False, workers=workers, batch_size=batch_size))
        seconds = time.perf_counter() - start
    ok = [r for r in results if r.ok]
    stage = {k: round(float(np.mean([r.timings[k] for r in ok])), 3) for k in ("decode", "preprocess")} if ok else {}
    if ok:
        stage["model_per_image"] = round(float(np.mean([r.timings["model"] / batch_size for r in ok])), 3)
    return {
        "files": len(results),
        "ok": len(ok),
        "workers": workers,
        "size": size,
        "images_per_s": round(len(results) / seconds, 1),
        "mean_ms": stage,
    }
