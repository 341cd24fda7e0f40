"""`radz train` and `radz eval` (dispatched lazily by radz_engine.cli; they need torch)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def train_main(argv: list[str]) -> int:
    if argv and argv[0] == "dkam-generate":
        return dkam_generate_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="radz train",
        description="Train a LLaVA-RadZ model (DFAT + DKAM). `radz train dkam-generate --help` for knowledge generation.",
    )
    parser.add_argument("config", type=Path, help="training config JSON (see radz_train/training/config.py)")
    parser.add_argument(
        "overrides", nargs="*", help="KEY=VALUE settings, e.g. max_steps=100 model_overrides.feature_layer=-1"
    )
    parser.add_argument("--resume", type=Path, default=None, help="checkpoint folder to continue from")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    from radz_train.model.config import parse_override
    from radz_train.training.config import TrainConfig
    from radz_train.training.trainer import Trainer

    try:
        config = TrainConfig.load(args.config, [parse_override(o) for o in args.overrides])
        trainer = Trainer(config, resume=args.resume)
    except (ValueError, FileNotFoundError, KeyError) as error:
        print(f"radz train: {error}", file=sys.stderr)
        return 2
    checkpoint = trainer.fit(progress=not args.no_progress)
    print(f"checkpoint: {checkpoint}")
    return 0


def dkam_generate_main(argv: list[str]) -> int:
    from radz_train.dkam import GENERATION_PROMPT, generate_descriptions

    parser = argparse.ArgumentParser(
        prog="radz train dkam-generate",
        description="Ask a local LLM/MLLM checkpoint to write one knowledge description per class (cached). "
        f"Prompt: {GENERATION_PROMPT!r}",
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="local causal-LM folder (config.json + weights)")
    parser.add_argument("--classes", required=True, help="comma-separated class names")
    parser.add_argument("--out", type=Path, required=True, help="knowledge JSON to write (reused as a cache)")
    parser.add_argument("--max-new-tokens", type=int, default=160)
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


def eval_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="radz eval", description="Zero-shot evaluation (paper protocol) of a checkpoint."
    )
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--csv", type=Path, required=True, help="test CSV with path, report and 0/1 label columns")
    parser.add_argument("--classes", default=None, help="comma-separated classes (default: the phantom findings)")
    parser.add_argument("--modes", default="softmax,posneg,anchor")
    parser.add_argument("--knowledge", type=Path, default=None, help="knowledge JSON (default: the shipped one)")
    parser.add_argument("--out", type=Path, required=True, help="folder for metrics.json, metrics.md, ROC PNGs")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args(argv)
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
