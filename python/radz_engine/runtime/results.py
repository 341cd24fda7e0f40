"""`Result`: what the engine returns for one image (classify, submit, screen)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from radz_engine.runtime.embeddings import EMBEDDING_TEXT_COLUMN, encode_f16

__all__ = ["Result", "TIMING_KEYS", "MODEL_KEYS"]

TIMING_KEYS = ("decode", "preprocess", "queue", "model", "score")
MODEL_KEYS = ("name", "version", "hash")


def _threshold(value) -> float | None:
    """A threshold for output: None for "never positive" (inf) or unknown."""
    if value is None:
        return None
    value = float(value)
    return None if math.isinf(value) or math.isnan(value) else round(value, 6)


@dataclass
class Result:
    """One image's outcome.

    Attributes:
        source: a file name, "<array>", "<Dataset>" or "<array 3>" (position in a classify call).
        scores: {class name: probability in [0, 1]} in the bundle's class order (empty on error).
        positives: class names whose score reaches the class threshold.
        embedding: [D] float32 L2-normalised image embedding (None on error). Screening outputs
            store it as float16 (`radz screen --embeddings`; read back with
            radz_engine.runtime.embeddings.read_embeddings).
        timings: milliseconds per stage: decode, preprocess, queue, model, score. "model" and
            "score" are for the whole batch the image ran in; "queue" is submit() -> batch start.
        error: None, or why this image has no scores ("<source>: <reason>").
        metadata: DICOM tags (SOPInstanceUID, StudyInstanceUID, ... never patient data) or the
            image file's format / size.
        model: the bundle that scored it: {"name", "version", "hash"} (radz_engine.bundle.loader
            Bundle.identity(); "hash" is a short content hash of the bundle).
        thresholds: {class name: positive threshold} in force (None: never positive).
        neighbours: the nearest indexed cases when the engine has a similar-case index
            (Engine(similar_index=...)): [{"id", "source", "similarity", "distance", "findings",
            "findings_from"}], best first; empty otherwise.
    """

    source: str
    scores: dict = field(default_factory=dict)
    positives: list = field(default_factory=list)
    embedding: np.ndarray | None = None
    timings: dict = field(default_factory=dict)
    error: str | None = None
    metadata: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    thresholds: dict = field(default_factory=dict)
    neighbours: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The k highest (class, score) pairs."""
        return sorted(self.scores.items(), key=lambda kv: -kv[1])[:k]

    def to_row(
        self, classes, *, embedding: bool = False, model: dict | None = None, thresholds: dict | None = None
    ) -> dict:
        """Flat dict for CSV / parquet: source, ok, error, positives ("a;b"), score_<class>,
        threshold_<class>, bundle_name, bundle_version, bundle_hash, <stage>_ms,
        sop_instance_uid, study_instance_uid (+ with `embedding`, "embedding_f16": the embedding as
        base64 of its little-endian float16 bytes, None on error; runtime/embeddings.py). `model` and
        `thresholds` fill in what this Result does not carry (e.g. a file that failed to decode).
        Parquet writers store the embedding as a typed column instead (embeddings.embedding_array)."""
        row = {"source": self.source, "ok": self.ok, "error": self.error or "", "positives": ";".join(self.positives)}
        for name in classes:
            value = self.scores.get(name)
            row[f"score_{name}"] = None if value is None else round(float(value), 6)
        known = self.thresholds or thresholds or {}
        for name in classes:
            row[f"threshold_{name}"] = _threshold(known.get(name))
        identity = self.model or model or {}
        for key in MODEL_KEYS:
            row[f"bundle_{key}"] = identity.get(key) or ""
        for key in TIMING_KEYS:
            value = self.timings.get(key)
            row[f"{key}_ms"] = None if value is None else round(float(value), 3)
        row["sop_instance_uid"] = self.metadata.get("SOPInstanceUID") or ""
        row["study_instance_uid"] = self.metadata.get("StudyInstanceUID") or ""
        if embedding:
            row[EMBEDDING_TEXT_COLUMN] = None if self.embedding is None else encode_f16(self.embedding)
        return row

    def to_json(self, *, embedding: bool = False) -> dict:
        """JSON-ready dict (JSONL output): everything; with `embedding`, "embedding_f16" (base64 of
        the little-endian float16 bytes, None on error; runtime/embeddings.py)."""
        out = {
            "source": self.source,
            "ok": self.ok,
            "error": self.error,
            "scores": {k: float(v) for k, v in self.scores.items()},
            "positives": list(self.positives),
            "timings": {k: float(v) for k, v in self.timings.items() if not math.isnan(float(v))},
            "metadata": {k: v for k, v in self.metadata.items() if v is not None},
            "model": dict(self.model),
            "thresholds": {k: _threshold(v) for k, v in self.thresholds.items()},
        }
        if self.neighbours:
            out["neighbours"] = [dict(n) for n in self.neighbours]
        if embedding:
            out[EMBEDDING_TEXT_COLUMN] = None if self.embedding is None else encode_f16(self.embedding)
        return out

    def __repr__(self) -> str:
        if self.error:
            return f"Result(source={self.source!r}, error={self.error!r})"
        top = ", ".join(f"{k}={v:.3f}" for k, v in self.top(3))
        return f"Result(source={self.source!r}, positives={self.positives}, top=[{top}])"
