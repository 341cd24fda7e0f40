"""radz bench (throughput side by side with PyTorch eager, multi-device scaling), on the CPU.

Performance is never asserted here: only that the measurements run, the report holds what it
promises (sides, percentiles, FLOPs, fraction of peak, ratios, memory) and the outputs exist.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")


def _run(tmp_path, *args) -> tuple[int, dict]:
    from radz_bench.cli import main

    out = tmp_path / "bench"
    rc = main([*args, "--out", str(out), "--quiet"])
    report = json.loads(out.with_suffix(".json").read_text()) if out.with_suffix(".json").exists() else {}
    return rc, report


def test_default_bundle_cpu_side_by_side(tmp_path, capsys):
    rc, report = _run(
        tmp_path,
        "--device",
        "cpu",
        "--batch",
        "1,2",
        "--precision",
        "fp32",
        "--reference",
        "random",
        "--repeats",
        "3",
        "--rounds",
        "1",
        "--warmup",
        "1",
        "--threads",
        "1",
        "--peak-size",
        "256",
    )
    assert rc == 0
    sides = {(r["phase"], r["side"]) for r in report["rows"]}
    assert {("model", "eager"), ("model", "onnxruntime-cpu"), ("e2e", "eager"), ("e2e", "onnxruntime-cpu")} <= sides
    assert len(report["rows"]) == 8  # 2 phases x 2 sides x 2 batches
    for row in report["rows"]:
        assert row["n"] >= 3 and row["median_ms"] > 0 and row["p99_ms"] >= row["median_ms"]
        assert row["images_per_s"] > 0 and row["tflops"] > 0 and row["fraction_of_peak"] > 0
        assert row["vs_eager"] is not None and row["memory"]["rss_peak_mib"] > 0
    assert all(r["vs_eager"] == 1.0 for r in report["rows"] if r["kind"] == "reference")
    assert report["peak"]["fp32"]["tflops"] > 0
    assert report["model"]["name"] == "tiny" and report["model"]["gflops_per_image_needed"] > 0
    assert "random weights" in report["model"]["reference_weights"]
    printed = capsys.readouterr().out
    assert "| phase | precision | batch | side |" in printed and "onnxruntime-cpu" in printed
    assert (tmp_path / "bench.md").exists() and (tmp_path / "bench.png").stat().st_size > 1000


def test_preset_mode_torch_backend_without_bundle(tmp_path):
    rc, report = _run(
        tmp_path,
        "--preset",
        "tiny",
        "--backend",
        "torch",
        "--device",
        "cpu",
        "--batch",
        "2",
        "--repeats",
        "3",
        "--rounds",
        "1",
        "--warmup",
        "1",
        "--threads",
        "1",
        "--peak-size",
        "256",
    )
    assert rc == 0
    assert {r["side"] for r in report["rows"]} == {"eager", "torch"}
    assert all(r["phase"] == "model" for r in report["rows"])  # no bundle: no Engine.classify phase
    assert "random weights of preset 'tiny'" in report["model"]["reference_weights"]


def test_unsupported_combination_is_skipped_with_reason(tmp_path):
    rc, report = _run(
        tmp_path,
        "--device",
        "cpu",
        "--batch",
        "1",
        "--precision",
        "bf16",
        "--reference",
        "none",
        "--repeats",
        "3",
        "--rounds",
        "1",
        "--warmup",
        "1",
        "--threads",
        "1",
        "--peak-size",
        "128",
        "--no-e2e",
    )
    assert rc == 0
    assert report["rows"] == []
    assert any("no bf16 graph" in s["reason"] for s in report["skipped"])


def test_cuda_requested_without_cuda_fails_clearly(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    rc, _ = _run(tmp_path, "--device", "cuda:0", "--batch", "1")
    assert rc == 2
    assert "sees no CUDA device" in capsys.readouterr().err


def test_bad_arguments_fail_clearly(tmp_path, capsys):
    rc, _ = _run(tmp_path, "--preset", "tiny", "--backend", "onnxruntime")
    assert rc == 2 and "only torch backends" in capsys.readouterr().err
    rc, _ = _run(tmp_path, "--device", "cuda:0,cpu")
    assert rc == 2 and "several GPUs" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--backend"):
        from radz_bench.throughput import parse_backend

        parse_backend("tensorflow")


def test_reference_checkpoint_mode_needs_a_checkpoint(tmp_path):
    from radz_bench.models import load_reference_model

    class NoCheckpoint:
        path = tmp_path
        manifest = {"model": {"source": str(tmp_path / "gone")}}

    with pytest.raises(FileNotFoundError, match="--checkpoint DIR"):
        load_reference_model(NoCheckpoint(), allow_random=False)
    with pytest.raises(FileNotFoundError, match="not a `radz train` checkpoint"):
        load_reference_model(NoCheckpoint(), checkpoint=tmp_path)


def test_scaling_over_a_device_list():
    """Engine(device=[...]): one replica per device on one queue; on the CPU two ORT replicas."""
    from radz_bench.scaling import run_scaling
    from radz_engine.bundle.default import default_bundle_path

    result = run_scaling(default_bundle_path(), ["cpu", "cpu"], batch=8, images=48, submitters=2)
    assert [r["devices"] for r in result["rows"]] == [["cpu"], ["cpu", "cpu"]]
    assert result["rows"][0]["speedup"] == 1.0 and all(r["images_per_s"] > 0 for r in result["rows"])


def test_scaling_reports_an_engine_without_device_lists():
    from radz_bench.scaling import MultiDeviceUnsupported, open_engine

    def old_engine(bundle, device="cpu", **kwargs):
        if not isinstance(device, str):
            raise ValueError(f"device: must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
        return object()

    with pytest.raises(MultiDeviceUnsupported, match="one device per invocation"):
        open_engine(old_engine, "b", ["cuda:0", "cuda:1"])
    assert open_engine(old_engine, "b", ["cuda:0"]) is not None


def test_stats_helpers():
    from radz_bench.stats import summarize, within

    s = summarize([0.001, 0.002, 0.003])
    assert s["n"] == 3 and s["median_ms"] == pytest.approx(2.0)
    assert within([10.0, 10.5, 9.6], 0.10) and not within([10.0, 13.0, 10.0], 0.10)
    assert not within([], 0.1) and not within([1.0, None], 0.1)
