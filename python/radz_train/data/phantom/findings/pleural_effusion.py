"""Pleural effusion: basal fluid with a meniscus, blunted costophrenic angle, lateral layering."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from radz_train.data.phantom.canvas import sides
from radz_train.data.phantom.findings.spec import FindingSpec
from radz_train.data.phantom.numeric import cage, ramp
from radz_train.data.phantom.wording import WORD, Degree, cap, pick

if TYPE_CHECKING:  # pragma: no cover
    from radz_train.data.phantom.canvas import Scene
    from radz_train.data.phantom.model import Finding


def _draw(s: Scene, f: Finding, rng: np.random.Generator, sev: int) -> None:
    a, xl, v = s.a, s.cv.xl, s.cv.v
    for side in sides(f.laterality):
        sm = s.cv.side_mask(side)
        ydx, hdx, _ = a.dome(side)
        cp = ydx + hdx  # costophrenic angle level
        h = (0.13, 0.30, 0.52)[sev] * rng.uniform(0.9, 1.15)
        surf = cp - h * (0.35 + 0.65 * (xl / a.W) ** 2)  # meniscus: higher laterally
        fluid = ramp(v - surf, 0.02) * sm
        # lateral layering along the chest wall
        wall = 1.0 - cage(xl * (1.0 / a.W), (v - a.cyc) * (1.0 / a.H))
        layer = sm * ramp(0.05 * (1 + sev) - wall, 0.02) * ramp(v - surf + 0.15 + 0.1 * sev, 0.05)
        fluid = np.maximum(fluid, layer)
        s.air = s.air * (1.0 - 0.92 * fluid)
        s.visible = s.visible * (1.0 - fluid)
        s.extra += 0.03 * fluid * s.lung


def _describe(f: Finding, w: Degree, rng: np.random.Generator) -> tuple[str, str]:
    size, lat = w.size, f.laterality
    if lat == "bilateral":
        s = pick(rng, [
            f"There are {size} bilateral pleural effusions.",
            f"{cap(size)} bilateral pleural effusions with blunting of both costophrenic angles.",
            f"Bilateral {size} pleural effusions layer at the lung bases with meniscus configuration.",
        ])  # fmt: skip
        return s, f"{size} bilateral pleural effusions"
    s = pick(rng, [
        f"There is a {size} {lat} pleural effusion.",
        f"{cap(size)} {lat} pleural effusion with blunting of the {lat} costophrenic angle.",
        f"Blunting of the {lat} costophrenic angle with a meniscus, consistent with a {size} pleural effusion.",
        f"{cap(lat)} pleural fluid with a meniscus, {size} in amount.",
    ])  # fmt: skip
    return s, pick(rng, [f"{size} {lat} pleural effusion", f"{size} {lat} effusion"])


SPEC = FindingSpec(
    name="pleural_effusion",
    graded=True,
    sides="any",
    draw=_draw,
    describe=_describe,
    negations=(
        "No pleural effusion.",
        "No effusion.",
        "The costophrenic angles are sharp.",
        "There is no pleural effusion.",
    ),
    joint_negation=True,
    negation_clause="without pleural effusion",
    patterns=(
        r"\beffusions?\b",
        r"\bpleural\s+fluid\b",
        r"\bhydrothorax\b",
        r"\bblunt(?:ing|ed)\s+(?:of\s+)?(?:the\s+|both\s+)?(?:" + WORD + r")?costophrenic\s+angles?\b",
        r"\bcostophrenic\s+angles?\s+(?:is|are)\s+(?:" + WORD + r")?blunted\b",
    ),
    scope_nouns=("effusion",),
)
