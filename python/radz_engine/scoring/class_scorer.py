"""Class scores from image embeddings, with classes that can change while requests run.

Uses the C++ `_core.AnchorIndex` (FAISS inner product) when the extension has it, else the
numpy `scoring.class_scores`; both give the same numbers (checked when a scorer is built: the
index is dropped with a warning if it disagrees by more than 1e-4). Classes are held in an
immutable snapshot that is swapped atomically, so `add_classes` never races a running batch.

Calibration: a class in classes.json may carry a "calibration" record fitted by
`radz eval --bundle B --csv C --calibrate` ({"mode", "method": platt | temperature | none,
"params", "threshold"}); its probability is then the calibrated score, and "positive" uses its
threshold. Records fitted for another scoring mode than the one in use are ignored.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np

from radz_engine.scoring.calibration import PARAM_KEYS, Calibration
from radz_engine.scoring.scores import MODES, class_scores

__all__ = ["ClassScorer"]

log = logging.getLogger(__name__)


def _ordered_params(record: dict) -> list[float]:
    """A calibration record's parameters in the order AnchorIndex.set_calibration takes them."""
    return [float(record["params"][k]) for k in PARAM_KEYS[record["method"]]]


@dataclass(frozen=True)
class _Snapshot:
    names: tuple
    embeddings: dict  # softmax [C, D], posneg [2, C, D], anchor [C (+1), D]
    background: np.ndarray | None  # [D] or None
    thresholds: np.ndarray  # [C]
    calibrations: tuple  # per class: a Calibration, or None (scores used as they are)
    index: object  # _core.AnchorIndex or None


class ClassScorer:
    """Scores [N, D] embeddings against the current classes.

    Args:
        bundle: a loaded Bundle (classes, anchors, prompts, tau, scoring mode).
        mode: "anchor", "softmax" or "posneg" (default: the bundle's).
        threshold: the positive threshold of classes the bundle has not calibrated.
        use_index: use _core.AnchorIndex when available.
    """

    def __init__(self, bundle, mode: str | None = None, threshold: float = 0.5, use_index: bool = True) -> None:
        self.mode = mode or bundle.scoring_mode
        if self.mode not in MODES:
            raise ValueError(f"mode: must be one of {MODES}, got {self.mode!r}")
        self.tau = bundle.tau
        self.default_threshold = float(threshold)
        self._lock = threading.Lock()
        names = tuple(bundle.class_names)
        n = len(names)
        background = bundle.anchors[n] if bundle.anchors.shape[0] == n + 1 else None
        calibrations = tuple(self._calibration(c) for c in bundle.classes)
        # A bundle's thresholds were fitted on its own scoring mode's scores: another mode uses
        # the default threshold for every class.
        own_mode = self.mode == bundle.scoring_mode
        thresholds = np.array(
            [
                cal.threshold if cal is not None else self._threshold(c.get("threshold") if own_mode else None)
                for c, cal in zip(bundle.classes, calibrations)
            ],
            dtype=np.float64,
        )
        embeddings = {"softmax": bundle.prompts[0], "posneg": bundle.prompts[1:3], "anchor": bundle.anchors[:n]}
        self._use_index = use_index
        self._snapshot = self._build(names, embeddings, background, thresholds, calibrations)

    # -- state -----------------------------------------------------------------------------------
    def _threshold(self, value) -> float:
        return self.default_threshold if value is None else float(value)

    def _calibration(self, entry: dict):
        record = entry.get("calibration")
        if not record:
            return None
        record = dict(record)
        fitted_for = record.pop("mode", None)
        if fitted_for != self.mode:
            log.warning(
                "class %s: calibration fitted for scoring mode %r, not %r; using raw scores and the default threshold",
                entry.get("name"),
                fitted_for,
                self.mode,
            )
            return None
        return Calibration.from_dict(record)

    def _build(self, names, embeddings, background, thresholds, calibrations) -> _Snapshot:
        index = self._make_index(names, embeddings, background, thresholds, calibrations) if self._use_index else None
        return _Snapshot(tuple(names), embeddings, background, thresholds, tuple(calibrations), index)

    def _make_index(self, names, embeddings, background, thresholds, calibrations):
        from radz_engine import _core

        if not (getattr(_core, "HAVE_FAISS", False) and hasattr(_core, "AnchorIndex")):
            return None
        dim = embeddings["anchor"].shape[1]
        try:
            index = _core.AnchorIndex(dim, mode=self.mode, tau=self.tau)
            for j, name in enumerate(names):
                index.add_class(
                    name,
                    prompt=embeddings["softmax"][j],
                    positive=embeddings["posneg"][0, j],
                    negative=embeddings["posneg"][1, j],
                    anchor=embeddings["anchor"][j],
                )
            index.set_background(background)
            for name, cal, threshold in zip(names, calibrations, thresholds):
                if cal is None:
                    index.set_calibration(name, "none", [], float(threshold))
                else:
                    record = cal.to_dict()
                    index.set_calibration(name, record["method"], _ordered_params(record), record["threshold"])
            probe = np.random.default_rng(0).standard_normal((4, dim)).astype(np.float32)
            probe /= np.linalg.norm(probe, axis=1, keepdims=True)
            got = self._index_scores(index, probe)
            want = self._calibrated(self._numpy_scores(probe, embeddings, background), calibrations)
            if got.shape != want.shape or not np.allclose(got, want, atol=1e-4):
                log.warning("AnchorIndex disagrees with the numpy scorer; using numpy")
                return None
        except Exception as error:  # an index that cannot be built must not stop the engine
            log.warning("AnchorIndex unusable (%s); using numpy scoring", error)
            return None
        return index

    @staticmethod
    def _index_scores(index, x: np.ndarray) -> np.ndarray:
        out = index.score(np.ascontiguousarray(x, dtype=np.float32))
        return np.asarray(out["probabilities"] if "probabilities" in out else out["scores"], dtype=np.float64)

    @staticmethod
    def _calibrated(scores: np.ndarray, calibrations) -> np.ndarray:
        if not any(c is not None for c in calibrations):
            return scores
        out = scores.copy()
        for j, cal in enumerate(calibrations):
            if cal is not None:
                out[:, j] = cal.apply(scores[:, j])
        return out

    def _numpy_scores(self, x, embeddings, background) -> np.ndarray:
        full = dict(embeddings)
        if background is not None:
            full["anchor"] = np.concatenate([embeddings["anchor"], background[None]])
        return class_scores(x, full, self.mode, self.tau)

    @property
    def class_names(self) -> list[str]:
        return list(self._snapshot.names)

    @property
    def backend(self) -> str:
        """ "faiss" (the C++ AnchorIndex) or "numpy"."""
        return "numpy" if self._snapshot.index is None else "faiss"

    def add(self, names, softmax: np.ndarray, positive: np.ndarray, negative: np.ndarray, anchor: np.ndarray) -> None:
        """Add or replace classes (one row per name in each [K, D] array)."""
        with self._lock:
            old = self._snapshot
            keep = [j for j, n in enumerate(old.names) if n not in set(names)]
            e = old.embeddings
            new_names = tuple(old.names[j] for j in keep) + tuple(names)
            embeddings = {
                "softmax": np.concatenate([e["softmax"][keep], softmax]).astype(np.float32),
                "posneg": np.concatenate([e["posneg"][:, keep], np.stack([positive, negative])], axis=1).astype(
                    np.float32
                ),
                "anchor": np.concatenate([e["anchor"][keep], anchor]).astype(np.float32),
            }
            thresholds = np.concatenate([old.thresholds[keep], np.full(len(names), self.default_threshold)])
            calibrations = tuple(old.calibrations[j] for j in keep) + (None,) * len(names)
            self._snapshot = self._build(new_names, embeddings, old.background, thresholds, calibrations)

    def remove(self, name: str) -> None:
        with self._lock:
            old = self._snapshot
            if name not in old.names:
                raise KeyError(f"class {name!r} is not in {list(old.names)}")
            keep = [j for j, n in enumerate(old.names) if n != name]
            e = old.embeddings
            embeddings = {"softmax": e["softmax"][keep], "posneg": e["posneg"][:, keep], "anchor": e["anchor"][keep]}
            self._snapshot = self._build(
                tuple(old.names[j] for j in keep),
                embeddings,
                old.background,
                old.thresholds[keep],
                tuple(old.calibrations[j] for j in keep),
            )

    def thresholds(self) -> dict[str, float]:
        """{class: positive threshold} of the current classes (inf: never positive)."""
        snap = self._snapshot
        return {n: float(t) for n, t in zip(snap.names, snap.thresholds)}

    # -- scoring ---------------------------------------------------------------------------------
    def raw_scores(self, embeddings: np.ndarray) -> np.ndarray:
        """[N, D] -> [N, C] scores of the scoring mode before any calibration (numpy)."""
        snap = self._snapshot
        return self._numpy_scores(np.asarray(embeddings, dtype=np.float32), snap.embeddings, snap.background)

    def score(self, embeddings: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
        """[N, D] -> (class names, [N, C] scores, [N, C] bool positives), from one snapshot."""
        snap = self._snapshot
        if snap.index is not None:
            scores = self._index_scores(snap.index, embeddings)
        else:
            scores = self._calibrated(
                self._numpy_scores(embeddings, snap.embeddings, snap.background), snap.calibrations
            )
        return list(snap.names), scores, scores >= snap.thresholds[None, :]
