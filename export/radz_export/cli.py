"""`radz export CHECKPOINT --out BUNDLE`: a trained checkpoint -> a runtime bundle.

The `radz` dispatcher calls `main(argv)` with the arguments after "export". The model card
(docs/MODEL_CARD.md) comes from --card FILE.json and/or the --card-* flags (flags win); without an
intended use nothing is written (exit status 2). Prints the parity table; exit status 1 when a parity check fails (the bundle folder is left for inspection, but
its manifest records no passing parity), 2 for usage errors.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    from radz_engine.cli.options import add_threads
    from radz_engine.cli.options import parser as make_parser

    parser = make_parser("radz export", __doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="a `radz train` checkpoint folder")
    parser.add_argument(
        "--out", type=Path, required=True, help="bundle folder to write (new, empty, or an older bundle)"
    )
    parser.add_argument("--classes", default=None, help="comma-separated class names (default: the phantom findings)")
    parser.add_argument(
        "--knowledge", type=Path, default=None, help="knowledge JSON (default: the checkpoint's, else shipped)"
    )
    parser.add_argument(
        "--scoring-mode",
        default="anchor",
        choices=("anchor", "softmax", "posneg"),
        help="how the runtime scores classes by default",
    )
    parser.add_argument(
        "--fp16", action="store_true", help="also write image_encoder_fp16.onnx (fp16 weights, fp32 io)"
    )
    parser.add_argument(
        "--tensorrt", action="store_true", help="also build a TensorRT engine (needs tensorrt + a GPU; unvalidated)"
    )
    parser.add_argument(
        "--trt-precision", default="fp16", choices=("fp16", "bf16", "fp32"), help="TensorRT engine precision"
    )
    parser.add_argument(
        "--skip-parity", action="store_true", help="skip the ONNX Runtime vs PyTorch checks (not recommended)"
    )
    parser.add_argument(
        "--auc-phantoms", type=int, default=64, help="phantoms for the zero-shot AUC parity check (0: skip)"
    )
    parser.add_argument(
        "--exporter", default="dynamo", choices=("dynamo", "torchscript"), help="torch.onnx exporter to use"
    )
    parser.add_argument("--external-data", action="store_true", help="always write weights as ONNX external data")
    from radz_engine.bundle.card import INTENDED_USES

    card = parser.add_argument_group("model card (docs/MODEL_CARD.md; --intended-use or a card file is required)")
    card.add_argument("--card", type=Path, default=None, help="a JSON file with the card's fields")
    card.add_argument("--intended-use", choices=tuple(INTENDED_USES), default=None, help="what results may be used for")
    card.add_argument("--card-name", default=None, help="model name (default: the --out folder's name)")
    card.add_argument("--card-version", default=None, help="model version (default: radz-engine's version)")
    card.add_argument("--training-data", default=None, help="datasets, sites and counts the model was trained on")
    card.add_argument(
        "--synthetic-data", action="store_true", help="the training data is synthetic (the notice says so)"
    )
    card.add_argument("--limitation", action="append", default=None, help="a known limitation (repeatable)")
    card.add_argument("--licence", default=None, help="the model's licence")
    card.add_argument("--regulatory", default=None, help="the clearance a 'clinical' intended use rests on")
    add_threads(parser, help="CPU threads for torch and ONNX Runtime (default: all cores)")
    return parser


def card_from_args(args) -> dict:
    """The card's fields from --card FILE and the flags (flags override the file)."""
    from radz_export.bundle import load_card_file

    card = load_card_file(args.card) if args.card else {}
    for key, value in (
        ("intended_use", args.intended_use),
        ("name", args.card_name),
        ("version", args.card_version),
        ("licence", args.licence),
        ("regulatory", args.regulatory),
    ):
        if value:
            card[key] = value
    if args.training_data or args.synthetic_data:
        data = card.get("training_data")
        data = dict(data) if isinstance(data, dict) else ({"description": data} if data else {})
        if args.training_data:
            data["description"] = args.training_data
        if args.synthetic_data:
            data["synthetic"] = True
        card["training_data"] = data
    if args.limitation:
        card["limitations"] = list(card.get("limitations") or []) + list(args.limitation)
    return card


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    from radz_engine.bundle.card import INTENDED_USES, CardError

    try:
        card = card_from_args(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"radz export: {error}", file=sys.stderr)
        return 2
    if not card.get("intended_use"):
        print(
            f"radz export: no intended use: give --intended-use ({' | '.join(INTENDED_USES)}) or an "
            "'intended_use' in --card FILE (docs/MODEL_CARD.md); no bundle written",
            file=sys.stderr,
        )
        return 2
    from radz_export.bundle import build_card

    try:  # before the model is loaded: a bad card costs nothing
        build_card(card, name="-", version="-", train={}, command="", require_intended_use=True)
    except CardError as error:
        print(f"radz export: model card: {error}; no bundle written", file=sys.stderr)
        return 2
    if not args.checkpoint.is_dir():
        print(f"radz export: {args.checkpoint}: not a checkpoint folder", file=sys.stderr)
        return 2
    import torch

    from radz_export.bundle import command_line, write_bundle
    from radz_export.parity import ExportParityError, format_table

    if args.threads:
        torch.set_num_threads(args.threads)
    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
    try:
        report = write_bundle(
            args.checkpoint,
            args.out,
            classes=classes,
            knowledge=args.knowledge,
            scoring_mode=args.scoring_mode,
            fp16=args.fp16,
            parity_checks=not args.skip_parity,
            auc_phantoms=0 if args.skip_parity else args.auc_phantoms,
            exporter=args.exporter,
            external_data=True if args.external_data else None,
            command=command_line(argv),
            threads=args.threads or 1,
            card=card,
            require_intended_use=True,
        )
    except ExportParityError as error:
        print(f"radz export: parity check FAILED\n{error}", file=sys.stderr)
        return 1
    except CardError as error:
        print(f"radz export: model card: {error}; no bundle written", file=sys.stderr)
        return 2
    except (FileNotFoundError, FileExistsError, ValueError, KeyError) as error:
        print(f"radz export: {error}", file=sys.stderr)
        return 2
    if report.rows:
        print(format_table(report.rows))
    auc = report.manifest.get("parity", {}).get("zero_shot_auc")
    if auc:
        for mode, row in auc["modes"].items():
            print(
                f"zero-shot AUC ({mode}, {auc['n']} phantoms): torch {row['torch']:.4f}  bundle {row['bundle']:.4f}  "
                f"max class diff {row['max_class_diff']:.2e}"
            )
    if args.skip_parity:
        print("parity checks skipped (--skip-parity)")
    if args.tensorrt:
        from radz_export.tensorrt_build import TensorRTUnavailable, build_engine

        try:
            engine = build_engine(
                args.out / "image_encoder.onnx",
                precision=args.trt_precision,
                engine_cache_dir=args.out / "tensorrt",
                timing_cache=args.out / "tensorrt" / "timing.cache",
                onnx_sha256=report.manifest["sha256"]["image_encoder.onnx"],
            )
            print(f"TensorRT engine: {engine}")
        except TensorRTUnavailable as error:
            print(f"radz export: --tensorrt: {error}", file=sys.stderr)
            return 2
    print(f"bundle written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
