#!/usr/bin/env bash
# Sets up .venv (if needed), installs the project with its test extras, then runs every test:
# C++ unit tests (plain, ASan+UBSan, TSan) through ctest, then pytest.
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
python -m pip install -q ".[dicom,train,export,runtime,serve,scale,report,test]"

echo "== C++ unit tests (GoogleTest via ctest): plain, ASan+UBSan, TSan"
for sanitize in "" "address;undefined" "thread"; do
  dir="build/ctest${sanitize:+-${sanitize//;/-}}"
  cmake -S . -B "$dir" -G Ninja -DRADZ_BUILD_TESTS=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DRADZ_SANITIZE=$sanitize" >/dev/null
  cmake --build "$dir" --parallel 2 >/dev/null
  (cd "$dir" && ctest --output-on-failure --timeout 300)
done

echo "== pytest"
# Run from tests/ against the installed package, not the source tree.
python -m pytest "$@"
