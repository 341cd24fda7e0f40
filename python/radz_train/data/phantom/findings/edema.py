"""Pulmonary edema: perihilar (bat-wing) haze, Kerley B lines, upper-lobe vessel diversion."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from radz_train.data.phantom.findings.spec import FindingSpec
from radz_train.data.phantom.numeric import cage, ramp, smooth_noise
from radz_train.data.phantom.wording import Degree, pick

if TYPE_CHECKING:  # pragma: no cover
    from radz_train.data.phantom.canvas import Scene
    from radz_train.data.phantom.model import Finding


def _draw(s: Scene, f: Finding, rng: np.random.Generator, sev: int) -> None:
    a, xl, v, lung = s.a, s.cv.xl, s.cv.v, s.lung
    # perihilar (bat-wing) haze with fluffy texture
    hx = 0.18
    sx, sy = (0.20, 0.26, 0.34)[sev], (0.22, 0.28, 0.34)[sev]
    haze = np.exp(-(((xl - hx) / sx) ** 2) - ((v + 0.05) / sy) ** 2)
    fluffy = 0.65 + 0.35 * smooth_noise(rng, s.cv.size, 24)
    amount = (0.35, 0.5, 0.7)[sev]
    s.air = s.air * (1.0 - amount * haze * np.clip(fluffy, 0, 1.3) * lung)
    # Kerley B lines: short horizontal lines at the lateral lung bases
    wall = 1.0 - cage(xl * (1.0 / a.W), (v - a.cyc) * (1.0 / a.H))
    periph = ramp(0.16 - wall, 0.03) * ramp(v - 0.0, 0.08) * lung
    ph = (v + 0.3 * rng.random()) / 0.045
    ph = ph - np.floor(ph)
    kerley = np.clip(1.0 - np.abs(ph - 0.5) / 0.16, 0.0, 1.0) * periph
    s.air = s.air * (1.0 - 0.6 * kerley)


def _vessels(s: Scene, amp: np.ndarray) -> np.ndarray:
    """Upper-lobe diversion: larger, indistinct upper-zone vessels."""
    return amp * (1.0 + 0.9 * ramp(-0.2 - s.cv.v, 0.1))


_WORDING = {
    "mild": (("Mild interstitial pulmonary edema with Kerley B lines and cephalization of the pulmonary vasculature.",
              "Mild pulmonary vascular congestion with interstitial edema and Kerley B lines at the bases."),
             "mild interstitial pulmonary edema"),
    "moderate": (("Moderate pulmonary edema with perihilar haziness and Kerley B lines.",
                  "Perihilar haziness and indistinct vessels, consistent with moderate pulmonary edema."),
                 "moderate pulmonary edema"),
    "severe": (("Severe alveolar pulmonary edema in a perihilar bat-wing distribution.",
            "Confluent bilateral perihilar opacities in a bat-wing pattern, consistent with severe pulmonary edema."),
           "severe pulmonary edema"),
}  # fmt: skip


def _describe(f: Finding, w: Degree, rng: np.random.Generator) -> tuple[str, str]:
    sentences, impression = _WORDING[f.severity if f.severity in ("mild", "moderate") else "severe"]
    return pick(rng, sentences), impression


SPEC = FindingSpec(
    name="edema",
    graded=True,
    sides="both",
    draw=_draw,
    vessels=_vessels,
    describe=_describe,
    negations=("No pulmonary edema.", "No vascular congestion or edema.", "There is no pulmonary edema."),
    in_lungs=True,
    patterns=(
        r"\b(?:o)?edema(?:tous)?\b",
        r"\bkerley\b",
        r"\bvascular\s+congestion\b",
        r"\bcephali[sz]ation\b",
        r"\bbat[- ]?wing\b",
        r"\bfluid\s+overload\b",
        r"\bperihilar\s+haz(?:e|iness)\b",
    ),
)
