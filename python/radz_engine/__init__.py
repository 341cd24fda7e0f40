"""radz_engine: the runtime of radz (zero-shot radiograph recognition).

    import radz_engine as rz
    with rz.Engine() as engine:                # the shipped default bundle
        results = engine.classify(["a.dcm"])   # list[rz.Result]
        print(engine.stats().latency_ms)       # rz.Stats
    bundle = rz.load_bundle()                  # the shipped default bundle, as Engine() loads it

Sub-packages: io (reading images), preprocessing (pixels -> model input), scoring (class
scores, calibration, metrics), bundle (the model bundle format), backends (ONNX Runtime,
TensorRT, torch), runtime (Engine, screening), serve (`radz serve`), distributed (Ray), cli.

Never imports torch or transformers (tests/test_layout.py enforces it), nor radz_train,
radz_export or radz_bench outside cli/ and backends/torch_backend.py (tests/test_imports.py).
Attributes that need the C++ extension are loaded on first use, so `import radz_engine` stays
cheap and the pure-Python parts (DICOM reading) work even where the extension is not built.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from radz_engine.errors import (
    BackendUnavailable,
    BundleError,
    DeadlineExceeded,
    DicomInputError,
    EngineClosed,
    QueueFull,
    RadzError,
    RadzInputError,
    RadzInputWarning,
    RequestCancelled,
    SimilarIndexError,
)
from radz_engine.preprocessing.pixel_spec import PixelSpec

if TYPE_CHECKING:
    from radz_engine.bundle.loader import Bundle, load_bundle
    from radz_engine.preprocessing.native import preprocess, preprocess_batch
    from radz_engine.runtime.engine import Engine
    from radz_engine.runtime.results import Result
    from radz_engine.runtime.stats import Stats

__version__ = "0.1.0"
__all__ = [
    "Engine",
    "Result",
    "Stats",
    "Bundle",
    "load_bundle",
    "PixelSpec",
    "preprocess",
    "preprocess_batch",
    "RadzError",
    "RadzInputError",
    "DicomInputError",
    "RadzInputWarning",
    "BundleError",
    "BackendUnavailable",
    "EngineClosed",
    "QueueFull",
    "DeadlineExceeded",
    "RequestCancelled",
    "SimilarIndexError",
    "build_info",
    "__version__",
]

_LAZY = {
    "Engine": "radz_engine.runtime.engine",
    "Result": "radz_engine.runtime.results",
    "Stats": "radz_engine.runtime.stats",
    "Bundle": "radz_engine.bundle.loader",
    "load_bundle": "radz_engine.bundle.loader",
    "preprocess": "radz_engine.preprocessing.native",
    "preprocess_batch": "radz_engine.preprocessing.native",
}


def _decoder_syntaxes() -> dict[str, str]:
    """The compressed transfer syntaxes build_info() names a decoder for."""
    from radz_engine.io.transfer_syntaxes import TRANSFER_SYNTAXES

    return {name: uid for name, uid in TRANSFER_SYNTAXES.items() if name != "explicit-le"}


def build_info() -> dict[str, Any]:
    """What this installation was built with and can use, as plain values:

    core (the C++ extension is importable), faiss (its FAISS AnchorIndex), similar_search (how a
    similar-case index is searched: "faiss" through the core's VectorIndex, or "numpy" exact
    search up to 100,000 images), openjpeg (the OpenJPEG
    version the core decodes JPEG 2000 / HTJ2K with at a reduced resolution, or None: then pydicom
    decodes them at full size), libjpeg (the core decodes 8-bit grayscale JPEG baseline with DCT
    scaling), cuda (ONNX Runtime's CUDA provider is available; the C++ core
    itself has no CUDA code), decoders ({transfer syntax name: what decodes it: "openjpeg
    (reduced resolution)", "libjpeg (DCT scaling)", "pydicom" (its plugins) or None when nothing is installed}).
    """
    info: dict[str, Any] = {
        "version": __version__,
        "core": False,
        "faiss": False,
        "similar_search": "numpy",
        "openjpeg": None,
        "libjpeg": False,
        "cuda": False,
    }
    try:
        from radz_engine import _core

        info["core"] = True
        info["faiss"] = bool(getattr(_core, "HAVE_FAISS", False))
        info["similar_search"] = "faiss" if hasattr(_core, "VectorIndex") else "numpy"
        if getattr(_core, "HAVE_OPENJPEG", False):
            info["openjpeg"] = str(_core.OPENJPEG_VERSION)
        info["libjpeg"] = bool(getattr(_core, "HAVE_LIBJPEG", False))
    except ImportError:
        pass
    try:
        import onnxruntime

        info["cuda"] = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    except ImportError:
        pass
    decoders: dict[str, str | None] = {}
    syntaxes = _decoder_syntaxes()
    try:
        from pydicom.pixels import get_decoder

        for name, uid in syntaxes.items():
            decoders[name] = "pydicom" if get_decoder(uid).is_available else None
    except ImportError:
        decoders = dict.fromkeys(syntaxes)
    if info["openjpeg"]:
        for name in ("j2k-lossless", "j2k", "htj2k-lossless"):
            decoders[name] = "openjpeg (reduced resolution)"
    if info["libjpeg"]:
        decoders["jpeg-baseline"] = "libjpeg (DCT scaling)"
    info["decoders"] = decoders
    return info


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'radz_engine' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)  # the public API, not the helpers this module imports
