"""Consolidation: patchy airspace opacity with air bronchograms, in one lung zone (or both lungs)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from radz_train.data.phantom.canvas import pick_point, side_u, sides
from radz_train.data.phantom.findings.spec import FindingSpec
from radz_train.data.phantom.numeric import angle_bins, angle_profile, smooth_noise
from radz_train.data.phantom.wording import ZONE_WORDS, Degree, cap, pick, where

if TYPE_CHECKING:  # pragma: no cover
    from radz_train.data.phantom.canvas import Scene
    from radz_train.data.phantom.model import Finding


def _draw(s: Scene, f: Finding, rng: np.random.Generator, sev: int) -> None:
    a, u, v, size = s.a, s.cv.u, s.cv.v, s.cv.size
    for side in sides(f.laterality):
        cu, cvv = pick_point(a, rng, side, f.location, 0.05)
        rx = (0.13, 0.19, 0.27)[sev] * rng.uniform(0.9, 1.1)
        ry = rx * rng.uniform(0.7, 1.0)
        rs, cs = s.cv.window(cu, cvv, rx * 1.6)
        uu, vv = u[rs, cs], v[rs, cs]
        nz = smooth_noise(rng, size, 12)[rs, cs]
        fine = smooth_noise(rng, size, 40)[rs, cs]
        blob = 1.0 - ((uu - cu) / rx) ** 2 - ((vv - cvv) / ry) ** 2 + 0.6 * nz - 0.05
        blob = np.clip(blob / 0.5, 0.0, 1.0) * np.clip(0.75 + 0.25 * fine, 0.0, 1.0) * s.lung[rs, cs]
        # air bronchograms: dark branching tubes radiating from the hilum
        hx = side_u(a, side, 0.16)
        th = np.arctan2(vv + 0.1, np.abs(uu - hx) + 1e-3)
        prof = angle_profile(rng, 14, (3.0, 6.0))
        br = prof[angle_bins(th)] ** 3
        core = np.clip((blob - 0.45) / 0.3, 0.0, 1.0)
        sub = s.air[rs, cs] * (1.0 - 0.85 * blob) + 0.7 * a.lung_air * br * core
        s.air[rs, cs] = sub
        s.visible[rs, cs] = s.visible[rs, cs] * (1.0 - blob)


_KIND = {"mild": ("patchy", "focal"), "moderate": ("confluent", "moderate"), "severe": ("dense", "extensive")}


def _describe(f: Finding, w: Degree, rng: np.random.Generator) -> tuple[str, str]:
    k = pick(rng, _KIND[f.severity or "mild"])
    if f.laterality == "bilateral":
        zone = pick(rng, ZONE_WORDS[f.location or "middle"])
        place = f"both {zone}s" if not zone.endswith("base") else "both lung bases"
    else:
        place = where(f, rng)
    s = pick(rng, [
        f"There is {k} consolidation in the {place}.",
        f"{cap(k)} airspace opacity in the {place} with air bronchograms.",
        f"{cap(k)} consolidation of the {place}, with air bronchograms.",
    ])  # fmt: skip
    return s, pick(rng, [f"{k} consolidation in the {place}", f"{k} {place} airspace consolidation"])


SPEC = FindingSpec(
    name="consolidation",
    graded=True,
    sides="any",
    zoned=True,
    draw=_draw,
    describe=_describe,
    negations=("No focal consolidation.", "There is no consolidation.", "No airspace consolidation."),
    joint_negation=True,
    in_lungs=True,
    patterns=(
        r"\bconsolidat(?:ion|ions|ive|ed)\b",
        r"\bair\s*space\s+(?:opacit(?:y|ies)|disease|consolidation)\b",
        r"\bairspace\s+(?:opacit(?:y|ies)|disease)\b",
        r"\bair\s+bronchograms?\b",
        r"\bpneumonia\b",
    ),
    scope_nouns=("consolidation",),
)
