#!/usr/bin/env bash
# One prepared GPU check for a machine with an NVIDIA GPU and no network: every GPU path the runtime
# has (the engine, screening, the DICOM node with the torch backend) and `radz bench`.
#
#   bash scripts/prepare_gpu_carry.sh       # first, on a machine with network: -> build/gpu_carry
#   bash benchmarks/gpu_check.sh            # on the GPU machine; results in $OUT (default ./out/gpu_check)
#
# With the project's device tool: command `bash benchmarks/gpu_check.sh` (its $OUT is the folder that
# comes back), carry ["build/gpu_carry"], timeout_s ~540 (the script's budget is 470 s + the summary).
#
# Assumes: Python with torch (CUDA), numpy, cmake + pybind11 + scikit-build-core (to build the C++
# extension); no onnxruntime, no transformers, no pydicom, no FAISS, no TensorRT. What the steps
# import and the machine lacks comes as wheels in build/gpu_carry/wheels (gitignored: the device tool
# must carry it by name), installed with pip --no-index --no-deps into build/gpu_site (only the
# distributions the machine does not already have; nothing in the system environment changes).
# Budget: about 8 minutes; every step has its own timeout and writes its results as it ends, so a
# step that runs long costs only itself.
#
# Steps:
#   1. build the project in place (pip install --no-build-isolation --no-deps -e .; FAISS AUTO -> off)
#   2. paths: benchmarks/gpu_paths_check.py on cuda:0 with the carried tiny bundle + checkpoint:
#      Engine.classify / Engine.submit with the torch backend (against the CPU, and bf16), Engine.screen
#      over 200 PNGs, `radz serve --backend torch --device cuda:0` (C-STORE in, SR out)
#   3. `small` preset, random weights, bf16: PyTorch eager vs the torch backend (bf16 weights), batch 1/64/256
#   4. `small`, bf16: eager vs torch.compile with CUDA graphs (mode reduce-overhead), batch 1/256
#   5. `paper` preset (CLIP ViT-L/14-336 + 7B Mistral), random weights, bf16: eager vs torch backend, batch 1/32
#   6. the default bundle on the CPU (ONNX Runtime vs eager), a check that the build works (skipped without
#      onnxruntime)
# then prints every table. Record the results in docs/BENCHMARKS.md with the card's name.
#
# Environment: OUT, PYTHON, GPU_CHECK_BUDGET_S (470), GPU_CARRY (build/gpu_carry), GPU_CHECK_DEVICE
# (cuda:0; `cpu` runs the paths step without a GPU, as a check of this script), GPU_CHECK_STEPS (comma
# list of build,paths,small_bf16,small_cudagraphs,paper_bf16,cpu_default; default all of them).
set -u -o pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT="${OUT:-$ROOT/out/gpu_check}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
BUDGET="${GPU_CHECK_BUDGET_S:-470}"
START=$SECONDS
CARRY="${GPU_CARRY:-$ROOT/build/gpu_carry}"
SITE="${GPU_SITE:-$ROOT/build/gpu_site}"
DEVICE="${GPU_CHECK_DEVICE:-cuda:0}"
STEPS=",${GPU_CHECK_STEPS:-build,paths,small_bf16,small_cudagraphs,paper_bf16,cpu_default},"
export PYTHONPATH="$ROOT/python:$ROOT/export:$SITE${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
LOG="$OUT/gpu_check.log"
: >"$LOG"

log() { echo "[gpu_check +$((SECONDS - START))s] $*" | tee -a "$LOG"; }
left() { echo $((BUDGET - (SECONDS - START))); }
step() {  # step NAME TIMEOUT_S COMMAND...: run with a timeout (capped by the budget left), log, go on
  local name=$1 limit=$2; shift 2
  case $STEPS in *",$name,"*) ;; *) log "SKIP $name: not in GPU_CHECK_STEPS"; return 0 ;; esac
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
print("missing before the carried wheels:", missing or "none")
PYEOF
if [ -d "$CARRY/wheels" ]; then
  # The distributions this Python lacks (and the model / DICOM stack when another version is
  # installed: build/gpu_site comes first on PYTHONPATH), without dependency resolution (the carry
  # holds the closure the steps import), into build/gpu_site: the system environment is untouched.
  mapfile -t MISSING < <("$PY" - "$CARRY/wheels" <<'PYEOF'
import importlib.metadata as md, pathlib, re, sys
PINNED = {"transformers", "huggingface-hub", "tokenizers", "safetensors", "pydicom", "pynetdicom", "highdicom"}
for wheel in sorted(pathlib.Path(sys.argv[1]).glob("*.whl")):
    name = re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()
    try:
        have = md.version(name)
    except md.PackageNotFoundError:
        print(wheel)
        continue
    if name in PINNED and have != wheel.name.split("-")[1]:
        print(wheel)
PYEOF
  )
  if [ ${#MISSING[@]} -gt 0 ]; then
    log "installing ${#MISSING[@]} carried wheels into $SITE (no index, no deps): ${MISSING[*]##*/}"
    "$PY" -m pip install --disable-pip-version-check --no-index --no-deps --upgrade --target "$SITE" "${MISSING[@]}" \
      >>"$LOG" 2>&1 || log "wheel install failed (see log)"
  else
    log "every carried wheel's distribution is installed already"
  fi
else
  log "no $CARRY/wheels: run scripts/prepare_gpu_carry.sh and carry build/gpu_carry (the paths step needs it)"
fi
if [ "$DEVICE" != cpu ] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  log "no CUDA device visible to torch: nothing to measure"; exit 1
fi

# 1. build the C++ extension in place (the editable install puts radz_engine._core on the path).
step build 240 env SKBUILD_CMAKE_DEFINE="RADZ_WITH_FAISS=AUTO;RADZ_BUILD_TESTS=OFF" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
  "$PY" -m pip install --no-build-isolation --no-deps --no-index -e "$ROOT"
"$PY" -c "import radz_engine._core as c; print('radz_engine._core', c.__file__)" 2>&1 | tee -a "$LOG"

# 2. every runtime GPU path with the torch backend (engine, screen, serve), on the carried tiny model.
step paths 200 "$PY" "$ROOT/benchmarks/gpu_paths_check.py" --device "$DEVICE" --carry "$CARRY" --out "$OUT/paths" \
  --serve-start-timeout 90 --serve-sr-timeout 60

BENCH=("$PY" -m radz_bench.cli --quiet)
# 3. small, bf16: eager vs torch backend (bf16 weights), the reference points' batch sizes.
step small_bf16 110 "${BENCH[@]}" --preset small --device cuda:0 --backend torch --precision bf16 \
  --batch 1,64,256 --warmup 3 --repeats 10 --rounds 3 --max-seconds 5 --out "$OUT/small_bf16"
# 4. small, bf16: torch.compile + CUDA graphs (compilation happens in the warm-up, per batch size).
step small_cudagraphs 170 "${BENCH[@]}" --preset small --device cuda:0 --backend torch-cudagraphs --precision bf16 \
  --batch 1,256 --warmup 3 --repeats 10 --rounds 2 --max-seconds 5 --out "$OUT/small_cudagraphs"
# 5. paper, bf16: eager vs torch backend (7B decoder; fp32 master weights in the backend: ~45 GB).
step paper_bf16 150 "${BENCH[@]}" --preset paper --device cuda:0 --backend torch --precision bf16 \
  --batch 1,32 --warmup 2 --repeats 5 --rounds 2 --max-seconds 8 --out "$OUT/paper_bf16"
# 6. the default bundle on the CPU: the build works end to end (C++ preprocess + ORT + scoring).
if "$PY" -c "import onnxruntime" 2>/dev/null; then
  step cpu_default 60 "${BENCH[@]}" --device cpu --batch 1,32 --repeats 5 --rounds 1 --out "$OUT/cpu_default"
else
  log "SKIP cpu_default: onnxruntime not importable"
fi

{
  echo "# GPU check (benchmarks/gpu_check.sh)"
  echo
  "$PY" -c "import torch; c = torch.cuda.is_available(); print('Card:', torch.cuda.get_device_name(0) if c else 'none (CPU)', '| torch', torch.__version__, '| CUDA', torch.version.cuda)"
  echo
  if [ -f "$OUT/paths/paths.md" ]; then echo "## paths (engine, screen, serve; torch backend on $DEVICE)"; echo; cat "$OUT/paths/paths.md"; echo; fi
  for name in small_bf16 small_cudagraphs paper_bf16 cpu_default; do
    if [ -f "$OUT/$name.md" ]; then echo "## $name"; echo; cat "$OUT/$name.md"; echo; fi
  done
} >"$OUT/gpu_check.md" 2>>"$LOG"
cat "$OUT/gpu_check.md"
log "done in $((SECONDS - START)) s; JSON + Markdown + PNG per step in $OUT"
