"""Builds python/radz_engine/assets/default/: the shipped default model.

    python scripts/make_default_bundle.py --work /tmp/radz_results --run field_of_view_finetune-s3

1. takes a run the robustness study trained (benchmarks/zero_shot_results.py: WORK/runs/RUN/final;
   trained here with that script when missing),
2. exports it with `radz export` (parity-checked),
3. fits per-class max-F1 thresholds on 600 fresh phantoms of the three sites (seed 11) with
   `radz eval --bundle ... --calibrate`, then adds the checked int8 image encoder (`radz quantize`),
4. measures its zero-shot AUC on freshly generated phantoms (seed 7, site_a, 300 images) and,
   through `radz screen`, on the study's 512-px DICOM test sets of site_a, site_b and site_c
   (the issue-17 targets), and records, in the bundle manifest under "provenance", the exact
   commands and those AUCs.
tests/test_default_bundle.py regenerates the seed-7 phantoms and checks the AUC still holds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from zero_shot_results import FINETUNE, FULL, check_bundle, check_schedule, make_dicom_sets  # noqa: E402

from radz_train.data.augment import SHIFTS  # noqa: E402

DEFAULT = ROOT / "python" / "radz_engine" / "assets" / "default"
CHECK = {"n": 300, "seed": 7, "site": "site_a"}


def augmentation_text(work: Path, runs: list[str]) -> str:
    """The model card's words for the augmentation each training of the model used."""
    parts = []
    for run in runs:
        config = json.loads((work / "runs" / run / "train_config.json").read_text())
        text = "acquisition-shift augmentation (docs/AUGMENTATION.md)" if config.get("augment") else "none"
        changed = config.get("augment_probabilities") or {}
        if config.get("augment") and changed:
            probabilities = {shift.name: changed.get(shift.name, shift.p) for shift in SHIFTS}
            text += ", shifts with probability > 0: " + json.dumps({k: p for k, p in probabilities.items() if p > 0})
        parts.append(f"{run}: {text}" if len(runs) > 1 else text)
    return "; then fine-tuned, ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/radz_results"))
    parser.add_argument(
        "--run",
        default="field_of_view_finetune-s3",
        help="the study's run to ship: VARIANT-sSEED (default: the shipped one)",
    )
    args = parser.parse_args()
    variant, _, seed = args.run.rpartition("-s")
    if not variant or not seed.isdigit():
        parser.error(f"--run: expected VARIANT-sSEED (e.g. main-s1), got {args.run!r}")
    final = args.work / "runs" / args.run / "final"
    if not final.exists():
        study = [sys.executable, str(ROOT / "benchmarks" / "zero_shot_results.py"), "--work", str(args.work)]
        subprocess.run([*study, "--variants", variant, "--seeds", seed], check=True)
    # The shipped model card is carried over (its evaluation numbers are updated below).
    card_path = args.work / "card.json"
    old_card = json.loads((DEFAULT / "manifest.json").read_text()).get("card") if DEFAULT.exists() else None
    card = old_card or {}
    training = card.setdefault("training_data", {})
    # a fine-tuned run's model starts as its base run's: both trainings made it
    runs = [f"{FINETUNE[variant][0]}-s{seed}", args.run] if variant in FINETUNE else [args.run]
    training["training_command"] = " && ".join(
        f"radz train {args.work / 'configs' / (run + '.json')} --no-progress" for run in runs
    )
    training["augmentation"] = augmentation_text(args.work, runs)
    card_path.write_text(json.dumps(card, indent=2))
    export = [sys.executable, "-m", "radz_engine.cli", "export", str(final), "--out", str(DEFAULT),
              "--card", str(card_path), "--intended-use", "research", "--synthetic-data"]  # fmt: skip
    subprocess.run(export, check=True)
    calibration = args.work / "calibration"
    synth = [
        sys.executable,
        "-m",
        "radz_engine.cli",
        "synth",
        "--out",
        str(calibration),
        "--n",
        "600",
        "--seed",
        "11",
        "--sites",
        "site_a,site_b,site_c",
        "--size",
        "256",
        "--workers",
        "2",
        "--no-progress",
    ]
    if not (calibration / "labels.csv").exists():
        subprocess.run(synth, check=True)
    calibrate = [
        sys.executable,
        "-m",
        "radz_engine.cli",
        "eval",
        "--bundle",
        str(DEFAULT),
        "--csv",
        str(calibration / "labels.csv"),
        "--calibrate",
        "--out",
        str(args.work / "calibrated"),
    ]
    shutil.rmtree(args.work / "calibrated", ignore_errors=True)  # this script's own output of a previous run
    subprocess.run(calibrate, check=True)
    # radz eval --calibrate writes a new bundle (never in place): it becomes the shipped one.
    shutil.rmtree(DEFAULT)
    shutil.copytree(args.work / "calibrated", DEFAULT)
    # The checked int8 image encoder (`radz screen/serve --int8`); refused, nothing is added.
    quantize = [sys.executable, "-m", "radz_engine.cli", "quantize", str(DEFAULT)]
    quantized = subprocess.run(quantize).returncode
    if quantized not in (0, 1):  # 1: the checks refused it and nothing was added
        raise SystemExit(f"radz quantize failed ({quantized}); the bundle in {DEFAULT} is calibrated but unchecked")

    from radz_train.evaluation.bundle_check import phantom_auc

    check = phantom_auc(DEFAULT, CHECK["n"], CHECK["seed"], CHECK["site"])
    check_schedule(args.work, FULL)
    make_dicom_sets(args.work, FULL, args.work / "log.txt")
    sites = check_bundle(args.work, DEFAULT, args.work / "log.txt")
    n_dicom = FULL["n_dicom"]
    log = (args.work / "log.txt").read_text().splitlines()
    as_typed = lambda line: line[2:].replace(f"{sys.executable} -m radz_engine.cli", "radz")  # noqa: E731
    commands = [  # a retried training shows up once
        as_typed(line)
        for line in log
        if line.startswith("$ ")
        and (" synth " in line and "/train " in line or " train " in line and any(f"/{r}.json" in line for r in runs))
    ]
    commands = list(dict.fromkeys(commands))
    manifest_path = DEFAULT / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["provenance"] = {
        "produced_by": "scripts/make_default_bundle.py",
        "commands": commands
        + [
            "radz export " + " ".join(export[4:]),
            "radz " + " ".join(synth[3:]),
            "radz " + " ".join(calibrate[3:]),
        ]
        + (["radz " + " ".join(quantize[3:])] if quantized == 0 else []),
        "train_config": json.loads((final.parent / "train_config.json").read_text()),
        "check": {**CHECK, "macro_auc": {m: round(r["macro_auc"], 6) for m, r in check.items()}},
        "sites_512px_dicom": {
            "command": f"python benchmarks/zero_shot_results.py --work {args.work} --check-bundle BUNDLE",
            "macro_auc": {site: round(v, 6) for site, v in sites["macro_auc"].items()},
            "n_per_site": n_dicom,
        },
    }
    card = manifest.get("card", {})
    evaluation = card.setdefault("evaluation", {})
    macro = {m: round(r["macro_auc"], 6) for m, r in check.items()}
    evaluation["metrics"] = {"macro_auc": macro}
    evaluation["summary"] = (
        f"zero-shot macro AUC on {CHECK['n']} fresh phantoms (seed {CHECK['seed']}, {CHECK['site']}): "
        + ", ".join(f"{m} {v}" for m, v in macro.items())
        + f"; anchor mode on {n_dicom} 512-px DICOM phantoms per site through radz screen: "
        + ", ".join(f"{site} {v:.3f}" for site, v in sites["macro_auc"].items())
        + " (trained on site_a only); phantoms only, no real images"
    )
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    size = sum(p.stat().st_size for p in DEFAULT.iterdir()) / 2**20
    print(json.dumps(manifest["provenance"]["check"], indent=2))
    print(f"default bundle: {DEFAULT} ({size:.1f} MiB)")


if __name__ == "__main__":
    main()
