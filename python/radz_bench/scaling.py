"""Multi-device scaling: one Engine over k devices (one backend replica per device, runner
threads sharing the one C++ queue), k = 1 .. len(devices), images pushed through
Engine.submit by a few submitting threads; images/s, speed-up over one device, efficiency."""

from __future__ import annotations

import threading
import time
from concurrent.futures import wait

import numpy as np

__all__ = ["MultiDeviceUnsupported", "run_scaling", "open_engine"]


class MultiDeviceUnsupported(RuntimeError):
    """This radz_engine's Engine does not take a list of devices."""


def open_engine(engine_factory, bundle_path, devices: list[str], **kwargs):
    """engine_factory(bundle, device=<str or list>, ...), turning "device must be a string" errors
    into MultiDeviceUnsupported with what to do instead."""
    device = devices[0] if len(devices) == 1 else list(devices)
    try:
        return engine_factory(bundle_path, device=device, **kwargs)
    except (TypeError, ValueError, AttributeError) as error:
        if len(devices) > 1 and "device" in str(error).lower():
            raise MultiDeviceUnsupported(
                f"Engine(device={device!r}) is not supported by this radz_engine ({type(error).__name__}: {error}). "
                "Benchmark one device per invocation (--device cuda:0) with this version"
            ) from error
        raise


def _push(engine, items: list, submitters: int, timeout: float = 600.0) -> float:
    """Submit every item from `submitters` threads, wait for all results; seconds taken."""
    futures: list = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(part):
        try:
            mine = [engine.submit(item) for item in part]
        except BaseException as error:  # noqa: BLE001  (reported below)
            errors.append(error)
            return
        with lock:
            futures.extend(mine)

    threads = [threading.Thread(target=work, args=(items[i::submitters],)) for i in range(submitters)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done, pending = wait(futures, timeout=timeout)
    seconds = time.perf_counter() - start
    if errors:
        raise errors[0]
    if pending:
        raise TimeoutError(f"{len(pending)} of {len(futures)} requests not done after {timeout} s")
    failed = [f.result() for f in done if getattr(f.result(), "error", None)]
    if failed:
        raise RuntimeError(f"{len(failed)} requests failed, e.g. {failed[0].error}")
    return seconds


def run_scaling(
    bundle_path,
    devices: list[str],
    backend: str = "auto",
    precision: str = "fp32",
    batch: int = 64,
    images: int = 2048,
    submitters: int = 4,
    backend_options: dict | None = None,
    engine_factory=None,
    image_shape: tuple[int, int] | None = None,
    say=None,
) -> dict:
    """Images/s of Engine.submit over devices[:k] for k = 1 .. len(devices)."""
    if engine_factory is None:
        from radz_engine.runtime.engine import Engine as engine_factory
    from radz_engine.preprocessing.pixel_spec import PixelSpec

    identity = PixelSpec(window_center=0.5, window_width=1.0, voi_function="LINEAR_EXACT")
    rng = np.random.default_rng(0)
    size = image_shape or (128, 128)
    pool = [rng.random(size, dtype=np.float32) for _ in range(16)]
    rows = []
    for k in range(1, len(devices) + 1):
        engine = open_engine(
            engine_factory,
            bundle_path,
            devices[:k],
            backend=backend,
            max_batch_size=batch,
            max_delay_ms=2.0,
            max_queue=max(4 * batch * k, 1024),
            backend_options=backend_options,
        )
        try:
            shape = getattr(engine, "input_shape", None)
            if image_shape is None and shape is not None:
                pool = [rng.random(tuple(shape[1:]), dtype=np.float32) for _ in range(16)]
            warm = [(pool[i % len(pool)], identity) for i in range(2 * batch * k)]
            _push(engine, warm, submitters)
            items = [(pool[i % len(pool)], identity) for i in range(images)]
            seconds = _push(engine, items, submitters)
        finally:
            engine.close()
        rows.append(
            {
                "devices": list(devices[:k]),
                "images": images,
                "seconds": round(seconds, 4),
                "images_per_s": round(images / seconds, 2),
            }
        )
        if say:
            say(f"scaling {devices[:k]}: {rows[-1]['images_per_s']:.1f} img/s")
    base = rows[0]["images_per_s"]
    for k, row in enumerate(rows, start=1):
        row["speedup"] = round(row["images_per_s"] / base, 3)
        row["efficiency"] = round(row["speedup"] / k, 3)
    return {
        "backend": backend,
        "precision": precision,
        "batch": batch,
        "images": images,
        "submitters": submitters,
        "rows": rows,
    }
