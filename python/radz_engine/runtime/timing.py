"""A tiny stage timer for command-line summaries."""

from __future__ import annotations

import time
from contextlib import contextmanager


class StageTimer:
    """Records (stage, items, seconds) and prints an aligned images/s table."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, int, float]] = []

    @contextmanager
    def stage(self, name: str, items: int):
        start = time.perf_counter()
        yield
        self.rows.append((name, items, time.perf_counter() - start))

    def table(self) -> str:
        lines = [f"{'stage':<34} {'images':>7} {'seconds':>9} {'images/s':>10}"]
        for name, items, seconds in self.rows:
            rate = items / seconds if seconds > 0 else float("inf")
            lines.append(f"{name:<34} {items:>7d} {seconds:>9.3f} {rate:>10.1f}")
        return "\n".join(lines)

    def as_dict(self) -> list[dict]:
        return [
            {"stage": n, "images": i, "seconds": round(s, 4), "images_per_s": round(i / s, 2) if s > 0 else None}
            for n, i, s in self.rows
        ]
