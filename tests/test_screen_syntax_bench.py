"""benchmarks/screen_syntax_bench.py, small: 2 phantoms of 2 lossless syntaxes at 256 px, 1 round.
The JSON's structure, radz's scores equal to the pydicom loop's, and its refusals. Runs the
installed radz_engine (sys.executable), as CI has it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "screen_syntax_bench.py"
STAGES = {"decode", "preprocess", "queue", "model", "score"}


def _run(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout)


def test_screen_syntax_bench_small_run(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("pydicom")
    work, out = tmp_path / "work", tmp_path / "bench.json"
    common = ("--work", str(work), "--syntaxes", "explicit-le,rle", "--dicom-size", "256")
    done = _run(*common, "--n", "2", "--rounds", "1", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert (result["n"], result["rounds"], result["dicom_size"]) == (2, 1, 256)
    assert list(result["syntaxes"]) == ["explicit-le", "rle"]
    for name, row in result["syntaxes"].items():
        assert row["lossless"] is True and row["files"] == 2 and row["mb_per_file"] > 0
        assert row["loop_unavailable"] is None, row["loop_unavailable"]
        assert len(row["radz_rounds"]) == len(row["loop_rounds"]) == 1
        assert row["radz_images_per_s"] > 0 and row["loop_images_per_s"] > 0
        assert row["ratio"] == pytest.approx(row["radz_images_per_s"] / row["loop_images_per_s"], rel=0.02, abs=0.002)
        assert row["max_score_diff"] < 1e-3, (name, row["max_score_diff"])
        stages = row["stage_ms_per_image"]
        assert set(stages) == STAGES and stages["decode"] > 0 and stages["model"] > 0 and stages["queue"] == 0
        assert row["write_ms_per_image"] > 0
        assert f"| {name} | " in done.stdout
    assert len(list((work / "rle" / "images").glob("*.dcm"))) == 2

    # Phantoms already in WORK are reused only when they match --n and --dicom-size.
    done = _run(*common, "--n", "3", "--rounds", "1")
    assert done.returncode != 0 and "holds 2 files of 256 px, not 3 of 256: use another --work folder" in done.stderr


def test_screen_syntax_bench_refuses_unknown_syntax(tmp_path):
    done = _run("--work", str(tmp_path), "--syntaxes", "rle,bogus", timeout=60)
    assert done.returncode == 2 and "--syntaxes: unknown ['bogus']" in done.stderr
