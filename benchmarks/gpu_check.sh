#!/usr/bin/env bash
# One prepared GPU check for `radz bench`, for a machine with an NVIDIA GPU and no network.
#
#   bash benchmarks/gpu_check.sh            # results in $OUT (default ./out/gpu_check)
#
# Assumes: Python with torch (CUDA), transformers + tokenizers (the model code), a CPU-only
# onnxruntime, cmake + pybind11 + scikit-build-core (to build the C++ extension), no FAISS, no
# tensorrt, no onnxruntime-gpu. Missing Python packages can come from wheels carried in ./wheels
# (pip download transformers tokenizers safetensors huggingface-hub -d wheels --no-deps).
# Budget: about 8 minutes; every step has its own timeout and writes its results as it ends, so a
# step that runs long costs only itself.
#
# Steps:
#   1. build the project in place (pip install --no-build-isolation --no-deps -e .; FAISS AUTO -> off)
#   2. `small` preset, random weights, bf16: PyTorch eager vs the torch backend (bf16 weights), batch 1/64/256
#   3. `small`, bf16: eager vs torch.compile with CUDA graphs (mode reduce-overhead), batch 1/256
#   4. `paper` preset (CLIP ViT-L/14-336 + 7B Mistral), random weights, bf16: eager vs torch backend, batch 1/32
#   5. the default bundle on the CPU (ONNX Runtime vs eager), a check that the build works
# then prints every table. Record the results in docs/BENCHMARKS.md with the card's name.
set -u -o pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT="${OUT:-$ROOT/out/gpu_check}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
BUDGET="${GPU_CHECK_BUDGET_S:-470}"
START=$SECONDS
export PYTHONPATH="$ROOT/python:$ROOT/export${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
LOG="$OUT/gpu_check.log"
: >"$LOG"

log() { echo "[gpu_check +$((SECONDS - START))s] $*" | tee -a "$LOG"; }
left() { echo $((BUDGET - (SECONDS - START))); }
step() {  # step NAME TIMEOUT_S COMMAND...: run with a timeout (capped by the budget left), log, go on
  local name=$1 limit=$2; shift 2
  local remaining; remaining=$(left)
  if [ "$remaining" -lt 30 ]; then log "SKIP $name: budget spent"; return 0; fi
  [ "$limit" -gt "$remaining" ] && limit=$remaining
  log "START $name (timeout ${limit}s): $*"
  timeout --signal=TERM --kill-after=15 "$limit" "$@" >>"$LOG" 2>&1
  local rc=$?
  if [ $rc -eq 0 ]; then log "OK $name"; else log "FAIL $name (rc $rc; 124 = timeout), see $LOG"; fi
  return 0
}

log "machine: $(nproc) cores; output in $OUT"
"$PY" - <<'PYEOF' 2>&1 | tee -a "$LOG"
import importlib.util, sys
print("python", sys.version.split()[0])
missing = [m for m in ("torch", "transformers", "tokenizers", "onnxruntime", "numpy") if importlib.util.find_spec(m) is None]
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"cuda:{i}", p.name, f"{p.total_memory / 2**30:.0f} GiB", f"sm_{p.major}{p.minor}")
print("missing:", missing or "none")
PYEOF
if [ -d "$ROOT/wheels" ]; then
  log "installing carried wheels from ./wheels (no index)"
  "$PY" -m pip install --no-index --find-links "$ROOT/wheels" transformers tokenizers safetensors huggingface-hub >>"$LOG" 2>&1 || log "wheel install failed (see log)"
fi
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  log "no CUDA device visible to torch: nothing to measure"; exit 1
fi

# 1. build the C++ extension in place (the editable install puts radz_engine._core on the path).
step build 240 env SKBUILD_CMAKE_DEFINE="RADZ_WITH_FAISS=AUTO;RADZ_BUILD_TESTS=OFF" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
  "$PY" -m pip install --no-build-isolation --no-deps --no-index -e "$ROOT"
"$PY" -c "import radz_engine._core as c; print('radz_engine._core', c.__file__)" 2>&1 | tee -a "$LOG"

BENCH=("$PY" -m radz_bench.cli --quiet)
# 2. small, bf16: eager vs torch backend (bf16 weights), the reference points' batch sizes.
step small_bf16 110 "${BENCH[@]}" --preset small --device cuda:0 --backend torch --precision bf16 \
  --batch 1,64,256 --warmup 3 --repeats 10 --rounds 3 --max-seconds 5 --out "$OUT/small_bf16"
# 3. small, bf16: torch.compile + CUDA graphs (compilation happens in the warm-up, per batch size).
step small_cudagraphs 170 "${BENCH[@]}" --preset small --device cuda:0 --backend torch-cudagraphs --precision bf16 \
  --batch 1,256 --warmup 3 --repeats 10 --rounds 2 --max-seconds 5 --out "$OUT/small_cudagraphs"
# 4. paper, bf16: eager vs torch backend (7B decoder; fp32 master weights in the backend: ~45 GB).
step paper_bf16 150 "${BENCH[@]}" --preset paper --device cuda:0 --backend torch --precision bf16 \
  --batch 1,32 --warmup 2 --repeats 5 --rounds 2 --max-seconds 8 --out "$OUT/paper_bf16"
# 5. the default bundle on the CPU: the build works end to end (C++ preprocess + ORT + scoring).
step cpu_default_bundle 60 "${BENCH[@]}" --device cpu --batch 1,32 --repeats 5 --rounds 1 --out "$OUT/cpu_default"

{
  echo "# radz bench GPU check"
  echo
  "$PY" -c "import torch; print('Card:', torch.cuda.get_device_name(0), '| torch', torch.__version__, '| CUDA', torch.version.cuda)"
  echo
  for name in small_bf16 small_cudagraphs paper_bf16 cpu_default; do
    if [ -f "$OUT/$name.md" ]; then echo "## $name"; echo; cat "$OUT/$name.md"; echo; fi
  done
} >"$OUT/gpu_check.md" 2>>"$LOG"
cat "$OUT/gpu_check.md"
log "done in $((SECONDS - START)) s; JSON + Markdown + PNG per step in $OUT"
