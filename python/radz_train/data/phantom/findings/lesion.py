"""Drawing shared by focal lesions (nodule, mass): one round opacity of `size_mm` in one lung zone."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from radz_train.data.phantom.canvas import Scene, pick_point
from radz_train.data.phantom.patient import MM_PER_UNIT

if TYPE_CHECKING:  # pragma: no cover
    from radz_train.data.phantom.model import Finding

# (du, dv, dist, radius, eps, rng) -> density in the lesion's window
Density = Callable[[np.ndarray, np.ndarray, np.ndarray, float, float, np.random.Generator], np.ndarray]


def draw_lesion(s: Scene, f: Finding, rng: np.random.Generator, density: Density) -> None:
    """Place one lesion of diameter f.size_mm inside the lung of its side and zone, shaped by `density`."""
    side = f.laterality if f.laterality in ("left", "right") else "right"
    rad = (f.size_mm or 20.0) / 2.0 / MM_PER_UNIT
    # one lesion: the report describes exactly one
    cu, cvv = pick_point(s.a, rng, side, f.location, rad * 1.1)
    rs, cs = s.cv.window(cu, cvv, rad * 1.6)
    uu, vv = s.cv.u[rs, cs], s.cv.v[rs, cs]
    du, dv = uu - cu, vv - cvv
    dist = np.sqrt(du * du + dv * dv)
    dens = density(du, dv, dist, rad, s.cv.eps, rng)
    s.air[rs, cs] = s.air[rs, cs] * (1.0 - 0.9 * dens)
    s.extra[rs, cs] += 0.05 * dens
