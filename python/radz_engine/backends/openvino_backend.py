"""OpenVINO backend: the bundle's own image_encoder.onnx compiled by OpenVINO for the CPU.

VALIDATED: fp32 on the CPU (tests/test_openvino.py: embeddings within 1e-4 of ONNX Runtime on
fresh random and phantom inputs, from several threads). Inference precision is pinned to f32:
on CPUs with bf16 or AMX units OpenVINO would otherwise choose bf16 by itself, which is a
different model numerically (a bf16 variant needs the int8 checks: embedding cosine >= 0.99 and
macro AUC drop <= 0.01; not offered yet).
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from radz_engine.backends.base import Backend, BackendUnavailable, check_batch, parse_device

__all__ = ["OpenVINOBackend"]

log = logging.getLogger(__name__)


class OpenVINOBackend(Backend):
    """The bundle's image_encoder.onnx (or image_encoder_int8.onnx with int8=True) in OpenVINO.

    Args:
        threads: inference threads (None: OpenVINO's default, the cores).
        int8: use the bundle's image_encoder_int8.onnx (`radz quantize`) when it has one.
        performance_hint: OpenVINO's PERFORMANCE_HINT, "LATENCY" (one stream: each batch uses
            every thread; the default, as run() is called with whole batches) or "THROUGHPUT".
    """

    name = "openvino"

    def __init__(self, *, threads: int | None = None, int8: bool = False, performance_hint: str = "LATENCY") -> None:
        if threads is not None and int(threads) < 1:
            raise ValueError(f"threads: must be >= 1 or None, got {threads!r}")
        if performance_hint not in ("LATENCY", "THROUGHPUT"):
            raise ValueError(f"performance_hint: must be 'LATENCY' or 'THROUGHPUT', got {performance_hint!r}")
        self.threads = None if threads is None else int(threads)
        self.int8 = bool(int8)
        self.performance_hint = performance_hint
        self.compiled = None
        self._local = threading.local()

    def load(self, bundle, device: str = "cpu") -> OpenVINOBackend:
        try:
            import openvino as ov
        except ImportError as error:
            raise BackendUnavailable("openvino is not installed: pip install 'radz-engine[openvino]'") from error
        kind, _ = parse_device(device)
        if kind != "cpu":
            raise BackendUnavailable(f"the openvino backend runs on the CPU here, not {device!r}")
        wanted = "image_encoder_int8" if self.int8 else "image_encoder"
        role = wanted if wanted in bundle.manifest["files"] else "image_encoder"
        if role != wanted:
            log.warning(
                "bundle %s has no %s.onnx (add one with `radz quantize BUNDLE`); using fp32", bundle.path, wanted
            )
        self.variant = "int8" if role == "image_encoder_int8" else "fp32"
        spec = bundle.input_spec
        self.input_shape = (int(spec["channels"]), int(spec["size"][0]), int(spec["size"][1]))
        config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": self.performance_hint}
        if self.threads is not None:
            config["INFERENCE_NUM_THREADS"] = self.threads
        path = bundle.file(role)
        try:
            core = ov.Core()
            self.compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        except Exception as error:  # OpenVINO raises its own RuntimeError types
            raise BackendUnavailable(
                f"{path}: OpenVINO cannot compile it ({str(error).splitlines()[0][:300]})"
            ) from None
        self._output = self.compiled.output(0)
        self.name = "openvino-cpu" + ("" if self.variant == "fp32" else f"-{self.variant}")
        self.device = "cpu"
        log.info("radz_engine backend: %s (OpenVINO %s, %s)", self.name, ov.__version__, path.name)
        return self

    def run(self, pixel_values: np.ndarray) -> np.ndarray:
        if self.compiled is None:
            raise RuntimeError("OpenVINOBackend.run: call load(bundle, device) first")
        x = check_batch(pixel_values, self.input_shape)
        request = getattr(self._local, "request", None)
        if request is None:  # an infer request is not thread-safe: one per calling thread
            request = self._local.request = self.compiled.create_infer_request()
        result = request.infer({0: x})
        return np.array(result[self._output], dtype=np.float32, copy=True)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "device": self.device,
            "variant": getattr(self, "variant", None),
            "threads": self.threads,
            "performance_hint": self.performance_hint,
        }

    def close(self) -> None:
        self.compiled = None
        self._local = threading.local()
