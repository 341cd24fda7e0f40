"""Parity checks run by the export itself: ONNX Runtime (CPU) against the PyTorch model.

Each check returns ParityRow records; `require` raises ExportParityError listing every failed
row with its numbers, so a bad graph never ships silently. Thresholds (issue 4): fp32 max abs
difference <= 1e-4 and cosine >= 0.99999 at batch 1, 32 and a batch never seen at export (7),
on random and phantom inputs; fp16 cosine >= 0.999; zero-shot AUC within 0.002.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

FP32_MAX_ABS = 1e-4
FP32_MIN_COS = 0.99999
FP16_MIN_COS = 0.999
AUC_TOLERANCE = 0.002
BATCHES = (1, 32, 7)  # 7: a batch size the export never saw (it traces with 2)


class ExportParityError(RuntimeError):
    """The exported graph does not reproduce the PyTorch model; the message has the numbers."""


@dataclass
class ParityRow:
    """One comparison: `what` (e.g. "image fp32"), inputs, batch, max |diff|, min row cosine."""

    what: str
    inputs: str
    batch: int
    max_abs: float
    min_cos: float
    max_abs_limit: float | None
    min_cos_limit: float

    @property
    def passed(self) -> bool:
        ok_abs = self.max_abs_limit is None or self.max_abs <= self.max_abs_limit
        return bool(ok_abs and self.min_cos >= self.min_cos_limit and math.isfinite(self.max_abs))

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


def compare(
    what: str,
    inputs: str,
    reference: np.ndarray,
    candidate: np.ndarray,
    max_abs_limit: float | None,
    min_cos_limit: float,
) -> ParityRow:
    reference = np.asarray(reference, dtype=np.float64)
    candidate = np.asarray(candidate, dtype=np.float64)
    if reference.shape != candidate.shape:
        raise ExportParityError(f"{what} ({inputs}): output shape {candidate.shape}, PyTorch gives {reference.shape}")
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(candidate, axis=1)
    cos = (reference * candidate).sum(1) / np.maximum(norms, 1e-30)
    return ParityRow(
        what,
        inputs,
        int(reference.shape[0]),
        float(np.abs(reference - candidate).max()),
        float(cos.min()),
        max_abs_limit,
        min_cos_limit,
    )


def require(rows: Sequence[ParityRow]) -> None:
    failed = [r for r in rows if not r.passed]
    if failed:
        lines = [
            f"  {r.what} [{r.inputs}, batch {r.batch}]: max|diff| {r.max_abs:.3g} (limit {r.max_abs_limit}), "
            f"min cosine {r.min_cos:.7f} (limit {r.min_cos_limit})"
            for r in failed
        ]
        raise ExportParityError("ONNX export does not match PyTorch:\n" + "\n".join(lines))


def format_table(rows: Sequence[ParityRow]) -> str:
    """A Markdown table of parity rows (the CLI prints it)."""
    out = ["| check | inputs | batch | max abs diff | min cosine | ok |", "|---|---|---|---|---|---|"]
    for r in rows:
        out.append(
            f"| {r.what} | {r.inputs} | {r.batch} | {r.max_abs:.2e} | {r.min_cos:.8f} | {'yes' if r.passed else 'NO'} |"
        )
    return "\n".join(out)


def ort_session(path, threads: int = 1):
    """A CPU ONNX Runtime session (threads kept explicit: parity runs beside other work)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def phantom_pixels(model, n: int, seed: int = 1234) -> np.ndarray:
    """[n, 3, S, S] float32 model input from phantom radiographs through the runtime's own
    preprocessing (letterbox, the model's mean/std), as the deployed engine feeds them."""
    from radz_engine import preprocess_batch
    from radz_train.data.phantom import generate_case
    from radz_train.training.data import PHANTOM_SPEC

    size = model.config.image_size
    render = int(min(256, max(32, size)))
    images = [generate_case(i, seed=seed, size=render).image.astype(np.float32) for i in range(n)]
    return preprocess_batch(
        images, PHANTOM_SPEC, size, mean=model.config.input["mean"], std=model.config.input["std"], num_threads=1
    )


def random_pixels(model, n: int, seed: int = 0) -> np.ndarray:
    size = model.config.image_size
    return np.random.default_rng(seed).standard_normal((n, 3, size, size)).astype(np.float32)


@torch.no_grad()
def torch_image(model, pixels: np.ndarray) -> np.ndarray:
    model.eval()
    device = model.image_token_ids.device
    return model.encode_image(torch.from_numpy(pixels).to(device)).global_.cpu().numpy()


def check_image(
    model,
    onnx_path,
    *,
    batches: Sequence[int] = BATCHES,
    what: str = "image fp32",
    max_abs: float | None = FP32_MAX_ABS,
    min_cos: float = FP32_MIN_COS,
    seed: int = 0,
    threads: int = 1,
) -> list[ParityRow]:
    """Image encoder vs model.encode_image on random and phantom inputs at each batch size."""
    session = ort_session(onnx_path, threads)
    name = session.get_inputs()[0].name
    phantoms = phantom_pixels(model, max(batches), seed=seed + 1234)
    rows = []
    for kind, source in (("random", random_pixels(model, max(batches), seed)), ("phantom", phantoms)):
        reference = torch_image(model, source)
        for batch in batches:
            out = session.run(None, {name: source[:batch]})[0]
            rows.append(compare(what, kind, reference[:batch], out, max_abs, min_cos))
    return rows


def check_image_fp16(
    model, onnx_path, *, batches: Sequence[int] = (7,), min_cos: float = FP16_MIN_COS, threads: int = 1
) -> list[ParityRow]:
    """fp16 graph: cosine only (absolute differences of fp16 are not meaningful at 1e-4)."""
    return check_image(
        model, onnx_path, batches=batches, what="image fp16", max_abs=None, min_cos=min_cos, threads=threads
    )


def text_probe_batches(model) -> list[list[str]]:
    """Batches whose rows differ in length (padding inside the batch) and reach max_text_length."""
    short = "pleural effusion"
    medium = "right lower lobe consolidation with air bronchograms, no pneumothorax"
    long = " ".join([medium] * 40)  # truncated to max_text_length
    return [[short], [short, medium, long], [medium, short, "no acute findings", long, "cardiomegaly", medium, short]]


@torch.no_grad()
def check_text(
    model, onnx_path, *, batches: Sequence[Sequence[str]] | None = None, threads: int = 1
) -> list[ParityRow]:
    """Text encoder vs model.encode_text on the same ids, at several batch sizes and lengths."""
    model.eval()
    session = ort_session(onnx_path, threads)
    names = [i.name for i in session.get_inputs()]
    rows = []
    for texts in batches or text_probe_batches(model):
        tokens = model.tokenize(list(texts), device=model.image_token_ids.device)
        reference = model.encode_text(**tokens).global_.cpu().numpy()
        out = session.run(None, {n: tokens[n].cpu().numpy() for n in names})[0]
        rows.append(
            compare("text fp32", f"length {tokens['input_ids'].shape[1]}", reference, out, FP32_MAX_ABS, FP32_MIN_COS)
        )
    return rows


@torch.no_grad()
def check_runtime_text(model, bundle_dir, texts: Sequence[str], threads: int = 1) -> list[ParityRow]:
    """The torch-free runtime path (radz_engine.TextEncoder: tokenizer.json + text_encoder.onnx)
    against model.encode_texts. Token ids must be identical; embeddings within fp32 limits."""
    import onnxruntime as ort

    from radz_engine.bundle.loader import load_bundle
    from radz_engine.runtime.text_encoder import TextEncoder

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    runtime = TextEncoder(load_bundle(bundle_dir, check_onnx=False), session_options=options)
    texts = list(texts)
    mine = runtime.tokenize(texts)
    theirs = model.tokenize(texts)
    if mine["input_ids"].shape != tuple(theirs["input_ids"].shape) or not np.array_equal(
        mine["input_ids"], theirs["input_ids"].numpy()
    ):
        bad = next(
            (
                t
                for t in texts
                if not np.array_equal(runtime.tokenize([t])["input_ids"], model.tokenize([t])["input_ids"].numpy())
            ),
            texts[0],
        )
        raise ExportParityError(f"runtime tokenization differs from RadzModel.tokenize, e.g. for {bad!r}")
    reference = model.encode_texts(texts).global_.cpu().numpy()
    return [compare("text runtime", "tokenizer.json", reference, runtime.encode(texts), FP32_MAX_ABS, FP32_MIN_COS)]


def auc_parity(
    model,
    bundle_dir,
    *,
    n: int = 64,
    seed: int = 7,
    classes: Sequence[str] | None = None,
    modes: Sequence[str] | None = None,
    tolerance: float = AUC_TOLERANCE,
    threads: int = 1,
) -> dict:
    """Zero-shot AUC of the bundle (ONNX Runtime image encoder + the bundle's stored class
    embeddings) against PyTorch (encode_image + freshly computed class embeddings) on `n`
    phantoms. Raises ExportParityError when any per-class or macro AUC differs by > tolerance.

    Returns {"modes": {mode: {"torch": macro AUC, "bundle": macro AUC, "max_class_diff": d}}, "n": n}.
    """
    from radz_engine.bundle.loader import load_bundle
    from radz_engine.scoring.scores import MODES, class_scores
    from radz_train.data.phantom import labels_from_findings, sample_findings
    from radz_train.evaluation import zero_shot_metrics
    from radz_train.zero_shot import class_embeddings

    bundle = load_bundle(bundle_dir, check_onnx=False)
    classes = list(classes) if classes is not None else bundle.class_names
    if classes != bundle.class_names:
        raise ValueError(f"classes {classes}: the bundle was written for {bundle.class_names}")
    modes = list(modes) if modes is not None else list(MODES)
    pixels = phantom_pixels(model, n, seed=seed)
    # Labels depend on (index, seed) only, not on the rendered image: no second rendering.
    found = [labels_from_findings(sample_findings(i, seed=seed)) for i in range(n)]
    labels = np.array([[row.get(c, np.nan) for c in classes] for row in found], dtype=np.float32)
    session = ort_session(bundle.file("image_encoder"), threads)
    bundle_features = np.concatenate(
        [session.run(None, {"pixel_values": pixels[s : s + 32]})[0] for s in range(0, n, 32)]
    )
    torch_features = np.concatenate([torch_image(model, pixels[s : s + 32]) for s in range(0, n, 32)])
    knowledge = _bundle_knowledge(bundle)
    torch_embeddings = class_embeddings(model, classes, knowledge)
    report: dict = {"n": n, "modes": {}}
    failures = []
    for mode in modes:
        ours = zero_shot_metrics(labels, class_scores(bundle_features, bundle.embeddings(), mode, bundle.tau), classes)
        ref = zero_shot_metrics(labels, class_scores(torch_features, torch_embeddings, mode, model.config.tau), classes)
        diffs = [
            abs(ours["per_class"][c]["auc"] - ref["per_class"][c]["auc"])
            for c in classes
            if not (math.isnan(ours["per_class"][c]["auc"]) and math.isnan(ref["per_class"][c]["auc"]))
        ]
        diffs.append(abs(ours["macro"]["auc"] - ref["macro"]["auc"]))
        worst = max(diffs)
        report["modes"][mode] = {"torch": ref["macro"]["auc"], "bundle": ours["macro"]["auc"], "max_class_diff": worst}
        if not worst <= tolerance:  # also catches NaN
            failures.append(
                f"  {mode}: macro AUC torch {ref['macro']['auc']:.4f} vs bundle {ours['macro']['auc']:.4f}, "
                f"largest per-class difference {worst:.4f} (limit {tolerance})"
            )
    if failures:
        raise ExportParityError("bundle zero-shot AUC differs from PyTorch:\n" + "\n".join(failures))
    return report


def _bundle_knowledge(bundle) -> dict[str, str]:
    knowledge = {c["name"]: c["knowledge"] for c in bundle.classes if c.get("knowledge")}
    if bundle.background:
        knowledge[bundle.background["name"]] = bundle.background["knowledge"]
    return knowledge


def rows_to_json(rows: Sequence[ParityRow]) -> list[dict]:
    return [r.to_dict() for r in rows]


def check_exported(
    model, image_path, text_path, fp16_path: str | Path | None = None, threads: int = 1
) -> list[ParityRow]:
    """All graph-level checks (fp32 image, text, optional fp16 image); raises on any failure."""
    rows = check_image(model, image_path, threads=threads) + check_text(model, text_path, threads=threads)
    if fp16_path is not None:
        rows += check_image_fp16(model, fp16_path, threads=threads)
    require(rows)
    return rows
