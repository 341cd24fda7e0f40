"""Where things are drawn: patient coordinates on the pixel grid, and the layers being drawn.

Conventions: image x grows to the image right, which is the *patient's left* (PA view).
`Canvas` maps patient coordinates (u, v) to pixels for one acquisition (scale, rotation,
shift); `Scene` holds the attenuation layers that anatomy and findings draw into.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from radz_train.data.phantom.numeric import grid
from radz_train.data.phantom.patient import Anatomy, lung_mask

__all__ = ["Canvas", "Scene", "pick_point", "severity_index", "side_u", "sides"]


class Canvas:
    """Patient-coordinate grids of one rendering (u, v, lateral distance xl, patient-right mask)."""

    def __init__(self, size: int, scale: float, rot: float, tx: float, ty: float, a: Anatomy):
        X, Y = grid(size)
        c, s = math.cos(rot), math.sin(rot)
        self.size, self.scale, self.rot, self.tx, self.ty = size, scale, rot, tx, ty
        Xs, Ys = (X - tx) / scale, (Y - ty) / scale
        self.u = (c * Xs + s * Ys).astype(np.float32)
        self.v = (-s * Xs + c * Ys).astype(np.float32)
        self.eps = float(2.0 / size / scale)  # one pixel in patient units
        self.right = self.u < a.shift  # patient right = image left
        self.xl = np.abs(self.u - a.shift)

    def to_pixel(self, u: float, v: float) -> tuple[float, float]:
        """Patient (u, v) -> pixel (col, row)."""
        c, s = math.cos(self.rot), math.sin(self.rot)
        X = self.tx + self.scale * (c * u - s * v)
        Y = self.ty + self.scale * (s * u + c * v)
        return (X + 1) * self.size / 2 - 0.5, (Y + 1) * self.size / 2 - 0.5

    def window(self, u: float, v: float, radius: float) -> tuple[slice, slice]:
        """Pixel slices of a square around patient point (u, v) with patient radius."""
        col, row = self.to_pixel(u, v)
        r = radius * self.scale * self.size / 2 * 1.5 + 3
        r0, r1 = max(int(row - r), 0), min(int(row + r) + 1, self.size)
        c0, c1 = max(int(col - r), 0), min(int(col + r) + 1, self.size)
        return slice(r0, max(r0, r1)), slice(c0, max(c0, c1))

    def side_mask(self, side: str) -> np.ndarray:
        """Boolean mask of the patient's `side` ("right" = image left)."""
        return self.right if side == "right" else ~self.right


@dataclass
class Scene:
    """The layers of one rendering that findings draw into.

    Attributes:
        a, cv, cseed: the patient, the canvas, the case seed.
        D: attenuation map (body, bones, mediastinum; lungs subtract air from it).
        lung: soft lung-field mask; med: mediastinal half width per pixel.
        heart: soft heart mask.
        air: air column per pixel where there is lung (fluid, collapse and opacities reduce it).
        visible: where lung markings are drawn (pneumothorax and bullae remove them).
        extra: finding densities added on top of the lungs (pleural lines, lesion rims).
    """

    a: Anatomy
    cv: Canvas
    cseed: int
    D: np.ndarray
    lung: np.ndarray
    med: np.ndarray
    heart: np.ndarray
    air: np.ndarray
    visible: np.ndarray
    extra: np.ndarray


def side_u(a: Anatomy, side: str, xl: float) -> float:
    """Patient u of a point at lateral distance xl on the given patient side."""
    return a.shift + (-xl if side == "right" else xl)


def pick_point(a: Anatomy, rng: np.random.Generator, side: str, zone: str | None, margin: float) -> tuple[float, float]:
    """A point well inside the lung of `side` (rejection sampling on the lung mask)."""
    ranges = {"upper": (-0.62, -0.30), "middle": (-0.30, 0.0), "lower": (0.0, 0.35)}
    lo, hi = ranges.get(zone or "", (-0.6, 0.3))
    yd, hd, med = a.dome(side)
    best = (0.5 * a.W, -0.25)
    for _ in range(40):
        xl = rng.uniform(0.25 * a.W, 0.85 * a.W)
        v = rng.uniform(lo, min(hi, yd - 0.05))
        heart_x = a.ctr * 2 * a.W * (0.62 if side == "left" else 0.38)
        if v > a.heart_top and xl < heart_x + margin:
            continue
        inside = lung_mask(np.float32(xl - margin), np.float32(v), a, yd, hd, med, 0.01)
        inside *= lung_mask(np.float32(xl + margin), np.float32(v), a, yd, hd, med, 0.01)
        inside *= lung_mask(np.float32(xl), np.float32(v - margin), a, yd, hd, med, 0.01)
        inside *= lung_mask(np.float32(xl), np.float32(v + margin), a, yd, hd, med, 0.01)
        if inside > 0.99:
            return side_u(a, side, xl), v
    return side_u(a, side, best[0]), best[1]


def sides(lat: str | None) -> list[str]:
    """The patient sides a finding with laterality `lat` is drawn on."""
    return ["right", "left"] if lat == "bilateral" else [lat or "right"]


def severity_index(severity: str | None) -> int:
    """0 / 1 / 2 for mild / moderate / severe (None counts as mild)."""
    return {"mild": 0, "moderate": 1, "severe": 2}.get(severity or "mild", 0)
