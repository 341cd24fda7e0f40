"""Zero-shot class scores from image embeddings, numpy only: the one definition, used by the
runtime and by radz_train's evaluation.

- softmax: softmax over classes of cos(image, class prompt) / tau;
- posneg:  per class, the positive part of a two-way softmax "{class}" vs "no {class}";
- anchor:  softmax over DKAM anchors (+ a "no_finding" background row, dropped) / tau.
"""

from __future__ import annotations

import numpy as np

MODES = ("softmax", "posneg", "anchor")


def class_scores(image_embeddings: np.ndarray, embeddings: dict[str, np.ndarray], mode: str, tau: float) -> np.ndarray:
    """[N, D] L2-normalised image embeddings -> [N, C] scores in [0, 1]."""
    x = np.asarray(image_embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"image_embeddings: need [N, D], got shape {x.shape}")
    if mode in ("softmax", "anchor"):
        logits = x @ np.asarray(embeddings[mode], dtype=np.float64).T / tau
        logits -= logits.max(1, keepdims=True)
        e = np.exp(logits)
        n_classes = embeddings["softmax"].shape[0]  # anchors may carry a background row last
        return (e / e.sum(1, keepdims=True))[:, :n_classes]
    if mode == "posneg":
        pos = x @ np.asarray(embeddings["posneg"][0], dtype=np.float64).T / tau
        neg = x @ np.asarray(embeddings["posneg"][1], dtype=np.float64).T / tau
        return 1.0 / (1.0 + np.exp(neg - pos))
    raise ValueError(f"mode: must be one of {MODES}, got {mode!r}")
