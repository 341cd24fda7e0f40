"""Nodule: a well-circumscribed round opacity under 3 cm."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from radz_train.data.phantom.findings.lesion import draw_lesion
from radz_train.data.phantom.findings.spec import FindingSpec
from radz_train.data.phantom.numeric import ramp
from radz_train.data.phantom.wording import Degree, pick, where

if TYPE_CHECKING:  # pragma: no cover
    from radz_train.data.phantom.canvas import Scene
    from radz_train.data.phantom.model import Finding


def _density(du, dv, dist, rad: float, eps: float, rng: np.random.Generator) -> np.ndarray:
    disc = ramp(rad - dist, eps * 1.2)
    return disc * (0.7 + 0.3 * np.sqrt(np.clip(1 - (dist / rad) ** 2, 0, 1)))


def _draw(s: Scene, f: Finding, rng: np.random.Generator, sev: int) -> None:
    draw_lesion(s, f, rng, _density)


def _describe(f: Finding, w: Degree, rng: np.random.Generator) -> tuple[str, str]:
    mm = int(round(f.size_mm or 15))  # noqa: RUF046 (size_mm may be a numpy float)
    place = where(f, rng)
    s = pick(rng, [
        f"There is a {mm} mm nodule in the {place}.",
        f"A well-circumscribed {mm} mm pulmonary nodule projects over the {place}.",
        f"Rounded {mm} mm nodular opacity in the {place}.",
    ])  # fmt: skip
    return s, f"{mm} mm {place} pulmonary nodule"


SPEC = FindingSpec(
    name="nodule",
    graded=False,
    sides="one",
    zoned=True,
    size_mm=(10, 28),
    draw=_draw,
    describe=_describe,
    negations=("No pulmonary nodules.", "No suspicious pulmonary nodule."),
    in_lungs=True,
    patterns=(r"\bnodul(?:e|es|ar)\b",),
    scope_nouns=("nodule",),
)
