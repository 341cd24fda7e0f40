"""radz_engine: the runtime of radz (zero-shot radiograph recognition).

Never imports torch or transformers (tests/test_layout.py enforces it). Attributes that need the
C++ extension are loaded on first use, so `import radz_engine` stays cheap and the pure-Python
parts (DICOM reading, pixel specs) work even where the extension is not built.
"""

from __future__ import annotations

from .pixel_spec import PixelSpec

__version__ = "0.1.0"
__all__ = ["Engine", "PixelSpec", "Result", "load_bundle", "preprocess", "preprocess_batch", "__version__"]

_LAZY = {"preprocess": ".preprocessing", "preprocess_batch": ".preprocessing", "Engine": ".engine",
         "Result": ".results", "load_bundle": ".bundle"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'radz_engine' has no attribute {name!r}")
