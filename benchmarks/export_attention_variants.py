"""Which attention form runs fastest in ONNX Runtime (CPU) for the image encoder, and whether ONNX
Runtime's transformer optimizer fuses anything in our graph.

    python benchmarks/export_attention_variants.py [--threads 1] [--batch 32]

The `tiny` preset (random weights, seed 0) is exported three ways: plain MatMul/Softmax
attention (what radz export writes), SDPA at opset 23 (an ONNX `Attention` node) and SDPA at
opset 20 (decomposed); each graph's median time per batch and its max difference to PyTorch are
printed. Then the optimizer's fusion counts for the plain graph per model type.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def median_ms(fn, repeats: int = 7) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args(argv)

    import onnxruntime as ort
    import torch

    import radz_export.onnx_export as onnx_export
    from radz_train.data.phantom import generate_cases
    from radz_train.dkam import load_knowledge
    from radz_train.model.factory import create_model

    torch.set_num_threads(args.threads)
    corpus = [c.report for c in generate_cases(32, seed=3, size=32)] + list(load_knowledge().values())
    torch.manual_seed(0)
    model = create_model("tiny", corpus=corpus, seed=0).eval()
    x = torch.rand(args.batch, 3, model.config.image_size, model.config.image_size)
    with torch.inference_mode():
        reference = model.encode_image(x).global_.numpy()

    work = Path(tempfile.mkdtemp(prefix="radz_attention_"))
    graphs = {
        "plain MatMul/Softmax (opset 20, exported)": (work / "plain.onnx", 20, False),
        "SDPA, opset 23 (Attention node)": (work / "sdpa23.onnx", 23, True),
        "SDPA, opset 20 (decomposed)": (work / "sdpa20.onnx", 20, True),
    }
    keep = onnx_export.eager_attention
    for path, opset, sdpa in graphs.values():
        if sdpa:  # let the model keep its SDPA attention while exporting
            onnx_export.eager_attention = lambda m: contextlib.nullcontext()
            for config in (model.decoder.config, model.vision_tower.config):
                config._attn_implementation = "sdpa"
        try:
            onnx_export.export_image_encoder(model, path, opset=opset)
        finally:
            onnx_export.eager_attention = keep

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    print(f"batch {args.batch}, {args.threads} thread(s), onnxruntime {ort.__version__}")
    for label, (path, _, _) in graphs.items():
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name, xn = session.get_inputs()[0].name, x.numpy()
        diff = float(np.abs(session.run(None, {name: xn})[0] - reference).max())
        print(f"  {label:45s} {median_ms(lambda: session.run(None, {name: xn})):7.1f} ms  max |diff| {diff:.1e}")  # noqa: B023 (called at once)

    from onnxruntime.transformers import optimizer

    hidden = int(model.config.decoder["hidden_size"])
    heads = int(model.config.decoder["num_attention_heads"])
    for model_type in ("vit", "clip", "bert", "gpt2"):
        optimized = optimizer.optimize_model(
            str(graphs["plain MatMul/Softmax (opset 20, exported)"][0]),
            model_type=model_type,
            num_heads=heads,
            hidden_size=hidden,
            opt_level=1,
            use_gpu=False,
        )
        fused = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
        print(f"  transformer optimizer, model_type={model_type}: fused {fused}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
