"""Calibration (radz_engine.scoring.calibration): Platt, temperature, records, JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression

from radz_train.evaluation import (
    Calibration,
    apply_calibration,
    apply_platt,
    fit_calibration,
    fit_platt,
    fit_temperature,
    max_f1,
)

PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def log_loss(p, y):
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def synthetic(n, seed, offset=-1.5):
    """True logits z, labels drawn from sigmoid(z), imbalanced by ``offset``."""
    rng = np.random.default_rng(seed)
    z = 2.0 * rng.normal(size=n) + offset
    y = (rng.random(n) < sigmoid(z)).astype(float)
    return z, y


# --------------------------------------------------------------------------- Platt


def test_platt_matches_sklearn_logistic_regression():
    z, y = synthetic(3000, 0)
    scores = 0.25 + 0.01 * z  # cosine-similarity-like scale: tiny spread, offset
    a, b = fit_platt(scores, y)
    # sklearn penalises only the slope; a large C makes both fits (almost) unregularised.
    x = (scores - scores.mean()) / scores.std()
    lr = LogisticRegression(C=1e6, tol=1e-10, max_iter=10_000).fit(x[:, None], y)
    sk_a = lr.coef_[0, 0] / scores.std()
    sk_b = lr.intercept_[0] - lr.coef_[0, 0] * scores.mean() / scores.std()
    assert a == pytest.approx(sk_a, rel=1e-3)
    assert b == pytest.approx(sk_b, rel=1e-3)
    np.testing.assert_allclose(apply_platt(scores, a, b), lr.predict_proba(x[:, None])[:, 1], atol=1e-4)
    # Scores are z / 100 + 0.25 with z the true logit, so the truth is a = 100, b = -25.
    assert a == pytest.approx(100.0, rel=0.15) and b == pytest.approx(-25.0, rel=0.15)


def test_platt_improves_log_loss_on_miscalibrated_scores():
    z, y = synthetic(4000, 1)
    scores = sigmoid(0.3 * z + 1.0)  # "probabilities" far too high and too flat
    fit, held = slice(0, 2000), slice(2000, None)
    a, b = fit_platt(scores[fit], y[fit])
    raw = log_loss(scores[held], y[held])
    calibrated = log_loss(apply_platt(scores[held], a, b), y[held])
    oracle = log_loss(sigmoid(z[held]), y[held])
    assert calibrated < raw - 0.1
    assert calibrated < oracle + 0.02  # Platt on a monotone squash of z gets close to the truth


def test_platt_separable_and_single_class_stay_finite():
    a, b = fit_platt([0.0, 1.0, 2.0, 3.0], [0, 0, 1, 1])
    assert math.isfinite(a) and math.isfinite(b) and a > 0
    p = apply_platt([0.0, 1.0, 2.0, 3.0], a, b)
    assert p[0] < 0.05 and p[3] > 0.95 and np.all(np.diff(p) > 0)
    assert apply_platt(1.5, a, b) == pytest.approx(0.5, abs=1e-6)  # symmetric data: boundary in the middle
    a, b = fit_platt([0.1, 0.2, 0.3], [0, 0, 0])
    assert math.isfinite(a) and math.isfinite(b)
    assert np.all(apply_platt([0.1, 0.2, 0.3], a, b) < 0.01)
    a, b = fit_platt([0.5, 0.5, 0.5, 0.5], [0, 1, 1, 1])  # constant scores: intercept only
    assert a == 0.0 and apply_platt(0.5, a, b) == pytest.approx(0.75, abs=1e-3)


def test_platt_ignores_nan_labels():
    z, y = synthetic(500, 2)
    y_nan = y.copy()
    y_nan[::7] = np.nan
    keep = ~np.isnan(y_nan)
    assert fit_platt(z, y_nan) == pytest.approx(fit_platt(z[keep], y[keep]), rel=1e-12)


@PROPERTY
@given(
    n=st.integers(2, 400),
    seed=st.integers(0, 2**32 - 1),
    prevalence=st.sampled_from([0.02, 0.2, 0.5, 0.95]),
    signal=st.sampled_from([0.0, 1.0, 5.0, 100.0]),  # 100: practically separable
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
    levels=st.sampled_from([3, 10**6]),  # 3 levels: heavy ties
)
def test_platt_first_order_conditions(n, seed, prevalence, signal, scale, levels):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(float)
    s = scale * np.round((rng.normal(size=n) + signal * y) * levels) / levels
    a, b = fit_platt(s, y)
    assert math.isfinite(a) and math.isfinite(b)
    p = apply_platt(s, a, b)
    # At the optimum the intercept's gradient vanishes, so the mean predicted probability
    # equals the prevalence up to the tiny L2 term (l2 * |beta| / n).
    assert abs(p.mean() - y.mean()) < 0.05 / n + 1e-9
    # ... and the slope's gradient: residuals are uncorrelated with the (standardised) score.
    if s.std() > 0:
        x = (s - s.mean()) / s.std()
        assert abs(np.dot(p - y, x)) / n < 0.05 / n + 1e-9


@pytest.mark.parametrize(
    "scores, labels, l2, pattern",
    [
        ([0.1, 0.2], [0, 1, 1], 1e-3, r"same shape.*\(2,\).*\(3,\)"),
        ([[0.1, 0.2]], [[0, 1]], 1e-3, r"scores must be 1-D.*\(1, 2\)"),
        ([0.1, np.nan], [0, 1], 1e-3, r"scores must be finite"),
        ([0.1, 0.2], [np.nan, np.nan], 1e-3, r"no labelled"),
        ([0.1, 0.2], [0, 2], 1e-3, r"labels must hold 0, 1 or NaN"),
        ([0.1, 0.2], [0, 1], 0.0, r"l2 must be a positive"),
    ],
)
def test_platt_rejects_bad_input(scores, labels, l2, pattern):
    with pytest.raises(ValueError, match=pattern):
        fit_platt(scores, labels, l2=l2)


# --------------------------------------------------------------------------- temperature


def test_temperature_recovers_overconfidence_and_is_the_grid_minimum():
    rng = np.random.default_rng(3)
    z = 1.5 * rng.normal(size=(3000, 4)) - 1.0
    y = (rng.random(z.shape) < sigmoid(z)).astype(float)
    y[rng.random(z.shape) < 0.1] = np.nan  # unlabelled entries must be ignored
    known = ~np.isnan(y)
    logits = 3.0 * z  # an overconfident model
    t = fit_temperature(logits, y)
    assert t == pytest.approx(3.0, rel=0.1)
    assert log_loss(sigmoid(logits[known] / t), y[known]) < log_loss(sigmoid(logits[known]), y[known]) - 0.1
    grid = np.exp(np.linspace(np.log(0.5), np.log(20.0), 2001))
    losses = [log_loss(sigmoid(logits[known] / g), y[known]) for g in grid]
    assert log_loss(sigmoid(logits[known] / t), y[known]) <= min(losses) + 1e-9


def test_temperature_returns_the_bound_when_the_loss_is_monotone():
    # Always right with positive margin: sharper is always better, so T hits the lower bound.
    logits = np.array([[2.0, -1.0], [3.0, -2.0]])
    labels = np.array([[1.0, 0.0], [1.0, 0.0]])
    assert fit_temperature(logits, labels, bounds=(0.1, 10.0)) == 0.1
    # Always wrong: flatter is always better, so T hits the upper bound.
    assert fit_temperature(logits, 1 - labels, bounds=(0.1, 10.0)) == 10.0


@pytest.mark.parametrize(
    "logits, labels, bounds, pattern",
    [
        (np.zeros(3), np.zeros(3), (1e-3, 1e3), r"logits must be 2-D.*\(3,\)"),
        (np.zeros((3, 2)), np.zeros((3, 1)), (1e-3, 1e3), r"labels must have the shape.*\(3, 2\).*\(3, 1\)"),
        (np.full((3, 2), np.inf), np.zeros((3, 2)), (1e-3, 1e3), r"logits must be finite"),
        (np.zeros((3, 2)), np.full((3, 2), np.nan), (1e-3, 1e3), r"no labelled"),
        (np.zeros((3, 2)), np.zeros((3, 2)), (0.0, 1.0), r"bounds"),
    ],
)
def test_temperature_rejects_bad_input(logits, labels, bounds, pattern):
    with pytest.raises(ValueError, match=pattern):
        fit_temperature(logits, labels, bounds=bounds)


# --------------------------------------------------------------------------- records and JSON


@pytest.mark.parametrize(
    "cal",
    [
        Calibration("platt", {"a": 12.345678901234567, "b": -3.2}, 0.4123456789),
        Calibration("temperature", {"temperature": 2.5}, 0.5),
        Calibration("none", {}, 0.27),
        Calibration("platt", {"a": 0.0, "b": -9.0}, math.inf),  # fitted without positives
    ],
)
def test_calibration_json_round_trip(cal):
    text = json.dumps(cal.to_dict(), allow_nan=False)  # strict JSON: no Infinity/NaN
    back = Calibration.from_dict(json.loads(text))
    assert back == cal
    s = np.linspace(-2, 2, 9)
    np.testing.assert_array_equal(back.apply(s), cal.apply(s))
    np.testing.assert_array_equal(back.predict(s), cal.predict(s))


def test_calibration_never_positive_threshold():
    cal = Calibration("none", {}, math.inf)
    assert cal.to_dict()["threshold"] is None
    assert not cal.predict([1e300, 1.0]).any()


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"method": "isotonic"}, r"method must be one of"),
        ({"method": "platt", "params": {"a": 1.0}}, r"must have keys \['a', 'b'\]"),
        ({"method": "temperature", "params": {"temperature": 0.0}}, r"temperature must be > 0"),
        ({"method": "platt", "params": {"a": np.nan, "b": 0.0}}, r"params must be finite"),
        ({"method": "none", "threshold": np.nan}, r"threshold must be"),
    ],
)
def test_calibration_validates(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        Calibration(**kwargs)


def test_calibration_from_dict_rejects_unknown_records():
    with pytest.raises(ValueError, match="unknown keys"):
        Calibration.from_dict({"method": "none", "params": {}, "threshold": 0.5, "extra": 1})
    with pytest.raises(ValueError, match="'method'"):
        Calibration.from_dict({"params": {}})


# --------------------------------------------------------------------------- fit_calibration


def _multi_label(seed=4, n=1500):
    rng = np.random.default_rng(seed)
    z = 2.0 * rng.normal(size=(n, 3)) + np.array([-2.5, -0.5, 0.5])
    labels = (rng.random(z.shape) < sigmoid(z)).astype(float)
    labels[rng.random(z.shape) < 0.1] = np.nan
    scores = 0.2 + 0.02 * z  # cosine-like scores
    return z, labels, scores, ["Edema", "Pneumonia", "Effusion"]


def test_fit_calibration_platt_max_f1():
    _, labels, scores, classes = _multi_label()
    cals = fit_calibration(scores, labels, classes, method="platt", threshold="max_f1")
    assert list(cals) == classes
    for c, name in enumerate(classes):
        cal = cals[name]
        assert cal.method == "platt" and cal.params["a"] > 0
        probs = cal.apply(scores[:, c])
        assert cal.threshold == max_f1(labels[:, c], probs)[1]
        # Platt is monotone, so the max-F1 operating point is the same as on raw scores.
        assert max_f1(labels[:, c], probs)[0] == pytest.approx(max_f1(labels[:, c], scores[:, c])[0])
    probs = apply_calibration(scores, [cals[n] for n in classes])
    assert probs.shape == scores.shape and np.all((probs >= 0) & (probs <= 1))
    for c, name in enumerate(classes):
        np.testing.assert_array_equal(probs[:, c], cals[name].apply(scores[:, c]))


def test_fit_calibration_temperature_shares_one_t_and_fixed_threshold():
    z, labels, _, classes = _multi_label()
    cals = fit_calibration(2.0 * z, labels, classes, method="temperature", threshold=0.3)
    temps = {cal.params["temperature"] for cal in cals.values()}
    assert len(temps) == 1 and next(iter(temps)) == pytest.approx(2.0, rel=0.15)
    assert all(cal.threshold == 0.3 for cal in cals.values())
    cals = fit_calibration(z, labels, classes, method="none", threshold=0.0)
    assert all(cal.method == "none" and cal.params == {} for cal in cals.values())
    np.testing.assert_array_equal(cals["Edema"].apply(z[:, 0]), z[:, 0])


def test_fit_calibration_class_without_positives_is_never_positive():
    labels = np.array([[0.0, 1.0], [0.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    scores = np.array([[0.1, 0.9], [0.2, 0.1], [0.3, 0.8], [0.4, 0.2]])
    cals = fit_calibration(scores, labels, ["empty", "ok"])
    assert cals["empty"].threshold == math.inf and not cals["empty"].predict(scores[:, 0]).any()
    assert json.loads(json.dumps({k: v.to_dict() for k, v in cals.items()}, allow_nan=False))
    assert cals["ok"].predict(scores[:, 1]).tolist() == [True, False, True, False]


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"method": "isotonic"}, r"method must be one of"),
        ({"threshold": "youden"}, r"threshold must be 'max_f1' or a number"),
        ({"threshold": math.inf}, r"fixed threshold must be finite"),
        ({"classes": ["a"]}, r"classes must list one name per column"),
    ],
)
def test_fit_calibration_rejects_bad_arguments(kwargs, pattern):
    args = {"scores": np.zeros((4, 2)), "labels": np.array([[0, 1], [1, 0]] * 2, float), "classes": ["a", "b"]}
    args.update(kwargs)
    with pytest.raises(ValueError, match=pattern):
        fit_calibration(**args)


def test_fit_calibration_rejects_unlabelled_class_and_apply_checks_shape():
    labels = np.array([[0.0, np.nan], [1.0, np.nan]])
    with pytest.raises(ValueError, match=r"no labelled samples: \['b'\]"):
        fit_calibration(np.zeros((2, 2)), labels, ["a", "b"])
    with pytest.raises(ValueError, match=r"\[N, 1\].*\(2, 2\)"):
        apply_calibration(np.zeros((2, 2)), [Calibration("none")])
