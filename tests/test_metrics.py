"""Zero-shot metrics (radz_engine.scoring.metrics) against scikit-learn and hand-worked cases."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from radz_train.evaluation import (
    binary_auc,
    format_table,
    max_f1,
    plot_roc_curves,
    plot_score_histograms,
    roc_curve,
    zero_shot_metrics,
)

PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def binary_problem(draw):
    """Labels with both classes (often heavily imbalanced) and scores with many ties."""
    n = draw(st.integers(2, 300))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    prevalence = draw(st.sampled_from([0.01, 0.05, 0.3, 0.5, 0.9]))
    y = (rng.random(n) < prevalence).astype(float)
    y[rng.integers(n)] = 1.0
    y[(rng.integers(n - 1) + 1 + np.flatnonzero(y == 1)[0]) % n] = 0.0  # guarantee a negative
    levels = draw(st.sampled_from([2, 5, 50, 10**9]))  # few levels = many ties
    signal = draw(st.floats(0.0, 3.0))
    s = np.round((rng.normal(size=n) + signal * y) * levels / 4.0) / levels
    return y, s


# --------------------------------------------------------------------------- AUC


def test_auc_hand_computed():
    assert binary_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    # Pairs (pos, neg): (0.5 vs 0.5) tie = 1/2, (0.5 vs 0.2) win, (0.9 vs both) wins -> 3.5 / 4.
    assert binary_auc([1, 0, 1, 0], [0.5, 0.5, 0.9, 0.2]) == pytest.approx(0.875)
    assert binary_auc([1, 0], [0.3, 0.3]) == 0.5
    assert binary_auc([1, 0], [0.1, 0.3]) == 0.0
    assert binary_auc([True, False, False], [2, 1, 0]) == 1.0


def test_auc_ignores_nan_labels():
    y = [0, np.nan, 0, 1, np.nan, 1]
    s = [0.1, 100.0, 0.4, 0.35, -100.0, 0.8]
    assert binary_auc(y, s) == pytest.approx(0.75)


@pytest.mark.parametrize("y", [[1, 1, 1], [0, 0], [np.nan, np.nan], [1, np.nan, 1], []])
def test_auc_single_class_is_nan(y):
    assert math.isnan(binary_auc(y, np.arange(len(y), dtype=float)))


@PROPERTY
@given(binary_problem())
def test_auc_matches_sklearn(problem):
    y, s = problem
    assert binary_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)


def test_auc_invariant_to_monotone_transform():
    rng = np.random.default_rng(1)
    y = (rng.random(500) < 0.1).astype(float)
    s = rng.normal(size=500) + y
    assert binary_auc(y, s) == pytest.approx(binary_auc(y, np.exp(3 * s) + 7))


# --------------------------------------------------------------------------- ROC curve


@PROPERTY
@given(binary_problem())
def test_roc_curve_matches_sklearn(problem):
    y, s = problem
    fpr, tpr, thr = roc_curve(y, s)
    sk_fpr, sk_tpr, sk_thr = skm.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr, atol=1e-12)
    np.testing.assert_allclose(tpr, sk_tpr, atol=1e-12)
    np.testing.assert_array_equal(thr, sk_thr)
    # The trapezoid area under our curve is the rank AUC (ties give diagonal segments).
    assert np.trapezoid(tpr, fpr) == pytest.approx(binary_auc(y, s), abs=1e-12)


def test_roc_curve_one_class_gives_nan_rate_without_warning():
    fpr, tpr, thr = roc_curve([0, 0, np.nan], [0.2, 0.1, 5.0])
    assert np.isnan(tpr).all()
    np.testing.assert_array_equal(fpr, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(thr, [np.inf, 0.2, 0.1])


def test_roc_curve_needs_labelled_samples():
    with pytest.raises(ValueError, match="no labelled"):
        roc_curve([np.nan], [0.5])


# --------------------------------------------------------------------------- max F1


def test_max_f1_hand_computed():
    # Cuts: >=0.8 -> TP1 FP0 FN1 F1=2/3; >=0.4 -> TP1 FP1 FN1 F1=1/2; >=0.35 -> TP2 FP1 F1=4/5;
    # >=0.1 -> TP2 FP2 F1=2/3. Best is 0.35 with accuracy 3/4.
    f1, thr, acc = max_f1([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert (f1, thr, acc) == (pytest.approx(0.8), 0.35, pytest.approx(0.75))


def test_max_f1_ties_prefer_the_higher_threshold():
    # >=0.9: TP1 FP0 FN1 -> 2/3; >=0.5: TP2 FP2 FN0 -> 2/3. Equal F1: keep 0.9 (fewer calls).
    f1, thr, acc = max_f1([1, 1, 0, 0], [0.9, 0.5, 0.5, 0.5])
    assert f1 == pytest.approx(2 / 3) and thr == 0.9 and acc == pytest.approx(0.75)


def test_max_f1_edge_cases():
    assert max_f1([0, 0, 0], [0.1, 0.2, 0.3]) == (0.0, math.inf, 1.0)
    assert max_f1([1, 1], [0.1, 0.2]) == (1.0, 0.1, 1.0)
    assert all(math.isnan(v) for v in max_f1([np.nan], [0.1]))
    f1, thr, acc = max_f1([1, np.nan, 0], [0.9, 0.95, 0.1])  # the NaN-labelled top score is ignored
    assert (f1, thr, acc) == (1.0, 0.9, 1.0)


@PROPERTY
@given(binary_problem())
def test_max_f1_matches_sklearn_and_brute_force(problem):
    y, s = problem
    f1, thr, acc = max_f1(y, s)
    pred = s >= thr
    assert f1 == pytest.approx(skm.f1_score(y, pred), abs=1e-12)
    assert acc == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
    assert thr in s
    # Brute force over every cut, vectorised (sklearn per cut is too slow for a property test).
    pred_all = s[None, :] >= np.unique(s)[:, None]
    tp = (pred_all & (y == 1)).sum(1)
    best = np.max(2 * tp / (pred_all.sum(1) + (y == 1).sum()))
    assert f1 == pytest.approx(best, abs=1e-12)


# --------------------------------------------------------------------------- per class and macro


def test_zero_shot_metrics_per_class_macro_and_skips():
    rng = np.random.default_rng(3)
    n = 400
    labels = (rng.random((n, 4)) < [0.1, 0.5, 0.3, 0.0]).astype(float)
    labels[rng.random((n, 4)) < 0.2] = np.nan
    labels[:, 2] = np.nan  # nothing labelled
    scores = rng.normal(size=(n, 4)) + labels.clip(0, 1) * [1.0, 2.0, 0.0, 0.0]
    scores = np.nan_to_num(scores)
    classes = ["Edema", "Pneumonia", "Fracture", "Hernia"]
    m = zero_shot_metrics(labels, scores, classes)

    assert list(m["per_class"]) == classes
    for c, name in enumerate(classes[:2]):
        known = ~np.isnan(labels[:, c])
        y, s = labels[known, c], scores[known, c]
        entry = m["per_class"][name]
        assert entry["auc"] == pytest.approx(skm.roc_auc_score(y, s))
        assert entry["n_pos"] == int(y.sum()) and entry["n_neg"] == int((y == 0).sum())
        assert entry["f1"] == pytest.approx(skm.f1_score(y, s >= entry["threshold"]))
        assert entry["acc"] == pytest.approx(skm.accuracy_score(y, s >= entry["threshold"]))

    assert m["skipped"] == {"Fracture": "no labelled samples", "Hernia": m["skipped"]["Hernia"]}
    assert m["skipped"]["Hernia"].startswith("no positive samples")
    assert math.isnan(m["per_class"]["Hernia"]["auc"])
    assert m["macro"]["n_classes"] == 2
    for key in ("auc", "f1", "acc"):
        expected = np.mean([m["per_class"][c][key] for c in classes[:2]])
        assert m["macro"][key] == pytest.approx(expected)


def test_zero_shot_metrics_all_skipped_gives_nan_macro():
    m = zero_shot_metrics(np.ones((3, 2)), np.zeros((3, 2)), ["a", "b"])
    assert m["macro"]["n_classes"] == 0 and math.isnan(m["macro"]["auc"])
    assert m["skipped"]["a"].startswith("no negative samples")


# --------------------------------------------------------------------------- input validation


@pytest.mark.parametrize(
    "labels, scores, classes, pattern",
    [
        (np.zeros((4, 2)), np.zeros((4, 3)), ["a", "b"], r"same shape.*\(4, 2\).*\(4, 3\)"),
        (np.zeros(4), np.zeros(4), ["a"], r"labels must be 2-D.*\(4,\)"),
        (np.zeros((4, 2)), np.zeros((4, 2, 1)), ["a", "b"], r"scores must be 2-D.*\(4, 2, 1\)"),
        (np.zeros((4, 2)), np.zeros((4, 2)), ["a"], r"classes.*\(4, 2\).*1 names"),
        (np.zeros((4, 2)), np.zeros((4, 2)), "ab", r"classes.*single string"),
        (np.zeros((4, 2)), np.zeros((4, 2)), ["a", "a"], r"classes must be unique"),
        (np.zeros((4, 2)), np.full((4, 2), np.nan), ["a", "b"], r"scores must be finite.*\(4, 2\)"),
        (np.full((4, 2), 2.0), np.zeros((4, 2)), ["a", "b"], r"labels must hold 0, 1 or NaN.*\[2\.0\]"),
    ],
)
def test_zero_shot_metrics_rejects_bad_input(labels, scores, classes, pattern):
    with pytest.raises(ValueError, match=pattern):
        zero_shot_metrics(labels, scores, classes)


@pytest.mark.parametrize("fn", [binary_auc, roc_curve, max_f1])
def test_binary_functions_reject_bad_input(fn):
    with pytest.raises(ValueError, match=r"same shape.*\(3,\).*\(2,\)"):
        fn([0, 1, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"y_true must be 1-D.*\(2, 2\)"):
        fn(np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"scores must be finite.*index \(1,\)"):
        fn([0, 1, 0], [0.1, np.nan, 0.3])
    with pytest.raises(ValueError, match=r"scores must be finite"):
        fn([0, 1], [0.1, np.inf])
    with pytest.raises(ValueError, match=r"y_true must hold 0, 1 or NaN.*-1\.0"):
        fn([0, -1, 1], [0.1, 0.2, 0.3])


# --------------------------------------------------------------------------- table


def test_format_table_paper_style_percentages():
    metrics = {
        "per_class": {
            "Pneumonia": {
                "auc": 0.859412,
                "f1": 0.758401,
                "acc": 0.81349,
                "threshold": 0.23456,
                "n_pos": 10,
                "n_neg": 30,
            },
            "a|b": {"auc": math.nan, "f1": math.nan, "acc": math.nan, "threshold": math.nan, "n_pos": 0, "n_neg": 40},
        },
        "macro": {"auc": 0.859412, "f1": 0.758401, "acc": 0.81349, "n_classes": 1},
        "skipped": {"a|b": "no positive samples, 40 negatives"},
    }
    text = format_table(metrics, title="RSNA")
    lines = text.splitlines()
    assert lines[0] == "### RSNA"
    assert "| class | n_pos | AUC | F1 | ACC | thr |" in lines
    assert "| Pneumonia | 10/40 | 85.94 | 75.84 | 81.35 | 0.2346 |" in lines
    assert r"| a\|b | 0/40 | n/a | n/a | n/a | n/a |" in lines
    assert "| **macro (1)** | | **85.94** | **75.84** | **81.35** | |" in lines
    assert "a|b (no positive samples, 40 negatives)" in lines[-1]


def test_format_table_from_real_metrics_and_rejects_other_dicts():
    m = zero_shot_metrics([[0, 1], [1, 0], [1, 1]], [[0.1, 0.9], [0.8, 0.2], [0.7, 0.6]], ["x", "y"])
    text = format_table(m)
    assert "| x | 2/3 | 100.00 | 100.00 | 100.00 | 0.7 |" in text
    with pytest.raises(ValueError, match="per_class"):
        format_table({"auc": 0.5})


# --------------------------------------------------------------------------- plots and imports


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_plots_write_pngs(tmp_path):
    rng = np.random.default_rng(5)
    classes = [f"class {i}" for i in range(12)]
    labels = (rng.random((200, 12)) < 0.2).astype(float)
    labels[:, 11] = 0.0  # one class with no positives must not break either plot
    labels[rng.random((200, 12)) < 0.1] = np.nan
    scores = rng.normal(size=(200, 12)) + np.nan_to_num(labels)
    roc = plot_roc_curves(labels, scores, classes, tmp_path / "sub" / "roc.png", title="test")
    width, height = _png_size(roc)
    assert width > 600 and height > 500
    m = zero_shot_metrics(labels, scores, classes)
    thresholds = [m["per_class"][c]["threshold"] for c in classes]
    hist = plot_score_histograms(labels, scores, classes, tmp_path / "hist.png", thresholds=thresholds)
    _png_size(hist)
    with pytest.raises(ValueError, match="thresholds"):
        plot_score_histograms(labels, scores, classes, tmp_path / "x.png", thresholds=[0.5])
    with pytest.raises(ValueError, match="same shape"):
        plot_roc_curves(labels, scores[:, :3], classes, tmp_path / "x.png")


def test_evaluation_imports_only_numpy():
    code = (
        "import sys, radz_train.evaluation\n"
        "heavy = {'torch', 'sklearn', 'matplotlib', 'scipy', 'transformers'} & {m.split('.')[0] for m in sys.modules}\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
