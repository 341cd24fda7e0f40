"""benchmarks/gpu_check.sh and benchmarks/gpu_paths_check.py, the prepared GPU checks, on the CPU:
the script parses, the paths check refuses bad arguments clearly, and its engine / screen / serve
steps pass with --device cpu on a carry folder laid out as scripts/prepare_gpu_carry.sh writes it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "benchmarks" / "gpu_paths_check.py"


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    # The installed package, as CI has it: the source tree holds no built extension there.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(CHECK), *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
    )


def test_gpu_check_script_parses_and_names_its_steps():
    assert subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / "gpu_check.sh")]).returncode == 0
    text = (ROOT / "benchmarks" / "gpu_check.sh").read_text()
    for step in ("build", "paths", "small_bf16", "small_cudagraphs", "paper_bf16", "cpu_default"):
        assert f"step {step} " in text
    assert "--no-index --no-deps" in text and "gpu_paths_check.py" in text


def test_paths_check_refuses_bad_arguments(tmp_path):
    done = _run("--carry", str(tmp_path / "nope"), "--out", str(tmp_path / "out"), timeout=60)
    assert done.returncode != 0 and "no model/bundle (run scripts/prepare_gpu_carry.sh)" in done.stderr
    done = _run("--steps", "engine,bogus", "--out", str(tmp_path / "out"), timeout=60)
    assert done.returncode == 2 and "--steps: unknown ['bogus']" in done.stderr


@pytest.fixture(scope="module")
def carry(tmp_path_factory, tiny_export_model, tiny_bundle):
    """A carry folder like prepare_gpu_carry.sh's, from the tiny test model (32x32 input) and its
    bundle (the session's)."""
    pytest.importorskip("onnxruntime")
    from PIL import Image

    from radz_train.data.phantom import generate_cases
    from radz_train.training.checkpoint import save_checkpoint
    from serve_peers import phantom_dicoms

    root = tmp_path_factory.mktemp("gpu_carry")
    save_checkpoint(root / "model" / "checkpoint", tiny_export_model, {}, step=0)
    shutil.copytree(tiny_bundle[0], root / "model" / "bundle")
    png = root / "images" / "png"
    png.mkdir(parents=True)
    for case in generate_cases(4, seed=4, size=48):
        Image.fromarray((case.image * 255).clip(0, 255).astype("uint8")).save(png / f"{case.index:03d}.png")
    phantom_dicoms(root / "images" / "dicom", 2, seed=5)
    return root


@pytest.mark.slow  # three engines, 200+ images and a `radz serve` subprocess: ~30 s here
def test_paths_check_passes_on_the_cpu(carry, tmp_path):
    out = tmp_path / "out"
    done = _run("--device", "cpu", "--carry", str(carry), "--out", str(out), "--screen-images", "24")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert {name: step["status"] for name, step in summary["steps"].items()} == {
        "engine": "ok",
        "screen": "ok",
        "serve": "ok",
    }
    engine = json.loads((out / "engine.json").read_text())
    assert engine["vs_cpu_torch"]["embedding_max_abs"] == 0.0  # the same device: the same numbers
    assert engine["vs_onnxruntime_cpu"]["embedding_max_abs"] < 1e-4
    assert engine["submit_vs_classify_max_abs"] <= 1e-6
    serve = json.loads((out / "serve.json").read_text())
    assert serve["c_store_statuses"] == [0, 0] and serve["srs_checked"] == 2 and serve["server_rc"] == 0
    assert json.loads((out / "screen.json").read_text())["results"] == 24
    assert "| serve | ok |" in (out / "paths.md").read_text()
