"""`radz demo`: the main job. Makes a phantom DICOM study set, screens it with the shipped
default bundle (no torch), prints per-class zero-shot AUC, throughput and submit() latency, and
writes an HTML report with ROC curves and example images with their scores.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from radz_engine.runtime.timing import StageTimer


def build_parser() -> argparse.ArgumentParser:
    from radz_engine.cli.options import add_bundle, add_workers, alias, parser

    p = parser("radz demo", __doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("radz_demo"), help="folder for the study set and report")
    p.add_argument("--n", type=int, default=200, help="number of phantom radiographs")
    p.add_argument("--size", type=int, default=512, help="phantom image side in pixels (DICOM)")
    alias(p, "--dicom-size", "size", type=int)
    add_bundle(p, type=Path)
    add_workers(p, default=os.cpu_count() or 1, help="processes for generation and decoding")
    p.add_argument("--latency-requests", type=int, default=50, help="single submit() calls timed at low load")
    p.add_argument("--seed", type=int, default=0, help="phantom series seed")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.n < 2:
        print("radz demo: --n must be >= 2", file=sys.stderr)
        return 2
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print("radz demo: needs onnxruntime: pip install 'radz-engine[dicom,runtime]'", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    return _run(args)


def _run(args) -> int:
    from radz_engine.bundle.default import default_bundle_path
    from radz_engine.runtime.engine import Engine
    from radz_engine.scoring.metrics import binary_auc
    from radz_train.data.synth_cli import main as synth_main

    timer = StageTimer()
    study = args.out / "phantom_dicom"
    if not (study / "labels.csv").exists():
        synth = [
            "--out",
            str(study),
            "--n",
            str(args.n),
            "--seed",
            str(args.seed),
            "--format",
            "dicom",
            "--size",
            str(args.size),
            "--sites",
            "site_a,site_b,site_c",
            "--workers",
            str(args.workers),
            "--quiet",
        ]
        with timer.stage("generate phantom DICOM", args.n):
            code = synth_main(synth)
        if code:
            return code
    with (study / "labels.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    paths = [str((study / r["path"]).resolve()) for r in rows]
    bundle = args.bundle or default_bundle_path()
    results = []
    with Engine(bundle, max_delay_ms=2) as engine:
        classes = engine.class_names
        start = time.perf_counter()
        with timer.stage("screen: decode, preprocess, model", len(paths)):
            results = list(engine.screen(paths, progress=sys.stderr.isatty(), workers=args.workers))
        screen_s = time.perf_counter() - start
        latencies = _submit_latencies(engine, paths[: max(1, min(len(paths), 8))], args.latency_requests)
        backend = engine.backend.name
        thresholds = engine.thresholds()
        identity, manifest = engine.model_info, engine.bundle.manifest
    by_source = {str(Path(r.source).resolve()): r for r in results}
    ok = [(row, by_source.get(p)) for row, p in zip(rows, paths)]
    failed = [p for (row, r), p in zip(ok, paths) if r is None or r.error]
    good = [(row, r) for row, r in ok if r is not None and not r.error]
    labels = np.array([[float(row[c]) for c in classes] for row, _ in good])
    scores = np.array([[r.scores[c] for c in classes] for _, r in good])
    auc_rows = [(c, int(labels[:, j].sum()), binary_auc(labels[:, j], scores[:, j])) for j, c in enumerate(classes)]
    defined = [a for _, _, a in auc_rows if a == a]
    macro = float(np.mean(defined)) if defined else float("nan")

    print()
    print(f"study set: {study} ({len(paths)} DICOM files, {len(failed)} failed)  bundle: {bundle}  backend: {backend}")
    print(timer.table())
    print(f"\n{'class':<20} {'positives':>9} {'AUC':>7}")
    for name, n_pos, auc in auc_rows:
        print(f"{name:<20} {n_pos:>9d} {('n/a' if auc != auc else f'{100 * auc:.1f}'):>7}")
    print(f"{'macro':<20} {'':>9} {100 * macro:>7.1f}")
    p50, p99 = (float(np.percentile(latencies, q)) for q in (50, 99))
    print(f"\nthroughput: {len(paths) / screen_s:.1f} images/s (screen, {args.workers} decode workers)")
    print(f"submit() latency, one request at a time ({len(latencies)} requests): p50 {p50:.1f} ms, p99 {p99:.1f} ms")

    report = _write_report(
        args,
        study,
        classes,
        labels,
        scores,
        good,
        auc_rows,
        macro,
        {
            "images": len(paths),
            "failed": len(failed),
            "backend": backend,
            "screen images/s": f"{len(paths) / screen_s:.1f}",
            "submit p50 / p99 (ms)": f"{p50:.1f} / {p99:.1f}",
            "macro AUC": f"{100 * macro:.1f}",
            "bundle": str(bundle),
        },
        thresholds=thresholds,
        identity=identity,
        manifest=manifest,
    )
    summary = {
        "files": len(paths),
        "failed": failed,
        "macro_auc": macro,
        "per_class_auc": {n: a for n, _, a in auc_rows},
        "screen_images_per_s": len(paths) / screen_s,
        "submit_latency_ms": {"p50": p50, "p99": p99},
        "stages": timer.as_dict(),
        "report": str(report),
    }
    (args.out / "demo_summary.json").write_text(json.dumps(summary, indent=2, default=float))
    print(f"report: {report}")
    return 1 if failed else 0


def _submit_latencies(engine, paths: list[str], n: int) -> np.ndarray:
    """End-to-end submit() latency at low load: one request in flight at a time."""
    from radz_engine.io.inputs import decode  # decoded once, so the timing is preprocess + queue + model

    decoded = [decode(p) for p in paths]
    samples = []
    for i in range(n + 1):
        d = decoded[i % len(decoded)]
        start = time.perf_counter()
        engine.submit((d.pixels, d.spec)).result(timeout=30)
        if i:  # the first call starts the runner threads
            samples.append((time.perf_counter() - start) * 1000.0)
    return np.array(samples)


def _write_report(
    args, study: Path, classes, labels, scores, good, auc_rows, macro, summary, *, thresholds, identity, manifest
) -> Path:
    from radz_engine.cli.demo_report import model_card_rows, operating_points, reliability, write_report
    from radz_engine.io.images import read_any
    from radz_engine.preprocessing.reference import stored_to_intensity
    from radz_train.evaluation.plots import plot_roc_curves  # imports matplotlib only when called

    try:
        roc = plot_roc_curves(labels, scores, list(classes), args.out / "roc.png", title="radz demo: zero-shot ROC")
    except ImportError:  # matplotlib is optional (the `report` extra): the report goes without curves
        print(
            "radz demo: matplotlib is not installed, so the report has no ROC curves "
            "(pip install 'radz-engine[report]')",
            file=sys.stderr,
        )
        roc = None

    def example(row, result) -> dict:
        image = read_any(result.source)
        return {
            "image": stored_to_intensity(image.pixels, image.spec),
            "source": result.source,
            "truth": [c for c in classes if float(row[c]) == 1.0],
            "scores": result.scores,
        }

    examples = [example(row, result) for row, result in good[:12]]
    missed = [  # false negatives: a true finding below its threshold, lowest score first
        (result.scores[c], c, row, result)
        for row, result in good
        for c in classes
        if float(row[c]) == 1.0 and thresholds.get(c) is not None and result.scores[c] < thresholds[c]
    ]
    misses = [
        {**example(row, result), "class": c, "threshold": thresholds[c]}
        for _, c, row, result in sorted(missed, key=lambda m: m[0])[:8]
    ]
    return write_report(
        args.out / "report.html",
        title=f"radz demo: {len(good)} phantom radiographs",
        summary=summary,
        auc_rows=auc_rows,
        roc_png=Path(roc) if roc else None,
        examples=examples,
        operating=operating_points(labels, scores, list(classes), thresholds),
        calibration=reliability(labels, scores),
        misses=misses,
        card=model_card_rows(identity, manifest),
    )
