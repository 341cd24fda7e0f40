"""Zero-shot evaluation: paper-protocol metrics, calibration and plots.

Light on purpose: everything here needs only numpy at import time (matplotlib is imported
inside the plotting functions), so the torch-free runtime can use the calibration records.
"""

from radz_engine.scoring.calibration import (
    Calibration,
    apply_calibration,
    apply_platt,
    fit_calibration,
    fit_platt,
    fit_temperature,
)
from radz_engine.scoring.metrics import binary_auc, format_table, max_f1, roc_curve, zero_shot_metrics
from radz_train.evaluation.plots import plot_roc_curves, plot_score_histograms

__all__ = [
    "Calibration",
    "apply_calibration",
    "apply_platt",
    "binary_auc",
    "fit_calibration",
    "fit_platt",
    "fit_temperature",
    "format_table",
    "max_f1",
    "plot_roc_curves",
    "plot_score_histograms",
    "roc_curve",
    "zero_shot_metrics",
]
