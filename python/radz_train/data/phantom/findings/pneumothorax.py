"""Pneumothorax: a visceral pleural line with no lung markings beyond it (lung collapsed to the hilum)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from radz_train.data.phantom.findings.spec import FindingSpec
from radz_train.data.phantom.patient import lung_mask
from radz_train.data.phantom.wording import Degree, cap, pick

if TYPE_CHECKING:  # pragma: no cover
    from radz_train.data.phantom.canvas import Scene
    from radz_train.data.phantom.model import Finding


def _draw(s: Scene, f: Finding, rng: np.random.Generator, sev: int) -> None:
    a, xl, v, eps = s.a, s.cv.xl, s.cv.v, s.cv.eps
    side = f.laterality if f.laterality in ("left", "right") else "right"
    sm = s.cv.side_mask(side)
    k = (0.88, 0.78, 0.64)[sev] * rng.uniform(0.97, 1.03)
    yd_s, hd_s, med_s = a.dome(side)
    ax, ay = 0.12, yd_s + 0.05  # collapse towards the lower hilum
    inner = lung_mask(ax + (xl - ax) / k, ay + (v - ay) / k, a, yd_s, hd_s, med_s, eps * 1.2)
    inner = inner * s.lung
    space = np.clip(s.lung - inner, 0.0, 1.0) * sm
    line = 4.0 * inner * (1.0 - inner) * sm
    s.visible = s.visible - space
    s.air = s.air * (1.0 + 0.12 * space) * (1.0 - (0.0, 0.08, 0.2)[sev] * inner * sm)
    s.extra += 0.10 * line


def _describe(f: Finding, w: Degree, rng: np.random.Generator) -> tuple[str, str]:
    size, lat = w.size, f.laterality
    s = pick(rng, [
        f"There is a {size} {lat} pneumothorax.",
        f"A {size} {lat} apicolateral pneumothorax is present, with a visible visceral pleural line.",
        (f"{cap(lat)} visceral pleural line with absent lung markings peripherally, consistent with a {size} "
         "pneumothorax."),
    ])  # fmt: skip
    return s, f"{size} {lat} pneumothorax"


SPEC = FindingSpec(
    name="pneumothorax",
    graded=True,
    sides="one",
    draw=_draw,
    describe=_describe,
    negations=("No pneumothorax.", "There is no pneumothorax.", "No evidence of pneumothorax."),
    joint_negation=True,
    impression_negation="No pneumothorax.",
    patterns=(
        r"\bpneumothora(?:x|ces)\b",
        r"\bvisceral\s+pleural\s+line\b",
        r"\bpleural\s+air\b",
    ),
    scope_nouns=("pneumothorax",),
)
