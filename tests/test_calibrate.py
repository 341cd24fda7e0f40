"""Bundle threshold calibration: `radz eval --bundle B --csv C --calibrate` (torch-free)."""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("onnxruntime")


def test_calibrate_writes_thresholds_that_the_engine_uses(tmp_path):
    from radz_engine.bundle import load_bundle
    from radz_engine.cli import main
    from radz_engine.default_bundle import default_bundle_path
    from radz_engine.engine import Engine
    from radz_train.data.synth_cli import main as synth

    bundle = tmp_path / "bundle"
    shutil.copytree(default_bundle_path(), bundle)
    assert synth(["--out", str(tmp_path / "cal"), "--n", "40", "--seed", "21", "--size", "128", "--no-progress"]) == 0
    assert main(["eval", "--bundle", str(bundle), "--csv", str(tmp_path / "cal" / "labels.csv"), "--calibrate"]) == 0
    loaded = load_bundle(bundle)  # hashes still valid after the rewrite
    thresholds = {c["name"]: c["threshold"] for c in loaded.classes}
    assert all(t is None or 0.0 <= t <= 1.0 for t in thresholds.values())
    assert any(t is not None for t in thresholds.values())
    assert loaded.manifest["calibration"]["n_images"] == 40
    with Engine(bundle) as engine:
        result = engine.classify([str(tmp_path / "cal" / "images" / "0000000.png")])[0]
    effective = {c: 0.5 if t is None else t for c, t in thresholds.items()}  # null: the Engine's default
    want = sorted(c for c, p in result.scores.items() if p >= effective[c])
    assert sorted(result.positives) == want


def test_calibrate_reports_bad_csv(tmp_path):
    from radz_engine.cli import main
    from radz_engine.default_bundle import default_bundle_path

    (tmp_path / "x.csv").write_text("path,cardiomegaly\nimg.png,1\n")
    assert main(["eval", "--bundle", str(default_bundle_path()), "--csv", str(tmp_path / "x.csv")]) == 2
