"""Zero-shot classification metrics of the paper protocol (DESIGN.md section 1, "Metrics").

Per class: ROC AUC, F1 at the threshold that maximises F1, and accuracy at that same
threshold; then a macro average over the classes whose AUC is defined.

numpy only on purpose: this module is imported by evaluation jobs and by the torch-free
runtime, and scikit-learn is only the test oracle. Labels are floats where NaN means
"not labelled for this class" (CheXpert-style blanks), so every function drops NaN labels
instead of treating them as negatives.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["binary_auc", "roc_curve", "max_f1", "zero_shot_metrics", "format_table"]


# --------------------------------------------------------------------------- validation


def _as_1d(name: str, value: Any) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def _check_scores_finite(name: str, scores: np.ndarray) -> None:
    # A NaN score is a bug upstream (a broken embedding, a 0/0 normalisation); ranking it
    # silently would produce a plausible but wrong AUC, so refuse it loudly.
    bad = ~np.isfinite(scores)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} must be finite, got {int(bad.sum())} non-finite value(s) "
            f"(first at index {first}) in an array of shape {scores.shape}"
        )


def _check_labels_binary(name: str, labels: np.ndarray) -> None:
    known = labels[~np.isnan(labels)]
    bad = (known != 0) & (known != 1)
    if bad.any():
        values = np.unique(known[bad])[:5].tolist()
        raise ValueError(
            f"{name} must hold 0, 1 or NaN (NaN = not labelled), got other values {values} "
            f"in an array of shape {labels.shape}"
        )


def _binary_inputs(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (labels, scores) pair and return them with NaN-labelled samples removed."""
    y = _as_1d("y_true", y_true)
    s = _as_1d("scores", scores)
    if y.shape != s.shape:
        raise ValueError(f"y_true and scores must have the same shape, got {y.shape} and {s.shape}")
    _check_scores_finite("scores", s)
    _check_labels_binary("y_true", y)
    keep = ~np.isnan(y)
    return y[keep].astype(bool), s[keep]


def _cumulative_counts(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True/false positive counts when predicting positive for score >= each distinct score.

    Returns (thresholds descending, tp, fp), one entry per distinct score value.
    """
    order = np.argsort(-s, kind="mergesort")
    s_sorted = s[order]
    y_sorted = y[order]
    # The last index of each run of equal scores: a cut point admits the whole run at once.
    last = np.flatnonzero(np.diff(s_sorted) != 0)
    last = np.r_[last, s_sorted.size - 1]
    tp = np.cumsum(y_sorted)[last]
    fp = (last + 1) - tp
    return s_sorted[last], tp.astype(np.float64), fp.astype(np.float64)


# --------------------------------------------------------------------------- binary metrics


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given the mean of the ranks they span."""
    order = np.argsort(values, kind="mergesort")
    sorted_vals = values[order]
    # Start index of each tie group; every member gets (first + last) / 2 + 1.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_vals) != 0) + 1]
    ends = np.r_[starts[1:], sorted_vals.size]
    group_rank = (starts + ends - 1) / 2.0 + 1.0
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(group_rank, ends - starts)
    return ranks


def binary_auc(y_true: Any, scores: Any) -> float:
    """ROC AUC from the Mann-Whitney U statistic (average ranks for ties).

    Equals the probability that a random positive scores above a random negative, ties
    counting one half. Samples with a NaN label are ignored. Returns NaN when fewer than
    two classes remain, because AUC is undefined there (sklearn raises instead).
    """
    y, s = _binary_inputs(y_true, scores)
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(s)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def roc_curve(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve like ``sklearn.metrics.roc_curve(..., drop_intermediate=False)``.

    Thresholds are the distinct scores in decreasing order, preceded by ``inf`` (the
    "predict nothing" point at (0, 0)), as sklearn >= 1.3 does. A sample is predicted
    positive when its score >= threshold. NaN labels are ignored. When one class is
    absent, the rate that would divide by zero is NaN (sklearn also warns there).
    """
    y, s = _binary_inputs(y_true, scores)
    if y.size == 0:
        raise ValueError("y_true has no labelled (non-NaN) samples; a ROC curve needs some")
    thresholds, tp, fp = _cumulative_counts(y, s)
    tp = np.r_[0.0, tp]
    fp = np.r_[0.0, fp]
    n_pos, n_neg = tp[-1], fp[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = tp / n_pos if n_pos > 0 else np.full(tp.shape, np.nan)
        fpr = fp / n_neg if n_neg > 0 else np.full(fp.shape, np.nan)
    return fpr, tpr, np.r_[np.inf, thresholds]


def max_f1(y_true: Any, scores: Any) -> tuple[float, float, float]:
    """Best F1 over every distinct score cut point, and the accuracy at that cut.

    Predict positive when score >= threshold. Returns ``(f1, threshold, accuracy)``; the
    threshold is one of the scores. Ties in F1 go to the highest threshold (fewest
    positive calls), which keeps the choice deterministic. With no positive labels F1 is 0
    at every cut; the threshold is then ``inf`` (predict nothing), the most accurate cut.
    Returns NaNs when no sample is labelled.
    """
    y, s = _binary_inputs(y_true, scores)
    n = y.size
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    n_pos = float(y.sum())
    if n_pos == 0:
        return 0.0, float("inf"), 1.0
    thresholds, tp, fp = _cumulative_counts(y, s)
    fn = n_pos - tp
    # F1 = 2TP / (2TP + FP + FN); the denominator is > 0 because n_pos > 0.
    f1 = 2.0 * tp / (2.0 * tp + fp + fn)
    best = int(np.argmax(f1))  # first maximum = highest threshold
    tn = (n - n_pos) - fp[best]
    accuracy = (tp[best] + tn) / n
    return float(f1[best]), float(thresholds[best]), float(accuracy)


# --------------------------------------------------------------------------- multi-class


def _matrix_inputs(labels: Any, scores: Any, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    lab = np.asarray(labels, dtype=np.float64)
    sco = np.asarray(scores, dtype=np.float64)
    if lab.ndim != 2:
        raise ValueError(f"labels must be 2-D [N, C], got shape {lab.shape}")
    if sco.ndim != 2:
        raise ValueError(f"scores must be 2-D [N, C], got shape {sco.shape}")
    if lab.shape != sco.shape:
        raise ValueError(f"labels and scores must have the same shape, got {lab.shape} and {sco.shape}")
    if isinstance(classes, str) or len(classes) != lab.shape[1]:
        got = "a single string" if isinstance(classes, str) else f"{len(classes)} names"
        raise ValueError(f"classes must list one name per column of labels {lab.shape}, got {got}")
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes must be unique, got {list(classes)}")
    _check_scores_finite("scores", sco)
    _check_labels_binary("labels", lab)
    return lab, sco


def zero_shot_metrics(labels: Any, scores: Any, classes: Sequence[str]) -> dict[str, Any]:
    """Per-class and macro metrics of the paper protocol.

    ``labels`` is [N, C] with 0/1 and NaN for "not labelled"; ``scores`` is [N, C]
    (any monotone score: cosine similarity, softmax probability, logit).

    Returns::

        {"per_class": {name: {"auc", "f1", "acc", "threshold", "n_pos", "n_neg"}},
         "macro": {"auc", "f1", "acc", "n_classes"},
         "skipped": {name: reason}}

    Fractions are in [0, 1] (``format_table`` prints percentages). A class whose AUC is
    undefined (no positives or no negatives among its labelled samples) keeps its entry
    with NaN metrics, is listed in ``skipped`` with the reason, and is left out of the
    macro mean so that one empty class cannot turn the headline number into NaN.
    """
    lab, sco = _matrix_inputs(labels, scores, classes)
    per_class: dict[str, dict[str, float | int]] = {}
    skipped: dict[str, str] = {}
    for c, name in enumerate(classes):
        known = ~np.isnan(lab[:, c])
        n_pos = int((lab[known, c] == 1).sum())
        n_neg = int(known.sum()) - n_pos
        auc = binary_auc(lab[:, c], sco[:, c])
        if math.isnan(auc):
            if n_pos + n_neg == 0:
                skipped[name] = "no labelled samples"
            elif n_pos == 0:
                skipped[name] = f"no positive samples, {n_neg} negatives"
            else:
                skipped[name] = f"no negative samples, {n_pos} positives"
            f1 = threshold = acc = float("nan")
        else:
            f1, threshold, acc = max_f1(lab[:, c], sco[:, c])
        per_class[name] = {
            "auc": auc,
            "f1": f1,
            "acc": acc,
            "threshold": threshold,
            "n_pos": n_pos,
            "n_neg": n_neg,
        }
    used = [m for name, m in per_class.items() if name not in skipped]
    macro: dict[str, float | int] = {"n_classes": len(used)}
    for key in ("auc", "f1", "acc"):
        macro[key] = float(np.mean([m[key] for m in used])) if used else float("nan")
    return {"per_class": per_class, "macro": macro, "skipped": skipped}


# --------------------------------------------------------------------------- report


def _pct(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100.0 * value:.2f}"


def _thr(value: float) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.4g}"


def _cell(text: str) -> str:
    # A '|' in a class name would split the Markdown cell.
    return str(text).replace("|", "\\|")


def format_table(metrics: dict[str, Any], title: str | None = None) -> str:
    """Markdown table of ``zero_shot_metrics`` output, percentages with 2 decimals.

    One row per class (skipped classes show ``n/a``), then a bold macro row; skipped
    classes and their reasons are listed under the table.
    """
    for key in ("per_class", "macro"):
        if key not in metrics:
            raise ValueError(f"metrics must be the dict returned by zero_shot_metrics; missing {key!r}")
    lines = []
    if title:
        lines += [f"### {title}", ""]
    lines.append("| class | n_pos | AUC | F1 | ACC | thr |")
    lines.append("|---|---:|---:|---:|---:|---:|")
    for name, m in metrics["per_class"].items():
        n = int(m["n_pos"]) + int(m["n_neg"])
        lines.append(
            f"| {_cell(name)} | {int(m['n_pos'])}/{n} | {_pct(m['auc'])} | {_pct(m['f1'])} "
            f"| {_pct(m['acc'])} | {_thr(m['threshold'])} |"
        )
    macro = metrics["macro"]
    n_used = macro.get("n_classes", len(metrics["per_class"]))
    lines.append(
        f"| **macro ({n_used})** | | **{_pct(macro['auc'])}** | **{_pct(macro['f1'])}** | **{_pct(macro['acc'])}** | |"
    )
    skipped = metrics.get("skipped") or {}
    if skipped:
        lines.append("")
        lines.append("Skipped from the macro average: " + "; ".join(f"{k} ({v})" for k, v in skipped.items()))
    return "\n".join(lines) + "\n"
