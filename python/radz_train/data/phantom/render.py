"""One radiograph: the patient's anatomy and findings as attenuation, then the site's acquisition.

Drawing order (it fixes floating-point results and random draws; do not reorder):
body -> lung fields, air, heart -> each finding's `draw` (in the case's order) -> each finding's
`draw_late` (table order) -> lungs subtract air -> vessels (findings may change their calibre)
-> mediastinum, trachea, spine -> ribs -> clavicles, humeri -> gastric bubble -> acquisition.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from radz_train.data.phantom import anatomy
from radz_train.data.phantom.acquisition import SiteStyle, acquire, placement
from radz_train.data.phantom.canvas import Canvas, Scene, severity_index
from radz_train.data.phantom.findings import FINDING_SPECS
from radz_train.data.phantom.model import Finding
from radz_train.data.phantom.patient import Anatomy
from radz_train.data.phantom.seeding import stream

__all__ = ["apply_anatomy_effects", "render"]


def apply_anatomy_effects(a: Anatomy, findings: Sequence[Finding]) -> None:
    """Findings that change the anatomy itself (heart size, diaphragm, mediastinum), in case order."""
    for f in findings:
        hook = FINDING_SPECS[f.name].anatomy
        if hook is not None:
            hook(a, f, severity_index(f.severity))


def _scene(cv: Canvas, a: Anatomy, cseed: int) -> Scene:
    """The normal chest before any finding: body, lung fields with their air, heart."""
    D = anatomy.body(cv, a)
    lung, med = anatomy.lung_fields(cv, a)
    return Scene(
        a=a,
        cv=cv,
        cseed=cseed,
        D=D,
        lung=lung,
        med=med,
        heart=anatomy.heart(cv, a),
        air=anatomy.lung_air(cv, a),
        visible=lung.copy(),
        extra=np.zeros_like(D),
    )


def _draw_findings(s: Scene, findings: Sequence[Finding], by_name: dict[str, Finding]) -> None:
    """Each finding's own drawing (case order, own random stream), then the late layers (table order)."""
    for f in findings:
        draw = FINDING_SPECS[f.name].draw
        if draw is not None:
            draw(s, f, stream(s.cseed, "render", f.name), severity_index(f.severity))
    for name, spec in FINDING_SPECS.items():
        if spec.draw_late is not None and name in by_name:
            spec.draw_late(s, by_name[name])


def _vessel_adjuster(s: Scene, by_name: dict[str, Finding]):
    """amp -> amp with the vessel changes of the present findings (table order)."""

    def adjust(amp: np.ndarray) -> np.ndarray:
        for name, spec in FINDING_SPECS.items():
            if spec.vessels is not None and name in by_name:
                amp = spec.vessels(s, amp)
        return amp

    return adjust


def render(
    a: Anatomy, findings: Sequence[Finding], cseed: int, style: SiteStyle, size: int, site_key: str
) -> tuple[np.ndarray, dict]:
    """Display image [size, size] in [0, 1] and acquisition parameters of one case at one site."""
    acq_rng = stream(cseed, "acquisition", site_key)
    scale, rot, tx, ty = placement(acq_rng, style, a)
    s = _scene(Canvas(size, scale, rot, tx, ty, a), a, cseed)
    by_name = {f.name: f for f in findings}
    _draw_findings(s, findings, by_name)
    # heart overlies the lungs (silhouette): little air behind it
    lung_air_map = s.air * s.lung * (1.0 - 0.9 * s.heart)
    s.D = s.D - lung_air_map + s.extra
    anatomy.vessels(s, stream(cseed, "vessels"), _vessel_adjuster(s, by_name))
    anatomy.mediastinum(s)
    anatomy.ribs(s)
    anatomy.shoulders(s)
    anatomy.gastric_bubble(s)
    img, acq = acquire(s.D, style, cseed, site_key, acq_rng)
    acq.update(
        {"scale": scale, "rotation_deg": math.degrees(rot), "shift": (tx, ty), "cardiothoracic_ratio": round(a.ctr, 3)}
    )
    return img, acq
