"""Percentiles and the stability rule of the load generator's measurement windows."""

from __future__ import annotations

import numpy as np

__all__ = ["summarize", "within"]


def summarize(seconds: list[float] | np.ndarray) -> dict:
    """Per-call times (s) -> milliseconds: n, mean, median, p90, p95, p99, min, max."""
    x = np.asarray(seconds, dtype=np.float64) * 1000.0
    if x.size == 0:
        return {"n": 0}
    p = np.percentile(x, [50, 90, 95, 99])
    return {
        "n": int(x.size),
        "mean_ms": float(x.mean()),
        "median_ms": float(p[0]),
        "p90_ms": float(p[1]),
        "p95_ms": float(p[2]),
        "p99_ms": float(p[3]),
        "min_ms": float(x.min()),
        "max_ms": float(x.max()),
    }


def within(values: list[float], tolerance: float) -> bool:
    """True when every value lies within `tolerance` (relative) of their mean, e.g. three
    consecutive windows' p50 within 10%: within([p50_a, p50_b, p50_c], 0.10)."""
    if not values or any(v is None or not np.isfinite(v) for v in values):
        return False
    mean = float(np.mean(values))
    if mean == 0:
        return all(v == 0 for v in values)
    return max(abs(v - mean) for v in values) <= tolerance * abs(mean)
