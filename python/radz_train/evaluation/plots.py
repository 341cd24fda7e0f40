"""Figures for zero-shot evaluation: ROC curves and score histograms, one PNG each.

matplotlib is imported inside the functions (it is an optional ``train`` extra and slow to
import) and drives the Agg canvas directly through ``matplotlib.figure.Figure``: no pyplot,
so no global backend switch, no GUI, and safe from worker threads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from radz_engine.scoring.metrics import _matrix_inputs, binary_auc, roc_curve

__all__ = ["plot_roc_curves", "plot_score_histograms"]


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _styles(n: int) -> list[tuple[Any, str]]:
    """(colour, linestyle) per class: tab10 colours, cycling line styles past ten classes.

    tab20's paired light/dark shades look alike on thin lines, so colour repeats with a
    different dash pattern instead (ChestX-ray14 has 14 classes).
    """
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    dashes = ["-", "--", "-.", ":"]
    return [(cmap(i % 10), dashes[(i // 10) % len(dashes)]) for i in range(n)]


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def plot_roc_curves(
    labels: Any,
    scores: Any,
    classes: Sequence[str],
    path: str | Path,
    title: str | None = None,
) -> Path:
    """One PNG with a ROC curve per class (AUC in the legend) and the chance diagonal.

    Classes whose AUC is undefined (one label value only) are listed in the legend as
    skipped rather than drawn. Returns the path written.
    """
    lab, sco = _matrix_inputs(labels, scores, classes)
    many = len(classes) > 8
    # With many classes the legend goes to the right so it never hides the curves.
    fig = _new_figure(9.5 if many else 6.4, 6.0)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="0.6", linewidth=1, label="chance (50.00)")
    aucs = []
    for c, (name, (colour, dash)) in enumerate(zip(classes, _styles(len(classes)))):
        auc = binary_auc(lab[:, c], sco[:, c])
        if math.isnan(auc):
            # Keep the class visible in the legend so a missing curve is explained.
            ax.plot([], [], color="none", label=f"{name} (n/a: one label value)")
            continue
        aucs.append(auc)
        fpr, tpr, _ = roc_curve(lab[:, c], sco[:, c])
        ax.plot(fpr, tpr, color=colour, linestyle=dash, linewidth=1.6, label=f"{name} ({100 * auc:.2f})")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("False positive rate (1 - specificity)")
    ax.set_ylabel("True positive rate (sensitivity)")
    ax.grid(True, color="0.9", linewidth=0.8)
    heading = title or "ROC curves"
    if aucs:
        heading += f"\nmacro AUC {100 * float(np.mean(aucs)):.2f} over {len(aucs)} classes"
    ax.set_title(heading, fontsize=11)
    legend_kw: dict[str, Any] = {"fontsize": 8, "title": "class (AUC %)", "title_fontsize": 8}
    if many:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, **legend_kw)
    else:
        ax.legend(loc="lower right", framealpha=0.9, **legend_kw)
    return _save(fig, path)


def plot_score_histograms(
    labels: Any,
    scores: Any,
    classes: Sequence[str],
    path: str | Path,
    title: str | None = None,
    bins: int = 30,
    thresholds: Sequence[float] | None = None,
) -> Path:
    """Small multiples: per class, the score distribution of positives vs negatives.

    Each panel is density-normalised (positives are usually rare, raw counts would hide
    them) and titled with the class's AUC and counts. ``thresholds`` (one per class, e.g.
    the max-F1 cuts from ``zero_shot_metrics``) are drawn as vertical lines when given.
    Returns the path written.
    """
    lab, sco = _matrix_inputs(labels, scores, classes)
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    if thresholds is not None and len(thresholds) != len(classes):
        raise ValueError(f"thresholds must have one value per class ({len(classes)}), got {len(thresholds)}")
    n = len(classes)
    ncols = min(4, max(1, n))
    nrows = max(1, math.ceil(n / ncols))
    fig = _new_figure(3.0 * ncols, 2.4 * nrows + 0.4)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for c in range(nrows * ncols):
        ax = axes.flat[c]
        if c >= n:
            ax.set_visible(False)
            continue
        known = ~np.isnan(lab[:, c])
        s = sco[known, c]
        pos = s[lab[known, c] == 1]
        neg = s[lab[known, c] == 0]
        # Shared bin edges so the two distributions are directly comparable.
        edges = np.histogram_bin_edges(s, bins=bins) if s.size else np.linspace(0, 1, bins + 1)
        if neg.size:
            ax.hist(neg, bins=edges, density=True, alpha=0.55, color="tab:blue")
        if pos.size:
            ax.hist(pos, bins=edges, density=True, alpha=0.55, color="tab:red")
        if thresholds is not None and math.isfinite(float(thresholds[c])):
            ax.axvline(float(thresholds[c]), color="black", linestyle="--", linewidth=1)
        auc = binary_auc(lab[:, c], sco[:, c])
        auc_txt = "AUC n/a" if math.isnan(auc) else f"AUC {100 * auc:.2f}"
        ax.set_title(f"{classes[c]}\n{auc_txt}, {pos.size} pos / {neg.size} neg", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_yticks([])
        if c + ncols >= n:  # bottom panel of its column (fig.supxlabel collides with the legend)
            ax.set_xlabel("score", fontsize=8)
    # One shared legend instead of one per panel: per-panel legends cover the bars.
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        Patch(color="tab:blue", alpha=0.55, label="negatives"),
        Patch(color="tab:red", alpha=0.55, label="positives"),
    ]
    if thresholds is not None:
        handles.append(Line2D([], [], color="black", linestyle="--", linewidth=1, label="threshold"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8, frameon=False)
    fig.suptitle(title or "Score distributions: positives vs negatives", fontsize=11)
    fig.supylabel("density", fontsize=9)
    return _save(fig, path)
