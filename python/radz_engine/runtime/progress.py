"""Progress bars: tqdm when stderr is a terminal, silent otherwise (logs stay clean)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "img") -> Iterator[T]:
    """Wrap an iterable in a tqdm bar (images/s shown) if stderr is interactive."""
    if not sys.stderr.isatty():
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(items, total=total, desc=desc, unit=unit, smoothing=0.1)
