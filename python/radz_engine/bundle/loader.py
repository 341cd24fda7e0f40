"""Reading and validating a model bundle (DESIGN.md section 3: the export -> runtime contract).

A bundle is a folder written by `radz export`:

    manifest.json        format_version, model card (format 2), model config, input spec, pooling, tau, scoring mode,
                         classes, text template, ONNX io spec, SHA-256 of every other file
    image_encoder.onnx   pixel_values [B, 3, S, S] float32 -> image_embedding [B, D]
    text_encoder.onnx    input_ids, attention_mask [B, L] int64 -> text_embedding [B, D]
    tokenizer.json       the fast tokenizer, modality tokens included
    anchors.npy          [C (+1), D] float32 DKAM anchors; a last "no_finding" background row when
                         manifest["anchors"]["background_row"] is not null
    prompts.npy          [3, C, D] float32: softmax prompts, posneg positive, posneg negative
    classes.json         names, display names, prompts, knowledge descriptions, thresholds
    (*.onnx.data)        ONNX external data for large models, hashed like the rest

Everything is checked when the bundle is loaded, so a bad bundle fails at start-up with a
`BundleError` that names the file, never at the first request. Torch-free: numpy + onnxruntime.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radz_engine.bundle.card import BundleFormatWarning, CardError, legacy_card, validate_card
from radz_engine.bundle.format import (
    FORMAT_VERSION,
    MANIFEST,
    PROMPT_BLOCKS,
    READABLE_VERSIONS,
    REQUIRED_ROLES,
    sha256_file,
)
from radz_engine.errors import BundleError

__all__ = ["FORMAT_VERSION", "Bundle", "BundleError", "content_hash", "load_bundle", "sha256_file"]


@dataclass
class Bundle:
    """A validated bundle. Arrays are loaded; ONNX files are only named (backends open them)."""

    path: Path
    manifest: dict
    classes: list[dict]
    background: dict | None
    anchors: np.ndarray
    prompts: np.ndarray

    @property
    def name(self) -> str:
        """The manifest's "name" (export writes the card's name there when one was given), else
        the bundle folder's name (the shipped one: "default")."""
        return str(self.manifest.get("name") or self.path.resolve().name)

    @property
    def version(self) -> str:
        """The manifest's "version" (export writes the card's version there when one was given).
        Bundles without one get a derived version: the radz-engine version that exported them
        (manifest "versions"), "0" if that is not recorded either. The content hash, not the
        version, tells two bundles apart."""
        if self.manifest.get("version"):
            return str(self.manifest["version"])
        versions = self.manifest.get("versions") or {}
        return str(versions.get("radz-engine") or versions.get("radz_engine") or "0")

    @property
    def content_hash(self) -> str:
        """12 hex digits of the SHA-256 of manifest.json's canonical JSON (sorted keys), which
        records the SHA-256 of every other file: any change to weights, anchors, classes,
        thresholds or calibration changes it; copying or moving the folder does not."""
        return content_hash(self.manifest)

    def identity(self) -> dict:
        """{"name", "version", "hash"}: what every Result, output row and run summary records."""
        return {"name": self.name, "version": self.version, "hash": self.content_hash}

    def card(self) -> dict:
        """The model card (docs/MODEL_CARD.md) with the content hash added ("hash"); a format-1
        bundle's is the default research card (marked "legacy": true)."""
        card = self.manifest.get("card")
        if card is None:
            card = legacy_card(self.manifest, self.name, self.version)
        return {**card, "hash": self.content_hash}

    @property
    def intended_use(self) -> str:
        """The card's intended use: "research", "clinical-evaluation" or "clinical"."""
        return str((self.manifest.get("card") or {}).get("intended_use") or "research")

    @property
    def class_names(self) -> list[str]:
        return [c["name"] for c in self.classes]

    @property
    def embedding_dim(self) -> int:
        return int(self.manifest["embedding_dim"])

    @property
    def tau(self) -> float:
        return float(self.manifest["tau"])

    @property
    def scoring_mode(self) -> str:
        return str(self.manifest["scoring_mode"])

    @property
    def input_spec(self) -> dict:
        """size [H, W], channels, layout, dtype, mean, std, aspect, pad_value."""
        return dict(self.manifest["input"])

    def preprocess_args(self) -> dict:
        """Keyword arguments of `radz_engine.preprocess` / `preprocess_batch` for this bundle's
        input (out_size, mean, std, aspect, pad_value): one definition for every caller."""
        spec = self.input_spec
        return {
            "out_size": (int(spec["size"][0]), int(spec["size"][1])),
            "mean": spec["mean"],
            "std": spec["std"],
            "aspect": spec.get("aspect", "letterbox"),
            "pad_value": float(spec.get("pad_value", 0.0)),
        }

    def file(self, role: str) -> Path:
        """Absolute path of a role's file ("image_encoder", "tokenizer", ...)."""
        files = self.manifest["files"]
        if role not in files:
            raise KeyError(f"bundle {self.path}: no file for {role!r} (have {sorted(files)})")
        return self.path / files[role]

    def onnx_io(self, role: str) -> dict:
        """{"inputs": [{name, dtype, shape}], "outputs": [...]} of one ONNX model."""
        return self.manifest["onnx"][role]

    def embeddings(self) -> dict[str, np.ndarray]:
        """Per scoring mode, as radz_train.zero_shot.class_embeddings lays them out:
        softmax [C, D], posneg [2, C, D], anchor [C (+1 background), D]."""
        return {"softmax": self.prompts[0], "posneg": self.prompts[1:3], "anchor": self.anchors}


def content_hash(manifest: dict) -> str:
    """Bundle.content_hash of a manifest dict."""
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _fail(bundle: Path, file: str, reason: str) -> BundleError:
    return BundleError(bundle, file, reason)


def _read_manifest(path: Path) -> dict:
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise _fail(path, MANIFEST, "missing (not a bundle folder? make one with `radz export`)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise _fail(path, MANIFEST, f"not valid JSON ({error})") from None
    if not isinstance(manifest, dict):
        raise _fail(path, MANIFEST, "must be a JSON object")
    version = manifest.get("format_version")
    if version not in READABLE_VERSIONS:
        raise _fail(
            path,
            MANIFEST,
            f"format_version {version!r} is not supported (this runtime reads {', '.join(map(str, READABLE_VERSIONS))}); "
            "re-export the bundle with a matching radz version",
        )
    if version == 1:
        warnings.warn(
            f"bundle {path}: format_version 1 has no model card; treated as intended use 'research' "
            "(re-export it, or add a card: docs/MODEL_CARD.md)",
            BundleFormatWarning,
            stacklevel=3,
        )
    else:
        try:
            validate_card(manifest.get("card"))
        except CardError as error:
            raise _fail(path, MANIFEST, str(error)) from None
    for key in ("files", "sha256", "onnx", "embedding_dim", "tau", "scoring_mode", "input", "text", "anchors"):
        if key not in manifest:
            raise _fail(path, MANIFEST, f"missing key {key!r}")
    missing_roles = [r for r in REQUIRED_ROLES if r not in manifest["files"]]
    if missing_roles:
        raise _fail(path, MANIFEST, f"'files' has no entry for {missing_roles}")
    return manifest


def _check_files(path: Path, manifest: dict, verify_hashes: bool) -> None:
    hashes = manifest["sha256"]
    unhashed = [name for name in manifest["files"].values() if name not in hashes]
    if unhashed:
        raise _fail(path, MANIFEST, f"no SHA-256 recorded for {unhashed}")
    for name, expected in hashes.items():
        file = path / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise _fail(path, MANIFEST, f"file name {name!r} points outside the bundle")
        if not file.is_file():
            raise _fail(path, name, "missing (listed in manifest.json)")
        if verify_hashes:
            actual = sha256_file(file)
            if actual != expected:
                raise _fail(
                    path,
                    name,
                    f"SHA-256 mismatch: manifest says {expected[:16]}..., file has {actual[:16]}... "
                    "(modified or truncated after export)",
                )


def _check_onnx_io(path: Path, manifest: dict) -> None:
    """Open each ONNX model with ONNX Runtime (CPU, no graph optimisation: only the io is read)
    and compare its input/output names with the manifest, in order. Skipped without ONNX Runtime:
    the torch backend (a GPU machine with only torch) runs a bundle without it, and the ONNX
    Runtime backend names the missing package itself."""
    try:
        import onnxruntime as ort
    except ImportError:
        logging.getLogger(__name__).info("bundle %s: ONNX Runtime not installed; ONNX io names not checked", path)
        return

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    for role, spec in manifest["onnx"].items():
        name = manifest["files"].get(role)
        if name is None:
            raise _fail(path, MANIFEST, f"onnx spec for {role!r} but no file for it in 'files'")
        try:
            session = ort.InferenceSession(str(path / name), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph types
            raise _fail(path, name, f"ONNX Runtime cannot load it ({str(error).splitlines()[0][:300]})") from None
        for kind, actual in (("inputs", session.get_inputs()), ("outputs", session.get_outputs())):
            want = [io["name"] for io in spec[kind]]
            have = [io.name for io in actual]
            if want != have:
                raise _fail(path, name, f"ONNX {kind} {have} do not match the manifest's {want}")
        del session


def _load_array(path: Path, manifest: dict, role: str) -> np.ndarray:
    name = manifest["files"][role]
    try:
        array = np.load(path / name, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise _fail(path, name, f"not a readable .npy array ({error})") from None
    if array.dtype != np.float32:
        raise _fail(path, name, f"dtype {array.dtype}, expected float32")
    return array


def load_bundle(path: str | Path | None = None, *, verify_hashes: bool = True, check_onnx: bool = True) -> Bundle:
    """Load and validate a bundle folder (None: the shipped default bundle, as `Engine()`).

    Checks, in order: manifest present, valid JSON and of this format_version; every file it lists
    present with the recorded SHA-256 (`verify_hashes`); each ONNX model's input/output names as
    the manifest says (`check_onnx`: opens a CPU ONNX Runtime session per model); anchors,
    prompts and classes consistent with each other and with the embedding size.

    Raises:
        BundleError: naming the file at fault and the reason.
    """
    if path is None:
        from radz_engine.bundle.default import default_bundle_path

        path = default_bundle_path()
    path = Path(path)
    if not path.is_dir():
        raise BundleError(path, ".", "not a folder")
    manifest = _read_manifest(path)
    _check_files(path, manifest, verify_hashes)
    if check_onnx:
        _check_onnx_io(path, manifest)
    classes_name = manifest["files"]["classes"]
    try:
        classes_doc = json.loads((path / classes_name).read_text())
        classes = list(classes_doc["classes"])
        background = classes_doc.get("background")
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
        raise _fail(path, classes_name, f"not a valid classes file ({error!r})") from None
    anchors = _load_array(path, manifest, "anchors")
    prompts = _load_array(path, manifest, "prompts")
    dim = int(manifest["embedding_dim"])
    n_classes = len(classes)
    expected_anchor_rows = n_classes + (1 if manifest["anchors"].get("background_row") is not None else 0)
    if anchors.shape != (expected_anchor_rows, dim):
        raise _fail(
            path,
            manifest["files"]["anchors"],
            f"shape {anchors.shape}, expected ({expected_anchor_rows}, {dim}) for {n_classes} classes",
        )
    if prompts.shape != (len(PROMPT_BLOCKS), n_classes, dim):
        raise _fail(
            path,
            manifest["files"]["prompts"],
            f"shape {prompts.shape}, expected ({len(PROMPT_BLOCKS)}, {n_classes}, {dim})",
        )
    return Bundle(path, manifest, classes, background, anchors, prompts)
