"""The zero-shot study on phantoms: variants x seeds, trained at one schedule, evaluated on every
site, one JSON record per run, and the report (mean +- sd) built from all records.

    python benchmarks/zero_shot_results.py --work /tmp/radz_results --variants main --seeds 1,2,3
    python benchmarks/zero_shot_results.py --work /tmp/radz_results --variants all --seeds 1,2
    python benchmarks/zero_shot_results.py --quick --work /tmp/radz_quick   # CI-sized, minutes

Each run (variant, seed) trains the `tiny` preset on phantoms of site_a with `radz train` (a
fine-tuning variant, FINETUNE, continues the same seed's run of its base variant: trained first
when missing, evaluated beside it and kept in its record for a paired comparison),
then is evaluated zero-shot, with the project's commands, on held-out phantoms of site_a (in-site)
and of the unseen sites site_b and site_c:
- at the training size (256-px PNG) in the three scoring modes (`radz eval --checkpoint`),
- at 512-px DICOM through the runtime: `radz export` then `radz screen` (anchor mode, the
  bundle's), macro AUC from the results file against the phantoms' labels.
A run's record (RECORD_DIR/VARIANT-sSEED.json, default docs/results/runs/) holds its settings,
training time and machine load, and every macro and per-class AUC; runs already recorded or
already trained in WORK are not redone, so the study can grow across sessions. The report
(--doc, default docs/RESULTS_ROBUSTNESS.md) is rebuilt from every record in RECORD_DIR that
matches this invocation's schedule (benchmarks/zero_shot_report.py).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from zero_shot_report import FINDINGS, SITES, UNSEEN, write_report  # noqa: E402  (a sibling script)

from radz_train.data.augment import SHIFTS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHIFT_NAMES = tuple(shift.name for shift in SHIFTS)

# name: (what it is, training-config changes). "main" is the default training recipe.
VARIANTS = {
    "main": ("DFAT + DKAM, modality tokens, penultimate layer, crossed loss, augmentation (default)", {}),
    "no_augment": ("without acquisition-shift augmentation", {"augment": False}),
    "dfat_only": ("DFAT alone: no DKAM (lambda = 1)", {"lam": 1.0}),
    "no_modality_tokens": (
        "without modality tokens (last-token features)",
        {"model_overrides": {"n_image_tokens": 0, "n_text_tokens": 0}},
    ),
    "final_layer": (
        "features from the final decoder layer, not the penultimate",
        {"model_overrides": {"feature_layer": -1}},
    ),
    "uncrossed": ("uncrossed L_CA (global-global + local-local)", {"crossed": False}),
    "unseen_class": (f"'{UNSEEN}' never named in training reports nor used as a DKAM class", {}),
    "field_of_view": (
        "the table's shifts off; only the opt-in field of view and tilt (p 0.5)",
        {"augment_probabilities": {**{name: 0.0 for name in SHIFT_NAMES}, "field_of_view": 0.5}},
    ),
    "field_of_view_finetune": (
        "no_augment's model of the same seed fine-tuned with only field of view and tilt (p 0.5), "
        "a third of the steps at a quarter of the learning rate",
        {"augment_probabilities": {**{name: 0.0 for name in SHIFT_NAMES}, "field_of_view": 0.5}},
    ),
    "no_augment_finetune": (
        "field_of_view_finetune's control: the same fine-tune of no_augment's model without augmentation",
        {"augment": False},
    ),
}
# Fine-tuning variants: (the variant whose final checkpoint of the same seed they start from,
# fraction of the schedule's steps, factor on its learning rates). The base is trained first when missing.
FINETUNE = {"field_of_view_finetune": ("no_augment", 1 / 3, 0.25), "no_augment_finetune": ("no_augment", 1 / 3, 0.25)}
ABLATIONS = ["no_augment", "dfat_only", "no_modality_tokens", "final_layer", "uncrossed"]

FULL = {"steps": 1250, "batch": 64, "lr": 2e-3, "n_train": 8000, "n_test": 1000, "n_dicom": 400, "dicom_size": 512}
QUICK = {"steps": 12, "batch": 16, "lr": 2e-3, "n_train": 160, "n_test": 60, "n_dicom": 30, "dicom_size": 256}


def schedule(s: dict) -> dict:
    return {k: s[k] for k in FULL}


def run(cmd: list[str], log: Path) -> None:
    print("$", " ".join(cmd), flush=True)
    with log.open("a") as handle:
        handle.write("$ " + " ".join(cmd) + "\n")
        handle.flush()
        result = subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT)
    if result.returncode:
        sys.exit(f"failed ({result.returncode}): {' '.join(cmd)}; see {log}")


def radz(*args: str) -> list[str]:
    return [sys.executable, "-m", "radz_engine.cli", *args]


def synth(out: Path, n: int, seed: int, site: str, log: Path, extra: list[str]) -> None:
    if (out / "labels.csv").exists():
        return
    cmd = radz("synth", "--out", str(out), "--n", str(n), "--seed", str(seed), "--sites", site)
    run(cmd + extra + ["--workers", "2", "--no-progress"], log)


def make_data(work: Path, s: dict, variants: list[str], log: Path) -> None:
    png = ["--size", "256", "--format", "png"]
    if any(v != "unseen_class" for v in variants):
        synth(work / "train", s["n_train"], 1, "site_a", log, png)
    if "unseen_class" in variants:
        synth(work / "train_unseen", s["n_train"], 1, "site_a", log, png + ["--withhold", UNSEEN])
    for seed, site in zip((2, 3, 4), SITES):
        synth(work / f"test_{site}", s["n_test"], seed, site, log, png)
    make_dicom_sets(work, s, log)


def make_dicom_sets(work: Path, s: dict, log: Path) -> None:
    """The DICOM test sets `radz screen` reads (one per site)."""
    dicom = ["--format", "dicom", "--dicom-size", str(s["dicom_size"])]
    for seed, site in zip((21, 22, 23), SITES):
        synth(work / f"dicom_{site}", s["n_dicom"], seed, site, log, dicom)


def check_schedule(work: Path, s: dict) -> None:
    """WORK's data, runs and outputs belong to one schedule: refuse another (exit 2)."""
    marker = work / "schedule.json"
    if marker.exists() and json.loads(marker.read_text()) != schedule(s):
        sys.exit(
            f"--work {work}: holds data and runs made at another schedule ({marker}: "
            f"{marker.read_text().strip()}); use another --work folder"
        )
    work.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(schedule(s)))


def set_key(config: dict, key: str, value) -> None:
    if isinstance(value, dict):
        config.setdefault(key, {}).update(value)
    else:
        config[key] = value


def train_config(work: Path, variant: str, seed: int, s: dict, threads: int) -> dict:
    classes = FINDINGS + ["no_finding"]
    if variant == "unseen_class":
        classes = [c for c in classes if c != UNSEEN]
    config = {
        "train_csv": str(work / ("train_unseen" if variant == "unseen_class" else "train") / "labels.csv"),
        "out_dir": str(work / "runs" / f"{variant}-s{seed}"),
        "model": "tiny",
        "max_steps": s["steps"],
        "batch_size": s["batch"],
        "learning_rates": {"vision": s["lr"], "projector": s["lr"], "decoder": s["lr"], "tokens": s["lr"]},
        "weight_decay": 0.01,
        "warmup_ratio": 0.05,
        "log_every": 10,
        "threads": threads,
        "classes": classes,
        "augment": True,  # stated, not left to the phantom-site default
        "seed": seed,
    }
    for key, value in VARIANTS[variant][1].items():
        set_key(config, key, value)
    if variant in FINETUNE:
        base, steps, lr = FINETUNE[variant]
        config["init_from"] = str(work / "runs" / f"{base}-s{seed}" / "final")
        config["max_steps"] = max(2, round(steps * s["steps"]))
        config["learning_rates"] = {part: rate * lr for part, rate in config["learning_rates"].items()}
    return config


def load_average() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def train(work: Path, variant: str, seed: int, s: dict, threads: int, log: Path) -> dict:
    """Trains the run unless its final checkpoint exists (a fine-tune: its base first, when
    missing); returns its timing facts."""
    run_dir = work / "runs" / f"{variant}-s{seed}"
    facts_path = run_dir / "train_facts.json"
    config = train_config(work, variant, seed, s, threads)
    if (run_dir / "final").exists():
        trained = json.loads((run_dir / "train_config.json").read_text())
        differ = sorted(k for k, v in config.items() if k != "threads" and trained.get(k) != v)
        if differ:
            sys.exit(f"{run_dir}: trained with other settings ({', '.join(differ)}); move it away to retrain")
        return json.loads(facts_path.read_text()) if facts_path.exists() else {}
    base_facts = train(work, FINETUNE[variant][0], seed, s, threads, log) if variant in FINETUNE else None
    path = work / "configs" / f"{variant}-s{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2))
    facts = {"load_average_start": load_average()}
    start = time.perf_counter()
    run(radz("train", str(path), "--no-progress"), log)
    facts["wall_s"] = round(time.perf_counter() - start, 1)
    facts["load_average_end"] = load_average()
    rates = [json.loads(line).get("samples_per_s") for line in (run_dir / "metrics.jsonl").open()]
    rates = [r for r in rates if r]
    if rates:
        facts["samples_per_s_median"] = round(float(np.median(rates)), 1)
    if base_facts is not None:  # the time to this model includes its base's training
        facts["base_wall_s"] = base_facts.get("wall_s")
        facts["base_sha256"] = weights_digest(Path(config["init_from"]))
    facts_path.write_text(json.dumps(facts, indent=2))
    return facts


def weights_digest(checkpoint: Path) -> str:
    """sha256 of a checkpoint's weights: which exact base model a fine-tune started from."""
    import hashlib

    return hashlib.sha256((checkpoint / "model.safetensors").read_bytes()).hexdigest()


def macro(per_class: dict, classes: list[str]) -> float:
    values = [per_class[c] for c in classes if per_class[c] == per_class[c]]
    return float(np.mean(values)) if values else float("nan")


def eval_png(work: Path, name: str, site: str, log: Path) -> dict:
    """`radz eval --checkpoint` on the 256-px test set: {mode: {"macro": .., "per_class": {..}}}."""
    out = work / "eval" / name / f"test_{site}"
    if not (out / "metrics.json").exists():
        checkpoint = work / "runs" / name / "final"
        csv_path = work / f"test_{site}" / "labels.csv"
        run(radz("eval", "--checkpoint", str(checkpoint), "--csv", str(csv_path), "--classes", ",".join(FINDINGS), "--out", str(out)), log)  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    result = {}
    for mode, values in metrics["modes"].items():
        per = {c: float(values["per_class"][c]["auc"]) for c in FINDINGS}
        result[mode] = {"macro": macro(per, FINDINGS), "per_class": per}
    return result


def screen_auc(results_csv: Path, labels_csv: Path) -> dict:
    """Per-class AUC of a `radz screen` results file against the phantoms' labels.csv."""
    from radz_engine.scoring.metrics import binary_auc

    folder = labels_csv.parent
    truth = {}
    with labels_csv.open(newline="") as handle:
        for row in csv.DictReader(handle):
            truth[str((folder / row["path"]).resolve())] = row
    ys: dict[str, list] = {c: [] for c in FINDINGS}
    ss: dict[str, list] = {c: [] for c in FINDINGS}
    failed = 0
    with results_csv.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["ok"] != "True":
                failed += 1
                continue
            label = truth[str(Path(row["source"]).resolve())]
            for c in FINDINGS:
                ys[c].append(int(label[c]))
                ss[c].append(float(row[f"score_{c}"]))
    per = {c: binary_auc(np.array(ys[c]), np.array(ss[c])) for c in FINDINGS}
    return {"anchor": {"macro": macro(per, FINDINGS), "per_class": per}, "n": len(ys[FINDINGS[0]]), "failed": failed}


def eval_dicom(work: Path, name: str, log: Path) -> dict:
    """Export the run, then `radz screen` each site's DICOMs through the runtime (anchor mode)."""
    bundle = work / "bundles" / name
    if not (bundle / "manifest.json").exists():
        checkpoint = work / "runs" / name / "final"
        card = ["--intended-use", "research", "--synthetic-data", "--training-data", "radz synth phantoms of site_a"]
        run(radz("export", str(checkpoint), "--out", str(bundle), "--auc-phantoms", "0", *card), log)
    return screen_sites(work, bundle, work / "screen" / name, log)


def screen_sites(work: Path, bundle: Path, out_dir: Path, log: Path) -> dict:
    """`radz screen` each site's DICOM test set with `bundle`: {site: screen_auc(...)}."""
    result = {}
    for site in SITES:
        out = out_dir / f"{site}.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        images = work / f"dicom_{site}" / "images"
        # always run: radz screen resumes, so a results file cut short by a stop is completed
        run(radz("screen", str(images), "--bundle", str(bundle), "--out", str(out), "--quiet"), log)
        result[site] = screen_auc(out, work / f"dicom_{site}" / "labels.csv")
    return result


def check_bundle(work: Path, bundle: Path, log: Path) -> dict:
    """The shipped-bundle target: macro AUC (the bundle's scoring) per site through `radz screen`."""
    import hashlib

    digest = hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest()[:12]
    result = screen_sites(work, bundle, work / "screen" / f"bundle-{digest}", log)
    macros = {site: result[site]["anchor"]["macro"] for site in SITES}
    manifest = json.loads((bundle / "manifest.json").read_text())
    summary = {
        "bundle": str(bundle.resolve().relative_to(ROOT)) if bundle.resolve().is_relative_to(ROOT) else str(bundle),
        "model_source": manifest.get("model", {}).get("source"),
        "manifest_sha256_12": digest,
        "macro_auc": macros,
        "screened": {site: {"n": result[site]["n"], "failed": result[site]["failed"]} for site in SITES},
        "gap_in_site_minus_worst_unseen": macros["site_a"] - min(macros["site_b"], macros["site_c"]),
        "targets_met": macros["site_a"] >= 0.88 and min(macros["site_b"], macros["site_c"]) >= 0.85,
        "per_class": {site: result[site]["anchor"]["per_class"] for site in SITES},
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "per_class"}, indent=1))
    return summary


def commit() -> str:
    """The code that trained and evaluated: RADZ_STUDY_COMMIT when the study runs from a frozen copy."""
    if os.environ.get("RADZ_STUDY_COMMIT"):
        return os.environ["RADZ_STUDY_COMMIT"]
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()  # fmt: skip
    except OSError:
        return ""


def record_run(work: Path, variant: str, seed: int, s: dict, threads: int, facts: dict, log: Path) -> dict:
    name = f"{variant}-s{seed}"
    png = {site: eval_png(work, name, site, log) for site in SITES}
    dicom = eval_dicom(work, name, log)
    train_config_path = work / "runs" / name / "train_config.json"
    base = None
    if variant in FINETUNE:  # the exact model it started from, for a paired comparison
        base_name = f"{FINETUNE[variant][0]}-s{seed}"
        started = facts.get("base_sha256")
        if started and started != weights_digest(work / "runs" / base_name / "final"):
            sys.exit(
                f"{name}: its base {base_name} was retrained after it; move {work / 'runs' / name} away to redo it"
            )
        base_png = {site: eval_png(work, base_name, site, log) for site in SITES}
        base = {"run": base_name, "png": base_png, "dicom_screen": eval_dicom(work, base_name, log)}
    record = {
        "variant": variant,
        "seed": seed,
        "description": VARIANTS[variant][0],
        "schedule": schedule(s),
        "threads": threads,
        "train_config": json.loads(train_config_path.read_text()) if train_config_path.exists() else None,
        "train": facts,
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "code_commit": commit(),
        "png": png,
        "dicom_screen": dicom,
    }
    if base:
        record["base"] = base
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--work", type=Path, default=None, help="default: /tmp/radz_results (quick: /tmp/radz_results_quick)"
    )
    parser.add_argument("--variants", default="main", help=f"comma-separated, 'ablations' or 'all' ({', '.join(VARIANTS)})")  # fmt: skip
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated training seeds (default: 1,2,3)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="CI-sized: tiny data and 12 steps (numbers mean nothing)")
    parser.add_argument("--train-only", action="store_true", help="train the runs, evaluate and record nothing")
    parser.add_argument(
        "--record-dir", type=Path, default=None, help="default: docs/results/runs (quick: WORK/records)"
    )
    parser.add_argument("--check-bundle", type=Path, help="only screen the DICOM test sets with this bundle (targets)")
    parser.add_argument(
        "--doc", type=Path, default=None, help="default: docs/RESULTS_ROBUSTNESS.md (quick: WORK/RESULTS.md)"
    )
    args = parser.parse_args()
    s = dict(QUICK if args.quick else FULL)
    # absolute: the configs written under WORK name paths that must not resolve against WORK/configs
    args.work = (args.work or Path("/tmp/radz_results_quick" if args.quick else "/tmp/radz_results")).resolve()
    record_dir = args.record_dir or (args.work / "records" if args.quick else ROOT / "docs" / "results" / "runs")
    doc = args.doc or (args.work / "RESULTS.md" if args.quick else ROOT / "docs" / "RESULTS_ROBUSTNESS.md")
    names = {"all": list(VARIANTS), "ablations": ["main", *ABLATIONS]}
    variants = names.get(args.variants) or [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"--variants: unknown {unknown}; known: {', '.join(VARIANTS)}")
    try:
        seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    except ValueError:
        parser.error(f"--seeds: comma-separated integers, got {args.seeds!r}")
    check_schedule(args.work, s)
    record_dir.mkdir(parents=True, exist_ok=True)
    log = args.work / "log.txt"
    if args.check_bundle:
        make_dicom_sets(args.work, s, log)
        summary = check_bundle(args.work, args.check_bundle, log)
        summary["schedule"] = schedule(s)
        checks = record_dir.parent / "bundle_checks"  # the report shows them beside the runs
        checks.mkdir(parents=True, exist_ok=True)
        (checks / f"{summary['manifest_sha256_12']}.json").write_text(json.dumps(summary, indent=1) + "\n")
        write_report(record_dir, doc, s, quick=args.quick)
        return
    make_data(args.work, s, variants, log)
    for seed in seeds:  # seed-major: a study cut short still has every variant at its first seeds
        for variant in variants:
            path = record_dir / f"{variant}-s{seed}.json"
            if path.exists() and json.loads(path.read_text()).get("schedule") == schedule(s):
                print(f"recorded already: {path}")
                continue
            facts = train(args.work, variant, seed, s, args.threads, log)
            if args.train_only:
                continue
            record = record_run(args.work, variant, seed, s, args.threads, facts, log)
            path.write_text(json.dumps(record, indent=1) + "\n")
            print(f"recorded {path}")
            write_report(record_dir, doc, s, quick=args.quick)  # partial studies land too
    if not args.train_only:
        write_report(record_dir, doc, s, quick=args.quick)


if __name__ == "__main__":
    main()
