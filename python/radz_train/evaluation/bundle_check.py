"""Check a bundle on fresh phantoms, torch-free: phantoms -> C++ preprocessing -> ONNX Runtime
-> numpy scoring. Used by the default-bundle test, `radz quantize` and make_default_bundle.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from radz_engine.bundle.loader import load_bundle
from radz_engine.preprocessing.native import preprocess_batch
from radz_engine.preprocessing.pixel_spec import PixelSpec
from radz_engine.scoring.metrics import binary_auc
from radz_engine.scoring.scores import class_scores
from radz_train.data.phantom import generate_cases


def phantom_inputs(bundle, cases) -> np.ndarray:
    """Phantom cases -> the bundle's model input [N, C, H, W] (C++ preprocessing, identity window)."""
    spec = bundle.input_spec
    identity = PixelSpec(window_center=0.5, window_width=1.0, voi_function="LINEAR_EXACT")
    return preprocess_batch(
        [c.image.astype(np.float32) for c in cases],
        identity,
        int(spec["size"][0]),
        **{k: v for k, v in bundle.preprocess_args().items() if k != "out_size"},
    )


def encoder_embeddings(bundle, x: np.ndarray, role: str = "image_encoder", batch: int = 32) -> np.ndarray:
    """[N, D] embeddings of x from one of the bundle's image encoders (ONNX Runtime CPU, 1 thread)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(bundle.file(role)), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[i : i + batch]})[0] for i in range(0, len(x), batch)])


def phantom_auc(
    bundle_path: str | Path,
    n: int,
    seed: int,
    site: str,
    modes=("anchor", "softmax", "posneg"),
    role: str = "image_encoder",
) -> dict:
    """Macro and per-class AUC of a bundle on n fresh phantoms (seed, site) at the bundle's input,
    with one of its image encoders (`role`: image_encoder, image_encoder_fp16, image_encoder_int8)."""
    bundle = load_bundle(bundle_path)
    return cases_auc(bundle, list(generate_cases(n, seed=seed, sites=(site,), size=256)), modes, role)


def cases_auc(bundle, cases, modes=("anchor", "softmax", "posneg"), role: str = "image_encoder") -> dict:
    """Macro and per-class AUC of a loaded bundle on phantom cases, per scoring mode."""
    feats = encoder_embeddings(bundle, phantom_inputs(bundle, cases), role)
    classes = bundle.class_names
    labels = np.array([[c.labels[k] for k in classes] for c in cases], dtype=np.float64)
    out = {}
    for mode in modes:
        scores = class_scores(feats, bundle.embeddings(), mode, bundle.tau)
        per_class = {k: binary_auc(labels[:, j], scores[:, j]) for j, k in enumerate(classes)}
        defined = [v for v in per_class.values() if v == v]
        out[mode] = {"macro_auc": float(np.mean(defined)), "per_class": per_class}
    return out
