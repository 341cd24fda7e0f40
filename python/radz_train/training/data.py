"""Training and evaluation data: images + reports from a CSV (as `radz synth` writes it).

Images go through the runtime's own C++ preprocessing (radz_engine.preprocess_batch), so training
sees exactly what the deployed engine will see: without augmentation once, at load, kept in memory
as grey intensities; with acquisition-shift augmentation (radz_train.data.augment) the stored
pixels and their PixelSpec are kept instead and every step re-acquires and preprocesses its batch
(`augmented_batch`), a fresh variant per image and step.
Labels for DKAM come from the rule-based report labeler, as CheXpert labels come from MIMIC
reports; evaluation reads the ground-truth label columns instead.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radz_engine import PixelSpec

PHANTOM_SPEC = PixelSpec(window_center=0.5, window_width=1.0, voi_function="LINEAR_EXACT")


@dataclass
class ImageReportSet:
    """Grey intensities [N, S, S] (float16), reports, labels [N, C] (1 / 0 / NaN unknown).

    `stored` (kept for augmentation): per image (stored pixels, PixelSpec), compacted to at most
    twice the model's image size; `images` is then None (each step preprocesses its own batch).
    """

    images: np.ndarray | None
    reports: list[str]
    labels: np.ndarray
    classes: tuple[str, ...]
    paths: list[str]
    sites: list[str]
    stored: list[tuple[np.ndarray, PixelSpec]] | None = None

    def __len__(self) -> int:
        return len(self.reports)


def read_rows(csv_path: str | Path) -> list[dict]:
    csv_path = Path(csv_path)
    if not csv_path.exists():
        raise FileNotFoundError(f"{csv_path}: no such CSV (make one with `radz synth`)")
    with csv_path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"{csv_path}: no rows")
    for column in ("path", "report"):
        if column not in rows[0]:
            raise ValueError(f"{csv_path}: missing column {column!r} (have {sorted(rows[0])})")
    return rows


def load_pixels(path: Path):
    """(stored pixels, PixelSpec) for .npy phantom intensities, DICOM, PNG or JPEG."""
    if path.suffix == ".npy":
        return np.load(path).astype(np.float32), PHANTOM_SPEC
    from radz_engine.io.images import read_any

    image = read_any(str(path))
    return image.pixels, image.spec


def preprocess_files(paths: Sequence[Path], image_size: int, chunk: int = 256) -> np.ndarray:
    """Grey intensities [N, S, S] float16 through the C++ preprocessing (mean 0, std 1)."""
    from radz_engine import preprocess_batch

    out = np.empty((len(paths), image_size, image_size), dtype=np.float16)
    for start in range(0, len(paths), chunk):
        loaded = [load_pixels(p) for p in paths[start : start + chunk]]
        batch = preprocess_batch(
            [px for px, _ in loaded], [spec for _, spec in loaded], image_size, mean=(0.0,), std=(1.0,), dtype="float16"
        )
        out[start : start + len(loaded)] = batch[:, 0]
    return out


def load_stored(paths: Sequence[Path], image_size: int) -> list[tuple[np.ndarray, PixelSpec]]:
    """(stored pixels, PixelSpec) per file, compacted for augmentation (augment.compact: longer
    side <= 2 * image_size, float images as uint16)."""
    from radz_train.data.augment import compact

    return [compact(*load_pixels(p), max_side=2 * image_size) for p in paths]


AUGMENT_RNG_TAG = 0x617567  # "aug": keeps these streams apart from the epoch-order ones


def augmented_batch(
    data: ImageReportSet,
    indices: Sequence[int],
    image_size: int,
    seed: int,
    step: int,
    probabilities: dict | None = None,
) -> np.ndarray:
    """Grey [B, S, S] float16 of freshly re-acquired images (augment.augment) through the C++
    preprocessing. Image i at step t always gets the same variant: the generator is seeded with
    (seed, t, i), so resumed and distributed runs see what an uninterrupted run would."""
    from radz_engine import preprocess_batch
    from radz_train.data.augment import augment

    if data.stored is None:
        raise ValueError("augmentation needs the stored pixels: load the set with keep_stored=True")
    if len(indices) == 0:  # a DDP rank's empty share
        return np.empty((0, image_size, image_size), dtype=np.float16)
    pairs = [
        augment(*data.stored[i], np.random.default_rng([seed, AUGMENT_RNG_TAG, step, int(i)]), probabilities)
        for i in indices
    ]
    batch = preprocess_batch(
        [px for px, _ in pairs], [spec for _, spec in pairs], image_size, mean=(0.0,), std=(1.0,), dtype="float16"
    )
    return batch[:, 0]


def load_image_report_set(
    csv_path: str | Path,
    classes: Sequence[str],
    image_size: int,
    labels_from: str = "labeler",
    limit: int | None = None,
    keep_stored: bool = False,
) -> ImageReportSet:
    """Read a CSV of (path, report[, site, label columns]) into memory.

    labels_from="labeler": labels from the report text (training); "csv": the CSV's own 0/1
    columns named like the classes (evaluation ground truth). keep_stored: keep the stored
    pixels for augmentation instead of preprocessing once (`images` is then None).
    """
    csv_path = Path(csv_path)
    rows = read_rows(csv_path)[:limit]
    paths = [(csv_path.parent / r["path"]).resolve() for r in rows]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"{csv_path}: {len(missing)} image files missing, e.g. {missing[:3]}")
    reports = [r["report"] for r in rows]
    if labels_from == "labeler":
        from radz_train.data.labeler import label_report

        labels = np.full((len(rows), len(classes)), np.nan, dtype=np.float32)
        for i, report in enumerate(reports):
            found = label_report(report)
            for j, name in enumerate(classes):
                value = found.get(name, 0)
                labels[i, j] = np.nan if value == -1 else float(value)
    elif labels_from == "csv":
        absent = [c for c in classes if c not in rows[0]]
        if absent:
            raise ValueError(f"{csv_path}: no label columns for {absent}")
        labels = np.array([[float(r[c]) for c in classes] for r in rows], dtype=np.float32)
    else:
        raise ValueError(f"labels_from: must be 'labeler' or 'csv', got {labels_from!r}")
    stored = load_stored(paths, image_size) if keep_stored else None
    images = None if keep_stored else preprocess_files(paths, image_size)
    return ImageReportSet(
        images, reports, labels, tuple(classes), [str(p) for p in paths], [r.get("site", "") for r in rows], stored
    )


def to_model_input(grey, mean: Sequence[float], std: Sequence[float]):
    """Grey [B, S, S] (torch, any float) -> normalised [B, 3, S, S] float32 (CLIP mean/std)."""
    import torch

    grey = grey.float()[:, None]
    m = torch.tensor(mean, dtype=torch.float32, device=grey.device)[None, :, None, None]
    s = torch.tensor(std, dtype=torch.float32, device=grey.device)[None, :, None, None]
    return (grey - m) / s


def same_text_mask(texts: Sequence[str]):
    """[B, B] bool: pairs with identical (normalised) text, positives for InfoNCE."""
    import torch

    keys = [" ".join(t.lower().split()) for t in texts]
    index = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    ids = torch.tensor([index[k] for k in keys])
    return ids[:, None] == ids[None, :]
