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
            "--dicom-size",
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
