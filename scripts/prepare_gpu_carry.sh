#!/usr/bin/env bash
# Builds, on a machine with network access and the full dev environment (torch CPU, onnx,
# onnxruntime, pydicom), everything benchmarks/gpu_check.sh needs on a GPU machine that has only
# torch (CUDA) + numpy + the build tools and no network:
#
#   bash scripts/prepare_gpu_carry.sh            # -> build/gpu_carry (gitignored, ~45 MiB)
#
# build/gpu_carry/
#   model/checkpoint/   a `radz train` checkpoint of the `tiny` preset (2+2 layers), random weights (seed 0):
#                       what the torch backend runs (the bundle's ONNX graph is not runnable by torch)
#   model/bundle/       its bundle (`radz export` path, parity-checked against ONNX Runtime here)
#   images/png/         phantom chest radiographs, PNG 256x256 (the screen step repeats them to ~200 files)
#   images/dicom/       phantom radiographs, DICOM DX, explicit VR little endian (radz serve's input)
#   wheels/             wheels of what the runtime's torch, screen and serve paths import and the GPU
#                       machine lacks, for CPython $GPU_PYTHON (default 3.12), manylinux x86_64;
#                       gpu_check.sh installs the missing ones with pip --no-index --no-deps
#   MANIFEST.json       what is in it, versions, sizes
#
# The device tool copies only tracked / untracked-not-ignored files; name the folder in its
# `carry` list (build/gpu_carry). Keep the tree + carry under 64 MiB (this prints the total).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY="${PYTHON:-$ROOT/.venv/bin/python}"
CARRY="${CARRY:-$ROOT/build/gpu_carry}"
GPU_PYTHON="${GPU_PYTHON:-3.12}"
N_PNG="${N_PNG:-40}"
N_DICOM="${N_DICOM:-4}"
export PYTHONPATH="$ROOT/python:$ROOT/export${PYTHONPATH:+:$PYTHONPATH}"

# Versions pinned to what the project is tested with (.venv); pure-Python ones unless noted.
# transformers + deps: the torch backend builds the model with transformers (radz_train.model.factory)
# and loads the tokenizer with it; huggingface_hub imports httpx2 at module level.
WHEELS=(
  transformers==5.24.0 huggingface-hub==2.4.0 tokenizers==0.23.3 safetensors==0.8.0 # tokenizers, safetensors: abi3
  pyyaml==6.0.4 regex==2026.11.19                                                    # compiled (cp$GPU_PYTHON)
  httpx2==2.16.2 httpcore2==2.16.2 anyio==4.16.0 idna==3.20 h11==0.16.0 truststore==0.10.5 click==8.5.1
  packaging==26.4 tqdm==4.70.1 typing-extensions==4.16.0
  pillow==13.0.0                                                                     # compiled: PNG decoding
  pydicom==3.0.2 pynetdicom==3.0.4 highdicom==0.28.2 prometheus-client==0.26.0        # radz serve
)

rm -rf "$CARRY.tmp"
mkdir -p "$CARRY.tmp"/{model,images,wheels}
echo "[prepare_gpu_carry] wheels for CPython $GPU_PYTHON (manylinux x86_64)"
abi="cp${GPU_PYTHON/./}"
"$PY" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: --python-version "$GPU_PYTHON" --implementation cp \
  --abi "$abi" --abi abi3 --abi none --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform any -d "$CARRY.tmp/wheels" "${WHEELS[@]}" 2>&1 |
  { grep -v "is ignored: it is neither a file nor a directory" || true; }

echo "[prepare_gpu_carry] tiny model (random weights) -> checkpoint + bundle"
"$PY" - "$CARRY.tmp/model" <<'PYEOF'
import sys
from pathlib import Path

import torch

from radz_export import write_bundle
from radz_train.data.phantom import generate_cases
from radz_train.dkam import load_knowledge
from radz_train.model.factory import create_model
from radz_train.training.checkpoint import save_checkpoint

out = Path(sys.argv[1])
torch.manual_seed(0)
torch.set_num_threads(2)
corpus = [case.report for case in generate_cases(48, seed=3, size=32)] + list(load_knowledge().values())
# The `tiny` preset (the shipped default model's architecture: 128x128 input, 128-wide embeddings) with
# 2 vision and 2 decoder layers instead of 3 and 4, so that the carry stays small.
overrides = {"vision.num_hidden_layers": 2, "decoder.num_hidden_layers": 2}
model = create_model("tiny", corpus=corpus, overrides=overrides, seed=0).eval()
save_checkpoint(out / "checkpoint", model, {"note": "gpu_check carry: tiny preset, random weights"}, step=0)
card = {"intended_use": "research", "name": "gpu-carry-tiny"}
report = write_bundle(model, out / "bundle", parity_checks=True, auc_phantoms=0, threads=2, card=card)
print("bundle parity rows:", len(report.rows), "all passed:", all(r.passed for r in report.rows))
PYEOF

echo "[prepare_gpu_carry] images: $N_PNG PNG 256x256, $N_DICOM DICOM 384x384"
"$PY" -m radz_engine.cli synth --out "$CARRY.tmp/images/png" --n "$N_PNG" --seed 21 --size 256 --format png --quiet
"$PY" -m radz_engine.cli synth --out "$CARRY.tmp/images/dicom" --n "$N_DICOM" --seed 22 --size 384 --format dicom \
  --quiet

"$PY" - "$CARRY.tmp" "$GPU_PYTHON" <<'PYEOF'
import json
import sys
import time
from pathlib import Path

root, gpu_python = Path(sys.argv[1]), sys.argv[2]
sizes = {p.name: sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) for p in root.iterdir() if p.is_dir()}
manifest = {
    "made": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "by": "scripts/prepare_gpu_carry.sh",
    "gpu_python": gpu_python,
    "wheels": sorted(p.name for p in (root / "wheels").glob("*.whl")),
    "png": len(list((root / "images" / "png").rglob("*.png"))),
    "dicom": len(list((root / "images" / "dicom").rglob("*.dcm"))),
    "bytes": sizes,
}
(root / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
print(json.dumps({"bytes": sizes, "png": manifest["png"], "dicom": manifest["dicom"]}))
PYEOF

rm -rf "$CARRY"
mv "$CARRY.tmp" "$CARRY"
carry_mib=$(du -sm "$CARRY" | cut -f1)
tree_mib=$(git ls-files -z --cached --others --exclude-standard | du -cm --files0-from=- 2>/dev/null | tail -1 | cut -f1)
echo "[prepare_gpu_carry] $CARRY: ${carry_mib} MiB; working tree that travels: ~${tree_mib} MiB; limit 64 MiB in all"
if [ $((carry_mib + tree_mib)) -ge 60 ]; then
  echo "[prepare_gpu_carry] WARNING: tree + carry is ${carry_mib}+${tree_mib} MiB, near the 64 MiB the device tool carries" >&2
fi
