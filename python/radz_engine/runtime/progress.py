"""Progress: a tqdm bar when stderr is a terminal; otherwise, when asked (`plain_every`), one
plain line every so many seconds (nohup, cron, SLURM logs get no carriage returns), else silent."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress(
    items: Iterable[T],
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "img",
    plain_every: float | None = None,
) -> Iterator[T]:
    """Wrap an iterable in a tqdm bar (rate shown) if stderr is interactive; without a terminal,
    print "desc: done/total unit, rate" every `plain_every` seconds and at the end (None: silent)."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        yield from tqdm(items, total=total, desc=desc, unit=unit, smoothing=0.1)
        return
    if plain_every is None:
        yield from items
        return
    start = last = time.perf_counter()
    done = 0
    for item in items:
        yield item
        done += 1
        now = time.perf_counter()
        if now - last >= plain_every or done == total:
            last = now
            of = f"/{total}" if total else ""
            print(
                f"{desc}: {done}{of} {unit}, {done / max(now - start, 1e-9):.2f} {unit}/s", file=sys.stderr, flush=True
            )
