"""Counters and recent submit() latencies of one Engine, shared by its callers and runners."""

from __future__ import annotations

import collections
import threading
import time

import numpy as np

__all__ = ["EngineStats"]


class EngineStats:
    """Thread-safe: images, errors and batches counted, submit() latencies kept for 60 s."""

    def __init__(self, keep: int = 20000) -> None:
        self._lock = threading.Lock()
        self._latencies: collections.deque = collections.deque(maxlen=keep)  # (finished at, ms)
        self._counts = {"images": 0, "errors": 0, "batches": 0}
        self.started = time.perf_counter()

    def add(self, images: int = 0, errors: int = 0, batches: int = 0) -> None:
        with self._lock:
            self._counts["images"] += images
            self._counts["errors"] += errors
            self._counts["batches"] += batches

    def add_latency(self, submitted: float) -> None:
        """One submit() request resolved with a result; `submitted` is its perf_counter() time."""
        now = time.perf_counter()
        with self._lock:
            self._latencies.append((now, (now - submitted) * 1000.0))
            self._counts["images"] += 1

    def snapshot(self, window_s: float = 60.0) -> dict:
        """counts, uptime_s, submit_images_per_s_60s and latency_ms percentiles (p50/p90/p99)."""
        now = time.perf_counter()
        with self._lock:
            recent = [(t, ms) for t, ms in self._latencies if now - t <= window_s]
            counts = dict(self._counts)
        lat = np.array([ms for _, ms in recent])
        first = min((t for t, _ in recent), default=now)
        return {
            **counts,
            "uptime_s": now - self.started,
            "submit_images_per_s_60s": len(recent) / max(1e-9, now - first) if len(recent) > 1 else 0.0,
            "latency_ms": {f"p{p}": (float(np.percentile(lat, p)) if lat.size else None) for p in (50, 90, 99)},
        }
