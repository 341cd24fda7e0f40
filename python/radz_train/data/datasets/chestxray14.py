"""NIH ChestX-ray14: Data_Entry_2017.csv, the images_XXX folders and the official split lists.

Layout as distributed by the NIH Clinical Center (Box) and mirrored on Kaggle:

    Data_Entry_2017.csv (or Data_Entry_2017_v2020.csv)
        Image Index, Finding Labels, Follow-up #, Patient ID, Patient Age, Patient Gender,
        View Position, OriginalImage[Width, Height], OriginalImagePixelSpacing[x, y]
    images_001/images/00000001_000.png ... images_012/images/...   (Kaggle layout)
    images/00000001_000.png                                        (Box tarballs extracted)
    train_val_list.txt, test_list.txt   one Image Index per line (patient-wise official split)

`Finding Labels` is "No Finding" or a '|'-separated list of the 14 findings. The labels were
mined from reports and only say what was found, so every class not listed is negative (0):
there are no blanks or uncertain values. The official split has no validation part; images
of train_val_list.txt get split "train".
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

__all__ = ["ChestXray14", "NIH_CLASSES", "NIH_PROMPTS"]

NIH_CLASSES = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)
NIH_PROMPTS = {
    "Atelectasis": "atelectasis",
    "Cardiomegaly": "cardiomegaly",
    "Effusion": "pleural effusion",
    "Infiltration": "pulmonary infiltrates",
    "Mass": "a lung mass",
    "Nodule": "a lung nodule",
    "Pneumonia": "pneumonia",
    "Pneumothorax": "pneumothorax",
    "Consolidation": "consolidation",
    "Edema": "pulmonary edema",
    "Emphysema": "emphysema",
    "Fibrosis": "pulmonary fibrosis",
    "Pleural_Thickening": "pleural thickening",
    "Hernia": "a hiatal hernia",
}
NO_FINDING = "No Finding"
LABELS_CSV = ("Data_Entry_2017.csv", "Data_Entry_2017_v2020.csv")
SPLIT_LISTS = {"train": "train_val_list.txt", "test": "test_list.txt"}


def index_images(root: Path) -> dict[str, Path]:
    """Image Index -> path for every PNG under images_*/images/, images_*/ and images/."""
    found: dict[str, Path] = {}
    folders = [root / "images"]
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.is_dir() and entry.name.startswith("images_"):
            folders += [Path(entry.path) / "images", Path(entry.path)]
    for folder in folders:
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            if entry.name.endswith(".png"):
                found.setdefault(entry.name, Path(entry.path))
    return found


class ChestXray14(ChestDataset):
    """ChestX-ray14 images with the 14 findings.

    root: the folder holding Data_Entry_2017.csv. split: None, "train" (train_val_list.txt) or
    "test" (test_list.txt); with split=None the lists are used when present. Images are looked
    up in images_XXX/images/ and images/; an image found in neither is reported as
    <root>/images/<name>. check_images / skip_missing: see `select_records`.
    """

    name = "chestxray14"

    def __init__(
        self, root: Path | str, split: str | None = None, *, check_images: bool = True, skip_missing: bool = False
    ) -> None:
        root = Path(root)
        labels_csv = find_file(self.name, root, LABELS_CSV, "the label file")
        split_of = self._read_split_lists(root, required=split is not None)
        images = index_images(root)
        records = []
        columns = ["Image Index", "Finding Labels", "Patient ID"]
        for line, row in enumerate(read_table(self.name, labels_csv, columns), start=2):
            image = row["Image Index"].strip()
            labels = self._parse_findings(row["Finding Labels"], f"{labels_csv.name} line {line}")
            records.append(
                Record(
                    image_path=images.get(image, root / "images" / image),
                    labels=labels,
                    report=None,
                    split=split_of.get(image),
                    patient_id=row["Patient ID"].strip() or None,
                    study_id=Path(image).stem,
                    meta={
                        "image_index": image,
                        "finding_labels": row["Finding Labels"].strip(),
                        "follow_up": row.get("Follow-up #", "").strip() or None,
                        "age": row.get("Patient Age", "").strip() or None,
                        "sex": row.get("Patient Gender", "").strip() or None,
                        "view": row.get("View Position", "").strip() or None,
                    },
                )
            )
        info: dict = {}
        records = select_records(
            self.name, records, split=split, check_images=check_images, skip_missing=skip_missing, info=info
        )
        super().__init__(self.name, records, NIH_CLASSES, NIH_PROMPTS, root=root, info=info)

    def _parse_findings(self, text: str, where: str) -> dict[str, int]:
        names = [n.strip() for n in text.split("|") if n.strip()]
        if not names:
            raise DatasetLayoutError(
                self.name,
                f"{where}: empty 'Finding Labels'; expected '{NO_FINDING}' or '|'-separated findings",
                column="Finding Labels",
            )
        labels = dict.fromkeys(NIH_CLASSES, 0)
        for name in names:
            if name == NO_FINDING:
                continue
            if name not in labels:
                raise DatasetLayoutError(
                    self.name,
                    f"{where}: unknown finding {name!r} in 'Finding Labels'; expected {NIH_CLASSES}",
                    column="Finding Labels",
                )
            labels[name] = 1
        return labels

    def _read_split_lists(self, root: Path, *, required: bool) -> dict[str, str]:
        """Image Index -> "train" / "test" from the official lists (empty if absent)."""
        split_of: dict[str, str] = {}
        present = {s: (root / n).is_file() for s, n in SPLIT_LISTS.items()}
        if not any(present.values()) and not required:
            return split_of
        for split, name in SPLIT_LISTS.items():
            path = find_file(self.name, root, [name], f"the official {split} list")
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    split_of[line.strip()] = split
        return split_of
