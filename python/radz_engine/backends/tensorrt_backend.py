"""Native TensorRT backend: deserialises a plan built by `radz export --tensorrt`
(radz_export.tensorrt_build, stored as <bundle>/tensorrt/<key>.engine) and runs it.

NOT VALIDATED ON HARDWARE. Written against the public TensorRT 10 Python API (Runtime,
deserialize_cuda_engine, create_execution_context, get_tensor_name, set_input_shape,
set_tensor_address, execute_async_v3) with CuPy as the CUDA memory allocator and stream (no torch:
the runtime never imports it; no pycuda);
it has never run here, where neither tensorrt nor a GPU exists.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from radz_engine.backends.base import Backend, BackendUnavailable, check_batch, parse_device

__all__ = ["TensorRTBackend", "find_engine"]

log = logging.getLogger(__name__)


def find_engine(bundle) -> Path:
    """The newest *.engine under <bundle>/tensorrt, or BackendUnavailable."""
    folder = Path(bundle.path) / "tensorrt"
    plans = sorted(folder.glob("*.engine"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    if not plans:
        raise BackendUnavailable(
            f"bundle {bundle.path}: no TensorRT engine in tensorrt/ "
            "(build one with `radz export CHECKPOINT --out BUNDLE --tensorrt` on this GPU)"
        )
    return plans[-1]


class TensorRTBackend(Backend):
    """A TensorRT plan for the bundle's image encoder.

    Args:
        engine: the plan file (default: the newest in <bundle>/tensorrt). A plan is only valid on
            the GPU model and TensorRT version that built it (the file name is that key).
    """

    name = "tensorrt"

    def __init__(self, engine: str | Path | None = None) -> None:
        self.engine_path = None if engine is None else Path(engine)
        self.engine = None
        self._lock = threading.Lock()  # one execution context, used by one thread at a time

    def load(self, bundle, device: str = "cuda") -> TensorRTBackend:
        try:
            import tensorrt as trt
        except ImportError as error:
            raise BackendUnavailable(
                "TensorRT is not installed: pip install tensorrt (NVIDIA wheels, CUDA 12) "
                "on a machine with an NVIDIA GPU"
            ) from error
        try:
            import cupy  # CUDA buffers and the stream; the runtime never imports torch
        except ImportError as error:
            raise BackendUnavailable(
                "the tensorrt backend uses CuPy for CUDA buffers: pip install cupy-cuda12x"
            ) from error
        kind, device_id = parse_device(device)
        if kind != "cuda" or cupy.cuda.runtime.getDeviceCount() <= int(device_id):
            raise BackendUnavailable(f"the tensorrt backend needs device='cuda' and a visible GPU (got {device!r})")
        path = self.engine_path or find_engine(bundle)
        if not path.is_file():
            raise BackendUnavailable(f"engine: {path} does not exist")
        self.device = f"cuda:{device_id}"
        self._cupy = cupy
        self._device_id = int(device_id)
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise BackendUnavailable(
                f"{path}: TensorRT {trt.__version__} cannot deserialise it "
                "(built on another GPU model or TensorRT version? rebuild it here)"
            )
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        modes = {n: engine.get_tensor_mode(n) for n in names}
        self.input_name = next(n for n in names if modes[n] == trt.TensorIOMode.INPUT)
        self.output_name = next(n for n in names if modes[n] == trt.TensorIOMode.OUTPUT)
        spec = bundle.input_spec
        self.input_shape = (int(spec["channels"]), int(spec["size"][0]), int(spec["size"][1]))
        self.dim = bundle.embedding_dim
        self.engine = engine
        self.context = engine.create_execution_context()
        with cupy.cuda.Device(self._device_id):
            self.stream = cupy.cuda.Stream(non_blocking=True)
        self.engine_path = path
        log.info("radz_engine backend: tensorrt %s (%s)", trt.__version__, path.name)
        return self

    def run(self, pixel_values: np.ndarray) -> np.ndarray:
        if self.engine is None:
            raise RuntimeError("TensorRTBackend.run: call load(bundle, device) first")
        cupy = self._cupy
        x = check_batch(pixel_values, self.input_shape)
        with self._lock, cupy.cuda.Device(self._device_id), self.stream:
            inputs = cupy.asarray(x)
            outputs = cupy.empty((x.shape[0], self.dim), dtype=cupy.float32)
            self.context.set_input_shape(self.input_name, tuple(x.shape))
            self.context.set_tensor_address(self.input_name, inputs.data.ptr)
            self.context.set_tensor_address(self.output_name, outputs.data.ptr)
            if not self.context.execute_async_v3(self.stream.ptr):
                raise RuntimeError(f"TensorRT execute_async_v3 failed for a batch of {x.shape[0]}")
            self.stream.synchronize()
            return cupy.asnumpy(outputs)

    def describe(self) -> dict:
        return {"name": self.name, "device": self.device, "engine": str(self.engine_path)}

    def close(self) -> None:
        self.context = None
        self.engine = None
