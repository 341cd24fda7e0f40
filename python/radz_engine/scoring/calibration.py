"""Per-class probability calibration and decision thresholds for screening.

Zero-shot scores (cosine similarities, softmax over classes) rank well but are not
probabilities. A screening user needs "P(finding) = 0.83" and a per-class operating point,
so this module fits, per class:

- ``platt``: p = sigmoid(a * score + b), fitted by Newton's method on the logistic loss;
- ``temperature``: p = sigmoid(logit / T) with one T shared by all classes;
- ``none``: the score is used as it is;

plus a threshold (max-F1 on the calibrated probabilities, or a fixed value), stored in a
small JSON-friendly ``Calibration`` record that the bundle's ``classes.json`` carries.

numpy only: the torch-free runtime imports this module to apply the calibration.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from radz_engine.scoring.metrics import _as_1d, _check_labels_binary, _check_scores_finite, _matrix_inputs, max_f1

__all__ = [
    "Calibration",
    "apply_calibration",
    "apply_platt",
    "fit_calibration",
    "fit_platt",
    "fit_temperature",
]

METHODS = ("platt", "temperature", "none")
PARAM_KEYS = {"platt": ("a", "b"), "temperature": ("temperature",), "none": ()}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # exp(-log(1 + exp(-z))) is accurate in both tails and never overflows.
    return np.exp(-np.logaddexp(0.0, -z))


def _bce_sum(z: np.ndarray, y: np.ndarray) -> float:
    # Binary cross-entropy from logits: log(1 + e^z) - y z, stable for any z.
    return float(np.sum(np.logaddexp(0.0, z) - y * z))


def _binary_pair(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    s = _as_1d("scores", scores)
    y = _as_1d("labels", labels)
    if s.shape != y.shape:
        raise ValueError(f"scores and labels must have the same shape, got {s.shape} and {y.shape}")
    _check_scores_finite("scores", s)
    _check_labels_binary("labels", y)
    keep = ~np.isnan(y)
    return s[keep], y[keep]


# --------------------------------------------------------------------------- Platt


def fit_platt(scores: Any, labels: Any, l2: float = 1e-3, max_iter: int = 100) -> tuple[float, float]:
    """Fit p = sigmoid(a * score + b) by Newton's method (IRLS) on the logistic loss.

    Minimises ``sum_i BCE_i + l2/2 * (alpha^2 + beta^2)`` where ``alpha, beta`` are the
    slope and intercept on standardised scores. Standardising makes the regulariser
    independent of the score scale (cosine similarities differ by hundredths, logits by
    tens), and the small L2 term keeps the optimum finite when the classes are perfectly
    separable or only one class is present. NaN labels are ignored.

    Returns ``(a, b)`` on the original score scale.
    """
    if not (l2 > 0 and math.isfinite(l2)):
        raise ValueError(f"l2 must be a positive finite number, got {l2}")
    s, y = _binary_pair(scores, labels)
    if s.size == 0:
        raise ValueError("labels has no labelled (non-NaN) samples; Platt scaling needs some")
    mu = float(s.mean())
    sd = float(s.std())
    if sd == 0.0 or not math.isfinite(sd):
        sd = 1.0  # constant scores: only the intercept can be learned
    x = (s - mu) / sd
    X = np.stack([x, np.ones_like(x)], axis=1)

    def objective(w: np.ndarray) -> float:
        return _bce_sum(X @ w, y) + 0.5 * l2 * float(w @ w)

    w = np.zeros(2)
    f = objective(w)
    for _ in range(max_iter):
        p = _sigmoid(X @ w)
        grad = X.T @ (p - y) + l2 * w
        hess = (X * (p * (1.0 - p))[:, None]).T @ X + l2 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        decrement = float(grad @ step)  # squared Newton decrement: predicted objective drop * 2
        if decrement <= 1e-20 * max(1.0, f):
            break
        # Backtracking: a full Newton step can overshoot when the data are nearly separable.
        t = 1.0
        while t >= 1e-10:
            w_new = w - t * step
            f_new = objective(w_new)
            if f_new <= f - 1e-4 * t * decrement:
                break
            t *= 0.5
        else:
            break  # no descent possible in floating point: we are at the optimum
        w, f = w_new, f_new
    alpha, beta = float(w[0]), float(w[1])
    return alpha / sd, beta - alpha * mu / sd


def apply_platt(scores: Any, a: float, b: float) -> np.ndarray:
    """Probabilities sigmoid(a * scores + b), any shape."""
    s = np.asarray(scores, dtype=np.float64)
    return _sigmoid(a * s + b)


# --------------------------------------------------------------------------- temperature


def fit_temperature(
    logits: Any,
    labels: Any,
    bounds: tuple[float, float] = (1e-3, 1e3),
    tol: float = 1e-7,
) -> float:
    """One temperature T for all classes minimising the multi-label BCE of sigmoid(logits / T).

    The loss is convex in 1/T, hence unimodal in log T, so a golden-section search on
    log T within ``bounds`` finds the minimum without derivatives. NaN labels are ignored.
    If the optimum lies outside ``bounds`` the nearest bound is returned.
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"logits must be 2-D [N, C], got shape {z.shape}")
    if y.shape != z.shape:
        raise ValueError(f"labels must have the shape of logits {z.shape}, got {y.shape}")
    lo, hi = (float(v) for v in bounds)
    if not (0 < lo < hi and math.isfinite(hi)):
        raise ValueError(f"bounds must satisfy 0 < low < high < inf, got {bounds}")
    _check_scores_finite("logits", z)
    _check_labels_binary("labels", y)
    known = ~np.isnan(y)
    if not known.any():
        raise ValueError("labels has no labelled (non-NaN) entries; temperature scaling needs some")
    z, y = z[known], y[known]

    def loss(log_t: float) -> float:
        return _bce_sum(z * math.exp(-log_t), y)

    a, b = math.log(lo), math.log(hi)
    inv_phi = (math.sqrt(5.0) - 1.0) / 2.0
    c, d = b - inv_phi * (b - a), a + inv_phi * (b - a)
    fc, fd = loss(c), loss(d)
    while b - a > tol:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - inv_phi * (b - a)
            fc = loss(c)
        else:
            a, c, fc = c, d, fd
            d = a + inv_phi * (b - a)
            fd = loss(d)
    best_log_t, best_loss = (c, fc) if fc <= fd else (d, fd)
    # The bracket can end next to a bound without touching it; compare with the bounds
    # themselves so that a monotone loss returns the bound exactly.
    candidates = [(loss(math.log(lo)), lo), (best_loss, math.exp(best_log_t)), (loss(math.log(hi)), hi)]
    return float(min(candidates)[1])


# --------------------------------------------------------------------------- records


@dataclass
class Calibration:
    """How one class turns a raw score into a probability and a yes/no call.

    ``threshold`` is in probability space (after calibration); ``inf`` means "never
    positive" (a class fitted without positives) and is stored as ``null`` in JSON.
    """

    method: str
    params: dict[str, float] = field(default_factory=dict)
    threshold: float = 0.5

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        expected = PARAM_KEYS[self.method]
        if set(self.params) != set(expected):
            raise ValueError(
                f"params for method {self.method!r} must have keys {list(expected)}, got {sorted(self.params)}"
            )
        self.params = {k: float(v) for k, v in self.params.items()}
        if not all(math.isfinite(v) for v in self.params.values()):
            raise ValueError(f"params must be finite, got {self.params}")
        if self.method == "temperature" and self.params["temperature"] <= 0:
            raise ValueError(f"temperature must be > 0, got {self.params['temperature']}")
        self.threshold = float(self.threshold)
        if math.isnan(self.threshold) or self.threshold == -math.inf:
            raise ValueError(f"threshold must be a number or +inf (never positive), got {self.threshold}")

    def apply(self, scores: Any) -> np.ndarray:
        """Calibrated probabilities for raw scores of this class (any shape)."""
        s = np.asarray(scores, dtype=np.float64)
        if self.method == "platt":
            return apply_platt(s, self.params["a"], self.params["b"])
        if self.method == "temperature":
            return _sigmoid(s / self.params["temperature"])
        return s

    def predict(self, scores: Any) -> np.ndarray:
        """Boolean calls: calibrated probability >= threshold."""
        return self.apply(scores) >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (strict JSON has no Infinity, so +inf becomes None)."""
        thr = None if math.isinf(self.threshold) else self.threshold
        return {"method": self.method, "params": dict(self.params), "threshold": thr}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        """Inverse of ``to_dict``; validates the method and its parameters."""
        if not isinstance(data, dict) or "method" not in data:
            raise ValueError(f"a calibration record must be a dict with a 'method', got {data!r}")
        unknown = set(data) - {"method", "params", "threshold"}
        if unknown:
            raise ValueError(f"unknown keys in calibration record: {sorted(unknown)}")
        thr = data.get("threshold", 0.5)
        return cls(
            method=data["method"],
            params=dict(data.get("params") or {}),
            threshold=math.inf if thr is None else thr,
        )


def fit_calibration(
    scores: Any,
    labels: Any,
    classes: Sequence[str],
    method: str = "platt",
    threshold: str | float = "max_f1",
) -> dict[str, Calibration]:
    """Fit one ``Calibration`` per class from [N, C] scores and 0/1/NaN labels.

    ``method``: ``"platt"`` (per class), ``"temperature"`` (one T shared by all classes,
    scores taken as logits) or ``"none"``. ``threshold``: ``"max_f1"`` picks each class's
    max-F1 cut on its calibrated probabilities; a number is used for every class.
    Every class needs at least one labelled sample.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if isinstance(threshold, str):
        if threshold != "max_f1":
            raise ValueError(f"threshold must be 'max_f1' or a number, got {threshold!r}")
    elif not math.isfinite(float(threshold)):
        raise ValueError(f"a fixed threshold must be finite, got {threshold}")
    lab, sco = _matrix_inputs(labels, scores, classes)
    empty = [name for c, name in enumerate(classes) if np.isnan(lab[:, c]).all()]
    if empty:
        raise ValueError(f"cannot calibrate classes with no labelled samples: {empty}")

    shared: dict[str, float] = {}
    if method == "temperature":
        shared = {"temperature": fit_temperature(sco, lab)}
    out: dict[str, Calibration] = {}
    for c, name in enumerate(classes):
        if method == "platt":
            a, b = fit_platt(sco[:, c], lab[:, c])
            cal = Calibration("platt", {"a": a, "b": b})
        else:
            cal = Calibration(method, dict(shared))
        if threshold == "max_f1":
            cal.threshold = max_f1(lab[:, c], cal.apply(sco[:, c]))[1]
        else:
            cal.threshold = float(threshold)
        out[name] = cal
    return out


def apply_calibration(scores: Any, calibrations: Sequence[Calibration]) -> np.ndarray:
    """[N, C] probabilities from [N, C] raw scores, one ``Calibration`` per column."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != len(calibrations):
        raise ValueError(f"scores must be [N, {len(calibrations)}] (one column per calibration), got shape {s.shape}")
    return (
        np.stack([cal.apply(s[:, c]) for c, cal in enumerate(calibrations)], axis=1) if len(calibrations) else s.copy()
    )
