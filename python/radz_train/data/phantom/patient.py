"""The patient: body-habitus and thoracic parameters of one case, and the lung-field geometry.

Patient coordinates u, v span about [-1, 1]; v grows downwards; "right" and "left" are the
patient's sides. Anatomy depends on (seed, index) only, so the same case rendered at two sites
is the same patient. Findings that change the anatomy itself (a large heart, low flat domes)
edit these parameters before rendering (see findings/).
"""

from __future__ import annotations

from dataclasses import dataclass

from radz_train.data.phantom.numeric import cage, ramp
from radz_train.data.phantom.seeding import stream

__all__ = ["MM_PER_UNIT", "Anatomy", "lung_mask", "sample_anatomy"]

MM_PER_UNIT = 190.0  # patient units -> millimetres (thorax inner width ~1.55 units ~ 300 mm)


@dataclass
class Anatomy:
    W: float  # thoracic cage inner half width
    H: float  # cage half height
    cyc: float  # cage centre v
    apex: float  # lung apex v
    yd_r: float  # right dome peak v (patient right = image left)
    yd_l: float
    hd_r: float  # dome height (how much lower the costophrenic angle is)
    hd_l: float
    ctr: float  # cardiothoracic ratio
    heart_top: float
    heart_round: float
    med_r: float  # mediastinal half widths
    med_l: float
    shift: float  # mediastinal shift (+ = towards patient left)
    body_extra: float  # soft tissue beyond the cage (habitus)
    soft: float  # soft tissue density
    breasts: float  # breast shadow strength (0 = none)
    arms: bool
    rib_a: float
    rib_b: float
    rib_q0: float
    rib_sp: float
    vessel_len: float
    vessel_amp: float
    lung_air: float

    def dome(self, side: str) -> tuple[float, float, float]:
        """(dome peak v, dome height, mediastinal half width) on the patient's `side`."""
        return (self.yd_r, self.hd_r, self.med_r) if side == "right" else (self.yd_l, self.hd_l, self.med_l)


def sample_anatomy(cseed: int) -> Anatomy:
    """The normal anatomy of case `cseed` (its own random stream)."""
    r = stream(cseed, "anatomy")
    yd_r = r.uniform(0.22, 0.42)
    return Anatomy(
        W=r.uniform(0.70, 0.80),
        H=r.uniform(0.84, 0.92),
        cyc=r.uniform(0.0, 0.08),
        apex=r.uniform(-0.80, -0.70),
        yd_r=yd_r,
        yd_l=yd_r + r.uniform(0.0, 0.08),
        hd_r=r.uniform(0.13, 0.21),
        hd_l=r.uniform(0.13, 0.21),
        ctr=r.uniform(0.38, 0.49),
        heart_top=r.uniform(-0.24, -0.12),
        heart_round=r.uniform(0.85, 1.1),
        med_r=r.uniform(0.08, 0.11),
        med_l=r.uniform(0.07, 0.10),
        shift=r.uniform(-0.02, 0.02),
        body_extra=r.uniform(0.06, 0.22),
        soft=r.uniform(0.55, 0.68),
        breasts=float(r.uniform(0.03, 0.08)) if r.random() < 0.45 else 0.0,
        arms=bool(r.random() < 0.5),
        rib_a=r.uniform(0.25, 0.42),
        rib_b=r.uniform(0.45, 0.65),
        rib_q0=r.uniform(-0.84, -0.76),
        rib_sp=r.uniform(0.095, 0.115),
        vessel_len=r.uniform(0.40, 0.55),
        vessel_amp=r.uniform(0.07, 0.11),
        lung_air=r.uniform(0.36, 0.44),
    )


def lung_mask(xl, v, a: Anatomy, yd, hd, med, eps: float):
    """Soft lung-field mask from lateral distance `xl` (>= 0) and height `v`.

    Intersection of: thoracic cage (superellipse), apex dome, diaphragm dome (parabola,
    peak at 40% of the half width, costophrenic angle at the chest wall) and the medial
    mediastinal border.
    """
    cage_ = 1.0 - cage(xl * (1.0 / a.W), (v - a.cyc) * (1.0 / a.H))
    m = ramp(cage_ * (a.W / 3.0), eps)
    xpk = 0.4 * a.W
    dome = yd + hd * ((xl - xpk) / (0.6 * a.W)) ** 2
    m = m * ramp(dome - v, eps)
    apex = a.apex + 1.1 * (xl - 0.42 * a.W) ** 2
    m = m * ramp(v - apex, eps)
    return m * ramp(xl - med, eps)
