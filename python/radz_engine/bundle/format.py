"""The bundle format: the one definition of what export writes and the runtime reads.

Version, file roles and names, and hashing live here; `radz_export` imports them, the loader
checks against them. Numpy-free on purpose.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

__all__ = [
    "FORMAT_VERSION",
    "READABLE_VERSIONS",
    "MANIFEST",
    "FILES",
    "FP16_FILE",
    "INT8_FILE",
    "REQUIRED_ROLES",
    "ONNX_ROLES",
    "PROMPT_BLOCKS",
    "sha256_file",
    "write_manifest",
]

# 2: the manifest carries a model card ("card", radz_engine/bundle/card.py). 1 still loads
# (with a BundleFormatWarning) and is treated as research use.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
MANIFEST = "manifest.json"
# Roles every bundle has, with the file names export gives them (the manifest maps role -> file).
FILES = {
    "image_encoder": "image_encoder.onnx",
    "text_encoder": "text_encoder.onnx",
    "tokenizer": "tokenizer.json",
    "anchors": "anchors.npy",
    "prompts": "prompts.npy",
    "classes": "classes.json",
}
REQUIRED_ROLES = tuple(FILES)
# Optional image encoders: fp16 weights (`radz export --fp16`) and dynamic int8 (`radz quantize`).
FP16_FILE = "image_encoder_fp16.onnx"
INT8_FILE = "image_encoder_int8.onnx"
ONNX_ROLES = ("image_encoder", "text_encoder", "image_encoder_fp16")
PROMPT_BLOCKS = ("softmax", "posneg_positive", "posneg_negative")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks (bundles may hold multi-GB external data)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: str | Path, manifest: dict) -> None:
    """Hash every file of the bundle folder into manifest["sha256"] and write manifest.json
    atomically (a crash leaves the old manifest, never half a new one)."""
    out = Path(folder)
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != MANIFEST)
    manifest["sha256"] = {name: sha256_file(out / name) for name in names}
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, default=float))
    tmp.replace(out / MANIFEST)
