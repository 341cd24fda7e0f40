"""Bundle threshold calibration: `radz eval --bundle B --csv C --calibrate --out B2` (torch-free)."""

from __future__ import annotations

import pytest

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def calibration_set(tmp_path_factory):
    from radz_train.data.synth_cli import main as synth

    folder = tmp_path_factory.mktemp("cal")
    assert synth(["--out", str(folder), "--n", "40", "--seed", "21", "--size", "128", "--no-progress"]) == 0
    return folder


def test_calibrate_writes_calibration_that_the_engine_applies(tmp_path, calibration_set):
    import numpy as np

    from radz_engine.bundle.default import default_bundle_path
    from radz_engine.bundle.loader import load_bundle
    from radz_engine.cli import main
    from radz_engine.runtime.engine import Engine
    from radz_engine.scoring.calibration import Calibration

    bundle = tmp_path / "bundle"  # a new bundle; the shipped one is never edited
    shipped = load_bundle().identity()
    csv = str(calibration_set / "labels.csv")
    args = ["eval", "--bundle", str(default_bundle_path()), "--csv", csv, "--calibrate", "--method", "platt"]
    assert main([*args, "--out", str(bundle)]) == 0
    assert load_bundle().identity() == shipped
    loaded = load_bundle(bundle)  # hashes valid in the copy
    # the shipped manifest names itself (its card's name), and a calibrated copy keeps that name
    assert loaded.manifest["calibrated_from"] == shipped and loaded.name == shipped["name"] == "default"
    assert loaded.content_hash != shipped["hash"]
    records = {c["name"]: c["calibration"] for c in loaded.classes}
    assert all(r["method"] == "platt" and r["mode"] == loaded.scoring_mode for r in records.values())
    assert any(r["threshold"] is not None for r in records.values())
    per_class = loaded.manifest["calibration"]["per_class"]
    assert loaded.manifest["calibration"]["n_images"] == 40
    # Fitted on these images, the calibrated probabilities are closer to the labels (Brier score).
    assert np.mean([r["brier"] for r in per_class.values()]) < np.mean([r["brier_raw"] for r in per_class.values()])

    images = [str(calibration_set / "images" / f"{i:07d}.png") for i in range(6)]
    with Engine(bundle) as engine:
        results = engine.classify(images)
        assert engine.scorer.backend in ("faiss", "numpy")
        raw = engine.scorer.raw_scores(np.stack([r.embedding for r in results]))
    for result, row in zip(results, raw):
        for j, name in enumerate(engine.class_names):
            cal = Calibration.from_dict({k: v for k, v in records[name].items() if k != "mode"})
            assert result.scores[name] == pytest.approx(float(cal.apply(row[j])), abs=1e-5)
        want = sorted(
            c for c, p in result.scores.items() if records[c]["threshold"] is not None and p >= records[c]["threshold"]
        )
        assert sorted(result.positives) == want
    # A calibration fitted for another scoring mode is not applied: raw scores come back, judged
    # against the default threshold (the bundle's thresholds belong to its own mode).
    with Engine(bundle, mode="softmax", threshold=0.3) as engine:
        assert set(engine.scorer.thresholds().values()) == {0.3}
        other = engine.classify(images[:1])[0]
        np.testing.assert_allclose(
            [other.scores[c] for c in engine.class_names], engine.scorer.raw_scores(other.embedding[None])[0], atol=1e-5
        )
        assert sorted(other.positives) == sorted(c for c, p in other.scores.items() if p >= 0.3)


def test_calibrated_scores_equal_with_and_without_the_faiss_index(tmp_path, calibration_set):
    import numpy as np

    from radz_engine import _core
    from radz_engine.bundle.default import default_bundle_path
    from radz_engine.bundle.loader import load_bundle
    from radz_engine.cli import main
    from radz_engine.scoring.class_scorer import ClassScorer

    if not getattr(_core, "HAVE_FAISS", False):
        pytest.skip("the extension was built without FAISS")
    bundle = tmp_path / "bundle"
    csv = str(calibration_set / "labels.csv")
    assert (
        main(["eval", "--bundle", str(default_bundle_path()), "--csv", csv, "--calibrate", "--out", str(bundle)]) == 0
    )
    loaded = load_bundle(bundle)
    x = np.random.default_rng(5).standard_normal((32, loaded.embedding_dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    fast, slow = ClassScorer(loaded), ClassScorer(loaded, use_index=False)
    assert fast.backend == "faiss" and slow.backend == "numpy"
    names_f, scores_f, pos_f = fast.score(x)
    names_s, scores_s, pos_s = slow.score(x)
    assert names_f == names_s
    np.testing.assert_allclose(scores_f, scores_s, atol=1e-5)
    assert (pos_f == pos_s).mean() > 0.99  # equal except exactly at a threshold


def test_eval_bundle_refuses_in_place_calibration_and_writes_metrics(tmp_path, calibration_set, capsys):
    """--calibrate without --out, or with --out the bundle itself, is refused before any work;
    without --calibrate, --out gets metrics.json + metrics.md naming the bundle."""
    import json

    from radz_engine.bundle.default import default_bundle_path
    from radz_engine.cli import main

    shipped = str(default_bundle_path())
    csv = str(calibration_set / "labels.csv")
    assert main(["eval", "--bundle", shipped, "--csv", csv, "--calibrate"]) == 2
    assert "give --out NEW_BUNDLE_FOLDER" in capsys.readouterr().err
    assert main(["eval", "--bundle", shipped, "--csv", csv, "--calibrate", "--out", shipped]) == 2
    assert "is the bundle itself" in capsys.readouterr().err
    assert main(["eval", "--bundle", shipped, "--csv", csv, "--out", str(tmp_path / "m")]) == 0
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["bundle"]["name"] == "default" and metrics["n_images"] == 40
    assert "cardiomegaly" in (tmp_path / "m" / "metrics.md").read_text()


def test_calibrate_reports_bad_csv(tmp_path):
    from radz_engine.bundle.default import default_bundle_path
    from radz_engine.cli import main

    (tmp_path / "x.csv").write_text("path,cardiomegaly\nimg.png,1\n")
    assert main(["eval", "--bundle", str(default_bundle_path()), "--csv", str(tmp_path / "x.csv")]) == 2


def test_calibrate_method_none_keeps_scores_and_fits_thresholds(tmp_path, calibration_set):
    import numpy as np

    from radz_engine.bundle.default import default_bundle_path
    from radz_engine.cli import main
    from radz_engine.runtime.engine import Engine

    bundle = tmp_path / "bundle"
    csv = str(calibration_set / "labels.csv")
    args = ["eval", "--bundle", str(default_bundle_path()), "--csv", csv, "--calibrate", "--method", "none"]
    assert main([*args, "--out", str(bundle)]) == 0
    with Engine(bundle) as engine:
        result = engine.classify([str(calibration_set / "images" / "0000003.png")])[0]
        raw = engine.scorer.raw_scores(result.embedding[None])[0]
    np.testing.assert_allclose([result.scores[c] for c in engine.class_names], raw, atol=1e-5)
    with pytest.raises(SystemExit) as exit_info:  # scores are probabilities: no temperature scaling
        main(["eval", "--bundle", str(bundle), "--csv", csv, "--calibrate", "--method", "temperature", "--out", "x"])
    assert exit_info.value.code == 2
