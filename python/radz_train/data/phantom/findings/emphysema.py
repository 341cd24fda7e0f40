"""Emphysema: low flat domes, a narrow heart, pruned vessels, thin-walled lucent bullae."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from radz_train.data.phantom.canvas import pick_point, severity_index
from radz_train.data.phantom.findings.spec import FindingSpec
from radz_train.data.phantom.numeric import ramp
from radz_train.data.phantom.seeding import stream
from radz_train.data.phantom.wording import Degree, pick

if TYPE_CHECKING:  # pragma: no cover
    from radz_train.data.phantom.canvas import Scene
    from radz_train.data.phantom.model import Finding
    from radz_train.data.phantom.patient import Anatomy


def _anatomy(a: Anatomy, f: Finding, s: int) -> None:
    """Hyperinflation: low flat domes, narrow heart, horizontal widely spaced ribs, short vessels."""
    drop = (0.07, 0.11, 0.15)[s]
    a.yd_r += drop
    a.yd_l += drop
    a.hd_r *= (0.55, 0.4, 0.25)[s]
    a.hd_l *= (0.55, 0.4, 0.25)[s]
    a.ctr = min(a.ctr, 0.40) * (0.95, 0.9, 0.85)[s]
    a.heart_round *= 0.8
    a.rib_b *= 0.6
    a.rib_a *= 0.7
    a.rib_sp *= 1.08
    a.vessel_len *= (0.8, 0.7, 0.6)[s]


def _bullae(s: Scene, f: Finding) -> None:
    """Lucent, thin-walled bullae without markings, upper zones first (drawn after every finding)."""
    a, u, v, eps, lung = s.a, s.cv.u, s.cv.v, s.cv.eps, s.lung
    rng = stream(s.cseed, "render", "emphysema-bullae")
    for i in range((2, 3, 5)[severity_index(f.severity)]):
        side = ("right", "left")[i % 2]
        rad = rng.uniform(0.05, 0.10)
        cu, cvv = pick_point(a, rng, side, "upper" if i < 3 else "middle", rad)
        rs, cs = s.cv.window(cu, cvv, rad * 1.3)
        du, dv = u[rs, cs] - cu, v[rs, cs] - cvv
        dist = np.sqrt(du * du + dv * dv)
        inside = ramp(rad - dist, eps)
        ring = np.clip(1.0 - np.abs(dist - rad) / (1.5 * eps), 0.0, 1.0)
        s.visible[rs, cs] = s.visible[rs, cs] * (1.0 - inside)
        s.extra[rs, cs] += 0.06 * ring * lung[rs, cs] - 0.04 * inside * lung[rs, cs]


_NAMED = {
    "mild": ("Mild hyperinflation with flattening of the hemidiaphragms, compatible with emphysema.",
             "The lungs are mildly hyperexpanded, consistent with emphysema."),
    "moderate": (("Hyperexpanded lungs with flattened hemidiaphragms and attenuated peripheral vessels, "
                  "consistent with emphysema."),
                 "Moderate emphysema with hyperinflation and a few apical bullae."),
    "severe": ("Severe emphysema with marked hyperinflation, flat hemidiaphragms and multiple bullae.",
               "Marked hyperinflation and bullous change, consistent with severe emphysema."),
}  # fmt: skip
# Sign-only wording for reports that withhold the name (the unseen-class experiment: the name
# never appears in training reports, only what it looks like).
_SIGNS = {
    "mild": ("Mild hyperinflation with flattening of the hemidiaphragms.", "The lungs are mildly hyperexpanded."),
    "moderate": ("Hyperexpanded lungs with flattened hemidiaphragms and attenuated peripheral vessels.",
                 "Moderate hyperinflation with a few apical bullae."),
    "severe": ("Marked hyperinflation, flat hemidiaphragms and multiple bullae.",
               "Marked hyperinflation and bullous change."),
}  # fmt: skip


def _describe(f: Finding, w: Degree, rng: np.random.Generator) -> tuple[str, str]:
    sentence = pick(rng, _NAMED[f.severity if f.severity in ("mild", "moderate") else "severe"])
    return sentence, f"{f.severity or 'mild'} emphysema"


def _describe_signs(f: Finding, rng: np.random.Generator) -> tuple[str, str]:
    sev = f.severity or "mild"
    word = {"mild": "mild", "moderate": "moderate", "severe": "marked"}[sev]
    return pick(rng, _SIGNS[sev]), f"{word} hyperinflation"


SPEC = FindingSpec(
    name="emphysema",
    graded=True,
    sides="both",
    anatomy=_anatomy,
    draw_late=_bullae,
    describe=_describe,
    describe_signs=_describe_signs,
    negations=("No hyperinflation.", "The lungs are not hyperinflated."),
    in_lungs=True,
    patterns=(
        r"\bemphysema(?:tous)?\b",
        r"\bcopd\b",
        r"\bhyper-?inflat(?:ion|ed)\b",
        r"\bhyper-?expan(?:ded|sion)\b",
        r"\bbullae?\b",
        r"\bbullous\b",
        r"\bflat(?:tened|tening)?\s+(?:of\s+)?(?:the\s+|both\s+)?(?:hemi)?diaphragms?\b",
    ),
)
