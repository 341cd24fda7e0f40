"""Architecture rules that are easy to break by accident (DESIGN.md section 3)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from blocked_imports import run_blocked

ROOT = Path(__file__).resolve().parents[1]


def test_core_sources_never_include_python():
    offenders = []
    for folder in ("cpp/include", "cpp/src"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in {".h", ".hpp", ".cpp", ".cc"}:
                text = path.read_text()
                if re.search(r"#\s*include\s*[<\"](pybind11/|Python\.h)", text):
                    offenders.append(str(path.relative_to(ROOT)))
    assert offenders == [], f"the C++ core must not include pybind11 or Python.h: {offenders}"
    assert list((ROOT / "cpp/src").glob("*.cpp")), "no core sources found"


def test_runtime_sources_import_torch_only_in_the_torch_backend():
    """Not even lazily: only backends/torch_backend.py may import torch or transformers."""
    pattern = re.compile(r"^\s*(import|from)\s+(torch|transformers)\b", re.MULTILINE)
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "python/radz_engine").rglob("*.py")
        if p.name != "torch_backend.py" and pattern.search(p.read_text())
    ]
    assert offenders == [], f"radz_engine must not import torch/transformers: {offenders}"


def test_runtime_imports_without_torch_or_transformers():
    result = run_blocked(
        """
        import radz_engine, radz_engine.preprocessing.native, radz_engine.cli
        import numpy as np
        out = radz_engine.preprocess(np.arange(12, dtype=np.uint16).reshape(3, 4), None, 8)
        assert out.shape == (3, 8, 8)
        assert "torch" not in sys.modules and "transformers" not in sys.modules
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize(
    "module",
    [
        "radz_engine.io.dicom",
        "radz_engine.io.images",
        "radz_engine.bundle",
        "radz_engine.runtime.text_encoder",
        "radz_train",
        "radz_train.data.phantom",
    ],
)
def test_light_modules_import_without_torch(module):
    result = run_blocked(f"import {module}; assert 'torch' not in sys.modules; print('ok')")
    assert result.returncode == 0, result.stderr


def test_radz_command_is_installed():
    result = subprocess.run(
        [sys.executable, "-m", "radz_engine.cli", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "synth" in result.stdout and "demo" in result.stdout
