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
    index = _similar_index(args, study, results, classes, identity, thresholds, engine.bundle.card())
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
    similar = _neighbour_agreement(index, good, classes)
    if similar:
        print(
            f"similar cases (3 nearest, leave-one-out, {similar['images']} images): share a finding "
            f"{100 * similar['share']:.1f}%, same finding set {100 * similar['same']:.1f}%; "
            f"index: {index.path} (radz similar IMAGE --index {index.path})"
        )

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
            **(
                {
                    "3 similar cases share a finding / same finding set": f"{100 * similar['share']:.1f}% / "
                    f"{100 * similar['same']:.1f}%",
                    "similar-case index": str(index.path),
                }
                if similar
                else {}
            ),
        },
        index=index,
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
        "similar_cases": similar,
        "stages": timer.as_dict(),
        "report": str(report),
    }
    (args.out / "demo_summary.json").write_text(json.dumps(summary, indent=2, default=float))
    print(f"report: {report}")
    return 1 if failed else 0


def _similar_index(args, study: Path, results, classes, identity, thresholds, card):
    """The screened set as a similar-case index (args.out/similar_index) with the phantoms'
    confirmed findings, through the same path as `radz screen --embeddings` + `radz index build`."""
    from radz_engine.errors import RadzError
    from radz_engine.retrieval.index import build_index
    from radz_engine.runtime.screen_output import ResultWriter, remove_output

    screened = args.out / "screen_embeddings.jsonl"
    remove_output(screened)
    with ResultWriter(screened, classes, embeddings=True, model=identity, thresholds=thresholds, card=card) as writer:
        for result in results:
            writer.write(result)
    try:
        return build_index([screened], args.out / "similar_index", labels=study / "labels.csv", overwrite=True)
    except RadzError as error:  # e.g. every image failed: the report goes without similar cases
        print(f"radz demo: no similar-case index: {error}", file=sys.stderr)
        return None


def _neighbour_agreement(index, good, classes) -> dict | None:
    """Leave-one-out over the screened images: how often the 3 nearest other images share a
    finding with the image (images with findings), and have the same finding set (all images)."""
    if index is None or index.size < 5:
        return None
    truth = {str(Path(r.source).resolve()): frozenset(c for c in classes if float(row[c]) == 1.0) for row, r in good}
    found = index.search(np.stack([r.embedding for _, r in good]), 4)
    share, with_findings, same = 0, 0, 0
    for (_, r), neighbours in zip(good, found):
        mine = truth[str(Path(r.source).resolve())]
        others = [n for n in neighbours if str(Path(n.source).resolve()) != str(Path(r.source).resolve())][:3]
        sets = [frozenset(n.findings) for n in others]
        same += sum(s == mine for s in sets)
        if mine:
            with_findings += len(sets)
            share += sum(bool(s & mine) for s in sets)
    return {"images": len(good), "share": share / max(with_findings, 1), "same": same / (3 * len(good))}


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
    args,
    study: Path,
    classes,
    labels,
    scores,
    good,
    auc_rows,
    macro,
    summary,
    *,
    thresholds,
    identity,
    manifest,
    index=None,
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

    def neighbours(result) -> list[dict]:
        if index is None:
            return []
        me = str(Path(result.source).resolve())
        found = [n for n in index.search(result.embedding, 4)[0] if str(Path(n.source).resolve()) != me][:3]
        out = []
        for n in found:
            image = read_any(n.source)
            out.append(
                {
                    "image": stored_to_intensity(image.pixels, image.spec),
                    "source": n.source,
                    "findings": n.findings,
                    "similarity": n.similarity,
                }
            )
        return out

    examples = [{**example(row, result), "neighbours": neighbours(result)} for row, result in good[:12]]
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
