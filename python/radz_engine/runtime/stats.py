"""Counters and recent submit() latencies of one Engine, shared by its callers and runners."""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

__all__ = ["EngineStats", "Stats"]


@dataclass(frozen=True)
class Stats:
    """What `Engine.stats()` returns: one consistent snapshot.

    Attributes:
        backend: the backend's description (name, device, providers, ...).
        scoring: where class scores are computed ("faiss" or "numpy").
        classes: number of classes scored now.
        devices: the devices with a backend replica.
        runners: runner threads popping submit() batches.
        images: images handled (classify, screen, submit), errors included.
        errors: images that gave an error Result.
        batches: model batches run (classify, screen and the submit() runners).
        uptime_s: seconds since the engine started.
        submit_images_per_s_60s: submit() results per second over the last 60 s.
        latency_ms: submit() end-to-end latency percentiles over the last 60 s,
            {"p50", "p90", "p99"} in milliseconds (None before any request).
        queue_depth: requests waiting in the batcher now.
        batcher_metrics: the C++ batcher's counters (completed, expired, cancelled, rejected, ...).

    Dict-style access still works for callers of the old dict (`stats["latency_ms"]["p50"]`,
    `"queue_depth" in stats`, `stats.to_dict()`); `latency_histogram()` gives the raw latencies.
    """

    backend: Any = None
    scoring: str = ""
    classes: int = 0
    devices: list = field(default_factory=list)
    runners: int = 0
    images: int = 0
    errors: int = 0
    batches: int = 0
    uptime_s: float = 0.0
    submit_images_per_s_60s: float = 0.0
    latency_ms: dict = field(default_factory=dict)
    queue_depth: int = 0
    batcher_metrics: dict = field(default_factory=dict)
    _latencies: tuple = field(default=(), repr=False, compare=False)

    def latency_histogram(self, bins: int | list[float] = 20) -> tuple[np.ndarray, np.ndarray]:
        """(counts, edges in ms) of the submit() latencies of the last 60 s, as numpy.histogram
        makes them; `latencies_ms()` gives the values themselves."""
        values = self.latencies_ms()
        if values.size == 0:
            return np.zeros(bins if isinstance(bins, int) else len(bins) - 1, dtype=np.int64), np.asarray(
                [] if isinstance(bins, int) else bins, dtype=np.float64
            )
        return np.histogram(values, bins=bins)

    def latencies_ms(self) -> np.ndarray:
        """The submit() latencies (ms) of the last 60 s, oldest first."""
        return np.asarray(self._latencies, dtype=np.float64)

    # -- dict-style access (Engine.stats() used to return a dict) --------------------------------
    def keys(self) -> list[str]:
        return [f.name for f in fields(self) if not f.name.startswith("_")]

    def __getitem__(self, key: str) -> Any:
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self.keys() else default

    def to_dict(self) -> dict:
        """A plain dict of the public fields (JSON-ready apart from numpy-free values)."""
        out = asdict(self)
        out.pop("_latencies", None)
        return out


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

    def snapshot(self, window_s: float = 60.0, *, with_latencies: bool = False) -> dict:
        """counts, uptime_s, submit_images_per_s_60s and latency_ms percentiles (p50/p90/p99);
        with_latencies: also "_latencies", the recent latencies themselves (ms)."""
        now = time.perf_counter()
        with self._lock:
            recent = [(t, ms) for t, ms in self._latencies if now - t <= window_s]
            counts = dict(self._counts)
        lat = np.array([ms for _, ms in recent])
        first = min((t for t, _ in recent), default=now)
        out = {
            **counts,
            "uptime_s": now - self.started,
            "submit_images_per_s_60s": len(recent) / max(1e-9, now - first) if len(recent) > 1 else 0.0,
            "latency_ms": {f"p{p}": (float(np.percentile(lat, p)) if lat.size else None) for p in (50, 90, 99)},
        }
        if with_latencies:
            out["_latencies"] = tuple(float(v) for v in lat)
        return out
