"""Atelectasis: plate-like basal bands, an elevated hemidiaphragm, lower-lobe collapse when severe."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from radz_train.data.phantom.canvas import sides
from radz_train.data.phantom.findings.spec import FindingSpec
from radz_train.data.phantom.numeric import ramp
from radz_train.data.phantom.wording import WORD, Degree, cap, pick

if TYPE_CHECKING:  # pragma: no cover
    from radz_train.data.phantom.canvas import Scene
    from radz_train.data.phantom.model import Finding
    from radz_train.data.phantom.patient import Anatomy


def _anatomy(a: Anatomy, f: Finding, s: int) -> None:
    """Volume loss lifts the dome (moderate, severe) and pulls the mediastinum over (severe, one side)."""
    if s < 1:
        return
    lift = (0.0, 0.07, 0.11)[s]
    if f.laterality in ("right", "bilateral"):
        a.yd_r -= lift
    if f.laterality in ("left", "bilateral"):
        a.yd_l -= lift
    if s == 2 and f.laterality in ("left", "right"):
        a.shift += 0.04 if f.laterality == "left" else -0.04


def _plates(s: Scene, side: str, yd_s: float, sev: int, rng: np.random.Generator) -> None:
    a, xl, v = s.a, s.cv.xl, s.cv.v
    sm = s.cv.side_mask(side)
    for _ in range((1, 2, 1)[sev]):
        cx = rng.uniform(0.35, 0.7) * a.W
        cy = yd_s - rng.uniform(0.06, 0.16)
        tilt = rng.uniform(-0.25, 0.1)
        length = rng.uniform(0.16, 0.26)
        thick = rng.uniform(0.014, 0.024)
        d_perp = (v - cy - tilt * (xl - cx)) / thick
        d_along = np.abs(xl - cx) / length
        plate = np.clip(1.0 - d_perp**2, 0.0, 1.0) * ramp(1.0 - d_along, 0.15) * sm * s.lung * (1.0 - s.heart)
        s.air = s.air * (1.0 - 0.85 * plate)


def _collapse(s: Scene, side: str, yd_s: float) -> None:
    """Lower-lobe collapse: triangular "sail" opacity at the medial base."""
    a, xl, v = s.a, s.cv.xl, s.cv.v
    sm = s.cv.side_mask(side)
    top = yd_s - 0.42
    tri = ramp((v - top) * 0.2 - (xl - (a.med_r if side == "right" else a.med_l)) * 0.3, 0.01)
    tri = tri * sm * s.lung * ramp(v - top, 0.03)
    s.air = s.air * (1.0 - 0.75 * tri)
    s.visible = s.visible * (1.0 - 0.8 * tri)


def _draw(s: Scene, f: Finding, rng: np.random.Generator, sev: int) -> None:
    for side in sides(f.laterality):
        yd_s = s.a.yd_r if side == "right" else s.a.yd_l
        _plates(s, side, yd_s, sev, rng)
        if sev == 2:
            _collapse(s, side, yd_s)


def _describe(f: Finding, w: Degree, rng: np.random.Generator) -> tuple[str, str]:
    sev, lat = f.severity, f.laterality
    bil = lat == "bilateral"
    base = "bibasilar" if bil else f"{lat} basilar"
    dia = "both hemidiaphragms" if bil else f"the {lat} hemidiaphragm"
    if sev == "mild":
        s = pick(rng, [
            f"Linear plate-like atelectasis at the {'lung bases' if bil else lat + ' lung base'}.",
            f"Mild {base} atelectasis.",
            f"Subsegmental atelectasis at the {'bases' if bil else lat + ' base'}.",
        ])  # fmt: skip
        return s, f"mild {base} atelectasis"
    if sev == "moderate":
        s = pick(rng, [
            f"Moderate {base} atelectasis with elevation of {dia}.",
            f"{cap(base)} atelectasis with volume loss and elevation of {dia}.",
        ])  # fmt: skip
        return s, f"{base} atelectasis"
    lobe = "both lower lobes" if bil else f"the {lat} lower lobe"
    s = pick(rng, [
        f"Collapse of {lobe} with marked volume loss and elevation of {dia}.",
        f"Severe {base} atelectasis with a triangular opacity at the medial lung base and volume loss.",
    ])  # fmt: skip
    return s, f"{'bilateral lower lobe' if bil else lat + ' lower lobe'} collapse"


SPEC = FindingSpec(
    name="atelectasis",
    graded=True,
    sides="any",
    anatomy=_anatomy,
    draw=_draw,
    describe=_describe,
    negations=("No atelectasis.",),
    in_lungs=True,
    patterns=(
        r"\batelecta(?:sis|ses|tic)\b",
        r"\bcollapse\s+of\s+(?:the\s+|both\s+)?(?:" + WORD + r"){0,2}lobes?\b",
        r"\blobe\s+collapse\b",
        r"\bvolume\s+loss\b",
    ),
)
