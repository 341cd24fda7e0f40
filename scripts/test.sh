#!/usr/bin/env bash
# Sets up .venv (if needed), installs the project with its test extras, then runs every check:
# lint and format (ruff, clang-format), the extension's type stubs (mypy stubtest), C++ unit
# tests (plain, ASan+UBSan, TSan) through ctest, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
# The CPU wheel that lies on the build machine's disk; a bare `torch` would pull a CUDA build.
python -m pip install -q torch==2.13.0
python -m pip install -q ".[dicom,codecs,train,export,runtime,serve,scale,report,openvino,test]"

echo "== lint and format: ruff check, ruff format --check, clang-format"
ruff check python export tests benchmarks scripts
ruff format --check python export tests benchmarks scripts
if command -v clang-format >/dev/null; then
  git ls-files 'cpp/*.h' 'cpp/*.cpp' 'tests/cpp/*.cpp' | xargs clang-format --dry-run --Werror
else
  echo "clang-format not installed: C++ format not checked" >&2
fi

echo "== type stubs of the C++ extension: mypy stubtest"
(cd tests && python -m mypy.stubtest radz_engine._core --allowlist stubtest_allowlist.txt)

echo "== C++ unit tests (GoogleTest via ctest): plain, ASan+UBSan, TSan"
for sanitize in "" "address;undefined" "thread"; do
  dir="build/ctest${sanitize:+-${sanitize//;/-}}"
  cmake -S . -B "$dir" -G Ninja -DRADZ_BUILD_TESTS=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DRADZ_SANITIZE=$sanitize" >/dev/null
  cmake --build "$dir" --parallel 2 >/dev/null
  # Under TSan, BLAS and OpenMP run on one thread: their worker threads are not instrumented, so
  # TSan cannot see their synchronisation and reports races inside FAISS's matrix products
  # (seen with Debian's libopenblas0-pthread). Our own threads (batcher, index locks) stay many.
  if [ "$sanitize" = "thread" ]; then
    (cd "$dir" && OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 ctest --output-on-failure --timeout 300)
  else
    (cd "$dir" && ctest --output-on-failure --timeout 300)
  fi
done

echo "== pytest"
# Run from tests/ against the installed package, not the source tree.
python -m pytest "$@"
