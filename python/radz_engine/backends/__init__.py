"""Execution backends behind one interface (`load(bundle, device)`, `run(x) -> embeddings`,
`name`, `device`); see base.py. `create_backend` turns a name into a loaded backend.

    "onnxruntime"  OnnxRuntimeBackend: CPU EP; CUDA / TensorRT EPs with onnxruntime-gpu
    "tensorrt"     TensorRTBackend: a native TensorRT plan from `radz export --tensorrt`
    "torch"        TorchBackend: a checkpoint in PyTorch (needs `checkpoint=`)
    "openvino"     OpenVINOBackend: the bundle's ONNX compiled by OpenVINO, CPU, fp32; bf16
                   (precision="bf16") only on a CPU with native bf16 after `radz bench check-bf16`
                   (pip install 'radz-engine[openvino]')
    "auto"         ONNX Runtime with the best provider it has for the device
                   (TensorRT EP > CUDA EP on "cuda"; CPU EP on "cpu")

Why "auto" stays ONNX Runtime on the CPU, with OpenVINO installed: OpenVINO fp32 measured
0.89x-1.09x ONNX Runtime on the default bundle (docs/BENCHMARKS.md, "OpenVINO"), inside this
machine's noise, so no rule could pick it honestly, and timing both at every start would slow the
Engine for no measured gain. OpenVINO bf16 is a different model numerically, accepted per bundle
and CPU: "auto" never changes precision, so it never picks it; ask for it by name.
"""

from __future__ import annotations

import logging

from radz_engine.backends.base import Backend, BackendUnavailable, parse_device

__all__ = ["Backend", "BackendUnavailable", "BACKENDS", "available_backends", "create_backend", "resolve_device"]

log = logging.getLogger(__name__)
BACKENDS = ("auto", "onnxruntime", "tensorrt", "torch", "openvino")


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def available_backends() -> dict:
    """{backend: what it can run on here}, without importing torch or tensorrt."""
    out = {}
    if _installed("onnxruntime"):
        import onnxruntime as ort

        out["onnxruntime"] = list(ort.get_available_providers())
    if _installed("tensorrt"):
        out["tensorrt"] = ["cuda"]
    if _installed("torch"):
        out["torch"] = ["cpu", "cuda?"]
    if _installed("openvino"):
        out["openvino"] = ["cpu"]
    return out


def resolve_device(device: str) -> str:
    """ "auto" -> "cuda" when the installed onnxruntime has a GPU provider, else "cpu"."""
    if str(device).lower() != "auto":
        parse_device(device)
        return str(device).lower()
    providers = available_backends().get("onnxruntime", [])
    gpu = {"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(providers)
    return "cuda" if gpu else "cpu"


def create_backend(
    backend, bundle, device: str = "cpu", *, threads: int | None = None, max_batch_size: int = 64, **options
) -> Backend:
    """A loaded backend.

    Args:
        backend: a name in BACKENDS, or a Backend instance (loaded here if it has no model yet).
        bundle: a loaded radz_engine.bundle.Bundle.
        device: "cpu", "cuda", "cuda:N" or "auto".
        threads: intra-op threads (ONNX Runtime) / torch threads.
        options: passed to the backend's constructor (e.g. checkpoint= for torch, engine= for
            tensorrt, fp16= / provider= for onnxruntime).
    """
    device = resolve_device(device)
    if isinstance(backend, Backend):
        loaded = backend.load(bundle, device)
    elif backend in ("auto", "onnxruntime"):
        from radz_engine.backends.onnxruntime_backend import OnnxRuntimeBackend

        provider = options.pop("provider", "auto")
        loaded = OnnxRuntimeBackend(provider, threads=threads, max_batch_size=max_batch_size, **options).load(
            bundle, device
        )
    elif backend == "tensorrt":
        from radz_engine.backends.tensorrt_backend import TensorRTBackend

        loaded = TensorRTBackend(**options).load(bundle, device)
    elif backend == "openvino":
        from radz_engine.backends.openvino_backend import OpenVINOBackend

        loaded = OpenVINOBackend(threads=threads, **options).load(bundle, device)
    elif backend == "torch":
        from radz_engine.backends.torch_backend import TorchBackend

        loaded = TorchBackend(options.pop("checkpoint", None), threads=threads, **options).load(bundle, device)
    else:
        raise ValueError(f"backend: must be one of {BACKENDS} or a Backend instance, got {backend!r}")
    log.info(
        "radz_engine: backend %r on %s selected (%s)",
        loaded.name,
        loaded.device,
        "auto" if backend == "auto" else "requested",
    )
    return loaded
