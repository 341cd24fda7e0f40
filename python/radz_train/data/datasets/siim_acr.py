"""SIIM-ACR Pneumothorax Segmentation (Kaggle 2019): RLE masks -> one label per image.

Layout as distributed:

    train-rle.csv        ImageId, EncodedPixels  -- the header really is "ImageId, EncodedPixels",
                         so a plain CSV reader sees the column " EncodedPixels"; both work here
    dicom-images-train/<StudyInstanceUID>/<SeriesInstanceUID>/<ImageId>.dcm

EncodedPixels is "-1" (written " -1") for an image without pneumothorax, otherwise a
run-length-encoded mask. An image with several pneumothoraces has several rows; it is
positive when any row holds a mask. The raw RLE strings go to meta["rle"]. The DICOM files
are found by walking the image folder, since their study/series folders are not in the CSV.
There is no official split. (The stage-2 re-release names the CSV stage_2_train.csv; pass
`rle_csv=` for it.)
"""

from __future__ import annotations

import os
from pathlib import Path

from radz_train.data.datasets.base import (
    ChestDataset,
    DatasetLayoutError,
    Record,
    find_file,
    read_table,
    select_records,
)

__all__ = ["SiimAcr", "index_dicoms"]

RLE_CSV = "train-rle.csv"
IMAGES_DIR = "dicom-images-train"
CLASS = "Pneumothorax"


def index_dicoms(folder: Path) -> dict[str, tuple[Path, str | None, str | None]]:
    """ImageId -> (path, study folder, series folder) for every .dcm below `folder`."""
    found: dict[str, tuple[Path, str | None, str | None]] = {}
    for dirpath, _dirs, files in os.walk(folder):
        rel = Path(dirpath).relative_to(folder).parts
        for name in files:
            if name.lower().endswith(".dcm"):
                found.setdefault(
                    name[:-4],
                    (Path(dirpath) / name, rel[0] if len(rel) > 0 else None, rel[1] if len(rel) > 1 else None),
                )
    return found


class SiimAcr(ChestDataset):
    """SIIM-ACR images with one binary class, Pneumothorax.

    root: the folder holding train-rle.csv. split must be None (no official split).
    rle_csv / images_dir: file and folder names. An ImageId whose DICOM is not found gets the
    path <images_dir>/<ImageId>.dcm and is reported by check_images (see `select_records`).
    """

    name = "siim_acr"

    def __init__(
        self,
        root: Path | str,
        split: str | None = None,
        *,
        rle_csv: str = RLE_CSV,
        images_dir: str = IMAGES_DIR,
        check_images: bool = True,
        skip_missing: bool = False,
    ) -> None:
        root = Path(root)
        csv_path = find_file(self.name, root, [rle_csv], "the RLE label file")
        if (check_images or skip_missing) and not (root / images_dir).is_dir():
            raise DatasetLayoutError(
                self.name,
                f"missing image folder {images_dir}/ in {root}; expected STUDY/SERIES/<ImageId>.dcm below it",
                path=root / images_dir,
            )
        rles: dict[str, list[str]] = {}
        for line, row in enumerate(read_table(self.name, csv_path, ["ImageId", "EncodedPixels"]), start=2):
            image_id, rle = row["ImageId"].strip(), row["EncodedPixels"].strip()
            if not image_id or not rle:
                raise DatasetLayoutError(
                    self.name,
                    f"{csv_path.name} line {line}: empty ImageId or EncodedPixels (expected '-1' or an RLE)",
                    path=csv_path,
                )
            rles.setdefault(image_id, [])
            if rle != "-1":
                rles[image_id].append(rle)
        dicoms = index_dicoms(root / images_dir) if (root / images_dir).is_dir() else {}
        records = []
        for image_id, masks in rles.items():
            path, study, series = dicoms.get(image_id, (root / images_dir / f"{image_id}.dcm", None, None))
            records.append(
                Record(
                    image_path=path,
                    labels={CLASS: 1 if masks else 0},
                    report=None,
                    split=None,
                    patient_id=None,
                    study_id=study,
                    meta={"image_id": image_id, "series": series, "rle": masks},
                )
            )
        info = {"dicoms_without_labels": len(set(dicoms) - set(rles))}
        records = select_records(
            self.name,
            records,
            split=split,
            check_images=check_images,
            skip_missing=skip_missing,
            has_splits=False,
            info=info,
        )
        super().__init__(self.name, records, (CLASS,), {CLASS: "pneumothorax"}, task="binary", root=root, info=info)
