"""`radz demo`, the README's main job, end to end on a small study set (torch not needed)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("pydicom")


def test_demo_screens_a_phantom_dicom_set_and_writes_a_report(tmp_path):
    from radz_engine.cli import main

    code = main(
        [
            "demo",
            "--out",
            str(tmp_path),
            "--n",
            "24",
            "--size",
            "128",
            "--workers",
            "1",
            "--latency-requests",
            "5",
        ]
    )
    assert code == 0
    summary = json.loads((tmp_path / "demo_summary.json").read_text())
    assert summary["files"] == 24 and summary["failed"] == []
    assert 0.0 <= summary["macro_auc"] <= 1.0
    assert summary["screen_images_per_s"] > 0 and summary["submit_latency_ms"]["p99"] > 0
    report = (tmp_path / "report.html").read_text()
    assert "Zero-shot AUC per class" in report and report.count("class='ex'") == 12
    assert "data:image/png;base64," in report
    for section in ("Model card", "Operating point", "Reliability (calibration)", "Worst misses", "Notice."):
        assert section in report, section
    assert "trained on synthetic phantom radiographs only" in report and "hash " in report
    # The model card is the bundle's card (issue 18): intended use, its notice, limitations, licence.
    for text in ("research: research use only", "model trained on synthetic data", "never seen a real radiograph"):
        assert text in report, text
    from radz_engine.bundle.loader import load_bundle

    anchor = load_bundle().manifest["card"]["evaluation"]["metrics"]["macro_auc"]["anchor"]
    assert "Apache-2.0" in report and f"anchor {anchor}" in report  # the card's evaluation
    assert "<svg" in report and "<script" not in report
    # Issue 16: each example with its three nearest other images and their confirmed findings.
    assert report.count("class='nbs'") == 12 and report.count("class='nb'") == 36
    similar = summary["similar_cases"]
    assert similar["images"] == 24 and 0.0 <= similar["share"] <= 1.0 and 0.0 <= similar["same"] <= 1.0
    from radz_engine.retrieval import open_index

    index = open_index(tmp_path / "similar_index")
    assert index.size == 24 and index.row(0)["findings_from"] == "labels"
    _open_in_chromium(tmp_path / "report.html", tmp_path / "report.png")


def _open_in_chromium(report, screenshot):
    """Headless Chromium renders the report: a screenshot, and no console errors."""
    import shutil
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no Chromium here (apt-get install chromium)")
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0"]
    done = subprocess.run(
        [*common, f"--screenshot={screenshot}", "--window-size=1200,4000", report.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert screenshot.is_file() and screenshot.stat().st_size > 10_000, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    import numpy as np
    from PIL import Image

    with Image.open(screenshot) as image:
        assert image.size == (1200, 4000) and np.unique(np.asarray(image.convert("L"))).size > 16  # not blank


def test_operating_points_hand_computed():
    """Counts, rates and AUC on a case small enough to check by hand; intervals bracket them."""
    import numpy as np

    from radz_engine.cli.demo_report import operating_points, reliability

    labels = np.array([[1], [1], [1], [0], [0], [0], [0], [np.nan]], dtype=float)
    scores = np.array([[0.9], [0.6], [0.2], [0.7], [0.1], [0.3], [0.05], [0.99]])
    (row,) = operating_points(labels, scores, ["a"], {"a": 0.5}, rounds=200)
    assert (row["tp"], row["fp"], row["fn"], row["tn"]) == (2, 1, 1, 3)
    assert row["sensitivity"] == pytest.approx(2 / 3) and row["specificity"] == pytest.approx(3 / 4)
    assert row["ppv"] == pytest.approx(2 / 3) and row["npv"] == pytest.approx(3 / 4)
    assert row["auc"] == pytest.approx(9 / 12)  # (positive, negative) pairs ranked right: 4 + 3 + 2 of 12
    low, high = row["auc_ci"]
    assert 0 <= low <= row["auc"] <= high <= 1
    (never,) = operating_points(labels, scores, ["a"], {"a": None}, rounds=50)
    assert never["tp"] == 0 and never["fn"] == 3
    from radz_engine.cli.demo_report import _auc
    from radz_engine.scoring.metrics import binary_auc

    rng = np.random.default_rng(1)  # ties included: the same AUC as the runtime's metric
    y, s = (rng.random(300) < 0.2).astype(float), np.round(rng.random(300), 1)
    assert _auc(y, s) == pytest.approx(binary_auc(y, s), abs=1e-12)
    bins = reliability(labels, scores, bins=2)
    assert sum(b["n"] for b in bins) == 7 and bins[0]["observed"] == pytest.approx(1 / 4)
