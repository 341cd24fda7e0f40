"""Side-by-side throughput: the engine's backends against plain PyTorch eager, in one process.

For every precision and batch size, each side gets a warm-up, then `rounds` rounds in which the
sides take turns (so background load on a shared machine hits them alike), `repeats` timed calls
per side per round (CUDA events on GPU). Per side: median, p95, p99 per batch, images/s, achieved
TFLOP/s from the analytic FLOPs per image (flops.py, the `needed` count, the same numerator for
every side), the fraction of the matmul peak measured in the same run at the same precision,
peak memory, and the ratio to the eager reference.

Phases:
- "model": a preprocessed [B, 3, H, W] batch -> embeddings (backend.run vs model.encode_image);
- "e2e" (bundles only): stored float images -> class scores (Engine.classify: C++ preprocess,
  backend, scoring vs numpy normalise + encode_image + numpy scoring), wall clock.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from radz_bench.device import DTYPES, MemorySampler, is_cuda, machine_info, matmul_peak, require_cuda, time_calls
from radz_bench.flops import image_flops, prompt_length
from radz_bench.stats import summarize

__all__ = ["BenchOptions", "run_throughput", "BACKEND_CHOICES", "parse_backend"]

log = logging.getLogger(__name__)
BACKEND_CHOICES = (
    "auto",
    "onnxruntime",
    "onnxruntime-int8",
    "openvino",
    "tensorrt",
    "torch",
    "torch-compile",
    "torch-cudagraphs",
)


@dataclass
class BenchOptions:
    bundle: str | None = None  # a bundle folder; None with `preset` set
    preset: str | None = None  # benchmark a preset on random weights (torch backends only)
    backends: list[str] = field(default_factory=lambda: ["auto"])
    device: str = "cpu"
    batches: list[int] = field(default_factory=lambda: [1, 8, 32])
    precisions: list[str] = field(default_factory=lambda: ["fp32"])
    reference: str = "auto"  # auto | checkpoint | random | none
    checkpoint: str | None = None
    warmup: int = 2
    repeats: int = 10
    rounds: int = 3
    max_seconds: float = 5.0  # per side per round: stop early after at least 3 calls
    e2e: bool = True
    threads: int | None = None
    peak_size: int | None = None
    progress: bool = True
    progress_every: float = 30.0  # without a terminal: a plain progress line this often (seconds)


@dataclass
class Side:
    name: str  # "eager" or the backend's name
    kind: str  # "reference" | "engine"
    precision: str
    model_fn: Callable[[np.ndarray], Callable[[], object]]  # batch -> a zero-argument call
    e2e_fn: Callable[[list], Callable[[], object]] | None = None
    timer_device: str = "cpu"
    closer: Callable[[], None] | None = None


def parse_backend(spec: str) -> tuple[str, dict]:
    """--backend item -> (create_backend name, torch options)."""
    if spec not in BACKEND_CHOICES:
        raise ValueError(f"--backend: {spec!r} is not one of {', '.join(BACKEND_CHOICES)}")
    if spec == "torch-compile":
        return "torch", {"compile": True}
    if spec == "torch-cudagraphs":
        return "torch", {"compile": True, "cuda_graphs": True}
    if spec == "onnxruntime-int8":  # the bundle's `radz quantize` graph, against the same eager reference
        return "onnxruntime", {"int8": True}
    return spec, {}


def _say(message: str) -> None:
    print(f"radz bench: {message}", file=sys.stderr, flush=True)


def _validate(opts: BenchOptions) -> None:
    if (opts.bundle is None) == (opts.preset is None):
        raise ValueError("give exactly one of --bundle and --preset")
    for p in opts.precisions:
        if p not in DTYPES:
            raise ValueError(f"--precision: {p!r} is not one of {', '.join(DTYPES)}")
    if not opts.batches or any(int(b) < 1 for b in opts.batches):
        raise ValueError(f"--batch: need batch sizes >= 1, got {opts.batches}")
    if opts.reference not in ("auto", "checkpoint", "random", "none"):
        raise ValueError(f"--reference: must be auto, checkpoint, random or none, got {opts.reference!r}")
    for spec in opts.backends:
        parse_backend(spec)
    if opts.preset is not None:
        wrong = [b for b in opts.backends if parse_backend(b)[0] != "torch"]
        if wrong:
            raise ValueError(
                f"--preset runs random weights without an ONNX bundle: only torch backends, not {wrong} "
                "(export a bundle with `radz export` and pass --bundle for the others)"
            )
    if "," in opts.device or not (opts.device == "cpu" or is_cuda(opts.device)):
        raise ValueError(f"--device: one of cpu, cuda, cuda:N here, got {opts.device!r}")


def run_throughput(opts: BenchOptions) -> dict:
    """Run the plan of `opts`; returns the report dict (see report.py for its rendering)."""
    _validate(opts)
    require_cuda(opts.device)
    import torch

    if opts.threads:
        torch.set_num_threads(int(opts.threads))
    device = opts.device
    bundle = None
    if opts.bundle is not None:
        from radz_engine.bundle.loader import load_bundle

        bundle = load_bundle(Path(opts.bundle))
    torch_backends = [b for b in opts.backends if parse_backend(b)[0] == "torch"]
    need_model = opts.reference != "none" or bool(torch_backends)

    # -- the PyTorch model (reference and torch backends) -------------------------------------------
    ref = None
    build_dtype = "float32"
    if is_cuda(device) and "fp32" not in opts.precisions:
        build_dtype = DTYPES[opts.precisions[0]]  # build big models directly in the low precision
    if need_model:
        from radz_bench.models import load_reference_model, preset_model

        _say("building the PyTorch model ...")
        start = time.perf_counter()
        if opts.preset is not None:
            ref = preset_model(opts.preset, device, build_dtype)
        else:
            ref = load_reference_model(
                bundle,
                opts.checkpoint,
                device,
                build_dtype,
                allow_random=opts.reference in ("auto", "random"),
                force_random=opts.reference == "random",
            )
        _say(f"model ready in {time.perf_counter() - start:.1f} s: {ref.weights}")
    config = ref.config if ref is not None else bundle.manifest["model"]["config"]
    if ref is not None and bundle is None:
        from radz_bench.models import PresetBundle

        bundle_like = PresetBundle(config)
    else:
        bundle_like = bundle
    prompt = prompt_length(bundle=bundle, model=ref.model if ref is not None else None, config=config)
    flops = image_flops(config, prompt)
    spec = bundle_like.input_spec
    shape = (int(spec["channels"]), int(spec["size"][0]), int(spec["size"][1]))

    report = {
        "kind": "throughput",
        "options": {k: v for k, v in vars(opts).items() if k not in ("progress", "progress_every")},
        "machine": machine_info([device]),
        "device": device,
        "model": {
            "name": config.get("name"),
            "input": list(shape),
            "prompt_tokens": prompt,
            "gflops_per_image_needed": round(flops["needed"] / 1e9, 4),
            "gflops_per_image_executed_by_eager": round(flops["executed"] / 1e9, 4),
            "flops_parts": flops["parts"],
            "decoder_tokens": flops["decoder_tokens"],
            "reference_weights": ref.weights if ref is not None else None,
        },
        "torch_threads": torch.get_num_threads(),
        "peak": {},
        "rows": [],
        "skipped": [],
    }

    # -- the matmul peak, per precision ---------------------------------------------------------------
    for p in opts.precisions:
        try:
            report["peak"][p] = matmul_peak(device, p, opts.peak_size)
            _say(f"matmul peak {p} on {device}: {report['peak'][p]['tflops']:.3f} TFLOP/s (n={report['peak'][p]['n']})")
        except (RuntimeError, TypeError) as error:
            report["peak"][p] = None
            report["skipped"].append({"what": f"matmul peak {p}", "reason": str(error).splitlines()[0]})

    # -- the sides ------------------------------------------------------------------------------------
    identity = None
    if bundle is not None:
        from radz_engine.preprocessing.pixel_spec import PixelSpec

        identity = PixelSpec(window_center=0.5, window_width=1.0, voi_function="LINEAR_EXACT")
    sides: list[Side] = []
    eager_models = {}
    if ref is not None and opts.reference != "none":
        from radz_bench.models import eager_copy

        for p in opts.precisions:
            eager_models[p] = eager_copy(ref.model, DTYPES[p])
            sides.append(_eager_side(eager_models[p], p, device, bundle, spec))
    backend_model = None
    for spec_name in opts.backends:
        name, torch_options = parse_backend(spec_name)
        for p in opts.precisions:
            if name == "torch" and backend_model is None:
                import copy

                fp32 = all(t.dtype == torch.float32 for t in ref.model.parameters())
                backend_model = ref.model if fp32 else copy.deepcopy(ref.model)  # TorchBackend casts to float32
            try:
                side = _engine_side(
                    spec_name, name, torch_options, p, device, opts, bundle, bundle_like, backend_model, identity
                )
                taken = {x.name for x in sides if x.precision == p}
                while side.name in taken:
                    side.name += "'"
                sides.append(side)
            except Exception as error:  # a backend that cannot run here is reported, not fatal
                reason = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
                report["skipped"].append({"what": f"{spec_name} {p}", "reason": reason})
                _say(f"skipping {spec_name} {p}: {reason}")

    # -- measurements ---------------------------------------------------------------------------------
    rng = np.random.default_rng(0)
    images = None
    if bundle is not None and opts.e2e:
        from radz_train.data.phantom import generate_cases

        images = [c.image.astype(np.float32) for c in generate_cases(min(max(opts.batches), 64), seed=7, size=shape[1])]
    plan = [(p, b) for p in opts.precisions for b in opts.batches]
    from radz_engine.runtime.progress import progress

    for p, b in (
        progress(plan, total=len(plan), desc="radz bench", unit="config", plain_every=opts.progress_every)
        if opts.progress
        else plan
    ):
        x = rng.standard_normal((b, *shape), dtype=np.float32)
        here = [s for s in sides if s.precision == p]
        _measure(report, here, "model", p, b, lambda s: s.model_fn(x), opts, flops)  # noqa: B023 (called at once)
        if images is not None:
            batch_images = [images[i % len(images)] for i in range(b)]
            with_e2e = [s for s in here if s.e2e_fn is not None]
            if with_e2e:
                _measure(report, with_e2e, "e2e", p, b, lambda s: s.e2e_fn(batch_images), opts, flops, wall=True)  # noqa: B023 (called at once)
    for s in sides:
        if s.closer is not None:
            s.closer()
    _add_ratios(report)
    return report


def _eager_side(model, precision: str, device: str, bundle, spec: dict) -> Side:
    import torch

    dtype = getattr(torch, DTYPES[precision])

    def model_fn(x: np.ndarray):
        xt = torch.from_numpy(x).to(device=device, dtype=dtype)

        def call():
            with torch.inference_mode():
                return model.encode_image(xt).global_

        return call

    e2e_fn = None
    if bundle is not None:
        from radz_engine.scoring.scores import class_scores

        mean = torch.tensor(spec["mean"], device=device)[None, :, None, None]
        std = torch.tensor(spec["std"], device=device)[None, :, None, None]
        embeddings, tau, mode = bundle.embeddings(), bundle.tau, bundle.scoring_mode

        def e2e_fn(images: list):
            def call():
                grey = torch.from_numpy(np.stack(images)).to(device)
                with torch.inference_mode():
                    feats = model.encode_image(((grey[:, None] - mean) / std).to(dtype)).global_
                    feats = feats.float().cpu().numpy()
                return class_scores(feats, embeddings, mode, tau)

            return call

    return Side("eager", "reference", precision, model_fn, e2e_fn, timer_device=device)


def _engine_side(spec_name, name, torch_options, precision, device, opts, bundle, bundle_like, model, identity) -> Side:
    options: dict = {}
    if name == "torch":
        if not is_cuda(device) and torch_options.get("cuda_graphs"):
            raise ValueError("torch-cudagraphs needs a CUDA device")
        options = {"checkpoint": model, "dtype": DTYPES[precision], **torch_options}
    elif name in ("auto", "onnxruntime") and torch_options.get("int8"):
        if bundle is None or "image_encoder_int8" not in bundle.manifest.get("files", {}):
            raise ValueError("onnxruntime-int8 needs a bundle with image_encoder_int8.onnx (radz quantize BUNDLE)")
        if precision != "fp32":
            raise ValueError("onnxruntime-int8 runs int8 weights with float32 io: measure it under --precision fp32")
        options = {"int8": True}
    elif name in ("auto", "onnxruntime"):
        if precision == "bf16":
            if not is_cuda(device):
                raise ValueError(
                    "ONNX Runtime runs the bundle's fp32 or fp16 graph; there is no bf16 graph "
                    "(bf16 is a TensorRT EP option on CUDA)"
                )
            options = {"tensorrt_precision": "bf16"}
        elif precision == "fp16":
            if not is_cuda(device) and "image_encoder_fp16" not in bundle.manifest.get("files", {}):
                raise ValueError("the bundle has no image_encoder_fp16.onnx (radz export --fp16)")
            options = {"fp16": True} if not is_cuda(device) else {"fp16": True, "tensorrt_precision": "fp16"}
        elif is_cuda(device):
            options = {"tensorrt_precision": "fp32"}
    elif name == "openvino":
        if is_cuda(device):
            raise ValueError("the openvino backend runs on the CPU: --device cpu")
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"the openvino backend runs fp32 or bf16 (OpenVINO's precision hint), not {precision}")
        options = {"precision": precision}  # bf16: refused unless this CPU has it and `radz bench check-bf16` passed
    elif name == "tensorrt" and precision != opts.precisions[0]:
        raise ValueError(
            "a TensorRT plan's precision is fixed when it is built (radz export --tensorrt): "
            f"measured once, under {opts.precisions[0]}"
        )
    max_batch = max(opts.batches)
    if bundle is not None:
        from radz_engine.runtime.engine import Engine

        engine = Engine(
            bundle.path,
            backend=name,
            device=device,
            max_batch_size=max_batch,
            threads=opts.threads,
            backend_options=options,
        )
        backend = engine.backend
        label = (
            backend.name
            if spec_name in ("auto", "onnxruntime", "onnxruntime-int8", "openvino", "tensorrt")
            else _torch_label(spec_name, precision)
        )

        def e2e_fn(images: list):
            items = [(im, identity) for im in images]
            return lambda: engine.classify(items)

        closer = engine.close
    else:
        from radz_engine.backends import create_backend

        backend = create_backend(name, bundle_like, device, threads=opts.threads, max_batch_size=max_batch, **options)
        label, e2e_fn, closer = _torch_label(spec_name, precision), None, backend.close

    def model_fn(x: np.ndarray):
        return lambda: backend.run(x)

    # backend.run returns host numpy (synchronous): wall clock is exact, including the copies
    return Side(label, "engine", precision, model_fn, e2e_fn, timer_device="cpu", closer=closer)


def _torch_label(spec_name: str, precision: str) -> str:
    kind = {"torch": "torch", "torch-compile": "torch compiled", "torch-cudagraphs": "torch CUDA graphs"}[spec_name]
    return f"{kind} ({precision} weights)" if precision != "fp32" else kind


def _measure(report, sides, phase, precision, batch, make, opts, flops, wall=False) -> None:
    calls = {}
    for s in list(sides):
        try:
            calls[s.name] = make(s)
            for _ in range(max(1, opts.warmup)):  # warm-up (and compilation / graph capture)
                calls[s.name]()
        except Exception as error:
            reason = f"{type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}"
            report["skipped"].append({"what": f"{s.name} {precision} batch {batch} {phase}", "reason": reason})
            _say(f"skipping {s.name} {precision} batch {batch} {phase}: {reason}")
            calls.pop(s.name, None)
    live = [s for s in sides if s.name in calls]
    samples: dict[str, list[float]] = {s.name: [] for s in live}
    memory: dict[str, dict] = {}
    repeats = max(3, opts.repeats)
    for _ in range(max(1, opts.rounds)):
        for s in live:
            sampler = MemorySampler(report["device"])
            with sampler:
                samples[s.name] += time_calls(
                    calls[s.name], repeats, "cpu" if wall else s.timer_device, max_seconds=opts.max_seconds
                )
            m = sampler.as_dict()
            memory[s.name] = {k: max(v, memory.get(s.name, {}).get(k, 0)) for k, v in m.items()}
    peak = report["peak"].get(precision)
    for s in live:
        st = summarize(samples[s.name])
        median_s = st["median_ms"] / 1000.0
        tflops = flops["needed"] * batch / median_s / 1e12
        row = {
            "phase": phase,
            "side": s.name,
            "kind": s.kind,
            "precision": precision,
            "batch": batch,
            **{k: round(v, 4) if isinstance(v, float) else v for k, v in st.items()},
            "images_per_s": round(batch / median_s, 2),
            "tflops": round(tflops, 4),
            "fraction_of_peak": round(tflops / peak["tflops"], 4) if peak else None,
            "memory": memory[s.name],
        }
        report["rows"].append(row)
        _say(
            f"{phase:5s} {precision} batch {batch:4d} {s.name:32s} {row['images_per_s']:10.1f} img/s  "
            f"median {st['median_ms']:.2f} ms  p99 {st['p99_ms']:.2f} ms"
        )


def _add_ratios(report: dict) -> None:
    """vs_eager = eager median / this side's median (> 1: faster than PyTorch eager)."""
    eager = {
        (r["phase"], r["precision"], r["batch"]): r["median_ms"] for r in report["rows"] if r["kind"] == "reference"
    }
    for r in report["rows"]:
        ref = eager.get((r["phase"], r["precision"], r["batch"]))
        r["vs_eager"] = round(ref / r["median_ms"], 3) if ref else None
