"""Per-class calibration of a bundle, fitted on a labelled image set (torch-free).

`radz eval --bundle B --csv labels.csv --calibrate --out B2 [--method platt|none]` scores the images
with the Engine, fits for each class a score -> probability mapping (Platt: sigmoid(a * score
+ b); none: the score as it is) and the threshold on
the calibrated probability that maximises F1 on that set (the paper protocol's operating
point), and writes a copy of the bundle to --out with both in its classes.json ("calibration"
and "threshold" per class; the manifest's SHA-256, its "calibration" record and
"calibrated_from" (the source's name, version, hash) updated). The bundle given is never
edited (it may be the shipped one, inside site-packages). Without --calibrate, --out is a
folder for metrics.json and metrics.md. Image paths in the CSV are absolute or relative to the
CSV's folder. The Engine then
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


def write_thresholds(bundle_path: str | Path, fitted: dict, calibrated_from: dict | None = None) -> None:
    """Store thresholds in classes.json and re-hash it in the manifest (of a bundle folder this
    command made: `radz eval --calibrate` writes a copy, never the bundle it was given)."""
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
    if calibrated_from:
        manifest["calibrated_from"] = dict(calibrated_from)
        manifest.setdefault("name", calibrated_from["name"] + "-calibrated")
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    load_bundle(bundle_path)  # still valid


def build_parser():
    from radz_engine.cli.options import add_workers, parser

    p = parser(
        "radz eval --bundle",
        "Per-class AUC / F1 of a bundle on a labelled set (torch-free); with --calibrate, a calibrated copy "
        "of the bundle (Platt scaling + max-F1 thresholds) written to --out.",
    )
    p.add_argument("--bundle", type=Path, required=True, help="bundle folder to evaluate (never modified)")
    p.add_argument(
        "--csv",
        type=Path,
        required=True,
        help="labelled images: a path column (absolute, or relative to the CSV's folder) + 0/1 class columns",
    )
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="fit per-class calibration and max-F1 thresholds; writes a new bundle to --out",
    )
    p.add_argument("--method", default="platt", choices=METHODS, help="score -> probability mapping for --calibrate")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for metrics.json + metrics.md; with --calibrate the calibrated bundle (required then)",
    )
    add_workers(p, default=0, help="decoding processes (0: in this process)")
    return p


def main(argv: list[str] | None = None) -> int:
    """`radz eval --bundle B --csv labels.csv [--calibrate]`: per-class AUC/F1 of a bundle
    (torch-free); with --calibrate, write the max-F1 thresholds into the bundle."""
    import sys

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.calibrate:
        problem = _check_new_bundle(args.bundle, args.out)
        if problem:
            print(f"radz eval: {problem}", file=sys.stderr)
            return 2
    try:
        fitted = fit_thresholds(args.bundle, args.csv, args.workers, args.method)
    except (ValueError, FileNotFoundError) as error:
        print(f"radz eval: {error}", file=sys.stderr)
        return 2
    table = format_table(fitted)
    print(table)
    if args.calibrate:
        identity = write_calibrated_bundle(args.bundle, args.out, fitted)
        print(
            f"calibrated bundle written to {args.out}: {identity['name']} {identity['version']} "
            f"(hash {identity['hash']}); use it with --bundle {args.out}"
        )
    elif args.out is not None:
        write_metrics(args.out, args.bundle, fitted, table)
        print(f"metrics written to {args.out}/metrics.json and metrics.md")
    return 0


def format_table(fitted: dict) -> str:
    lines = [
        f"{'class':<20} {'n_pos':>6} {'AUC':>7} {'F1':>7} {'threshold':>10} {'Brier raw':>10} "
        f"{fitted['method'] + ' Brier':>16}"
    ]
    for name, row in fitted["classes"].items():
        thr = "never" if row["threshold"] is None else f"{row['threshold']:.4g}"
        lines.append(
            f"{name:<20} {row['n_pos']:>6d} {100 * row['auc']:>7.2f} {100 * row['f1']:>7.2f} {thr:>10} "
            f"{row['brier_raw']:>10.4f} {row['brier']:>16.4f}"
        )
    return "\n".join(lines)


def _check_new_bundle(bundle: Path, out: Path | None) -> str | None:
    """Why --out cannot take the calibrated bundle, or None."""
    if out is None:
        return (
            "--calibrate writes a calibrated copy of the bundle: give --out NEW_BUNDLE_FOLDER (never edited in place)"
        )
    if out.resolve() == bundle.resolve():
        return f"--out {out}: is the bundle itself; give a new folder (bundles are never edited in place)"
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        return f"--out {out}: exists and is not an empty folder"
    return None


def write_calibrated_bundle(bundle: Path, out: Path, fitted: dict) -> dict:
    """Copy `bundle` to `out` and write the calibration there; returns the new bundle's identity.
    The manifest records what it was calibrated from ("calibrated_from": name, version, hash)."""
    import shutil

    source = load_bundle(bundle)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(bundle, out, dirs_exist_ok=True)
    write_thresholds(out, fitted, calibrated_from=source.identity())
    return load_bundle(out).identity()


def write_metrics(out: Path, bundle: Path, fitted: dict, table: str) -> None:
    """metrics.json (the fitted records and the bundle's identity) and metrics.md (the table)."""
    out.mkdir(parents=True, exist_ok=True)
    identity = load_bundle(bundle, check_onnx=False).identity()
    (out / "metrics.json").write_text(json.dumps({"bundle": identity, **fitted}, indent=2, default=float) + "\n")
    (out / "metrics.md").write_text(
        f"# radz eval --bundle {bundle}\n\nbundle {identity['name']} {identity['version']} (hash {identity['hash']}), "
        f"{fitted['n_images']} images from {Path(fitted['csv']).name}\n\n```\n{table}\n```\n"
    )
