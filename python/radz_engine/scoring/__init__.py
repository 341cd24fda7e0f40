"""Zero-shot scoring, numpy only: class scores per mode (scores.py), the live class set used by
the Engine (class_scorer.py), calibration fit and apply (calibration.py) and the paper-protocol
metrics (metrics.py). radz_train imports these; there is no second copy."""

from radz_engine.scoring.scores import MODES, class_scores

__all__ = ["MODES", "class_scores"]
