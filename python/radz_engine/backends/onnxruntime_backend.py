"""ONNX Runtime backend: CPU execution provider here; CUDA and TensorRT execution providers (with
IO binding on the GPU) when `onnxruntime-gpu` is installed.

VALIDATED: the CPU provider (tests/test_engine.py compares it with PyTorch within 1e-4).
NOT VALIDATED ON HARDWARE: the CUDA / TensorRT providers and the IO-binding path are written
against ONNX Runtime's public Python API (InferenceSession(providers=...), io_binding(),
OrtValue.ortvalue_from_numpy(x, "cuda", id), bind_output(name, "cuda", id),
run_with_iobinding, copy_outputs_to_cpu) and only run when the GPU providers are present.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from radz_engine.backends.base import Backend, BackendUnavailable, check_batch, parse_device

__all__ = ["OnnxRuntimeBackend", "PROVIDERS"]

log = logging.getLogger(__name__)

# provider argument -> ONNX Runtime execution provider name
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
_SHORT = {v: k for k, v in PROVIDERS.items()}


class OnnxRuntimeBackend(Backend):
    """The bundle's image_encoder.onnx in an ONNX Runtime session.

    Args:
        provider: "auto" (device "cpu": CPU; device "cuda": TensorRT EP, else CUDA EP, whichever
            the installed onnxruntime has), or "cpu", "cuda", "tensorrt" explicitly.
        threads: intra-op threads (None: ONNX Runtime's default, one per core).
        spin: let idle intra-op threads spin-wait for work (ONNX Runtime's default). Off by
            default here: a spinning pool burns the cores that decode and preprocessing threads
            need between batches (measured: docs/RUNTIME.md, "Thread budget"); on only when the
            model has the machine to itself and every microsecond of latency counts.
        fp16: use the bundle's image_encoder_fp16.onnx (float32 io) when it has one.
        int8: use the bundle's image_encoder_int8.onnx (`radz quantize`; dynamic int8 MatMuls, CPU).
        io_binding: bind inputs/outputs on the GPU (default: on for CUDA/TensorRT providers).
        tensorrt_precision: "fp16", "bf16" or "fp32" for the TensorRT EP.
        tensorrt_cache: folder for the TensorRT EP's engine and timing caches
            (default: <bundle>/tensorrt).
        max_batch_size: the largest batch the TensorRT EP profile must accept.
    """

    name = "onnxruntime"

    def __init__(
        self,
        provider: str = "auto",
        *,
        threads: int | None = None,
        spin: bool = False,
        fp16: bool = False,
        int8: bool = False,
        io_binding: bool | None = None,
        tensorrt_precision: str = "fp16",
        tensorrt_cache: str | Path | None = None,
        max_batch_size: int = 64,
    ) -> None:
        if provider != "auto" and provider not in PROVIDERS:
            raise ValueError(f"provider: must be 'auto' or one of {tuple(PROVIDERS)}, got {provider!r}")
        if threads is not None and int(threads) < 1:
            raise ValueError(f"threads: must be >= 1 or None, got {threads!r}")
        self.provider = provider
        self.threads = None if threads is None else int(threads)
        self.spin = bool(spin)
        if fp16 and int8:
            raise ValueError("fp16 and int8: choose one image encoder variant")
        self.fp16 = bool(fp16)
        self.int8 = bool(int8)
        self.io_binding = io_binding
        self.tensorrt_precision = tensorrt_precision
        self.tensorrt_cache = tensorrt_cache
        self.max_batch_size = int(max_batch_size)
        self.session = None
        self.providers: list[str] = []

    # -- loading ---------------------------------------------------------------------------------
    def _provider_list(self, bundle, kind: str, device_id: int, input_name: str, input_shape: list) -> list:
        import onnxruntime as ort

        available = ort.get_available_providers()
        if kind == "cpu":
            if self.provider not in ("auto", "cpu"):
                raise ValueError(f"provider {self.provider!r} needs device='cuda', not 'cpu'")
            return ["CPUExecutionProvider"]
        wanted = ["tensorrt", "cuda"] if self.provider == "auto" else [self.provider]
        usable = [p for p in wanted if PROVIDERS[p] in available]
        if not usable:
            raise BackendUnavailable(
                f"onnxruntime {ort.__version__} here has providers {available}; device='cuda' needs "
                f"{' or '.join(PROVIDERS[p] for p in wanted)}: pip install onnxruntime-gpu (CUDA 12) "
                "on a machine with an NVIDIA GPU"
            )
        providers: list = []
        if usable[0] == "tensorrt":
            cache = Path(self.tensorrt_cache) if self.tensorrt_cache else Path(bundle.path) / "tensorrt"
            providers.append(
                (
                    "TensorrtExecutionProvider",
                    _tensorrt_options(
                        input_name, input_shape, self.tensorrt_precision, self.max_batch_size, cache, device_id
                    ),
                )
            )
        if "CUDAExecutionProvider" in available:
            providers.append(("CUDAExecutionProvider", {"device_id": device_id}))
        providers.append("CPUExecutionProvider")
        return providers

    def load(self, bundle, device: str = "cpu") -> OnnxRuntimeBackend:
        try:
            import onnxruntime as ort
        except ImportError as error:
            raise BackendUnavailable(
                "onnxruntime is not installed: pip install onnxruntime (or onnxruntime-gpu for CUDA / TensorRT)"
            ) from error
        kind, device_id = parse_device(device)
        wanted = "image_encoder_fp16" if self.fp16 else "image_encoder_int8" if self.int8 else "image_encoder"
        role = wanted if wanted in bundle.manifest["files"] else "image_encoder"
        if role != wanted:
            hint = " (add one with `radz quantize BUNDLE`)" if self.int8 else ""
            log.warning("bundle %s has no %s.onnx%s; using the fp32 graph", bundle.path, wanted, hint)
        self.variant = role.removeprefix("image_encoder").lstrip("_") or "fp32"
        io = bundle.onnx_io(role)
        self.input_name = io["inputs"][0]["name"]
        self.output_name = io["outputs"][0]["name"]
        spec = bundle.input_spec
        self.input_shape = (int(spec["channels"]), int(spec["size"][0]), int(spec["size"][1]))
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads is not None:
            options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        # Throughput with other threads beside the model: idle ORT threads sleep instead of spinning.
        allow = "1" if self.spin else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", allow)
        options.add_session_config_entry("session.inter_op.allow_spinning", allow)
        providers = self._provider_list(bundle, kind, device_id, self.input_name, ["batch", *self.input_shape])
        path = bundle.file(role)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as error:  # onnxruntime raises its own exception types
            raise BackendUnavailable(
                f"{path}: ONNX Runtime cannot open it with {providers} ({str(error).splitlines()[0][:300]})"
            ) from None
        self.providers = list(self.session.get_providers())
        first = self.providers[0]
        self.name = f"onnxruntime-{_SHORT.get(first, first)}" + ("" if self.variant == "fp32" else f"-{self.variant}")
        self.device = "cpu" if kind == "cpu" else f"cuda:{device_id}"
        self.device_id = device_id
        on_gpu = first != "CPUExecutionProvider"
        self._bind = on_gpu if self.io_binding is None else (bool(self.io_binding) and on_gpu)
        if kind == "cuda" and not on_gpu:
            log.warning("ONNX Runtime fell back to the CPU for %s", path)
        log.info("radz_engine backend: %s (providers %s, %s)", self.name, self.providers, path.name)
        return self

    # -- running ---------------------------------------------------------------------------------
    def run(self, pixel_values: np.ndarray) -> np.ndarray:
        if self.session is None:
            raise RuntimeError("OnnxRuntimeBackend.run: call load(bundle, device) first")
        x = check_batch(pixel_values, self.input_shape)
        if self._bind:
            return self._run_bound(x)
        return self.session.run([self.output_name], {self.input_name: x})[0]

    def _run_bound(self, x: np.ndarray) -> np.ndarray:
        """IO binding: the input is copied to the GPU once and the output allocated there, so the
        providers do not copy through host staging buffers. UNVALIDATED on hardware."""
        import onnxruntime as ort

        binding = self.session.io_binding()
        value = ort.OrtValue.ortvalue_from_numpy(x, "cuda", self.device_id)
        binding.bind_ortvalue_input(self.input_name, value)
        binding.bind_output(self.output_name, "cuda", self.device_id)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    def describe(self) -> dict:
        return {
            "name": self.name,
            "device": self.device,
            "providers": self.providers,
            "variant": self.variant,
            "threads": self.threads,
            "spin": self.spin,
            "io_binding": bool(getattr(self, "_bind", False)),
        }

    def close(self) -> None:
        self.session = None


def _tensorrt_options(
    input_name: str, input_shape: list, precision: str, max_batch: int, cache: Path, device_id: int
) -> dict:
    """TensorRT EP options (names from ONNX Runtime's TensorRT EP documentation, ORT >= 1.18);
    the same choices as radz_export.tensorrt_build.ort_tensorrt_provider_options, restated here
    because the runtime never imports radz_export. UNVALIDATED on hardware."""
    if precision not in ("fp32", "fp16", "bf16"):
        raise ValueError(f"tensorrt_precision: must be 'fp32', 'fp16' or 'bf16', got {precision!r}")
    dims = [int(d) for d in input_shape[1:]]

    def shape(batch: int) -> str:
        return f"{input_name}:" + "x".join(str(d) for d in [batch, *dims])

    opt = min(8, max_batch)
    return {
        "device_id": device_id,
        "trt_max_workspace_size": 4 << 30,
        "trt_fp16_enable": precision == "fp16",
        "trt_bf16_enable": precision == "bf16",
        "trt_profile_min_shapes": shape(1),
        "trt_profile_opt_shapes": shape(opt),
        "trt_profile_max_shapes": shape(max_batch),
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(cache),
    }
