"""The `radz` command. Subcommands load their modules lazily, so `radz --help` is instant and
the torch-free runtime never pulls in training code."""

from __future__ import annotations

import argparse
import sys


def _synth(argv: list[str]) -> int:
    try:
        from radz_train.data.synth_cli import main as synth_main
    except ImportError as error:
        print(f"radz synth: the phantom generator is not available ({error})", file=sys.stderr)
        return 2
    return synth_main(argv)


def _missing(*modules: str) -> list[str]:
    """Modules that are not installed, found without importing them (the runtime never imports torch)."""
    import importlib.util

    return [m for m in modules if importlib.util.find_spec(m) is None]


def _train_command(name: str):
    def run(argv: list[str]) -> int:
        missing = _missing("torch", "transformers")
        if missing:
            print(f"radz {name}: needs the training extra (missing {missing}); pip install 'radz-engine[train]'",
                  file=sys.stderr)
            return 2
        from radz_train import cli

        return getattr(cli, f"{name}_main")(argv)

    return run


def _export(argv: list[str]) -> int:
    missing = _missing("torch", "transformers", "onnx")
    if missing:
        print(f"radz export: needs the export extra (missing {missing}); pip install 'radz-engine[export]'",
              file=sys.stderr)
        return 2
    from radz_export.cli import main as export_main

    return export_main(argv)


def _quantize(argv: list[str]) -> int:
    missing = _missing("onnx", "onnxruntime")
    if missing:
        print(f"radz quantize: needs onnx and onnxruntime (missing {missing}); pip install 'radz-engine[export]'",
              file=sys.stderr)
        return 2
    from radz_export.quantize import main as quantize_main

    return quantize_main(argv)


def _screen(argv: list[str]) -> int:
    from .screen_cli import main as screen_main

    return screen_main(argv)


def _demo(argv: list[str]) -> int:
    from .demo import main as demo_main

    return demo_main(argv)


def _serve(argv: list[str]) -> int:
    missing = _missing("pynetdicom", "highdicom")
    if missing:
        print(f"radz serve: needs the serve extra (missing {missing}); pip install 'radz-engine[serve]'",
              file=sys.stderr)
        return 2
    from .serve.cli import main as serve_main

    return serve_main(argv)


def _bench(argv: list[str]) -> int:
    from radz_bench.cli import main as bench_main

    return bench_main(argv)


def _preprocess(argv: list[str]) -> int:
    from .preprocess_cli import main as preprocess_main

    return preprocess_main(argv)


COMMANDS = {
    "demo": (_demo, "screen a phantom DICOM set with the shipped model: AUC, images/s, latency, HTML report"),
    "synth": (_synth, "generate phantom radiographs with reports and labels (PNG/NPY/DICOM + CSV)"),
    "train": (_train_command("train"), "train a LLaVA-RadZ model (DFAT + DKAM); `radz train dkam-generate` for knowledge"),
    "eval": (_train_command("eval"), "zero-shot evaluation of a checkpoint (AUC/F1/ACC, ROC PNGs); --bundle B "
                                     "--csv C [--calibrate]: a bundle, torch-free, Platt calibration"),
    "export": (_export, "export a checkpoint to an ONNX bundle (parity-checked); --tensorrt for an engine"),
    "quantize": (_quantize, "add a checked int8 image encoder to a bundle (CPU speed-up; no torch needed)"),
    "screen": (_screen, "classify DICOM/PNG/JPEG folders or CSV lists into csv/jsonl/parquet (resumable)"),
    "serve": (_serve, "a DICOM node: C-STORE in, scored DICOM SR back to the PACS (durable journal)"),
    "bench": (_bench, "throughput/latency across backends, batch sizes, precisions and GPUs (JSON, Markdown, PNG)"),
    "preprocess": (_preprocess, "DICOM/PNG/JPEG files -> one model-ready .npy tensor, errors recorded"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="radz",
        description="radz_engine: zero-shot radiograph recognition. `radz COMMAND --help` for details.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    if argv[0] == "--version":
        from . import __version__

        print(f"radz-engine {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        parser.error(f"unknown command {command!r} (choose from {', '.join(COMMANDS)})")
    if command == "eval" and "--bundle" in rest:  # bundles are evaluated without torch
        from .calibrate import main as bundle_eval_main

        return bundle_eval_main(rest)
    try:
        return int(COMMANDS[command][0](rest) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
