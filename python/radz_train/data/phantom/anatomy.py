"""Normal anatomy drawn as attenuation: body, lungs, heart, vessels, mediastinum, bones.

Each function draws one structure of the patient `a` on the canvas `cv` or into the scene's
attenuation map `s.D`, in the order `render` calls them (the order fixes both the floating-point
results and the random draws, so it must not change).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from radz_train.data.phantom.canvas import Canvas, Scene
from radz_train.data.phantom.numeric import angle_profile, ramp, smooth_noise
from radz_train.data.phantom.patient import Anatomy, lung_mask

__all__ = [
    "body",
    "gastric_bubble",
    "heart",
    "lung_air",
    "lung_fields",
    "mediastinum",
    "ribs",
    "shoulders",
    "vessels",
]


def body(cv: Canvas, a: Anatomy) -> np.ndarray:
    """Soft tissue of the trunk and neck, optional arms and breast shadows."""
    xl, v, eps = cv.xl, cv.v, cv.eps
    bw = np.interp(v, [-1.2, -0.95, -0.78, -0.55, 0.3, 1.2],
                   [0.24, 0.27, a.W + a.body_extra + 0.2, a.W + a.body_extra + 0.06,
                    a.W + a.body_extra + 0.04, a.W + a.body_extra - 0.02]).astype(np.float32)  # fmt: skip
    t = np.clip(1.0 - (xl / bw) ** 2, 0.0, 1.0)
    D = a.soft * np.sqrt(np.sqrt(t)) * ramp(bw - xl, eps)
    if a.arms:
        arm_c = a.W + a.body_extra + 0.24
        ta = np.clip(1.0 - ((xl - arm_c) / 0.11) ** 2, 0.0, 1.0) * ramp(v + 0.7, 0.05)
        D = np.maximum(D, 0.8 * a.soft * np.sqrt(ta))
    if a.breasts > 0:
        bx, by = 0.55 * a.W, 0.28
        br = 1.0 - ((xl - bx) / (0.5 * a.W)) ** 2 - ((v - by) / 0.3) ** 2
        D += a.breasts * ramp(br * 0.15, eps) * ramp(v - 0.05, 0.15)
    return D


def lung_fields(cv: Canvas, a: Anatomy) -> tuple[np.ndarray, np.ndarray]:
    """(lung mask, mediastinal half width per pixel, widened by the aortic knob on the left)."""
    R, v = cv.right, cv.v
    yd = np.where(R, a.yd_r, a.yd_l).astype(np.float32)
    hd = np.where(R, a.hd_r, a.hd_l).astype(np.float32)
    med = np.where(R, a.med_r, a.med_l).astype(np.float32)
    # aortic knob widens the left upper mediastinum
    med = med + np.where(R, 0.0, 0.07 * np.exp(-(((v + 0.36) / 0.07) ** 2))).astype(np.float32)
    return lung_mask(cv.xl, v, a, yd, hd, med, cv.eps), med


def lung_air(cv: Canvas, a: Anatomy) -> np.ndarray:
    """Air column where there is lung: thicker towards the bases (multiplied by the lung mask later)."""
    depth = 0.55 + 0.45 * np.clip((cv.v - a.apex) / 0.7, 0.0, 1.0)
    return a.lung_air * depth


def heart(cv: Canvas, a: Anatomy) -> np.ndarray:
    """Heart mask: a rotated ellipse sitting on the left dome, right atrium bulge on the right."""
    u, v, eps = cv.u, cv.v, cv.eps
    half_w = a.ctr * a.W  # CTR = heart width / thoracic width (2W)
    hcx = a.shift + half_w * 0.24
    hb = max((a.yd_l + 0.1 - a.heart_top) / 2.0, 0.12) * (0.9 + 0.1 * a.heart_round)
    hcy = a.heart_top + hb
    ang = math.radians(-22.0)
    ca, sa = math.cos(ang), math.sin(ang)
    ha = math.sqrt(max(half_w**2 - (hb * sa) ** 2, 1e-4)) / abs(ca)
    du, dv = u - hcx, v - hcy
    e = ((ca * du + sa * dv) / ha) ** 2 + ((-sa * du + ca * dv) / hb) ** 2
    mask = ramp((1.0 - e) * min(ha, hb) * 0.5, eps)
    # right atrium bulge keeps the right heart border convex
    ra = ((u - (a.shift - half_w * 0.55)) / (0.11 * a.heart_round)) ** 2 + ((v - (hcy + 0.06)) / 0.16) ** 2
    return np.maximum(mask, ramp((1.0 - ra) * 0.05, eps))


def vessels(s: Scene, rng: np.random.Generator, adjust_amp: Callable[[np.ndarray], np.ndarray]) -> None:
    """Vascular markings radiating from the hila, hilar shadows and fine lung texture.

    `adjust_amp` lets findings change the vessel calibre map (e.g. upper-lobe diversion).
    """
    a, size, xl, v, R = s.a, s.cv.size, s.cv.xl, s.cv.v, s.cv.right
    hxl, hyv = 0.15, -0.08
    dxh, dvh = xl - hxl, v - hyv
    rh = np.sqrt(dxh * dxh + dvh * dvh)
    th = (
        np.arctan2(dvh, dxh)
        + 0.07 * np.sin(9.0 * rh + rng.uniform(0, 6.3))
        + 0.05 * np.sin(23.0 * rh + 5 * dvh)
        + 0.04 * smooth_noise(rng, size, 10)
    )
    idx = ((th + math.pi) * (1024 / (2 * math.pi))).astype(np.int32) + np.where(R, 0, 512)
    idx %= 1024
    p1 = angle_profile(rng, 34, (2.5, 5.0))
    p2 = angle_profile(rng, 90, (1.2, 2.5))
    # profile ** exponent via exp(log): one transcendental instead of pow
    l1 = np.log(p1 + 1e-6)[idx]
    l2 = np.log(p2 + 1e-6)[idx]
    trunks = np.exp(l1 * (1.0 + 4.0 * rh) - rh / a.vessel_len)
    branches = 0.6 * np.exp(l2 * (2.0 + 6.0 * rh) - rh / a.vessel_len) * ramp(rh - 0.12, 0.05)
    pattern = trunks + branches
    amp = a.vessel_amp * (1.0 + 0.3 * np.clip(v - hyv, 0, 0.5))  # lower-zone vessels larger
    amp = adjust_amp(amp)
    hila = np.exp(-(((xl - 0.16) / 0.06) ** 2) - ((v + 0.1) / 0.1) ** 2)
    texture = 0.02 * smooth_noise(rng, size, max(16, size // 8))
    s.D = s.D + amp * pattern * np.clip(s.visible, 0.0, 1.0) * (1.0 - s.heart) + 0.06 * hila + texture * s.lung


def mediastinum(s: Scene) -> None:
    """Mediastinal density, trachea and main bronchi (lucent), spine with disc spaces."""
    a, u, v, xl, eps, D = s.a, s.cv.u, s.cv.v, s.cv.xl, s.cv.eps, s.D
    mediast = ramp(s.med + 0.01 - xl, eps) * ramp(a.heart_top + 0.1 - v, eps) * ramp(v + 1.0, 0.05)
    D += 0.04 * mediast
    tr_u = a.shift * 0.5
    trachea = ramp(0.032 - np.abs(u - tr_u), eps) * ramp(-0.33 - v, 0.02)
    carina = -0.33
    for sgn in (-1.0, 1.0):  # main bronchi
        bu, bv = u - tr_u, v - carina
        along = sgn * bu * 0.6 + bv * 0.8
        perp = np.abs(sgn * bu * 0.8 - bv * 0.6)
        trachea = np.maximum(trachea, ramp(0.022 - perp, eps) * ramp(along, eps) * ramp(0.2 - along, 0.02))
    D -= 0.11 * trachea
    spine = ramp(0.07 - np.abs(u - a.shift * 0.3), eps) * ramp(v + 1.1, 0.05)
    vert = 0.45 + 0.55 * np.abs(np.sin((v + 0.02) * (math.pi / 0.085)))  # disc spaces
    D += 0.06 * spine * vert


def ribs(s: Scene) -> None:
    """Posterior rib arcs (graded spacing, denser cortex) and fainter anterior ribs."""
    a, v, xl, eps, D = s.a, s.cv.v, s.cv.xl, s.cv.eps, s.D
    dx = np.maximum(xl - 0.05, 0.0)
    q = v + a.rib_a * dx - a.rib_b * dx * dx
    g = 0.22
    tq = np.log1p(g * np.maximum(q - a.rib_q0, 0.0) / a.rib_sp) / g
    ph = tq - np.floor(tq)
    rw = 0.42
    edge = 0.5 * eps / a.rib_sp + 0.03
    inside = np.clip(np.minimum(ph, rw - ph) / edge, 0.0, 1.0)
    rib = inside * (0.55 + 0.45 * (2.0 * ph / rw - 1.0) ** 2)
    ribmask = ramp(tq + 0.3, 0.1) * ramp(10.2 - tq, 0.2) * ramp(a.W + 0.05 - xl, 0.03) * ramp(xl - 0.06, 0.02)
    D += 0.085 * rib * ribmask * (0.45 + 0.55 * s.lung)
    q2 = v - 0.5 * (a.W - xl)
    tq2 = (q2 - (a.rib_q0 - 0.05)) / (a.rib_sp * 1.25)
    ph2 = tq2 - np.floor(tq2)
    rib2 = np.clip(np.minimum(ph2, 0.36 - ph2) / 0.06, 0.0, 1.0)
    D += 0.04 * rib2 * ramp(tq2, 0.1) * ramp(6.0 - tq2, 0.2) * ramp(xl - 0.3, 0.08) * ramp(a.W - xl, 0.03)


def shoulders(s: Scene) -> None:
    """Clavicles and humeral heads."""
    a, v, xl, D = s.a, s.cv.v, s.cv.xl, s.D
    s_cl = np.clip((xl - 0.06) / 0.58, 0.0, 1.0)
    cl_v = a.apex + 0.1 - 0.16 * s_cl + 0.035 * np.sin(2 * math.pi * s_cl)
    cl_half = 0.032 + 0.014 * (1 - s_cl)
    clav = np.clip(1.0 - ((v - cl_v) / cl_half) ** 2, 0.0, 1.0) * ramp(xl - 0.05, 0.01) * ramp(0.64 - xl, 0.02)
    D += 0.14 * np.sqrt(clav)
    hum = 1.0 - ((xl - (a.W + a.body_extra + 0.12)) / 0.13) ** 2 - ((v - (a.apex + 0.02)) / 0.13) ** 2
    D += 0.12 * np.sqrt(np.clip(hum, 0.0, 1.0))


def gastric_bubble(s: Scene) -> None:
    """Gas in the stomach fundus under the left dome."""
    a, u, v, eps = s.a, s.cv.u, s.cv.v, s.cv.eps
    gb = 1.0 - ((u - (a.shift + 0.38 * a.W)) / 0.09) ** 2 - ((v - (a.yd_l + 0.12)) / 0.05) ** 2
    s.D -= 0.12 * ramp(gb * 0.04, eps) * ramp(v - (a.yd_l + 0.09), eps)
