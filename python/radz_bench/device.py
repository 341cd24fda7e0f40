"""Timers (wall clock on CPU, CUDA events on GPU), the matmul peak, memory sampling and a
description of the machine. torch is imported lazily and only where a function needs it."""

from __future__ import annotations

import os
import platform
import threading
import time
from collections.abc import Callable

__all__ = [
    "DTYPES",
    "CudaUnavailable",
    "require_cuda",
    "time_calls",
    "matmul_peak",
    "MemorySampler",
    "machine_info",
    "is_cuda",
]

# --precision name -> torch dtype name
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


class CudaUnavailable(RuntimeError):
    """A CUDA device was asked for and this process cannot use one."""


def is_cuda(device: str) -> bool:
    return str(device).lower().startswith("cuda")


def require_cuda(device: str) -> None:
    """Raise CudaUnavailable with the reason when `device` is a CUDA device that is not usable."""
    if not is_cuda(device):
        return
    try:
        import torch
    except ImportError as error:
        raise CudaUnavailable(
            f"device {device!r}: radz bench uses PyTorch for CUDA timing and the reference; torch is not installed"
        ) from error
    if not torch.cuda.is_available():
        raise CudaUnavailable(
            f"device {device!r}: torch {torch.__version__} sees no CUDA device "
            "(a CPU-only build, no driver, or CUDA_VISIBLE_DEVICES hides it); use --device cpu"
        )
    index = int(str(device).split(":")[1]) if ":" in str(device) else 0
    if index >= torch.cuda.device_count():
        raise CudaUnavailable(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) visible")


def time_calls(
    fn: Callable[[], object], repeats: int, device: str = "cpu", max_seconds: float | None = None, min_repeats: int = 3
) -> list[float]:
    """Seconds per call of fn(), `repeats` times (no warm-up here).

    On CUDA each call is bracketed by CUDA events on the current stream (the GPU's own clock:
    no host jitter), synchronised once at the end. `max_seconds` stops early (after at least
    `min_repeats` calls) so that slow configurations do not run for minutes.
    """
    if is_cuda(device):
        import torch

        with torch.cuda.device(torch.device(device)):
            pairs = []
            start_wall = time.perf_counter()
            for i in range(repeats):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                pairs.append((start, end))
                if max_seconds is not None and i + 1 >= min_repeats and time.perf_counter() - start_wall > max_seconds:
                    torch.cuda.synchronize()
                    if time.perf_counter() - start_wall > max_seconds:
                        break
            torch.cuda.synchronize()
            return [s.elapsed_time(e) / 1000.0 for s, e in pairs]
    samples = []
    start_wall = time.perf_counter()
    for i in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
        if max_seconds is not None and i + 1 >= min_repeats and time.perf_counter() - start_wall > max_seconds:
            break
    return samples


def matmul_peak(device: str = "cpu", precision: str = "fp32", size: int | None = None, repeats: int = 10) -> dict:
    """Achievable matmul throughput: [n x n] @ [n x n] at the precision, measured now, in this
    process (so that the fraction of peak compares like with like on a shared or throttled
    machine). n: 8192 on CUDA, 2048 on CPU unless given. `tflops` is the best of `repeats`
    calls (a peak: on a shared machine the median carries other jobs' load), `tflops_median` too."""
    import torch

    dtype = getattr(torch, DTYPES[precision])
    n = int(size or (8192 if is_cuda(device) else 2048))
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    with torch.inference_mode():
        for _ in range(2):
            torch.matmul(a, b)
        samples = sorted(time_calls(lambda: torch.matmul(a, b), repeats, device, max_seconds=20.0))
    flop = 2.0 * n**3
    return {
        "precision": precision,
        "n": n,
        "best_s": samples[0],
        "median_s": samples[len(samples) // 2],
        "tflops": flop / samples[0] / 1e12,
        "tflops_median": flop / samples[len(samples) // 2] / 1e12,
        "threads": torch.get_num_threads() if not is_cuda(device) else None,
    }


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class MemorySampler:
    """Peak memory while a block runs: on CPU the process's resident set, sampled every
    `interval` s; on CUDA torch's allocator peak (max_memory_allocated, reset on entry) and the
    device's used memory (cudaMemGetInfo, sampled), which also sees ONNX Runtime / TensorRT."""

    def __init__(self, device: str = "cpu", interval: float = 0.01) -> None:
        self.device, self.interval = device, interval
        self.peak_bytes = 0
        self.torch_peak_bytes: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> int:
        if is_cuda(self.device):
            import torch

            free, total = torch.cuda.mem_get_info(torch.device(self.device))
            return int(total - free)
        return _rss_bytes()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_bytes = max(self.peak_bytes, self._sample())

    def __enter__(self) -> MemorySampler:
        if is_cuda(self.device):
            import torch

            torch.cuda.reset_peak_memory_stats(torch.device(self.device))
        self.peak_bytes = self._sample()
        self._thread = threading.Thread(target=self._loop, name="radz-bench-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_bytes = max(self.peak_bytes, self._sample())
        if is_cuda(self.device):
            import torch

            self.torch_peak_bytes = int(torch.cuda.max_memory_allocated(torch.device(self.device)))

    def as_dict(self) -> dict:
        key = "device_used_peak_mib" if is_cuda(self.device) else "rss_peak_mib"
        out = {key: round(self.peak_bytes / 2**20, 1)}
        if self.torch_peak_bytes is not None:
            out["torch_allocated_peak_mib"] = round(self.torch_peak_bytes / 2**20, 1)
        return out


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(devices: list[str]) -> dict:
    """What ran the benchmark: CPU, cores, load, GPUs by name, library versions."""
    import importlib.metadata as metadata

    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
    }
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    for dist in ("torch", "onnxruntime", "onnxruntime-gpu", "tensorrt", "transformers", "radz-engine"):
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    if any(is_cuda(d) for d in devices):
        import torch

        info["gpus"] = {d: torch.cuda.get_device_name(torch.device(d)) for d in devices if is_cuda(d)}
        info["cuda"] = torch.version.cuda
    return info
