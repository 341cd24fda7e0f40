"""The `radz` command. Subcommands load their modules lazily, so `radz --help` is instant and
the torch-free runtime never pulls in training code."""

from __future__ import annotations

import argparse
import sys


def _missing(*modules: str) -> list[str]:
    """Modules that are not installed, found without importing them (the runtime never imports torch)."""
    import importlib.util

    return [m for m in modules if importlib.util.find_spec(m) is None]


def _command(name: str, module: str, function: str = "main", needs: tuple[str, ...] = (), extra: str | None = None):
    """A subcommand that imports `module` only when run, after checking (without importing) that
    the modules it `needs` are installed; a missing one is a clear message naming the extra."""

    def run(argv: list[str]) -> int:
        missing = _missing(*needs)
        if missing:
            print(
                f"radz {name}: needs the {extra} extra (missing {missing}); pip install 'radz-engine[{extra}]'",
                file=sys.stderr,
            )
            return 2
        import importlib

        try:
            entry = getattr(importlib.import_module(module), function)
        except ImportError as error:
            print(f"radz {name}: not available in this installation ({error})", file=sys.stderr)
            return 2
        return entry(argv)

    return run


_TRAIN = ("torch", "transformers")

# Modes of a subcommand that `radz --help` lists too (each has its own --help).
MODES = {
    "train dkam-generate": "knowledge descriptions per class from a local LLM checkpoint (for DKAM)",
    "eval --bundle B --csv C": "AUC/F1 of a bundle, torch-free; --calibrate --out B2 writes a calibrated copy",
    "bench load": "latency against offered load: Engine.submit in process, or a DICOM node (dicom://AE@host:port)",
    "bench check-bf16 B": "check OpenVINO bf16 like int8 (cosine, AUC drop) on this CPU and record it in the bundle",
    "index add INDEX S": "append more screening outputs to a similar-case index (`radz index info INDEX`: what it holds)",
}


COMMANDS = {
    "demo": (
        _command("demo", "radz_engine.cli.demo"),
        "screen a phantom DICOM set with the shipped model: AUC, images/s, latency, HTML report",
    ),
    "synth": (
        _command("synth", "radz_train.data.synth_cli"),
        "generate phantom radiographs with reports and labels (PNG/NPY/DICOM + CSV)",
    ),
    "train": (
        _command("train", "radz_train.cli", "train_main", _TRAIN, "train"),
        "train a LLaVA-RadZ model (DFAT + DKAM) from a config JSON or --preset tiny --data DIR",
    ),
    "eval": (
        _command("eval", "radz_train.cli", "eval_main", _TRAIN, "train"),
        "zero-shot evaluation of a training checkpoint (AUC/F1/ACC, ROC PNGs)",
    ),
    "export": (
        _command("export", "radz_export.cli", needs=(*_TRAIN, "onnx"), extra="export"),
        "export a checkpoint to an ONNX bundle (parity-checked); --tensorrt for an engine",
    ),
    "quantize": (
        _command("quantize", "radz_export.quantize", needs=("onnx", "onnxruntime"), extra="export"),
        "add a checked int8 image encoder to a bundle (CPU speed-up; no torch needed)",
    ),
    "screen": (
        _command("screen", "radz_engine.cli.screen"),
        "classify DICOM/PNG/JPEG folders or CSV lists into csv/jsonl/parquet (resumable)",
    ),
    "serve": (
        _command("serve", "radz_engine.cli.serve", needs=("pynetdicom", "highdicom"), extra="serve"),
        "a DICOM node: C-STORE in, scored DICOM SR back to the PACS (durable journal)",
    ),
    "index": (
        _command("index", "radz_engine.cli.index"),
        "similar-case index from `radz screen --embeddings` outputs: build, add, info (FAISS in the C++ core)",
    ),
    "similar": (
        _command("similar", "radz_engine.cli.similar"),
        "the indexed images most similar to an image, with their findings (needs `radz index build`)",
    ),
    "bench": (
        _command("bench", "radz_bench.cli"),
        "throughput against PyTorch eager across backends, batch sizes, precisions and GPUs (JSON, Markdown, PNG)",
    ),
    "bundle": (
        _command("bundle", "radz_engine.cli.bundle"),
        "`radz bundle info B`: a bundle's model card (intended use, training data, evaluation, limitations)",
    ),
    "preprocess": (
        _command("preprocess", "radz_engine.cli.preprocess"),
        "DICOM/PNG/JPEG files -> one model-ready .npy tensor, errors recorded",
    ),
}


def _version_text() -> str:
    """The version, then what this build can do (radz_engine.build_info()), for bug reports."""
    from radz_engine import build_info

    info = build_info()
    decoders = ", ".join(f"{name}: {how or 'none'}" for name, how in info["decoders"].items())
    return "\n".join(
        [
            f"radz-engine {info['version']}",
            f"  C++ core: {'yes' if info['core'] else 'no (pure-Python parts only)'}; FAISS: "
            f"{'yes' if info['faiss'] else 'no'}; similar-case search: {info['similar_search']}",
            f"  OpenJPEG: {info['openjpeg'] or 'no'}; libjpeg DCT scaling: {'yes' if info['libjpeg'] else 'no'}; "
            f"ONNX Runtime CUDA: {'yes' if info['cuda'] else 'no'}",
            f"  DICOM decoders: {decoders}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    width = max(len(m) for m in MODES) + 2
    parser = argparse.ArgumentParser(
        prog="radz",
        description="radz_engine: zero-shot radiograph recognition. `radz COMMAND --help` for details.",
        epilog="modes of the commands above:\n"
        + "\n".join(f"  radz {name:<{width}}{text}" for name, text in MODES.items())
        + "\n\nExit status: 0 done, 1 the work failed (e.g. every input failed), 2 a usage error.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    if argv[0] == "--version":
        print(_version_text())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        parser.error(f"unknown command {command!r} (choose from {', '.join(COMMANDS)})")
    if command == "eval" and any(
        a == "--bundle" or a.startswith("--bundle=") for a in rest
    ):  # bundles are evaluated without torch
        from radz_engine.cli.bundle_eval import main as bundle_eval_main

        return bundle_eval_main(rest)
    try:
        return int(COMMANDS[command][0](rest) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
