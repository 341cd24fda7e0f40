"""Zero-shot evaluation: paper-protocol metrics and plots.

Light on purpose: everything here needs only numpy at import time (matplotlib is imported
inside the plotting functions).
"""

from .metrics import binary_auc, format_table, max_f1, roc_curve, zero_shot_metrics
from .plots import plot_roc_curves, plot_score_histograms

__all__ = [
    "binary_auc",
    "format_table",
    "max_f1",
    "plot_roc_curves",
    "plot_score_histograms",
    "roc_curve",
    "zero_shot_metrics",
]
