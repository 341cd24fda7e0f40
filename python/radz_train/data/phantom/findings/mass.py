"""Mass: a lobulated opacity over 3 cm with spiculated margins, denser in the middle."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from radz_train.data.phantom.findings.lesion import draw_lesion
from radz_train.data.phantom.findings.spec import FindingSpec
from radz_train.data.phantom.numeric import angle_bins, angle_profile, ramp
from radz_train.data.phantom.wording import Degree, pick, where

if TYPE_CHECKING:  # pragma: no cover
    from radz_train.data.phantom.canvas import Scene
    from radz_train.data.phantom.model import Finding


def _density(du, dv, dist, rad: float, eps: float, rng: np.random.Generator) -> np.ndarray:
    th = np.arctan2(dv, du)
    p = rng.uniform(0, 2 * math.pi, 3)
    rr = rad * (1 + 0.12 * np.sin(3 * th + p[0]) + 0.07 * np.sin(5 * th + p[1]) + 0.04 * np.sin(9 * th + p[2]))
    disc = ramp(rr - dist, eps * 1.5)
    spic = angle_profile(rng, 10, (2.0, 4.0))[angle_bins(th)] ** 4
    disc = np.maximum(disc, 0.7 * spic * ramp(rr * 1.35 - dist, rad * 0.2) * (dist > rr * 0.9))
    # dome-like density: thicker in the middle
    return disc * (0.75 + 0.25 * np.sqrt(np.clip(1 - (dist / rad) ** 2, 0, 1)))


def _draw(s: Scene, f: Finding, rng: np.random.Generator, sev: int) -> None:
    draw_lesion(s, f, rng, _density)


def _describe(f: Finding, w: Degree, rng: np.random.Generator) -> tuple[str, str]:
    cm = f"{(f.size_mm or 50) / 10:.1f}"
    place = where(f, rng)
    s = pick(rng, [
        f"There is a {cm} cm lobulated mass in the {place}.",
        f"A {cm} cm mass with irregular, spiculated margins is seen in the {place}.",
        f"Large {place} mass measuring {cm} cm.",
    ])  # fmt: skip
    return s, f"{cm} cm {place} mass"


SPEC = FindingSpec(
    name="mass",
    graded=False,
    sides="one",
    zoned=True,
    size_mm=(38, 80),
    draw=_draw,
    describe=_describe,
    negations=("No mass is identified.", "No pulmonary mass."),
    in_lungs=True,
    patterns=(r"\bmass(?:es)?\b(?!\s+effect)",),
    scope_nouns=("mass",),
)
