"""Seeds and random streams: every part of every case draws from its own stream.

`case_seed(seed, index)` fixes a case; `stream(cseed, *keys)` is an independent generator for
one part of it ("anatomy", "findings", ("render", name), ("acquisition", site), ...), so
changing one part never shifts the random numbers of another.
"""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["case_seed", "check_int", "stream"]


def check_int(name: str, value: int, minimum: int = 0) -> int:
    """`value` as an int, or ValueError naming `name` when it is not an integer >= minimum."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def case_seed(seed: int, index: int) -> int:
    """The per-image seed: a 63-bit integer derived from (seed, index) only."""
    seed = check_int("seed", seed)
    index = check_int("index", index)
    state = np.random.SeedSequence([seed, index, 0x5AD1]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def stream(cseed: int, *keys: int | str) -> np.random.Generator:
    """An independent random stream for one part of one case."""
    ints = [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in keys]
    return np.random.default_rng(np.random.SeedSequence([cseed & 0xFFFFFFFF, cseed >> 32, *ints]))
