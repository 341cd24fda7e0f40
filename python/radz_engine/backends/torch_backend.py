"""PyTorch backend: the reference path, and a GPU path without ONNX (bf16, torch.compile /
CUDA graphs). Only when torch is installed; imports torch and radz_train lazily, inside load().

The runtime never needs it: the bundle's ONNX graph cannot be run by torch, so this backend
loads the model itself, from a `radz train` checkpoint folder (via radz_train) or a RadzModel
object given explicitly, and checks that it matches the bundle (input size, embedding size).

It runs the same image path as the exported ONNX graph (radz_export.encoders.ImageEncoder:
vision tower -> projector -> decoder truncated at the feature layer -> pooling), not the
training model's encode_image, which also runs the decoder layers after the feature layer.
bfloat16 / float16 cast the weights (no per-call autocast re-casting of every weight). A
RadzModel given as `checkpoint` is copied, never modified, so replicas on several devices
(Engine(device=[...])) each hold their own.

VALIDATED: CPU float32 and bfloat16 (tests compare them with the ONNX Runtime backend).
NOT VALIDATED ON HARDWARE: CUDA, float16, torch.compile(mode="reduce-overhead") (which captures
CUDA graphs per batch size).
"""

from __future__ import annotations

import copy
import logging
import threading
from pathlib import Path

import numpy as np

from radz_engine.backends.base import Backend, BackendUnavailable, check_batch, parse_device

__all__ = ["TorchBackend"]

log = logging.getLogger(__name__)
DTYPES = ("float32", "bfloat16", "float16")


class TorchBackend(Backend):
    """A RadzModel's image path in PyTorch.

    Args:
        checkpoint: a `radz train` checkpoint folder, or a RadzModel (radz_train) object.
        dtype: "float32", "bfloat16" or "float16" (weights and activations in that type; the
            embedding is normalised in float32).
        compile: torch.compile the image encoder; on CUDA with cuda_graphs=True the
            "reduce-overhead" mode (CUDA graphs), else the default mode.
        cuda_graphs: see compile.
        threads: torch.set_num_threads on CPU (process-wide in torch).
    """

    name = "torch"

    def __init__(
        self,
        checkpoint,
        *,
        dtype: str = "float32",
        compile: bool = False,
        cuda_graphs: bool = False,
        threads: int | None = None,
    ) -> None:
        if checkpoint is None:
            raise ValueError(
                "checkpoint: the torch backend needs a `radz train` checkpoint folder or a RadzModel "
                "(the bundle's ONNX graph is not runnable by torch)"
            )
        if dtype not in DTYPES:
            raise ValueError(f"dtype: must be one of {DTYPES}, got {dtype!r}")
        self.checkpoint = checkpoint
        self.dtype = dtype
        self.compile = bool(compile)
        self.cuda_graphs = bool(cuda_graphs)
        self.threads = threads
        self.model = None
        self._lock = threading.Lock()  # compiled / graphed modules are not re-entrant

    def load(self, bundle, device: str = "cpu") -> TorchBackend:
        try:
            import torch
        except ImportError as error:
            raise BackendUnavailable("the torch backend needs PyTorch: pip install 'radz-engine[train]'") from error
        kind, device_id = parse_device(device)
        if kind == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailable("device='cuda' but torch.cuda.is_available() is False")
        if kind == "cpu" and self.threads:
            torch.set_num_threads(int(self.threads))
        model = self.checkpoint
        if isinstance(model, (str, Path)):
            from radz_train.training.checkpoint import load_model

            model = load_model(Path(model), device="cpu")
        else:
            model = copy.deepcopy(model)  # the caller's model and other replicas stay untouched
        self.device = "cpu" if kind == "cpu" else f"cuda:{device_id}"
        self._torch_dtype = getattr(torch, self.dtype)
        model = model.to(dtype=self._torch_dtype).eval()  # straight to the precision: no fp32 copy of a 7B model
        size = int(model.config.image_size)
        dim = int(model.config.decoder["hidden_size"])
        spec = bundle.input_spec
        if [size, size] != [int(s) for s in spec["size"]] or dim != bundle.embedding_dim:
            raise ValueError(
                f"checkpoint: model input {size} / embedding {dim} do not match bundle {bundle.path} "
                f"(input {spec['size']}, embedding {bundle.embedding_dim})"
            )
        self.input_shape = (int(spec["channels"]), size, size)
        from radz_export.encoders import ImageEncoder  # the exported graph's path, in PyTorch

        self.model = ImageEncoder(model).eval().to(device=self.device, dtype=self._torch_dtype)
        self._encode = self.model
        if self.compile:
            mode = "reduce-overhead" if (self.cuda_graphs and kind == "cuda") else None
            self._encode = torch.compile(self.model, mode=mode)
        self.name = (
            "torch" + ("" if self.dtype == "float32" else f"-{self.dtype}") + ("-compiled" if self.compile else "")
        )
        log.info("radz_engine backend: %s on %s", self.name, self.device)
        return self

    def run(self, pixel_values: np.ndarray) -> np.ndarray:
        import torch

        if self.model is None:
            raise RuntimeError("TorchBackend.run: call load(bundle, device) first")
        x = torch.from_numpy(check_batch(pixel_values, self.input_shape)).to(self.device, self._torch_dtype)
        with self._lock, torch.inference_mode():
            out = self._encode(x)  # [B, D] float32, L2-normalised
            return out.float().cpu().numpy()

    def describe(self) -> dict:
        return {
            "name": self.name,
            "device": self.device,
            "dtype": self.dtype,
            "compile": self.compile,
            "cuda_graphs": self.cuda_graphs,
        }

    def close(self) -> None:
        self.model = None
