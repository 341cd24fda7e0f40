"""radz_export: ONNX export of the encoders, parity checks (and that they fail on a broken
graph), fp16, dynamic batch and length, Mistral + LoRA, external data, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from radz_export import parity  # noqa: E402
from radz_export.parity import ExportParityError  # noqa: E402


def test_bundle_export_passes_every_parity_check(tiny_bundle):
    out, report = tiny_bundle
    rows = report.rows
    assert rows and all(r.passed for r in rows)
    fp32 = [r for r in rows if r.what == "image fp32"]
    # batch 1, 32 and 7 (never seen at export), on random and phantom inputs
    assert sorted((r.inputs, r.batch) for r in fp32) == sorted(
        (k, b) for k in ("random", "phantom") for b in (1, 32, 7)
    )
    assert max(r.max_abs for r in fp32) <= 1e-4 and min(r.min_cos for r in fp32) >= 0.99999
    assert [r for r in rows if r.what == "image fp16"] and min(
        r.min_cos for r in rows if r.what == "image fp16"
    ) >= 0.999
    lengths = {r.inputs for r in rows if r.what == "text fp32"}
    assert len(lengths) >= 2  # several sequence lengths through one graph
    auc = report.manifest["parity"]["zero_shot_auc"]
    assert set(auc["modes"]) == {"softmax", "posneg", "anchor"}
    assert all(m["max_class_diff"] <= 0.002 for m in auc["modes"].values())


def test_graphs_have_dynamic_axes_and_pass_the_checker(tiny_bundle):
    out, report = tiny_bundle
    for name in ("image_encoder.onnx", "text_encoder.onnx", "image_encoder_fp16.onnx"):
        onnx.checker.check_model(str(out / name))
    image = report.manifest["onnx"]["image_encoder"]
    assert image["inputs"][0]["name"] == "pixel_values" and isinstance(image["inputs"][0]["shape"][0], str)
    assert image["outputs"][0]["shape"][1] == 64
    text = report.manifest["onnx"]["text_encoder"]
    assert [i["name"] for i in text["inputs"]] == ["input_ids", "attention_mask"]
    assert all(isinstance(d, str) for d in text["inputs"][0]["shape"])  # batch and length
    assert report.manifest["export"]["decoder_layers_exported"] == 1  # feature_layer -2 of 2 layers


def test_text_encoder_handles_lengths_beyond_the_example(tiny_export_model, tiny_bundle):
    out, _ = tiny_bundle
    rows = parity.check_text(
        tiny_export_model, out / "text_encoder.onnx", batches=[["a"], ["cardiomegaly"] * 5, ["effusion " * 100, "x"]]
    )
    parity.require(rows)
    assert len({r.inputs for r in rows}) == 3


def _perturbed_copy(src, dst):
    """The image encoder with one weight matrix nudged: a graph that still runs but is wrong."""
    from onnx import numpy_helper

    model = onnx.load(str(src))
    biggest = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    weights = numpy_helper.to_array(biggest).copy()
    weights += np.random.default_rng(0).normal(0, 0.5, weights.shape).astype(weights.dtype)
    biggest.CopyFrom(numpy_helper.from_array(weights, biggest.name))
    onnx.save(model, str(dst))
    return dst


def test_parity_check_fails_loudly_on_a_broken_graph(tiny_export_model, tiny_bundle, tmp_path):
    out, _ = tiny_bundle
    broken = _perturbed_copy(out / "image_encoder.onnx", tmp_path / "broken.onnx")
    rows = parity.check_image(tiny_export_model, broken, batches=(2,))
    assert not any(r.passed for r in rows)
    with pytest.raises(ExportParityError, match=r"image fp32 \[random, batch 2\]: max\|diff\| .* min cosine"):
        parity.require(rows)


def test_mistral_with_lora_merged_exports_with_external_data(tmp_path):
    from export_fixtures import TINY_MISTRAL_LORA, tiny_model
    from radz_export.bundle import write_bundle

    model = tiny_model(TINY_MISTRAL_LORA, seed=1)
    assert hasattr(model.decoder, "merge_and_unload")
    with torch.no_grad():  # LoRA B starts at zero: make the adapters matter before merging
        for name, param in model.decoder.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.2)
    pixels = parity.random_pixels(model, 3, seed=5)
    unmerged = parity.torch_image(model, pixels)
    report = write_bundle(
        model, tmp_path / "b", classes=["cardiomegaly", "pleural_effusion"], external_data=True, auc_phantoms=0
    )
    assert not hasattr(model.decoder, "merge_and_unload")  # merged in place
    assert type(model.decoder).__name__ == "MistralModel"
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    for role in ("image_encoder", "text_encoder"):
        data = manifest["onnx"][role]["external_data"]
        assert data == [f"{role}.onnx.data"]
        assert data[0] in manifest["sha256"] and (tmp_path / "b" / data[0]).stat().st_size > 10_000
    graph = (tmp_path / "b" / "image_encoder.onnx").stat().st_size
    assert graph < (tmp_path / "b" / "image_encoder.onnx.data").stat().st_size  # weights live in the .data file
    session = parity.ort_session(tmp_path / "b" / "image_encoder.onnx")
    got = session.run(None, {"pixel_values": pixels})[0]
    # ONNX (merged weights) equals the PyTorch model with its LoRA adapters still separate.
    assert np.abs(got - unmerged).max() <= 1e-4
    assert all(r.passed for r in report.rows)


def test_torchscript_exporter_and_cli(tiny_export_model, tmp_path, capsys):
    from radz_export.cli import main
    from radz_train.training.checkpoint import save_checkpoint

    checkpoint = save_checkpoint(tmp_path / "ckpt", tiny_export_model, {}, step=0)
    code = main(
        [
            str(checkpoint),
            "--out",
            str(tmp_path / "bundle"),
            "--classes",
            "cardiomegaly,edema",
            "--exporter",
            "torchscript",
            "--auc-phantoms",
            "0",
            "--threads",
            "1",
            "--intended-use",
            "research",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "| image fp32 | phantom | 7 |" in printed and "NO |" not in printed
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert manifest["command"].startswith("radz export ") and "--exporter torchscript" in manifest["command"]
    assert manifest["onnx"]["image_encoder"]["exporter"] == "torchscript"
    assert manifest["classes"] == ["cardiomegaly", "edema"]
    assert {"torch", "onnx", "onnxruntime", "transformers", "radz_engine"} <= set(manifest["versions"])
    assert manifest["card"]["intended_use"] == "research" and manifest["card"]["name"] == "bundle"


def test_cli_refuses_a_non_bundle_folder(tiny_export_model, tmp_path, capsys):
    from radz_export.cli import main
    from radz_train.training.checkpoint import save_checkpoint

    checkpoint = save_checkpoint(tmp_path / "ckpt", tiny_export_model, {}, step=0)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    use = ["--intended-use", "research"]
    assert main([str(checkpoint), "--out", str(tmp_path / "busy"), "--skip-parity", *use]) == 2
    assert "not empty and holds no bundle" in capsys.readouterr().err
    assert main([str(tmp_path / "nope"), "--out", str(tmp_path / "x"), *use]) == 2


def test_tensorrt_helpers_without_tensorrt():
    from radz_export import tensorrt_build as trt_build

    key = trt_build.engine_cache_key("NVIDIA H100", "10.9.0", "ab" * 32, "fp16", [(1, 8, 32)])
    assert key == trt_build.engine_cache_key("NVIDIA H100", "10.9.0", "ab" * 32, "fp16", [(1, 8, 32)])
    assert key != trt_build.engine_cache_key("NVIDIA H200", "10.9.0", "ab" * 32, "fp16", [(1, 8, 32)])
    assert key != trt_build.engine_cache_key("NVIDIA H100", "10.10.0", "ab" * 32, "fp16", [(1, 8, 32)])
    assert key != trt_build.engine_cache_key("NVIDIA H100", "10.9.0", "cd" * 32, "fp16", [(1, 8, 32)])
    with pytest.raises(ValueError, match=r"batch profile \(8, 1, 32\)"):
        trt_build.check_profiles([(8, 1, 32)])
    providers = trt_build.ort_tensorrt_provider_options("pixel_values", ("batch", 3, 32, 32), cache_dir="/tmp/c")
    name, options = providers[0]
    assert name == "TensorrtExecutionProvider" and options["trt_fp16_enable"] is True
    assert options["trt_profile_max_shapes"] == "pixel_values:32x3x32x32"
    assert options["trt_engine_cache_enable"] and providers[-1] == "CPUExecutionProvider"
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(trt_build.TensorRTUnavailable, match="TensorRT is not installed: pip install tensorrt"):
            trt_build.build_engine("missing.onnx", engine_cache_dir="/tmp/c", gpu="x")


def test_auc_parity_passes_and_catches_wrong_anchors(tiny_export_model, tiny_bundle, tmp_path):
    import shutil

    from radz_engine.bundle.loader import sha256_file

    out, _ = tiny_bundle
    report = parity.auc_parity(tiny_export_model, out, n=16, seed=3, modes=("anchor", "posneg"))
    assert report["n"] == 16 and all(m["max_class_diff"] <= 0.002 for m in report["modes"].values())
    folder = shutil.copytree(out, tmp_path / "swapped")
    anchors = np.load(folder / "anchors.npy")
    np.save(folder / "anchors.npy", np.ascontiguousarray(anchors[::-1]))  # classes get each other's anchors
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["sha256"]["anchors.npy"] = sha256_file(folder / "anchors.npy")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(
        ExportParityError, match=r"anchor: macro AUC torch .* vs bundle .* largest per-class difference"
    ):
        parity.auc_parity(tiny_export_model, folder, n=16, seed=3, modes=("anchor",))


def test_radz_quantize_adds_a_checked_int8_encoder(tiny_bundle, tmp_path):
    import shutil

    from radz_engine.bundle.loader import load_bundle
    from radz_engine.cli import main

    out, _ = tiny_bundle
    bundle = tmp_path / "bundle"
    shutil.copytree(out, bundle)
    assert main(["quantize", str(bundle), "--auc-phantoms", "32", "--max-auc-drop", "0.2"]) == 0
    loaded = load_bundle(bundle)  # hashes valid, the new role's io recorded
    assert loaded.file("image_encoder_int8").name == "image_encoder_int8.onnx"
    assert loaded.manifest["parity"]["int8"]["min_cosine"] >= 0.99
    # A check that cannot pass leaves the bundle as it was (no int8 file, no manifest entry).
    shutil.copytree(out, tmp_path / "strict")
    assert main(["quantize", str(tmp_path / "strict"), "--auc-phantoms", "0", "--min-cosine", "1.01"]) == 1
    strict = load_bundle(tmp_path / "strict")
    assert "image_encoder_int8" not in strict.manifest["files"]
    assert not (tmp_path / "strict" / "image_encoder_int8.onnx").exists()
