"""Cardiomegaly: a wider, rounder heart (cardiothoracic ratio above 0.5)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from radz_train.data.phantom.findings.spec import FindingSpec
from radz_train.data.phantom.wording import WORD, Degree, cap, pick

if TYPE_CHECKING:  # pragma: no cover
    from radz_train.data.phantom.model import Finding
    from radz_train.data.phantom.patient import Anatomy


def _anatomy(a: Anatomy, f: Finding, s: int) -> None:
    a.ctr = (0.545, 0.595, 0.65)[s] + 0.04 * ((a.heart_round - 0.85) / 0.25)
    a.heart_round *= 1.12


def _describe(f: Finding, w: Degree, rng: np.random.Generator) -> tuple[str, str]:
    adj, adv = w.adj, w.adv
    s = pick(rng, [
        f"The cardiac silhouette is {adv} enlarged.",
        f"There is {adj} cardiomegaly.",
        f"{cap(adj)} enlargement of the cardiac silhouette.",
        f"The heart is {adv} enlarged.",
        f"{cap(adj)} cardiac enlargement, with a widened cardiothoracic ratio.",
    ])  # fmt: skip
    return s, pick(rng, [f"{adj} cardiomegaly", f"{adj} cardiac enlargement", f"{adv} enlarged cardiac silhouette"])


SPEC = FindingSpec(
    name="cardiomegaly",
    graded=True,
    sides="none",
    anatomy=_anatomy,
    describe=_describe,
    negations=(
        "Heart size is normal.",
        "The cardiomediastinal silhouette is within normal limits.",
        "Normal heart size.",
        "The cardiac silhouette is not enlarged.",
        "No cardiomegaly.",
    ),
    negate_alone=0.7,
    patterns=(
        r"\bcardiomegaly\b",
        r"\bcardiac\s+enlargement\b",
        r"\benlarge(?:d|ment\s+of)\s+(?:the\s+)?(?:cardiac\s+silhouette|heart|cardiac\s+shadow)\b",
        r"\b(?:heart|cardiac\s+silhouette|cardiac\s+shadow|heart\s+size)\s+(?:is|are|appears|remains)\s+"
        + WORD
        + r"{0,2}(?:enlarged|increased)\b",
        r"\b(?:increased|widened)\s+cardiothoracic\s+ratio\b",
        r"\bcardiothoracic\s+ratio\s+is\s+(?:increased|widened)\b",
    ),
)
