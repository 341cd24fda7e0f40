"""OpenVINO backend: the bundle's own image_encoder.onnx compiled by OpenVINO for the CPU.

VALIDATED: fp32 on the CPU (tests/test_openvino.py: embeddings within 1e-4 of ONNX Runtime on
fresh random and phantom inputs, from several threads). Inference precision is pinned to f32
unless bf16 is asked for: on CPUs with bf16 or AMX units OpenVINO would otherwise choose bf16 by
itself, which is a different model numerically.

bf16 (`precision="bf16"`) is OpenVINO's INFERENCE_PRECISION_HINT, not a separate file, so it is
accepted like the int8 file but per machine: `radz bench check-bf16 BUNDLE` runs the int8 checks
(embedding cosine >= 0.99 against fp32 ONNX Runtime on random and phantom inputs, macro AUC drop
<= 0.01 on fresh phantoms) with OpenVINO bf16 on this CPU and records the result in the bundle's
manifest (parity.openvino_bf16, with the CPU it ran on). Loading bf16 is refused, with the reason,
when the CPU has no native bf16 (OpenVINO then runs f32 whatever the hint says), when the bundle
records no passed check, when the check ran on another CPU (name or OpenVINO capabilities), or
when a start-up probe (4 seeded random inputs, bf16 vs f32) falls below the recorded cosine
limit. UNVALIDATED here: the machine this was written on (AMD EPYC, AVX2) has no bf16, so only
the refusals ran (docs/RUNTIME.md).
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from radz_engine.backends.base import Backend, BackendUnavailable, check_batch, parse_device

__all__ = ["OpenVINOBackend", "BF16_RECORD", "cpu_identity"]

log = logging.getLogger(__name__)
BF16_RECORD = "openvino_bf16"  # manifest["parity"] key written by `radz bench check-bf16`
PRECISIONS = ("fp32", "bf16")


def cpu_identity(core) -> dict:
    """{"cpu": OpenVINO's name for the CPU, "capabilities": its OPTIMIZATION_CAPABILITIES}."""
    return {
        "cpu": str(core.get_property("CPU", "FULL_DEVICE_NAME")),
        "capabilities": [str(c) for c in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")],
    }


class OpenVINOBackend(Backend):
    """The bundle's image_encoder.onnx (or image_encoder_int8.onnx with int8=True) in OpenVINO.

    Args:
        threads: inference threads (None: OpenVINO's default, the cores).
        int8: use the bundle's image_encoder_int8.onnx (`radz quantize`) when it has one.
        precision: "fp32" (default) or "bf16" (OpenVINO's inference precision hint; needs a CPU
            with native bf16 and a passed `radz bench check-bf16` record in the bundle).
        require_check: with precision="bf16", refuse a bundle without a passed check for this CPU
            (False only for the check itself).
        performance_hint: OpenVINO's PERFORMANCE_HINT, "LATENCY" (one stream: each batch uses
            every thread; the default, as run() is called with whole batches) or "THROUGHPUT".
    """

    name = "openvino"

    def __init__(
        self,
        *,
        threads: int | None = None,
        int8: bool = False,
        precision: str = "fp32",
        require_check: bool = True,
        performance_hint: str = "LATENCY",
    ) -> None:
        if threads is not None and int(threads) < 1:
            raise ValueError(f"threads: must be >= 1 or None, got {threads!r}")
        if performance_hint not in ("LATENCY", "THROUGHPUT"):
            raise ValueError(f"performance_hint: must be 'LATENCY' or 'THROUGHPUT', got {performance_hint!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision: must be one of {PRECISIONS}, got {precision!r}")
        if int8 and precision != "fp32":
            raise ValueError("int8 and precision='bf16': choose one image encoder variant")
        self.threads = None if threads is None else int(threads)
        self.int8 = bool(int8)
        self.precision = precision
        self.require_check = bool(require_check)
        self.performance_hint = performance_hint
        self.compiled = None
        self.check = None
        self._local = threading.local()

    def _compile(self, core, path, hint: str):
        config = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": self.performance_hint}
        if self.threads is not None:
            config["INFERENCE_NUM_THREADS"] = self.threads
        try:
            return core.compile_model(core.read_model(str(path)), "CPU", config)
        except Exception as error:  # OpenVINO raises its own RuntimeError types
            raise BackendUnavailable(
                f"{path}: OpenVINO cannot compile it ({str(error).splitlines()[0][:300]})"
            ) from None

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
        self.variant = "int8" if role == "image_encoder_int8" else self.precision
        spec = bundle.input_spec
        self.input_shape = (int(spec["channels"]), int(spec["size"][0]), int(spec["size"][1]))
        path = bundle.file(role)
        core = ov.Core()
        if self.precision == "bf16":
            self.compiled = self._load_bf16(core, bundle, path)
        else:
            self.compiled = self._compile(core, path, "f32")
        self._output = self.compiled.output(0)
        self.name = "openvino-cpu" + ("" if self.variant == "fp32" else f"-{self.variant}")
        self.device = "cpu"
        log.info("radz_engine backend: %s (OpenVINO %s, %s)", self.name, ov.__version__, path.name)
        return self

    def _load_bf16(self, core, bundle, path):
        """The bf16 compile, or BackendUnavailable saying why it is refused (module docstring)."""
        import openvino as ov

        here = cpu_identity(core)
        if "BF16" not in here["capabilities"]:
            raise BackendUnavailable(
                f"precision='bf16': this CPU ({here['cpu']}) has no native bf16 (OpenVINO CPU capabilities "
                f"{', '.join(here['capabilities'])}); OpenVINO would run f32 and ignore the hint. Use precision='fp32'"
            )
        compiled = self._compile(core, path, "bf16")
        got = compiled.get_property("INFERENCE_PRECISION_HINT")
        if got != ov.Type.bf16:
            raise BackendUnavailable(
                f"precision='bf16': OpenVINO {ov.__version__} compiled {path.name} at {got} on {here['cpu']}, not bf16"
            )
        record = (bundle.manifest.get("parity") or {}).get(BF16_RECORD)
        min_cosine = 0.99
        if self.require_check:
            command = f"`radz bench check-bf16 {bundle.path}`"
            if not record or not record.get("passed"):
                raise BackendUnavailable(
                    f"precision='bf16': bundle {bundle.path} records no passed OpenVINO bf16 check "
                    f"(embedding cosine and phantom AUC against fp32); run {command} on this machine first"
                )
            checked = (record.get("cpu"), record.get("capabilities"))
            if checked != (here["cpu"], here["capabilities"]):
                raise BackendUnavailable(
                    f"precision='bf16': bundle {bundle.path} was checked in bf16 on CPU {checked[0]!r} "
                    f"(capabilities {checked[1]}), this is {here['cpu']!r} ({here['capabilities']}); run {command} here"
                )
            min_cosine = float(record.get("min_cosine_limit", min_cosine))
            self.check = record
        # start-up probe: the bf16 compile against the f32 one on a few seeded inputs
        x = np.random.default_rng(0).standard_normal((4, *self.input_shape)).astype(np.float32)
        reference = self._compile(core, path, "f32")
        a = reference.create_infer_request().infer({0: x})[reference.output(0)]
        b = compiled.create_infer_request().infer({0: x})[compiled.output(0)]
        cosine = float(((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).min())
        self.probe_cosine = cosine
        if cosine < min_cosine:
            raise BackendUnavailable(
                f"precision='bf16': on this CPU bf16 embeddings reach cosine {cosine:.5f} < {min_cosine} against "
                f"f32 on seeded random inputs ({path.name}); use precision='fp32'"
            )
        return compiled

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
        out = {
            "name": self.name,
            "device": self.device,
            "variant": getattr(self, "variant", None),
            "precision": self.precision,
            "threads": self.threads,
            "performance_hint": self.performance_hint,
        }
        if self.precision == "bf16":
            out["bf16_check"] = None if self.check is None else {k: self.check.get(k) for k in ("cpu", "min_cosine")}
            out["probe_cosine"] = getattr(self, "probe_cosine", None)
        return out

    def close(self) -> None:
        self.compiled = None
        self._local = threading.local()
