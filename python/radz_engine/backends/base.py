"""The interface every execution backend implements (DESIGN.md section 3).

A backend turns a preprocessed batch [B, 3, H, W] float32 into L2-normalised image embeddings
[B, D] float32. It knows nothing about batching, scoring or files. `run` must be safe to call
from several threads at once (ONNX Runtime sessions and TensorRT contexts-per-thread are).
"""

from __future__ import annotations

import abc

import numpy as np

from radz_engine.errors import BackendUnavailable

__all__ = ["Backend", "BackendUnavailable", "check_batch"]


class Backend(abc.ABC):
    """One model runner.

    Attributes:
        name: what runs the model, e.g. "onnxruntime-cpu", "onnxruntime-cuda", "tensorrt", "torch".
        device: "cpu" or "cuda[:N]".
    """

    name: str = "backend"
    device: str = "cpu"

    @abc.abstractmethod
    def load(self, bundle, device: str = "cpu") -> Backend:
        """Open the model for `bundle` (a radz_engine.bundle.Bundle) on `device`; returns self."""

    @abc.abstractmethod
    def run(self, pixel_values: np.ndarray) -> np.ndarray:
        """[B, 3, H, W] float32 -> [B, D] float32 image embeddings."""

    def close(self) -> None:
        """Release the model (sessions, GPU memory). Idempotent."""

    def describe(self) -> dict:
        """What the engine reports in stats() and logs."""
        return {"name": self.name, "device": self.device}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, device={self.device!r})"


def check_batch(pixel_values, shape: tuple) -> np.ndarray:
    """A C-contiguous float32 [B, *shape] array, or ValueError naming the offending shape."""
    x = np.ascontiguousarray(pixel_values, dtype=np.float32)
    if x.ndim != 1 + len(shape) or tuple(x.shape[1:]) != tuple(shape) or x.shape[0] < 1:
        raise ValueError(f"pixel_values: need [B>=1, {', '.join(map(str, shape))}] float32, got shape {x.shape}")
    return x


def parse_device(device: str) -> tuple[str, int]:
    """ "cpu" -> ("cpu", 0); "cuda" -> ("cuda", 0); "cuda:1" -> ("cuda", 1)."""
    text = str(device).strip().lower()
    if text == "cpu":
        return "cpu", 0
    if text == "cuda" or text == "gpu":
        return "cuda", 0
    if text.startswith("cuda:") and text[5:].isdigit():
        return "cuda", int(text[5:])
    raise ValueError(f"device: must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
