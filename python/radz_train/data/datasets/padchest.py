"""PadChest (BIMCV, Hospital San Juan): the 160K label CSV and its numbered image folders.

Layout as distributed:

    PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv (or .csv.gz)
        ImageID, ImageDir, StudyDate_DICOM, StudyID, PatientID, ..., Projection, ...,
        Report (Spanish), MethodLabel, Labels, Localizations, ...
    <ImageDir>/<ImageID>        ImageDir is the number of the zip the image came in (0..54);
                                ImageID already ends in .png (16-bit grayscale)

`Labels` is a Python list literal ("['pleural effusion', 'cardiomegaly']"), read with
ast.literal_eval (never eval). Entries are stripped and lower-cased because the file has both
'pneumonia' and ' pneumonia'. 'exclude' and 'suboptimal study' describe the image, not a
finding: they go to meta and stay out of the classes. An empty or missing list leaves the
image unlabelled (blank). Otherwise every vocabulary class not listed is negative, the usual
reading of PadChest for long-tail evaluation.

The vocabulary is taken from the CSV (174 findings + 19 differential diagnoses + 'normal' in
the full file); `min_count` keeps the classes with at least that many positive images among
the records loaded. There is no official split. `frontal_only` keeps Projection PA, AP and
AP_horizontal.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

from radz_train.data.datasets.base import (
    ChestDataset,
    DatasetLayoutError,
    Record,
    find_file,
    read_table,
    select_records,
)

__all__ = ["PadChest", "parse_label_list"]

LABELS_CSV = ("PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv", "PADCHEST_chest_x_ray_images_labels_160K.csv")
FRONTAL_PROJECTIONS = frozenset({"PA", "AP", "AP_HORIZONTAL"})
NOT_FINDINGS = frozenset({"exclude", "suboptimal study"})
PROMPTS = {"normal": "no abnormalities", "copd signs": "signs of COPD"}


def parse_label_list(text: str, *, dataset: str = "padchest", where: str = "") -> list[str]:
    """ "['a', ' B']" -> ['a', 'b']: literal_eval, strip, lower-case, drop empties."""
    text = text.strip()
    if not text or text.lower() == "nan":
        return []
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = None
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise DatasetLayoutError(
            dataset, f"{where}: Labels {text[:80]!r} is not a Python list of strings", column="Labels"
        )
    names = []
    for name in (" ".join(v.split()).lower() for v in value):
        if name and name not in names:
            names.append(name)
    return names


def resolve_image(root: Path, image_dir: str, image_id: str, probe: bool = True) -> Path:
    """<root>/<ImageDir>/<ImageID>, else <root>/images/<ImageID> or <root>/<ImageID> for
    users who merged the zips into one folder (probe=False: no file-system look-ups)."""
    image_dir = image_dir.strip()
    if image_dir.endswith(".0"):
        image_dir = image_dir[:-2]  # "3.0" when the CSV went through a dataframe
    nested = root / image_dir / image_id
    if not probe or nested.is_file():
        return nested
    for flat in (root / "images" / image_id, root / image_id):
        if flat.is_file():
            return flat
    return nested


class PadChest(ChestDataset):
    """PadChest images with the CSV's own label vocabulary and Spanish reports.

    root: the folder holding the CSV and image folders. split must be None. min_count: keep
    classes with at least this many positive images. frontal_only: PA/AP/AP_horizontal.
    check_images / skip_missing: see `select_records`.
    """

    name = "padchest"

    def __init__(
        self,
        root: Path | str,
        split: str | None = None,
        *,
        min_count: int = 1,
        frontal_only: bool = False,
        check_images: bool = True,
        skip_missing: bool = False,
    ) -> None:
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, not {min_count}")
        root = Path(root)
        csv_path = find_file(self.name, root, LABELS_CSV, "the label CSV")
        required = ["ImageID", "ImageDir", "Labels"] + (["Projection"] if frontal_only else [])
        parsed = []
        for line, row in enumerate(read_table(self.name, csv_path, required), start=2):
            projection = row.get("Projection", "").strip()
            if frontal_only and projection.upper() not in FRONTAL_PROJECTIONS:
                continue
            names = parse_label_list(row["Labels"], dataset=self.name, where=f"{csv_path.name} line {line}")
            parsed.append((row, projection, names))
        # only images whose row was read are counted, so frontal_only changes the vocabulary
        counts = Counter(n for _row, _p, names in parsed for n in names if n not in NOT_FINDINGS)
        classes = tuple(sorted(c for c, k in counts.items() if k >= min_count))
        records = []
        for row, projection, names in parsed:
            findings = [n for n in names if n not in NOT_FINDINGS]
            labels = {c: int(c in findings) for c in classes} if findings else {}
            image_id = row["ImageID"].strip()
            records.append(
                Record(
                    image_path=resolve_image(root, row["ImageDir"], image_id, probe=check_images or skip_missing),
                    labels=labels,
                    report=row.get("Report", "").strip() or None,
                    split=None,
                    patient_id=row.get("PatientID", "").strip() or None,
                    study_id=row.get("StudyID", "").strip() or None,
                    meta={
                        "image_id": image_id,
                        "projection": projection or None,
                        "labels": names,
                        "flags": [n for n in names if n in NOT_FINDINGS],
                    },
                )
            )
        info = {"vocabulary": len(counts), "min_count": min_count}
        records = select_records(
            self.name,
            records,
            split=split,
            check_images=check_images,
            skip_missing=skip_missing,
            has_splits=False,
            info=info,
        )
        super().__init__(self.name, records, classes, PROMPTS, root=root, info=info)
