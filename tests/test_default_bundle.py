"""The shipped default model still reaches its recorded AUC on freshly generated phantoms,
through the torch-free path (C++ preprocessing, ONNX Runtime, numpy scoring)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from radz_engine.bundle.default import default_bundle_path  # noqa: E402
from radz_train.evaluation.bundle_check import phantom_auc  # noqa: E402


def test_default_bundle_is_complete_and_small():
    from radz_engine.bundle.loader import load_bundle

    path = default_bundle_path()
    bundle = load_bundle(path)
    assert sum(p.stat().st_size for p in path.iterdir()) <= 20 * 2**20
    provenance = bundle.manifest["provenance"]
    assert any("radz train" in c for c in provenance["commands"])
    assert any("radz export" in c for c in provenance["commands"])
    assert bundle.manifest["model"]["name"] == "tiny"


def test_default_bundle_reaches_its_recorded_auc():
    manifest = json.loads((default_bundle_path() / "manifest.json").read_text())
    check = manifest["provenance"]["check"]
    measured = phantom_auc(default_bundle_path(), check["n"], check["seed"], check["site"])
    for mode, recorded in check["macro_auc"].items():
        assert measured[mode]["macro_auc"] == pytest.approx(recorded, abs=0.005), mode


def test_default_bundle_int8_encoder_keeps_its_recorded_auc_and_runs_in_the_engine():
    from radz_engine.runtime.engine import Engine

    manifest = json.loads((default_bundle_path() / "manifest.json").read_text())
    check, recorded = manifest["provenance"]["check"], manifest["parity"]["int8"]
    assert recorded["min_cosine"] >= 0.99
    measured = phantom_auc(default_bundle_path(), check["n"], check["seed"], check["site"], role="image_encoder_int8")
    for mode, row in recorded["macro_auc"].items():
        assert measured[mode]["macro_auc"] == pytest.approx(row["int8"], abs=0.005), mode
        assert row["fp32"] - row["int8"] <= 0.01, mode
    rng = np.random.default_rng(11)
    images = [rng.random((96, 96), dtype=np.float32) for _ in range(4)]
    with Engine(threads=1) as fp32, Engine(threads=1, backend_options={"int8": True}) as int8:
        assert int8.backend.name == "onnxruntime-cpu-int8" and int8.backend.describe()["variant"] == "int8"
        a = np.stack([r.embedding for r in fp32.classify(images)])
        b = np.stack([r.embedding for r in int8.classify(images)])
    assert ((a * b).sum(1) >= 0.99).all()
