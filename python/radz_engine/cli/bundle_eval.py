"""Per-class calibration of a bundle, fitted on a labelled image set (torch-free).

`radz eval --bundle B --csv labels.csv --calibrate [--method platt|none]` scores the images
with the Engine, fits for each class a score -> probability mapping (Platt: sigmoid(a * score
+ b); none: the score as it is) and the threshold on
the calibrated probability that maximises F1 on that set (the paper protocol's operating
point), and writes both into the bundle's classes.json ("calibration" and "threshold" per
class; the manifest's SHA-256 and its "calibration" record are updated). The Engine then
reports calibrated probabilities and marks a class positive at its own threshold. Fitting uses
the raw scores, so recalibrating a calibrated bundle starts afresh.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from radz_engine.bundle.loader import load_bundle, sha256_file


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


# Temperature scaling (radz_train's "temperature": sigmoid(score / T)) is not offered: it takes
# the score as a logit, and every scoring mode's score is already a probability in [0, 1].
METHODS = ("platt", "none")


def fit_thresholds(bundle_path: str | Path, csv_path: str | Path, workers: int = 0, method: str = "platt") -> dict:
    """Score the CSV's images with the bundle and return, per class, its calibration record
    and {threshold, f1, auc, n_pos, brier_raw, brier}: thresholds are on calibrated probabilities."""
    from radz_engine.runtime.engine import Engine
    from radz_engine.scoring.calibration import fit_calibration
    from radz_engine.scoring.metrics import binary_auc, max_f1

    if method not in METHODS:
        raise ValueError(f"--method: must be one of {METHODS}, got {method!r}")
    bundle = load_bundle(bundle_path)
    paths, labels = read_labelled_csv(Path(csv_path), bundle.class_names)
    with Engine(bundle_path) as engine:
        results = {str(Path(r.source).resolve()): r for r in engine.screen(paths, progress=False, workers=workers)}
        failed = [p for p in paths if p not in results or results[p].error]
        if failed:
            raise ValueError(f"{len(failed)} calibration images could not be scored, e.g. {failed[:3]}")
        raw = engine.scorer.raw_scores(np.stack([results[p].embedding for p in paths]))
        mode = engine.scorer.mode
    calibrations = fit_calibration(raw, labels, bundle.class_names, method=method)
    fitted = {}
    for j, name in enumerate(bundle.class_names):
        cal = calibrations[name]
        probs = cal.apply(raw[:, j])
        known = ~np.isnan(labels[:, j])
        f1, _, _ = max_f1(labels[:, j], probs)
        record = cal.to_dict()
        fitted[name] = {
            "calibration": {"mode": mode, **record},
            "threshold": record["threshold"],
            "f1": float(f1),
            "auc": float(binary_auc(labels[:, j], raw[:, j])),
            "n_pos": int(np.nansum(labels[:, j])),
            "brier_raw": float(np.mean((raw[known, j] - labels[known, j]) ** 2)),
            "brier": float(np.mean((probs[known] - labels[known, j]) ** 2)),
        }
    return {"classes": fitted, "n_images": len(paths), "csv": str(csv_path), "mode": mode, "method": method}


def write_thresholds(bundle_path: str | Path, fitted: dict) -> None:
    """Store thresholds in classes.json and re-hash it in the manifest."""
    bundle_path = Path(bundle_path)
    manifest_path = bundle_path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    classes_file = bundle_path / manifest["files"]["classes"]
    classes = json.loads(classes_file.read_text())
    entries = classes["classes"] if isinstance(classes, dict) else classes
    for entry in entries:
        found = fitted["classes"].get(entry["name"])
        if found is not None:  # threshold None: never positive (no positives in the set)
            entry["calibration"] = found["calibration"]
            entry["threshold"] = found["threshold"]
    if isinstance(classes, dict):
        classes["thresholds"] = (
            f"{fitted['method']} calibration + max-F1 threshold on {fitted['n_images']} labelled "
            f"images ({Path(fitted['csv']).name}), radz eval --calibrate"
        )
    classes_file.write_text(json.dumps(classes, indent=2) + "\n")
    manifest["sha256"][classes_file.name] = sha256_file(classes_file)
    manifest["calibration"] = {
        "method": f"{fitted['method']} scaling + max-F1 threshold per class",
        "mode": fitted["mode"],
        "n_images": fitted["n_images"],
        "csv": Path(fitted["csv"]).name,
        "per_class": {
            name: {k: v for k, v in row.items() if k != "calibration"} for name, row in fitted["classes"].items()
        },
    }
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
    parser.add_argument(
        "--calibrate", action="store_true", help="write per-class calibration and max-F1 thresholds into the bundle"
    )
    parser.add_argument(
        "--method",
        default="platt",
        choices=METHODS,
        help="score -> probability mapping fitted with --calibrate (default platt)",
    )
    parser.add_argument("--workers", type=int, default=0, help="decoding processes")
    args = parser.parse_args(argv)
    try:
        fitted = fit_thresholds(args.bundle, args.csv, args.workers, args.method)
    except (ValueError, FileNotFoundError) as error:
        print(f"radz eval: {error}", file=sys.stderr)
        return 2
    print(
        f"{'class':<20} {'n_pos':>6} {'AUC':>7} {'F1':>7} {'threshold':>10} {'Brier raw':>10} {fitted['method'] + ' Brier':>16}"
    )
    for name, row in fitted["classes"].items():
        thr = "never" if row["threshold"] is None else f"{row['threshold']:.4g}"
        print(
            f"{name:<20} {row['n_pos']:>6d} {100 * row['auc']:>7.2f} {100 * row['f1']:>7.2f} {thr:>10} "
            f"{row['brier_raw']:>10.4f} {row['brier']:>16.4f}"
        )
    if args.calibrate:
        write_thresholds(args.bundle, fitted)
        print(f"thresholds written to {args.bundle}")
    return 0
