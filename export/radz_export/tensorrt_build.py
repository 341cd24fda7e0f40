"""TensorRT engines from the bundle's ONNX files, and ONNX Runtime's TensorRT EP options.

NOT VALIDATED ON HARDWARE. TensorRT cannot be installed from the registries this project's CI
reaches, so this module is written against the public `tensorrt` Python API (TensorRT 8.6 / 10.x
names: Builder, create_network, OnnxParser.parse_from_file, create_builder_config,
set_memory_pool_limit, BuilderFlag.FP16/BF16, create_optimization_profile + set_shape,
create_timing_cache / set_timing_cache / get_timing_cache().serialize(),
build_serialized_network) and has never been run. Everything that does not need TensorRT
itself (cache keys, profile shapes, ORT provider options) is unit-tested.

Engine cache: `<engine_cache_dir>/<key>.engine`, key = sha256(GPU name, TensorRT version,
ONNX SHA-256, precision, profiles)[:32], so an engine is never reused on another GPU model,
TensorRT version or graph. A plan file is only valid for the exact GPU model and TensorRT
version that built it.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

PRECISIONS = ("fp32", "fp16", "bf16")
DEFAULT_PROFILES = ((1, 8, 32),)
INSTALL_HINT = (
    "TensorRT is not installed: pip install tensorrt (NVIDIA's wheels, CUDA 12) on a machine with an "
    "NVIDIA GPU; radz_export.tensorrt_build has not been validated on hardware yet"
)


class TensorRTUnavailable(ImportError):
    """The `tensorrt` package (or a GPU) is not available."""


def import_tensorrt():
    """The tensorrt module, or TensorRTUnavailable with the install hint."""
    try:
        import tensorrt  # noqa: F401  (third-party, GPU-only)
    except ImportError as error:
        raise TensorRTUnavailable(INSTALL_HINT) from error
    return tensorrt


def gpu_name(device: int = 0) -> str:
    """The GPU's marketing name (e.g. "NVIDIA H100 80GB HBM3") from nvidia-smi. Unvalidated here."""
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--id={device}", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as error:
        raise TensorRTUnavailable(f"cannot read the GPU name with nvidia-smi ({error}); pass gpu_name=...") from None
    if not out:
        raise TensorRTUnavailable("nvidia-smi reported no GPU; pass gpu_name=...")
    return out.splitlines()[0].strip()


def engine_cache_key(
    gpu: str, tensorrt_version: str, onnx_sha256: str, precision: str, profiles: Sequence[tuple[int, int, int]]
) -> str:
    """Stable key of an engine: what must match for a cached plan to be reusable."""
    payload = json.dumps(
        {
            "gpu": gpu,
            "tensorrt": tensorrt_version,
            "onnx": onnx_sha256,
            "precision": precision,
            "profiles": [list(p) for p in profiles],
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def check_profiles(profiles: Sequence[Sequence[int]]) -> list[tuple[int, int, int]]:
    """[(min, opt, max)] batch ranges, each 1 <= min <= opt <= max."""
    out = []
    for p in profiles:
        if len(p) != 3 or not all(isinstance(v, int) and v >= 1 for v in p) or not p[0] <= p[1] <= p[2]:
            raise ValueError(f"batch profile {tuple(p)!r}: need (min, opt, max) ints with 1 <= min <= opt <= max")
        out.append((int(p[0]), int(p[1]), int(p[2])))
    if not out:
        raise ValueError("batch_profiles: need at least one (min, opt, max)")
    return out


def profile_shapes(input_shape: Sequence, batch: int) -> tuple[int, ...]:
    """An input's shape with its dynamic batch dim set (other dims must be static ints)."""
    dims = list(input_shape)
    dims[0] = batch
    if not all(isinstance(d, int) and d > 0 for d in dims[1:]):
        raise ValueError(f"input shape {tuple(input_shape)}: only the batch dim may be dynamic for a TensorRT profile")
    return tuple(dims)


def build_engine(
    onnx_path,
    out=None,
    *,
    precision: str = "fp16",
    batch_profiles=DEFAULT_PROFILES,
    input_shape: Sequence | None = None,
    timing_cache=None,
    engine_cache_dir=None,
    workspace_bytes: int = 4 << 30,
    gpu: str | None = None,
    onnx_sha256: str | None = None,
) -> Path:
    """Build (or reuse from the cache) a serialized TensorRT engine for an image encoder ONNX file.

    UNVALIDATED: written against the public TensorRT Python API, never run on a GPU.

    Args:
        onnx_path: the ONNX model (external data beside it is read by parse_from_file).
        out: where to write the plan; default `<engine_cache_dir>/<key>.engine`.
        precision: "fp16", "bf16" (TensorRT >= 9 with Ampere or newer) or "fp32".
        batch_profiles: one optimisation profile per (min, opt, max) batch range.
        input_shape: the input's shape with any value in dim 0, e.g. ("batch", 3, 336, 336);
            default: read from the ONNX file's first input.
        timing_cache: a file loaded before the build (if present) and saved after it.
        engine_cache_dir: folder of cached plans keyed by GPU + TensorRT version + ONNX hash.
        gpu: GPU name for the cache key (default: from nvidia-smi).
        onnx_sha256: the model's hash (default: computed; the bundle manifest has it).

    Returns:
        The path of the plan file.
    """
    trt = import_tensorrt()
    from radz_engine.bundle.loader import sha256_file

    if precision not in PRECISIONS:
        raise ValueError(f"precision: must be one of {PRECISIONS}, got {precision!r}")
    onnx_path = Path(onnx_path)
    profiles = check_profiles(batch_profiles)
    onnx_sha256 = onnx_sha256 or sha256_file(onnx_path)
    key = engine_cache_key(gpu or gpu_name(), trt.__version__, onnx_sha256, precision, profiles)
    if engine_cache_dir is not None:
        cached = Path(engine_cache_dir) / f"{key}.engine"
        if cached.exists():
            if out is not None and Path(out) != cached:
                Path(out).write_bytes(cached.read_bytes())
                return Path(out)
            return cached
    if out is None:
        if engine_cache_dir is None:
            raise ValueError("out: give an output path or an engine_cache_dir")
        out = Path(engine_cache_dir) / f"{key}.engine"
    out = Path(out)

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    creation = getattr(trt, "NetworkDefinitionCreationFlag", None)
    if creation is not None and hasattr(creation, "EXPLICIT_BATCH") and int(trt.__version__.split(".")[0]) < 10:
        flags |= 1 << int(creation.EXPLICIT_BATCH)  # TensorRT 8.x; implicit in 10.x (flag deprecated)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT cannot parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "bf16":
        if not hasattr(trt.BuilderFlag, "BF16"):
            raise TensorRTUnavailable(f"TensorRT {trt.__version__} has no BF16 builder flag (need >= 9)")
        config.set_flag(trt.BuilderFlag.BF16)
    tensor = network.get_input(0)
    shape = list(input_shape) if input_shape is not None else list(tensor.shape)
    for lo, opt, hi in profiles:
        profile = builder.create_optimization_profile()
        profile.set_shape(tensor.name, profile_shapes(shape, lo), profile_shapes(shape, opt), profile_shapes(shape, hi))
        config.add_optimization_profile(profile)
    cache_file = Path(timing_cache) if timing_cache is not None else None
    cache = config.create_timing_cache(cache_file.read_bytes() if cache_file and cache_file.exists() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path.name} (see the TensorRT log above)")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(bytes(plan))
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        cache_file.write_bytes(bytes(config.get_timing_cache().serialize()))
    return out


def ort_tensorrt_provider_options(
    input_name: str,
    input_shape: Sequence,
    *,
    precision: str = "fp16",
    batch_profile: tuple[int, int, int] = (1, 8, 32),
    cache_dir=None,
    device_id: int = 0,
    workspace_bytes: int = 4 << 30,
) -> list:
    """`providers=` for onnxruntime.InferenceSession: the TensorRT EP (with fp16/bf16, one batch
    profile, engine and timing caches) falling back to CUDA, then CPU.

    UNVALIDATED: option names from ONNX Runtime's TensorRT EP documentation (ORT >= 1.18 with
    onnxruntime-gpu); never run here (the CPU-only onnxruntime wheel has no TensorRT EP).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision: must be one of {PRECISIONS}, got {precision!r}")
    ((lo, opt, hi),) = check_profiles([batch_profile])

    def shape(batch: int) -> str:
        return f"{input_name}:" + "x".join(str(d) for d in profile_shapes(input_shape, batch))

    options = {
        "device_id": device_id,
        "trt_max_workspace_size": int(workspace_bytes),
        "trt_fp16_enable": precision == "fp16",
        "trt_bf16_enable": precision == "bf16",
        "trt_profile_min_shapes": shape(lo),
        "trt_profile_opt_shapes": shape(opt),
        "trt_profile_max_shapes": shape(hi),
    }
    if cache_dir is not None:
        options.update(
            {
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": str(cache_dir),
                "trt_timing_cache_enable": True,
                "trt_timing_cache_path": str(cache_dir),
            }
        )
    return [
        ("TensorrtExecutionProvider", options),
        ("CUDAExecutionProvider", {"device_id": device_id}),
        "CPUExecutionProvider",
    ]
