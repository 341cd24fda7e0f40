"""Report vocabulary shared by every finding: degree words, lobes, lung zones, small helpers.

The per-finding sentences live with each finding (findings/); the report layout (order,
negations, normal sentences, impression) lives in radz_train.data.reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

__all__ = ["WORD", "ZONE_WORDS", "Degree", "cap", "degree_words", "pick", "severity_word", "side_word", "where"]

_SIZE_WORD = {"mild": ("small",), "moderate": ("moderate", "moderate-sized"), "severe": ("large",)}
_DEGREE_ADJ = {"mild": ("mild", "slight"), "moderate": ("moderate",), "severe": ("marked", "severe")}
_DEGREE_ADV = {"mild": ("mildly",), "moderate": ("moderately",), "severe": ("markedly", "severely")}
_LOBE = {("right", "upper"): "right upper lobe", ("right", "middle"): "right middle lobe",
         ("right", "lower"): "right lower lobe", ("left", "upper"): "left upper lobe",
         ("left", "middle"): "lingula", ("left", "lower"): "left lower lobe"}  # fmt: skip
ZONE_WORDS = {"upper": ("upper lung zone", "upper lung"), "middle": ("mid lung zone", "mid lung"),
              "lower": ("lung base", "lower lung zone")}  # fmt: skip

WORD = r"(?:[\w-]+\s+)"  # report-matching regex fragment: one word and its trailing space


class Degree(NamedTuple):
    """The degree words of one severity: adjective (mild), adverb (mildly), size (small)."""

    adj: str
    adv: str
    size: str


def side_word(laterality: str | None) -> str:
    """'right' / 'left' / 'bilateral' ('' for None)."""
    return laterality or ""


def severity_word(severity: str | None, rng: np.random.Generator, kind: str = "adj") -> str:
    """A degree word for a severity: kind 'adj' (mild), 'adv' (mildly) or 'size' (small)."""
    table = {"adj": _DEGREE_ADJ, "adv": _DEGREE_ADV, "size": _SIZE_WORD}[kind]
    words = table[severity or "mild"]
    return words[int(rng.integers(len(words)))]


def degree_words(severity: str | None, rng: np.random.Generator) -> Degree:
    """All three degree words of `severity`, drawn in the order adj, adv, size."""
    return Degree(*(severity_word(severity, rng, k) for k in ("adj", "adv", "size")))


def pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    """One of `options`, uniformly."""
    return options[int(rng.integers(len(options)))]


def cap(s: str) -> str:
    """`s` with its first letter upper-cased."""
    return s[:1].upper() + s[1:]


def where(f, rng: np.random.Generator) -> str:
    """Location phrase for a focal finding `f`: a lobe name or a lung zone."""
    side = f.laterality if f.laterality in ("left", "right") else "right"
    zone = f.location or "middle"
    if rng.random() < 0.5:
        return _LOBE[(side, zone)]
    return f"{side} {pick(rng, ZONE_WORDS[zone])}"
