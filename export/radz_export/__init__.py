"""radz_export: PyTorch RadzModel -> ONNX bundle for the torch-free runtime (issue 4).

Modules, one job each:
    encoders       export-friendly image/text encoder nn.Modules (truncated decoder, explicit mask)
    onnx_export    torch.onnx export (dynamo), fp16 conversion, external data, onnx.checker
    parity         ONNX Runtime vs PyTorch checks (ExportParityError), zero-shot AUC parity
    bundle         write_bundle: the bundle folder + manifest
    tensorrt_build TensorRT engines / ORT TensorRT EP options (unvalidated on hardware)
    cli            `radz export`

Imports are lazy so `import radz_export` does not pull in torch.
"""

from __future__ import annotations

__all__ = ["write_bundle", "ExportParityError"]


def __getattr__(name: str):
    if name == "write_bundle":
        from radz_export.bundle import write_bundle

        return write_bundle
    if name == "ExportParityError":
        from radz_export.parity import ExportParityError

        return ExportParityError
    raise AttributeError(f"module 'radz_export' has no attribute {name!r}")
