"""radz_export: PyTorch -> ONNX bundles (see the export issue). Nothing here yet."""
