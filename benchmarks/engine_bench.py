"""Engine (ONNX Runtime CPU) vs plain PyTorch eager on the same model, side by side in one run.

    python benchmarks/engine_bench.py --threads 1 --json docs/engine_bench.json

The model is the `tiny` preset (the default bundle's architecture) with random weights, exported
here to a temporary bundle (the default bundle's checkpoint is not shipped). Measures:
1. model only: ONNX Runtime backend.run vs torch encode_image, batch 1 / 8 / 32;
2. end to end from stored 128 x 128 float images: Engine.classify (C++ preprocess + ORT + scoring)
   vs PyTorch eager (numpy normalise + encode_image + numpy scoring);
3. submit() latency at low load (one request at a time, max_delay 2 ms) vs the bare backend's
   batch-1 time;
4. optionally (--screen N) Engine.screen over N phantom DICOMs with per-stage times.
Rounds alternate between the two sides so that background load hits both alike; medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def timed(fn, repeats: int) -> float:
    """Median seconds of fn() over repeats (after one warm-up call)."""
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def build_bundle(folder: Path):
    import torch

    from radz_export import write_bundle
    from radz_train.data.phantom import generate_cases
    from radz_train.dkam import load_knowledge
    from radz_train.model.factory import create_model

    corpus = [c.report for c in generate_cases(32, seed=3, size=32)] + list(load_knowledge().values())
    torch.manual_seed(0)
    model = create_model("tiny", corpus=corpus, seed=0).eval()
    write_bundle(model, folder, parity_checks=False, auc_phantoms=0)
    return model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads for both sides (default 1)")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per measurement")
    parser.add_argument("--latency-requests", type=int, default=300)
    parser.add_argument("--screen", type=int, default=0, help="also screen N phantom DICOMs (0: skip)")
    parser.add_argument("--workers", type=int, default=1, help="decoding processes for --screen")
    parser.add_argument("--json", default=None, help="write the numbers here")
    args = parser.parse_args(argv)

    import torch

    from radz_engine import _core
    from radz_engine.engine import Engine
    from radz_engine.pixel_spec import PixelSpec
    from radz_engine.scoring import class_scores
    from radz_train.data.phantom import generate_cases

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="radz_engine_bench_"))
    model = build_bundle(work / "bundle")
    identity = PixelSpec(window_center=0.5, window_width=1.0, voi_function="LINEAR_EXACT")
    batches = [int(b) for b in args.batches.split(",")]
    images = [c.image.astype(np.float32) for c in generate_cases(max(batches), seed=7, size=128)]
    engine = Engine(work / "bundle", threads=args.threads, max_batch_size=max(batches), max_delay_ms=2.0)
    mean, std = engine.bundle.input_spec["mean"], engine.bundle.input_spec["std"]
    embeddings, tau, mode = engine.bundle.embeddings(), engine.bundle.tau, engine.scorer.mode
    m = torch.tensor(mean)[None, :, None, None]
    s = torch.tensor(std)[None, :, None, None]
    report = {"threads": args.threads, "cpu_batcher": "c++" if hasattr(_core, "DynamicBatcher") else "python-fallback",
              "backend": engine.backend.name, "model": "tiny preset, random weights, input 128, D=128",
              "torch": torch.__version__, "rows": []}

    print(f"threads={args.threads}  engine backend={engine.backend.name}  batcher={report['cpu_batcher']}", file=sys.stderr)
    for b in batches:
        x = engine.preprocess([__import__("radz_engine.inputs", fromlist=["decode"]).decode((im, identity)) for im in images[:b]])
        xt = torch.from_numpy(x)
        grey = torch.from_numpy(np.stack(images[:b]))

        def torch_model():
            with torch.inference_mode():
                model.encode_image(xt)

        def torch_e2e():
            with torch.inference_mode():
                feats = model.encode_image(((grey[:, None] - m) / s).float()).global_.numpy()
            class_scores(feats, embeddings, mode, tau)

        def ort_model():
            engine.backend.run(x)

        def engine_e2e():
            engine.classify([(im, identity) for im in images[:b]])

        repeats = max(3, 64 // b)
        t = {"torch_model": [], "ort_model": [], "torch_e2e": [], "engine_e2e": []}
        for _ in range(args.rounds):  # alternate, so background load hits both sides alike
            t["torch_model"].append(timed(torch_model, repeats))
            t["ort_model"].append(timed(ort_model, repeats))
            t["torch_e2e"].append(timed(torch_e2e, repeats))
            t["engine_e2e"].append(timed(engine_e2e, repeats))
        med = {k: statistics.median(v) for k, v in t.items()}
        row = {"batch": b, **{f"{k}_img_s": round(b / v, 1) for k, v in med.items()},
               "model_ratio": round(med["torch_model"] / med["ort_model"], 2),
               "e2e_ratio": round(med["torch_e2e"] / med["engine_e2e"], 2)}
        report["rows"].append(row)
        print(row, file=sys.stderr)

    # submit() latency at low load: one request in flight at a time.
    x1 = engine.preprocess([__import__("radz_engine.inputs", fromlist=["decode"]).decode((images[0], identity))])
    bare = timed(lambda: engine.backend.run(x1), 50) * 1000.0
    engine.submit((images[0], identity)).result(30)  # start runners, warm up
    latencies = []
    for i in range(args.latency_requests):
        start = time.perf_counter()
        engine.submit((images[i % len(images)], identity)).result(30)
        latencies.append((time.perf_counter() - start) * 1000.0)
    p50, p99 = float(np.percentile(latencies, 50)), float(np.percentile(latencies, 99))
    report["latency"] = {"requests": args.latency_requests, "max_delay_ms": 2.0, "bare_batch1_ms": round(bare, 3),
                         "submit_p50_ms": round(p50, 3), "submit_p99_ms": round(p99, 3),
                         "target_p99_ms": round(1.3 * bare + 2.0, 3)}
    print(report["latency"], file=sys.stderr)

    if args.screen:
        from radz_train.data.dicom_out import write_case

        folder = work / "dicoms"
        folder.mkdir()
        for case in generate_cases(args.screen, seed=11, size=512):
            write_case(case, folder / f"{case.index:05d}.dcm")
        start = time.perf_counter()
        results = list(engine.screen(folder, progress=False, workers=args.workers, batch_size=32))
        seconds = time.perf_counter() - start
        ok = [r for r in results if r.ok]
        stage = {k: round(float(np.mean([r.timings[k] for r in ok])), 3) for k in ("decode", "preprocess")}
        stage["model_per_image"] = round(float(np.mean([r.timings["model"] / 32 for r in ok])), 3)
        report["screen"] = {"files": len(results), "ok": len(ok), "workers": args.workers, "size": 512,
                            "images_per_s": round(len(results) / seconds, 1), "mean_ms": stage}
        print(report["screen"], file=sys.stderr)
    engine.close()

    print("| batch | torch eager model img/s | ORT model img/s | ratio | torch eager e2e img/s | Engine.classify img/s | ratio |")
    print("|---|---|---|---|---|---|---|")
    for r in report["rows"]:
        print(f"| {r['batch']} | {r['torch_model_img_s']} | {r['ort_model_img_s']} | {r['model_ratio']}x | "
              f"{r['torch_e2e_img_s']} | {r['engine_e2e_img_s']} | {r['e2e_ratio']}x |")
    lat = report["latency"]
    print(f"\nsubmit() at low load: p50 {lat['submit_p50_ms']} ms, p99 {lat['submit_p99_ms']} ms; bare batch-1 "
          f"{lat['bare_batch1_ms']} ms; target p99 <= 1.3 x bare + 2 ms = {lat['target_p99_ms']} ms")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
