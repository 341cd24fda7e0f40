"""benchmarks/zero_shot_results.py (the robustness study) and zero_shot_report.py: the report's
mean +- sd and verdicts from records, the screen-output AUC against labels, and one --quick run
through the real commands (synth, train, eval, export, screen)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import zero_shot_report as report  # noqa: E402  (a benchmarks script)
import zero_shot_results as study  # noqa: E402

SCHEDULE = study.schedule(study.FULL)


def _record(variant: str, seed: int, anchor: dict[str, float], schedule: dict = SCHEDULE) -> dict:
    """A record whose every class AUC at a site equals that site's macro."""

    def block(value: float) -> dict:
        return {"macro": value, "per_class": {c: value for c in report.FINDINGS}}

    png = {site: {mode: block(anchor[site]) for mode in report.MODES} for site in report.SITES}
    dicom = {site: {"anchor": block(anchor[site] - 0.01), "n": 10, "failed": 0} for site in report.SITES}
    return {
        "variant": variant,
        "seed": seed,
        "schedule": schedule,
        "threads": 1,
        "train": {
            "wall_s": 600.0,
            "samples_per_s_median": 40.0,
            "load_average_start": [1.0],
            "load_average_end": [1.5],
        },
        "png": png,
        "dicom_screen": dicom,
    }


def _write(records_dir: Path, record: dict) -> None:
    records_dir.mkdir(parents=True, exist_ok=True)
    (records_dir / f"{record['variant']}-s{record['seed']}.json").write_text(json.dumps(record))


def test_report_gives_mean_sd_and_judges_ablations_by_their_standard_error(tmp_path):
    records = tmp_path / "runs"
    for seed, a in zip((1, 2, 3), (0.80, 0.82, 0.84)):
        _write(records, _record("main", seed, {"site_a": a, "site_b": 0.75, "site_c": 0.73 + seed / 100}))
    for seed in (1, 2):  # clearly worse on the unseen sites
        _write(records, _record("no_augment", seed, {"site_a": 0.82, "site_b": 0.60 + seed / 100, "site_c": 0.62}))
    for seed in (1, 2):  # within noise
        _write(records, _record("dfat_only", seed, {"site_a": 0.82, "site_b": 0.75, "site_c": 0.73 + seed / 100}))
    # another schedule: never mixed in
    _write(records, _record("uncrossed", 1, {"site_a": 0.9, "site_b": 0.9, "site_c": 0.9}, {**SCHEDULE, "steps": 500}))
    checks = tmp_path / "bundle_checks"
    checks.mkdir()
    check = {"bundle": "b", "manifest_sha256_12": "abc", "model_source": "runs/main-s1/final", "schedule": SCHEDULE,
             "macro_auc": {"site_a": 0.91, "site_b": 0.86, "site_c": 0.84}, "gap_in_site_minus_worst_unseen": 0.06,
             "targets_met": False, "screened": {s: {"n": 400, "failed": 0} for s in report.SITES}}  # fmt: skip
    (checks / "abc.json").write_text(json.dumps(check))
    doc = tmp_path / "RESULTS.md"
    report.write_report(records, doc, SCHEDULE)
    text = doc.read_text()
    assert "| `b` (abc) | `runs/main-s1/final` | 91.00 | 86.00 | 84.00 | 6.00 | 400/0 / 400/0 / 400/0 | no |" in text
    assert "## Main variant: 3 seed(s) (1, 2, 3)" in text
    row = next(line for line in text.splitlines() if line.startswith("| anchor, 256-px PNG"))
    assert "| 82.00 +- 2.00 | 75.00 +- 0.00 | 75.00 +- 1.00 |" in row
    assert "512-px DICOM" in text and "| 81.00 +- 2.00 |" in text  # DICOM blocks sit 0.01 lower
    no_aug = next(line for line in text.splitlines() if line.startswith("| without acquisition-shift"))
    assert "| -13.25 +- 0.38 (worse) |" in no_aug and no_aug.count("|") == 8  # Welch standard error
    dfat = next(line for line in text.splitlines() if line.startswith("| DFAT alone"))
    assert "(within noise)" in dfat
    assert "uncrossed" not in text and "90.00" not in text
    assert "| main-s2 | 10.0 | 40.0 | 1.0 -> 1.5 | 1 |" in text


def test_report_pairs_each_fine_tuned_run_with_the_model_it_started_from(tmp_path):
    records = tmp_path / "runs"
    for seed in (1, 2):
        _write(records, _record("main", seed, {"site_a": 0.8, "site_b": 0.75, "site_c": 0.7 + seed / 100}))
    for seed, (a, c) in zip((1, 2, 3), ((0.88, 0.80), (0.86, 0.82), (0.90, 0.79))):
        base = _record("no_augment", seed, {"site_a": a, "site_b": 0.86, "site_c": c})
        tuned = _record("field_of_view_finetune", seed, {"site_a": a + 0.005, "site_b": 0.86, "site_c": c + 0.05 + seed / 1000})  # fmt: skip
        tuned["base"] = {"run": f"no_augment-s{seed}", "png": base["png"], "dicom_screen": base["dicom_screen"]}
        _write(records, tuned)
    doc = tmp_path / "RESULTS.md"
    report.write_report(records, doc, SCHEDULE)
    text = doc.read_text()
    assert "## Fine-tuning, paired with the model it started from" in text
    row = next(line for line in text.splitlines() if line.startswith("| no_augment's model of the same seed"))
    assert "| 3 | no_augment-s1, no_augment-s2, no_augment-s3 |" in row
    # site_a +0.5 exactly every seed: sd 0 -> judged; site_b unchanged; site_c +5.2 +- 0.1
    assert row.endswith("| +0.50 +- 0.00 (better) | +0.00 +- 0.00 (within noise) | +5.20 +- 0.10 (better) |")
    assert "| main-s" not in by_heading(text, "## Fine-tuning")
    ablations = by_heading(text, "## Ablations")
    assert "| DFAT + DKAM" in ablations and "no_augment's model" not in ablations  # fine-tunes: own section


def by_heading(text: str, heading: str) -> str:
    """The section of a markdown text under `heading`, up to the next heading."""
    part = text.split(heading, 1)[1]
    return part.split("\n## ", 1)[0]


def test_report_with_no_records_says_so(tmp_path):
    doc = tmp_path / "RESULTS.md"
    report.write_report(tmp_path / "none", doc, SCHEDULE)
    assert "No runs recorded at this schedule yet." in doc.read_text()


def test_screen_auc_joins_results_to_labels_by_path(tmp_path):
    rng = np.random.default_rng(7)
    (tmp_path / "images").mkdir()
    labels = rng.integers(0, 2, size=(40, len(report.FINDINGS)))
    labels[0], labels[1] = 0, 1  # both classes present everywhere
    with (tmp_path / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", *report.FINDINGS])
        for i, row in enumerate(labels):
            writer.writerow([f"images/{i:03d}.dcm", *row])
    results = tmp_path / "results.csv"
    with results.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["source", "ok", *[f"score_{c}" for c in report.FINDINGS]])
        for i in reversed(range(40)):  # order must not matter
            # class 0 scored perfectly, the others by the label of class 0 (chance-level-ish)
            scores = [labels[i, 0] + rng.random() * 0.1] + [rng.random() for _ in report.FINDINGS[1:]]
            writer.writerow([str(tmp_path / "images" / f"{i:03d}.dcm"), "True", *scores])
        writer.writerow([str(tmp_path / "images" / "broken.dcm"), "False", *[""] * len(report.FINDINGS)])
    got = study.screen_auc(results, tmp_path / "labels.csv")
    assert got["n"] == 40 and got["failed"] == 1
    assert got["anchor"]["per_class"][report.FINDINGS[0]] == 1.0
    others = [got["anchor"]["per_class"][c] for c in report.FINDINGS[1:]]
    assert all(0.0 <= v <= 1.0 for v in others)
    assert got["anchor"]["macro"] == pytest.approx(np.mean([1.0, *others]))


def test_a_work_folder_keeps_one_schedule(tmp_path):
    study.check_schedule(tmp_path, study.QUICK)
    study.check_schedule(tmp_path, study.QUICK)  # the same schedule again: fine
    with pytest.raises(SystemExit, match="holds data and runs made at another schedule"):
        study.check_schedule(tmp_path, study.FULL)


def test_study_refuses_unknown_variants_and_bad_seeds(tmp_path):
    script = ROOT / "benchmarks" / "zero_shot_results.py"
    done = subprocess.run([sys.executable, str(script), "--work", str(tmp_path), "--variants", "main,bogus"], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and "--variants: unknown ['bogus']" in done.stderr
    done = subprocess.run([sys.executable, str(script), "--work", str(tmp_path), "--seeds", "1,x"], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and "--seeds: comma-separated integers" in done.stderr


@pytest.mark.slow
def test_quick_study_runs_every_step_and_records_the_run(tmp_path):
    script = ROOT / "benchmarks" / "zero_shot_results.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(script), "--quick", "--work", str(tmp_path), "--variants", "main", "--seeds", "1"]
    done = subprocess.run(cmd + ["--threads", "1"], capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    record = json.loads((tmp_path / "records" / "main-s1.json").read_text())
    assert record["schedule"] == study.schedule(study.QUICK) and record["train"]["wall_s"] > 0
    for site in report.SITES:
        for mode in report.MODES:
            assert 0.0 <= record["png"][site][mode]["macro"] <= 1.0
        screened = record["dicom_screen"][site]
        assert screened["n"] == study.QUICK["n_dicom"] and screened["failed"] == 0
        assert 0.0 <= screened["anchor"]["macro"] <= 1.0
    text = (tmp_path / "RESULTS.md").read_text()
    assert "Quick mode (CI)" in text and "| main-s1 |" in text
    # a second invocation finds the record and redoes nothing
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0 and "recorded already" in again.stdout


@pytest.mark.slow
def test_quick_fine_tune_records_its_base_and_refuses_a_retrained_base(tmp_path):
    script = ROOT / "benchmarks" / "zero_shot_results.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(script), "--quick", "--work", str(tmp_path), "--variants", "field_of_view_finetune"]
    cmd += ["--seeds", "1", "--threads", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    record = json.loads((tmp_path / "records" / "field_of_view_finetune-s1.json").read_text())
    assert record["train_config"]["init_from"] == str(tmp_path / "runs" / "no_augment-s1" / "final")
    assert record["base"]["run"] == "no_augment-s1" and record["train"]["base_wall_s"] > 0
    for site in report.SITES:
        assert 0.0 <= record["base"]["dicom_screen"][site]["anchor"]["macro"] <= 1.0
    assert "## Fine-tuning, paired" in (tmp_path / "RESULTS.md").read_text()
    # the base replaced after the fine-tune started from it: recording the pair again is refused
    weights = tmp_path / "runs" / "no_augment-s1" / "final" / "model.safetensors"
    weights.write_bytes(weights.read_bytes() + b" ")
    (tmp_path / "records" / "field_of_view_finetune-s1.json").unlink()
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode != 0 and "its base no_augment-s1 was retrained after it" in again.stderr


def test_paired_changes_are_judged_by_a_t_test():
    assert report.paired([0.01, 0.005]) == "+0.75 +- 0.35 (within noise)"  # t = 3: not enough at 1 df
    assert report.paired([0.050, 0.052, 0.051]) == "+5.10 +- 0.10 (better)"
    assert report.paired([-0.02, float("nan"), -0.021, -0.019]) == "-2.00 +- 0.10 (worse)"
    assert report.paired([0.01]) == "+1.00 (1 run)" and report.paired([float("nan")]) == "n/a"


def test_fine_tune_variant_starts_from_its_base_run_at_a_third_of_the_steps(tmp_path):
    config = study.train_config(tmp_path, "field_of_view_finetune", 2, study.FULL, threads=1)
    base, fraction, factor = study.FINETUNE["field_of_view_finetune"]
    assert config["init_from"] == str(tmp_path / "runs" / f"{base}-s2" / "final")
    assert config["max_steps"] == round(study.FULL["steps"] * fraction) == 417
    assert set(config["learning_rates"].values()) == {study.FULL["lr"] * factor}
    assert config["augment_probabilities"]["field_of_view"] == 0.5
    assert sum(config["augment_probabilities"].values()) == 0.5  # every other shift off
    control = study.train_config(tmp_path, "no_augment_finetune", 2, study.FULL, threads=1)
    assert control["augment"] is False and {
        k: v for k, v in control.items() if k not in ("augment", "out_dir", "augment_probabilities")
    } == {k: v for k, v in config.items() if k not in ("augment", "out_dir", "augment_probabilities")}
    plain = study.train_config(tmp_path, "no_augment", 2, study.FULL, threads=1)
    assert "init_from" not in plain and plain["max_steps"] == study.FULL["steps"]
