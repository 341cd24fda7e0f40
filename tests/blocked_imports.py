"""Run Python code in a subprocess where chosen packages cannot be imported (torch-free checks)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

HEAVY = ("torch", "transformers", "peft", "onnx", "tensorrt")


def run_blocked(code: str, blocked=HEAVY, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `code` with `python -W error`; importing any package in `blocked` raises ImportError."""
    prelude = textwrap.dedent(
        f"""
        import importlib.abc, sys

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {set(blocked)!r}:
                    raise ImportError(f"blocked in this test: {{name}}")
                return None

        sys.meta_path.insert(0, Block())
        """
    )
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
