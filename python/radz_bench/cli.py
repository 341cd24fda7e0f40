"""`radz bench`: throughput side by side with PyTorch eager; `radz bench load`: serving load.

    radz bench [--bundle B | --preset NAME] [--backend auto,torch,...] [--device cpu | cuda:0,cuda:1]
               [--batch 1,8,32,128] [--precision fp32,fp16,bf16] [--out radz_bench]
    radz bench load [--bundle B] [--target engine | dicom://AE@host:port] [--rates 10,20,40 | --start-rate 10]
               [--p99-bound-ms 100] [--out radz_bench_load]
    radz bench check-bf16 BUNDLE   accept OpenVINO bf16 for BUNDLE on this CPU (recorded in its manifest)

Writes <out>.json (everything), <out>.md (the table, also printed) and <out>.png (a plot).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

__all__ = ["main"]


def _csv(kind):
    def parse(text: str):
        try:
            return [kind(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of {kind.__name__}, got {text!r}"
            ) from None

    return parse


def _installed(module: str) -> bool:
    """Whether `module` can be found, without importing it (False also where finding fails)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _say(message: str) -> None:
    print(f"radz bench: {message}", file=sys.stderr, flush=True)


def _throughput_parser() -> argparse.ArgumentParser:
    from radz_bench.throughput import BACKEND_CHOICES
    from radz_engine.cli.options import add_quiet, add_threads, add_workers, alias, device_list_type, parser

    p = parser(
        "radz bench",
        __doc__.split("\n\n")[0] + "\n`radz bench load --help`: latency against offered load; "
        "`radz bench check-bf16 --help`: accept OpenVINO bf16 for a bundle.",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--bundle", help="a bundle folder (default: the shipped default bundle)")
    src.add_argument("--preset", help="a model preset (tiny, small, paper) on random weights, torch backends only")
    p.add_argument(
        "--backend",
        type=_csv(str),
        default=None,
        help=f"comma-separated, from {', '.join(BACKEND_CHOICES)} (default: auto; torch with --preset)",
    )
    p.add_argument(
        "--device",
        type=device_list_type,
        default="cpu",
        help="cpu, cuda:N, or a list cuda:0,cuda:1 (adds a scaling table)",
    )
    p.add_argument("--batch-size", type=_csv(int), default="1,8,32", help="comma-separated batch sizes")
    alias(p, "--batch", "batch_size", type=_csv(int))
    p.add_argument("--precision", type=_csv(str), default="fp32", help="comma-separated: fp32, fp16, bf16")
    p.add_argument(
        "--reference",
        default="auto",
        choices=("auto", "checkpoint", "random", "none"),
        help="the PyTorch eager reference's weights: auto (the bundle's checkpoint if it carries one, "
        "else random weights of its architecture, said so in the report), checkpoint (fail "
        "without one), random, none (no reference)",
    )
    p.add_argument("--checkpoint", help="a `radz train` checkpoint folder for the reference and torch backends")
    p.add_argument("--warmup", type=int, default=2, help="warm-up calls per side and batch")
    p.add_argument("--repeats", type=int, default=10, help="timed calls per side per round")
    p.add_argument("--rounds", type=int, default=3, help="rounds, the sides alternating")
    p.add_argument(
        "--max-seconds",
        type=float,
        default=5.0,
        help="per side per round: stop timing after this long (at least 3 calls)",
    )
    p.add_argument("--no-e2e", action="store_true", help="skip the end-to-end (Engine.classify) phase")
    add_threads(p, help="CPU threads for both sides (default: all cores)")
    p.add_argument("--peak-size", type=int, default=None, help="matmul size for the peak (default 8192 GPU, 1024 CPU)")
    p.add_argument(
        "--latency-requests",
        type=int,
        default=0,
        help="also: submit() latency at low load, N requests one at a time (bundle, first backend)",
    )
    p.add_argument("--screen", type=int, default=0, help="also: Engine.screen over N phantom DICOMs (512 x 512)")
    add_workers(p, default=1, help="decoding processes for --screen (0: in this process)")
    p.add_argument("--scaling-images", type=int, default=2048, help="images per multi-device scaling point")
    p.add_argument("--out", default="radz_bench", help="output path without suffix (.json, .md, .png are added)")
    add_quiet(p)
    p.add_argument(
        "--progress-every", type=float, default=30.0, help="without a terminal: a plain progress line every N seconds"
    )
    return p


def _load_parser() -> argparse.ArgumentParser:
    from radz_engine.cli.options import add_threads, alias, device_type, parser, positive_int, workers_type

    p = parser(
        "radz bench load", "Open-loop Poisson load against Engine.submit or a DICOM node: latency vs offered load."
    )
    p.add_argument("--bundle", help="bundle for the engine target (default: the shipped default bundle)")
    p.add_argument("--target", default="engine", help="engine (in process) or dicom://AE@host:port (C-STORE)")
    p.add_argument("--backend", default="auto", help="engine target: auto, onnxruntime, openvino, tensorrt or torch")
    p.add_argument("--device", type=device_type, default="cpu", help="engine target: cpu, cuda, cuda:N or auto")
    p.add_argument("--batch-size", type=positive_int, default=32, help="engine target: largest dynamic batch")
    alias(p, "--max-batch", "batch_size", type=positive_int)
    p.add_argument("--max-delay-ms", type=float, default=2.0, help="engine target: batcher delay, milliseconds")
    add_threads(p, help="engine target: CPU threads (default: all cores)")
    p.add_argument("--rates", type=_csv(float), default=None, help="offered loads in requests/s (default: a ramp)")
    p.add_argument("--start-rate", type=float, default=10.0, help="ramp: first offered load, requests/s")
    p.add_argument("--factor", type=float, default=1.6, help="ramp: next rate = rate x factor")
    p.add_argument("--max-rate", type=float, default=10000.0, help="ramp: highest offered load, requests/s")
    p.add_argument("--p99-bound-ms", type=float, default=100.0, help="stop after the first rate whose p99 passes this")
    p.add_argument("--window-s", type=float, default=2.0, help="measurement window, seconds")
    p.add_argument("--min-requests", type=int, default=30, help="per window (windows stretch at low rates)")
    p.add_argument("--stable-windows", type=int, default=3, help="windows within --tolerance that end a rate")
    p.add_argument("--tolerance", type=float, default=0.10, help="relative p50 change counted as stable")
    p.add_argument("--max-windows", type=int, default=8, help="most windows per rate")
    p.add_argument("--workers", type=workers_type, default=4, help="dicom target: parallel associations")
    p.add_argument(
        "--until-sr",
        type=Path,
        default=None,
        metavar="JOURNAL",
        help="dicom target sending to radz serve: measure until the SR is stored in its PACS, read "
        "from radz serve's WORK_DIR/journal.sqlite (default: until the C-STORE response)",
    )
    p.add_argument("--size", type=positive_int, default=512, help="dicom target: phantom image side in pixels")
    alias(p, "--dicom-size", "size", type=positive_int)
    p.add_argument("--seed", type=int, default=0, help="phantom seed")
    p.add_argument("--out", default="radz_bench_load", help="output path without suffix (.json, .md, .png are added)")
    return p


def throughput_main(argv: list[str]) -> int:
    args = _throughput_parser().parse_args(argv)

    from radz_bench.device import CudaUnavailable
    from radz_bench.report import plot_throughput, throughput_markdown, write_outputs
    from radz_bench.throughput import BenchOptions, run_throughput

    if not _installed("torch"):
        print(
            "radz bench: needs torch (the PyTorch eager reference it measures against): "
            "pip install 'radz-engine[train]' (the CPU wheel: --index-url https://download.pytorch.org/whl/cpu); "
            "`radz bench load` runs without it",
            file=sys.stderr,
        )
        return 2
    devices = args.device
    if len(devices) > 1 and not all(d.startswith("cuda") for d in devices):
        print("radz bench: --device: a list is for several GPUs (cuda:0,cuda:1)", file=sys.stderr)
        return 2
    bundle = args.bundle
    if bundle is None and args.preset is None:
        from radz_engine.bundle.default import default_bundle_path

        bundle = str(default_bundle_path())
    backends = args.backend or (["torch"] if args.preset else ["auto"])
    opts = BenchOptions(
        bundle=bundle,
        preset=args.preset,
        backends=backends,
        device=devices[0],
        batches=args.batch_size,
        precisions=args.precision,
        reference=args.reference,
        checkpoint=args.checkpoint,
        warmup=args.warmup,
        repeats=args.repeats,
        rounds=args.rounds,
        max_seconds=args.max_seconds,
        e2e=not args.no_e2e,
        threads=args.threads,
        peak_size=args.peak_size,
        progress=not args.quiet,
        progress_every=args.progress_every,
    )
    try:
        report = run_throughput(opts)
        if len(devices) > 1:
            report["scaling"] = _scaling(bundle, devices, backends, args)
        if (args.latency_requests or args.screen) and bundle is not None:
            report.update(_extras(bundle, devices[0], backends[0], args))
    except (CudaUnavailable, ValueError, FileNotFoundError) as error:
        print(f"radz bench: {error}", file=sys.stderr)
        return 2
    report["command"] = "radz bench " + " ".join(argv)
    markdown = throughput_markdown(report)
    paths = write_outputs(report, args.out, markdown, plot_throughput)
    print(markdown)
    _say("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def _extras(bundle, device, backend, args) -> dict:
    import numpy as np

    from radz_bench.extras import screen_throughput, submit_latency
    from radz_bench.throughput import parse_backend
    from radz_engine.preprocessing.pixel_spec import PixelSpec
    from radz_engine.runtime.engine import Engine

    name, _ = parse_backend(backend)
    if name == "torch":
        raise ValueError("--latency-requests / --screen run the Engine with an ONNX or TensorRT backend, not torch")
    out = {}
    identity = PixelSpec(window_center=0.5, window_width=1.0, voi_function="LINEAR_EXACT")
    with Engine(
        bundle, backend=name, device=device, threads=args.threads, max_batch_size=32, max_delay_ms=2.0
    ) as engine:
        rng = np.random.default_rng(0)
        images = [(rng.random(engine.input_shape[1:], dtype=np.float32), identity) for _ in range(32)]
        if args.latency_requests:
            out["latency"] = submit_latency(engine, images, args.latency_requests)
            _say(f"submit latency: {out['latency']}")
        if args.screen:
            out["screen"] = screen_throughput(engine, args.screen, workers=args.workers)
            _say(f"screen: {out['screen']}")
    return out


def _scaling(bundle, devices, backends, args) -> dict:
    from radz_bench.scaling import MultiDeviceUnsupported, run_scaling
    from radz_bench.throughput import parse_backend

    if bundle is None:
        raise ValueError("multi-device scaling runs Engine.submit: it needs --bundle, not --preset")
    from radz_bench.device import DTYPES

    name, torch_options = parse_backend(backends[0])
    precision = args.precision[0]
    options = dict(torch_options)  # the precision is run, not only printed
    if name == "torch":  # each replica copies the model onto its device
        if not args.checkpoint:
            raise ValueError(
                "multi-device scaling with the torch backend needs --checkpoint (a `radz train` "
                "checkpoint folder); or use --backend onnxruntime or tensorrt"
            )
        options.update(checkpoint=args.checkpoint, dtype=DTYPES[precision])
    elif name in ("auto", "onnxruntime"):
        if options.get("int8") and precision != "fp32":
            raise ValueError("onnxruntime-int8 runs int8 weights with float32 io: use --precision fp32")
        if precision == "fp16":
            options.update(fp16=True, tensorrt_precision="fp16")
        elif precision == "bf16":
            options.update(tensorrt_precision="bf16")  # the TensorRT EP's option; CPU/CUDA EPs have no bf16 graph
    try:
        return run_scaling(
            bundle,
            devices,
            backend=name,
            precision=precision,
            batch=max(args.batch_size),
            images=args.scaling_images,
            backend_options=options or None,
            say=_say,
        )
    except MultiDeviceUnsupported as error:
        _say(str(error))
        return {
            "error": str(error),
            "rows": [],
            "backend": name,
            "precision": args.precision[0],
            "batch": max(args.batch_size),
            "images": args.scaling_images,
            "submitters": 4,
        }


def load_main(argv: list[str]) -> int:
    args = _load_parser().parse_args(argv)
    from radz_bench.load import DicomTarget, LoadOptions, run_load
    from radz_bench.report import load_markdown, plot_load, write_outputs

    opts = LoadOptions(
        rates=args.rates,
        start_rate=args.start_rate,
        factor=args.factor,
        max_rate=args.max_rate,
        p99_bound_ms=args.p99_bound_ms,
        window_s=args.window_s,
        min_requests=args.min_requests,
        stable_windows=args.stable_windows,
        tolerance=args.tolerance,
        max_windows=args.max_windows,
        seed=args.seed,
    )
    try:
        if args.target == "engine":
            target = _engine_target(args)
        elif args.target.startswith("dicom://"):
            target = DicomTarget(
                args.target, _phantom_datasets(8, args.size), workers=args.workers, until_journal=args.until_sr
            )
        else:
            raise ValueError(f"--target: engine or dicom://AE@host:port, got {args.target!r}")
        report = run_load(target, opts, say=_say)
    except (ValueError, FileNotFoundError, ConnectionError) as error:
        print(f"radz bench load: {error}", file=sys.stderr)
        return 2
    report["command"] = "radz bench load " + " ".join(argv)
    from radz_bench.device import machine_info

    report["machine"] = machine_info([])
    markdown = load_markdown(report)
    paths = write_outputs(report, args.out, markdown, plot_load)
    print(markdown)
    _say("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def _engine_target(args):
    import numpy as np

    from radz_bench.load import EngineTarget
    from radz_engine.preprocessing.pixel_spec import PixelSpec
    from radz_engine.runtime.engine import Engine

    engine = Engine(
        args.bundle,
        backend=args.backend,
        device=args.device,
        max_batch_size=args.batch_size,
        max_delay_ms=args.max_delay_ms,
        threads=args.threads,
    )
    identity = PixelSpec(window_center=0.5, window_width=1.0, voi_function="LINEAR_EXACT")
    rng = np.random.default_rng(args.seed)
    size = engine.input_shape[1:]
    images = [(rng.random(size, dtype=np.float32), identity) for _ in range(32)]
    return EngineTarget(engine, images, owns_engine=True)


def _phantom_datasets(n: int, size: int) -> list:
    """n phantom radiographs as pydicom datasets (CR/DX, as radz_train writes them)."""
    import tempfile
    from pathlib import Path

    import pydicom

    from radz_train.data.dicom_out import write_case
    from radz_train.data.phantom import generate_cases

    with tempfile.TemporaryDirectory(prefix="radz_bench_dicom_") as folder:
        out = []
        for case in generate_cases(n, seed=21, size=size):
            path = Path(folder) / f"{case.index:04d}.dcm"
            write_case(case, path)
            out.append(pydicom.dcmread(path))
        return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if argv and argv[0] == "load":
        return load_main(argv[1:])
    if argv and argv[0] == "check-bf16":
        from radz_bench.bf16_check import main as check_main

        return check_main(argv[1:])
    return throughput_main(argv)


if __name__ == "__main__":
    sys.exit(main())
