"""`radz train` and `radz eval` (dispatched lazily by radz_engine.cli; they need torch)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# `radz train --preset NAME --data DIR`: the settings of the project's own runs, no JSON to write.
# "tiny" is the run behind docs/RESULTS.md and, with augment=false, the first stage of the shipped
# default bundle, which was then fine-tuned with the field-of-view shift (docs/AUGMENTATION.md)
# (1250 steps of 64 on 8,000 phantoms: about 15 minutes on 2 CPU cores).
PRESETS = {
    "tiny": {
        "model": "tiny",
        "max_steps": 1250,
        "batch_size": 64,
        "learning_rates": {"vision": 2e-3, "projector": 2e-3, "decoder": 2e-3, "tokens": 2e-3},
        "weight_decay": 0.01,
        "warmup_ratio": 0.05,
        "log_every": 10,
    },
}


def _preset_config(args) -> Path:
    """Write the preset's config (train_csv = DATA/labels.csv) into the run folder and return it."""
    data = Path(args.data)
    labels = data / "labels.csv" if data.is_dir() else data
    if not labels.is_file():
        raise FileNotFoundError(f"--data {args.data}: no labels.csv (make one with `radz synth --out {args.data} ...`)")
    out = Path(args.out or f"runs/{args.preset}").resolve()
    config = {"train_csv": str(labels.resolve()), "out_dir": str(out), **PRESETS[args.preset]}
    if args.threads is not None:
        config["threads"] = args.threads
    if args.device is not None:
        config["device"] = args.device
    out.mkdir(parents=True, exist_ok=True)
    path = out / "preset_config.json"
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def build_train_parser() -> argparse.ArgumentParser:
    from radz_engine.cli.options import add_device, add_quiet, add_threads, parser

    p = parser(
        "radz train",
        "Train a LLaVA-RadZ model (DFAT + DKAM) from a JSON config, or from a preset with --preset NAME "
        "--data DIR.\n`radz train dkam-generate --help`: knowledge descriptions from a local LLM.",
        epilog="Example: radz synth --out data/train --n 8000 --seed 1 && "
        "radz train --preset tiny --data data/train --out runs/tiny (about 15 minutes on 2 CPU cores).",
    )
    p.add_argument(
        "config",
        type=Path,
        nargs="?",
        default=None,
        help="training config JSON (keys: radz_train/training/config.py); or use --preset",
    )
    p.add_argument(
        "overrides", nargs="*", help="KEY=VALUE settings, e.g. max_steps=100 model_overrides.feature_layer=-1"
    )
    p.add_argument("--preset", choices=sorted(PRESETS), default=None, help="train with a shipped preset's settings")
    p.add_argument("--data", default=None, help="with --preset: a `radz synth` folder (or its labels.csv)")
    p.add_argument("--out", default=None, help="with --preset: the run folder (default: runs/PRESET)")
    add_device(p, default=None, help="cpu, cuda, cuda:N or auto (default: the config's, auto)")
    add_threads(p, help="CPU threads (default: the config's, all cores)")
    p.add_argument("--resume", type=Path, default=None, help="checkpoint folder to continue from")
    add_quiet(p)
    p.add_argument(
        "--progress-every",
        type=float,
        default=30.0,
        help="without a terminal (nohup, cron, SLURM): seconds between plain progress lines",
    )
    return p


def train_main(argv: list[str]) -> int:
    if argv and argv[0] == "dkam-generate":
        return dkam_generate_main(argv[1:])
    p = build_train_parser()
    args = p.parse_args(argv)
    if args.preset:
        if args.config is not None and "=" in str(args.config):  # `--preset tiny max_steps=10`
            args.overrides.insert(0, str(args.config))
            args.config = None
        if args.config is not None:
            p.error("give a config JSON or --preset, not both")
        if not args.data:
            p.error("--preset needs --data DIR (a `radz synth` folder)")
    elif args.config is None:
        p.error("give a training config JSON, or --preset tiny --data DIR")
    from radz_train.model.config import parse_override
    from radz_train.training.config import TrainConfig
    from radz_train.training.trainer import Trainer

    try:
        config_path = _preset_config(args) if args.preset else args.config
        overrides = [parse_override(o) for o in args.overrides]
        if not args.preset:
            overrides += [(k, v) for k, v in (("threads", args.threads), ("device", args.device)) if v is not None]
        config = TrainConfig.load(config_path, overrides)
        trainer = Trainer(config, resume=args.resume)
    except (ValueError, FileNotFoundError, KeyError) as error:
        print(f"radz train: {error}", file=sys.stderr)
        return 2
    interactive = sys.stderr.isatty()
    stop = _StopAtStepBoundary(trainer, None if args.quiet or interactive else args.progress_every)
    try:
        with stop:
            checkpoint = trainer.fit(progress=not args.quiet and interactive)
    except KeyboardInterrupt:
        if not stop.at_boundary or trainer.step == 0:
            print("radz train: interrupted before a step finished; nothing saved", file=sys.stderr)
            return 130
        saved = trainer.save()
        again = " ".join(["radz train", *(argv_without_resume(argv)), "--resume", str(saved)])
        print(
            f"radz train: interrupted at step {trainer.step}; checkpoint saved to {saved}\nresume with: {again}",
            file=sys.stderr,
        )
        return 130
    print(f"checkpoint: {checkpoint}")
    return 0


def argv_without_resume(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--resume":
            skip = True
        elif not arg.startswith("--resume="):
            out.append(arg)
    return out


class _StopAtStepBoundary:
    """Ctrl-C / SIGTERM (kill, SLURM preemption) stop training between two steps, so that the
    checkpoint saved then resumes exactly; a second signal stops at once. Without a terminal,
    prints a plain progress line every `every` seconds (no carriage-return bar)."""

    def __init__(self, trainer, every: float | None) -> None:
        self.trainer, self.every = trainer, every
        self.requested = False
        self.at_boundary = False
        self._previous: dict = {}
        self._last = self._start = 0.0
        self._first_step = 0

    def _handle(self, signum, frame) -> None:
        if self.requested:  # the second signal: now
            raise KeyboardInterrupt
        self.requested = True
        print("radz train: stopping after this step (again to stop now)", file=sys.stderr, flush=True)

    def __enter__(self):
        import signal
        import threading
        import time

        original = self.trainer.train_step
        self._start = self._last = time.perf_counter()
        self._first_step = self.trainer.step

        def guarded():
            if self.requested:
                self.at_boundary = True
                raise KeyboardInterrupt
            result = original()
            now = time.perf_counter()
            if self.every is not None and (
                now - self._last >= self.every or self.trainer.step == self.trainer.total_steps
            ):
                self._last = now
                done = self.trainer.step - self._first_step
                rate = done / max(now - self._start, 1e-9)
                left = (self.trainer.total_steps - self.trainer.step) / rate if rate > 0 else float("nan")
                print(
                    f"radz train: step {self.trainer.step}/{self.trainer.total_steps}, loss {result.get('loss', float('nan')):.4f}, "
                    f"{rate:.2f} steps/s, about {left:.0f} s left",
                    file=sys.stderr,
                    flush=True,
                )
            return result

        self.trainer.train_step = guarded
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        import signal

        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self.trainer.__dict__.pop("train_step", None)


def build_dkam_parser(prompt: str = "GENERATION_PROMPT in radz_train/dkam.py") -> argparse.ArgumentParser:
    from radz_engine.cli.options import parser

    p = parser(
        "radz train dkam-generate",
        f"Ask a local LLM/MLLM checkpoint to write one knowledge description per class (cached). Prompt: {prompt!r}.",
    )
    p.add_argument("--checkpoint", type=Path, required=True, help="local causal-LM folder (config.json + weights)")
    p.add_argument("--classes", required=True, help="comma-separated class names")
    p.add_argument("--out", type=Path, required=True, help="knowledge JSON to write (reused as a cache)")
    p.add_argument("--max-new-tokens", type=int, default=160, help="longest description, in tokens")
    return p


def dkam_generate_main(argv: list[str]) -> int:
    from radz_train.dkam import GENERATION_PROMPT, generate_descriptions

    parser = build_dkam_parser(GENERATION_PROMPT)
    args = parser.parse_args(argv)
    try:
        found = generate_descriptions(
            args.checkpoint, [c.strip() for c in args.classes.split(",") if c.strip()], args.out, args.max_new_tokens
        )
    except (FileNotFoundError, ValueError) as error:
        print(f"radz train dkam-generate: {error}", file=sys.stderr)
        return 2
    for name, text in found.items():
        print(f"{name}: {text[:100]}{'...' if len(text) > 100 else ''}")
    print(f"wrote {args.out}")
    return 0


def build_eval_parser() -> argparse.ArgumentParser:
    from radz_engine.cli.options import parser

    p = parser(
        "radz eval",
        "Zero-shot evaluation (paper protocol) of a training checkpoint: AUC / F1 / ACC per class and mode, "
        "ROC PNGs.\nA bundle instead (torch-free, optional calibration): radz eval --bundle B --csv C "
        "(`radz eval --bundle B --help`).",
    )
    p.add_argument("--checkpoint", type=Path, required=True, help="a `radz train` checkpoint folder")
    p.add_argument(
        "--csv",
        type=Path,
        required=True,
        help="test CSV with path, report and 0/1 label columns (paths absolute or relative to the CSV)",
    )
    p.add_argument("--classes", default=None, help="comma-separated classes (default: the phantom findings)")
    p.add_argument("--modes", default="softmax,posneg,anchor", help="comma-separated scoring modes to evaluate")
    p.add_argument("--knowledge", type=Path, default=None, help="knowledge JSON (default: the shipped one)")
    p.add_argument("--out", type=Path, required=True, help="folder for metrics.json, metrics.md, ROC PNGs")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N rows of the CSV")
    return p


def eval_main(argv: list[str]) -> int:
    args = build_eval_parser().parse_args(argv)
    from radz_train.data.phantom import FINDINGS
    from radz_train.dkam import load_knowledge
    from radz_train.training.checkpoint import load_model
    from radz_train.training.data import load_image_report_set
    from radz_train.zero_shot import MODES, evaluate

    classes = [c.strip() for c in args.classes.split(",")] if args.classes else list(FINDINGS)
    modes = [m.strip() for m in args.modes.split(",")]
    bad = [m for m in modes if m not in MODES]
    if bad:
        print(f"radz eval: unknown modes {bad} (choose from {MODES})", file=sys.stderr)
        return 2
    try:
        model = load_model(args.checkpoint)
        data = load_image_report_set(args.csv, classes, model.config.image_size, "csv", args.limit)
        results = evaluate(
            model, data, classes, modes, load_knowledge(args.knowledge), args.out, title=args.csv.parent.name
        )
    except (ValueError, FileNotFoundError, KeyError) as error:
        print(f"radz eval: {error}", file=sys.stderr)
        return 2
    print("\n\n".join(results["tables"]))
    print(json.dumps({m: round(r["macro"]["auc"], 4) for m, r in results["modes"].items()}))
    return 0
