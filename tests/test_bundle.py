"""radz_engine.bundle: write + load, every bad-bundle case is a clear error naming the file, and
the torch-free runtime text encoder equals the PyTorch model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from blocked_imports import HEAVY, run_blocked

pytest.importorskip("onnxruntime")

from radz_engine.bundle.loader import Bundle, BundleError, load_bundle, sha256_file  # noqa: E402


def _copy(tiny_bundle, tmp_path):
    out, _ = tiny_bundle
    return shutil.copytree(out, tmp_path / "copy")


def _edit_manifest(folder, change):
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_written_bundle_loads(tiny_bundle):
    out, report = tiny_bundle
    bundle = load_bundle(out)
    assert isinstance(bundle, Bundle)
    manifest = bundle.manifest
    assert manifest["format_version"] == 2 and manifest["card"]["intended_use"] == "research"
    assert bundle.class_names == manifest["classes"] and len(bundle.class_names) == 9
    assert bundle.anchors.shape == (10, 64) and bundle.anchors.dtype == np.float32  # + no_finding row
    assert manifest["anchors"]["background_row"] == 9 and manifest["anchors"]["rows"][-1] == "no_finding"
    assert bundle.prompts.shape == (3, 9, 64)
    assert np.allclose(np.linalg.norm(bundle.anchors, axis=1), 1, atol=1e-5)
    spec = bundle.input_spec
    assert spec["size"] == [32, 32] and spec["aspect"] == "letterbox" and spec["channels"] == 3
    assert len(spec["mean"]) == 3 and bundle.scoring_mode == "anchor" and bundle.tau == pytest.approx(0.05)
    text = manifest["text"]
    assert text["lowercase"] and text["max_length"] == 64 and len(text["modality_token_ids"]) == 8
    assert text["modality_tokens"][0] == "<TxtCls_0>"
    on_disk = sorted(p.name for p in out.iterdir() if p.name != "manifest.json")
    assert sorted(manifest["sha256"]) == on_disk
    assert all(manifest["sha256"][n] == sha256_file(out / n) for n in on_disk)
    classes = json.loads((out / "classes.json").read_text())
    first = classes["classes"][0]
    assert first["name"] == "cardiomegaly" and first["prompt"] == "This is a chest X-ray showing cardiomegaly"
    assert first["knowledge"] and first["threshold"] is None and classes["background"]["name"] == "no_finding"
    embeddings = bundle.embeddings()
    assert embeddings["posneg"].shape == (2, 9, 64) and embeddings["softmax"].shape == (9, 64)


def test_missing_manifest_and_missing_file(tiny_bundle, tmp_path):
    with pytest.raises(BundleError, match=r"manifest\.json: missing"):
        load_bundle(tmp_path)
    folder = _copy(tiny_bundle, tmp_path)
    (folder / "tokenizer.json").unlink()
    with pytest.raises(BundleError, match=r"tokenizer\.json: missing \(listed in manifest\.json\)") as info:
        load_bundle(folder)
    assert info.value.file == "tokenizer.json"


def test_hash_mismatch_names_the_file(tiny_bundle, tmp_path):
    folder = _copy(tiny_bundle, tmp_path)
    with open(folder / "anchors.npy", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(BundleError, match=r"anchors\.npy: SHA-256 mismatch"):
        load_bundle(folder)
    load_bundle(folder, verify_hashes=False, check_onnx=False)  # the check is what caught it


def test_wrong_format_version(tiny_bundle, tmp_path):
    folder = _copy(tiny_bundle, tmp_path)
    _edit_manifest(folder, lambda m: m.update(format_version=3))
    with pytest.raises(BundleError, match=r"manifest\.json: format_version 3 is not supported"):
        load_bundle(folder)
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match=r"manifest\.json: not valid JSON"):
        load_bundle(folder)


def test_onnx_input_names_must_match_the_manifest(tiny_bundle, tmp_path):
    folder = _copy(tiny_bundle, tmp_path)
    _edit_manifest(folder, lambda m: m["onnx"]["text_encoder"]["inputs"][0].update(name="tokens"))
    with pytest.raises(
        BundleError,
        match=r"text_encoder\.onnx: ONNX inputs \['input_ids', 'attention_mask'\] "
        r"do not match the manifest's \['tokens', 'attention_mask'\]",
    ):
        load_bundle(folder)


def test_unloadable_onnx_and_inconsistent_arrays(tiny_bundle, tmp_path):
    folder = _copy(tiny_bundle, tmp_path)
    (folder / "image_encoder.onnx").write_bytes(b"not a model")
    _edit_manifest(
        folder, lambda m: m["sha256"].update({"image_encoder.onnx": sha256_file(folder / "image_encoder.onnx")})
    )
    with pytest.raises(BundleError, match=r"image_encoder\.onnx: ONNX Runtime cannot load it"):
        load_bundle(folder)
    folder = shutil.copytree(tiny_bundle[0], tmp_path / "second")
    np.save(folder / "anchors.npy", np.zeros((3, 64), np.float32))
    _edit_manifest(folder, lambda m: m["sha256"].update({"anchors.npy": sha256_file(folder / "anchors.npy")}))
    with pytest.raises(BundleError, match=r"anchors\.npy: shape \(3, 64\), expected \(10, 64\)"):
        load_bundle(folder)


def test_runtime_text_encoder_equals_torch(tiny_export_model, tiny_bundle):
    import onnxruntime as ort
    import torch

    from radz_engine.runtime.text_encoder import TextEncoder

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    encoder = TextEncoder(load_bundle(tiny_bundle[0]), session_options=options)
    texts = [
        "Pneumomediastinum",
        "no pneumomediastinum",
        "This is a chest X-ray showing pleural effusion",
        "Air outlining the mediastinum, streaky lucencies along the heart border. " * 12,
    ]  # truncated
    mine = encoder.tokenize(texts)
    theirs = tiny_export_model.tokenize(texts)
    for key in ("input_ids", "attention_mask", "modality_mask"):
        assert np.array_equal(mine[key], theirs[key].numpy()), key
    assert mine["input_ids"].shape[1] == 64
    with torch.no_grad():
        reference = tiny_export_model.encode_texts(texts).global_.numpy()
    assert np.abs(encoder.encode(texts, batch_size=3) - reference).max() <= 1e-4
    assert encoder.class_prompts("pneumomediastinum")["posneg_negative"] == "no pneumomediastinum"
    with pytest.raises(ValueError, match="non-empty list"):
        encoder.tokenize("one string")


def test_runtime_path_needs_no_torch(tiny_bundle):
    result = run_blocked(
        f"""
        import numpy as np
        from radz_engine.bundle.loader import load_bundle
        from radz_engine.runtime.text_encoder import TextEncoder
        bundle = load_bundle({str(tiny_bundle[0])!r})
        vectors = TextEncoder(bundle).encode(["pneumomediastinum"])
        assert vectors.shape == (1, bundle.embedding_dim)
        print("ok")
        """,
        blocked=HEAVY + ("radz_train", "radz_export"),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_bundle_loads_without_onnxruntime():
    """A GPU machine with only torch runs a bundle through the torch backend: load_bundle must not
    need ONNX Runtime (its io-name check is skipped there; hashes and arrays are still checked)."""
    result = run_blocked(
        """
        from radz_engine.bundle.loader import load_bundle
        bundle = load_bundle()
        assert bundle.class_names and bundle.embedding_dim > 0
        print("ok")
        """,
        blocked=HEAVY + ("onnxruntime",),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
