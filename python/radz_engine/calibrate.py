"""Per-class decision thresholds for a bundle, fitted on a labelled image set (torch-free).

`radz eval --bundle B --csv labels.csv --calibrate` scores the images with the Engine, picks
for each class the threshold that maximises F1 on that set (the paper protocol's operating
point), and writes it into the bundle's classes.json (the manifest's SHA-256 and a
"calibration" record are updated with it). The Engine then marks a class positive when its
score reaches that threshold instead of one default for every class.

Only thresholds on the scores of the bundle's scoring mode are fitted here; Platt/temperature
scaling of the scores (radz_train.evaluation.calibration) is not applied by the Engine yet.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from .bundle import load_bundle, sha256_file


def read_labelled_csv(csv_path: Path, classes: list[str]) -> tuple[list[str], np.ndarray]:
    """(absolute image paths, labels [N, C] with NaN where a class column is empty)."""
    csv_path = Path(csv_path)
    if not csv_path.exists():
        raise FileNotFoundError(f"{csv_path}: no such CSV")
    with csv_path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "path" not in rows[0]:
        raise ValueError(f"{csv_path}: needs rows with a 'path' column")
    missing = [c for c in classes if c not in rows[0]]
    if missing:
        raise ValueError(f"{csv_path}: no label columns for the bundle's classes {missing}")
    paths = [str((csv_path.parent / r["path"]).resolve()) for r in rows]
    labels = np.array([[float(r[c]) if r[c] != "" else np.nan for c in classes] for r in rows])
    return paths, labels


def fit_thresholds(bundle_path: str | Path, csv_path: str | Path, workers: int = 0) -> dict:
    """Score the CSV's images with the bundle and return {class: {threshold, f1, auc, n_pos}}."""
    from radz_train.evaluation.metrics import binary_auc, max_f1

    from .engine import Engine

    bundle = load_bundle(bundle_path)
    paths, labels = read_labelled_csv(Path(csv_path), bundle.class_names)
    with Engine(bundle_path) as engine:
        results = {str(Path(r.source).resolve()): r for r in engine.screen(paths, progress=False, workers=workers)}
    failed = [p for p in paths if p not in results or results[p].error]
    if failed:
        raise ValueError(f"{len(failed)} calibration images could not be scored, e.g. {failed[:3]}")
    scores = np.array([[results[p].scores[c] for c in bundle.class_names] for p in paths])
    fitted = {}
    for j, name in enumerate(bundle.class_names):
        f1, threshold, _ = max_f1(labels[:, j], scores[:, j])
        fitted[name] = {"threshold": None if not np.isfinite(threshold) else float(threshold), "f1": float(f1),
                        "auc": float(binary_auc(labels[:, j], scores[:, j])),
                        "n_pos": int(np.nansum(labels[:, j]))}
    return {"classes": fitted, "n_images": len(paths), "csv": str(csv_path), "mode": bundle.scoring_mode}


def write_thresholds(bundle_path: str | Path, fitted: dict) -> None:
    """Store thresholds in classes.json and re-hash it in the manifest."""
    bundle_path = Path(bundle_path)
    manifest_path = bundle_path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    classes_file = bundle_path / manifest["files"]["classes"]
    classes = json.loads(classes_file.read_text())
    entries = classes["classes"] if isinstance(classes, dict) else classes
    for entry in entries:
        # a class without positives in the set keeps its threshold (null: the Engine's default)
        found = fitted["classes"].get(entry["name"], {}).get("threshold")
        if found is not None:
            entry["threshold"] = found
    if isinstance(classes, dict) and "thresholds" in classes:
        classes["thresholds"] = f"max-F1 on {fitted['n_images']} labelled images ({Path(fitted['csv']).name}), radz eval --calibrate"
    classes_file.write_text(json.dumps(classes, indent=2) + "\n")
    manifest["sha256"][classes_file.name] = sha256_file(classes_file)
    manifest["calibration"] = {"method": "max-F1 threshold per class on the scoring mode's scores",
                               "mode": fitted["mode"], "n_images": fitted["n_images"], "csv": Path(fitted["csv"]).name,
                               "per_class": fitted["classes"]}
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    load_bundle(bundle_path)  # still valid


def main(argv: list[str] | None = None) -> int:
    """`radz eval --bundle B --csv labels.csv [--calibrate]`: per-class AUC/F1 of a bundle
    (torch-free); with --calibrate, write the max-F1 thresholds into the bundle."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="radz eval --bundle", description=main.__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--csv", type=Path, required=True, help="labelled images: a path column + 0/1 class columns")
    parser.add_argument("--calibrate", action="store_true", help="write per-class max-F1 thresholds into the bundle")
    parser.add_argument("--workers", type=int, default=0, help="decoding processes")
    args = parser.parse_args(argv)
    try:
        fitted = fit_thresholds(args.bundle, args.csv, args.workers)
    except (ValueError, FileNotFoundError) as error:
        print(f"radz eval: {error}", file=sys.stderr)
        return 2
    print(f"{'class':<20} {'n_pos':>6} {'AUC':>7} {'F1':>7} {'threshold':>10}")
    for name, row in fitted["classes"].items():
        thr = "never" if row["threshold"] is None else f"{row['threshold']:.4g}"
        print(f"{name:<20} {row['n_pos']:>6d} {100 * row['auc']:>7.2f} {100 * row['f1']:>7.2f} {thr:>10}")
    if args.calibrate:
        write_thresholds(args.bundle, fitted)
        print(f"thresholds written to {args.bundle}")
    return 0
