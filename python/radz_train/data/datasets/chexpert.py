"""CheXpert (Stanford, v1.0 and v1.0-small): train.csv / valid.csv and the image tree.

Layout as distributed (the folder is `CheXpert-v1.0` or `CheXpert-v1.0-small`):

    CheXpert-v1.0/train.csv, valid.csv
    CheXpert-v1.0/{train,valid}/patientNNNNN/studyM/viewK_{frontal,lateral}.jpg

CSV columns: Path, Sex, Age, Frontal/Lateral, AP/PA, then the 14 observations with
1.0 / 0.0 / -1.0 (uncertain) / blank. `Path` is relative to the *parent* of the dataset folder
("CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg"), so the first component is
replaced by the folder given here (users often rename it). The validation set has no
uncertain or blank labels (radiologist consensus). An optional `test.csv` / `test_labels.csv`
(the 500-study test set, distributed separately) is read the same way when present; label
columns it lacks stay blank.

`labels="competition"` keeps only the 5 competition observations.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from radz_train.data.datasets.base import (
    ChestDataset,
    DatasetLayoutError,
    Record,
    find_file,
    normalize_split,
    parse_label_value,
    read_table,
    select_records,
)

__all__ = ["CheXpert", "CHEXPERT_CLASSES", "COMPETITION_CLASSES", "CHEXPERT_PROMPTS"]

#: The 14 CheXpert observations in CSV order (MIMIC-CXR-JPG uses the same names).
CHEXPERT_CLASSES = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
#: The 5 observations of the CheXpert competition (Irvin et al. 2019).
COMPETITION_CLASSES = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")

CHEXPERT_PROMPTS = {
    "No Finding": "no acute findings",
    "Enlarged Cardiomediastinum": "an enlarged cardiomediastinum",
    "Cardiomegaly": "cardiomegaly",
    "Lung Opacity": "lung opacity",
    "Lung Lesion": "a lung lesion",
    "Edema": "pulmonary edema",
    "Consolidation": "consolidation",
    "Pneumonia": "pneumonia",
    "Atelectasis": "atelectasis",
    "Pneumothorax": "pneumothorax",
    "Pleural Effusion": "pleural effusion",
    "Pleural Other": "a pleural abnormality other than effusion",
    "Fracture": "a fracture",
    "Support Devices": "support devices",
}

_CSV_BY_SPLIT = {"train": ("train.csv",), "val": ("valid.csv",), "test": ("test.csv", "test_labels.csv")}
_PATIENT = re.compile(r"(patient\d+)")
_STUDY = re.compile(r"(patient\d+)/(study\d+)")


def locate_root(root: Path) -> Path:
    """The CheXpert folder: `root` itself, or its `CheXpert-v1.0*` child if given the parent."""
    if any((root / n).is_file() for n in ("train.csv", "valid.csv", "train.csv.gz")):
        return root
    children = sorted(p for p in root.glob("CheXpert-v1.0*") if p.is_dir())
    for child in children:
        if (child / "train.csv").is_file() or (child / "valid.csv").is_file():
            return child
    return root


def image_path(root: Path, csv_path: str) -> Path:
    """Resolve a CSV `Path` ("CheXpert-v1.0-small/train/...") against the dataset folder."""
    parts = PurePosixPath(csv_path.strip().replace("\\", "/")).parts
    if parts and parts[0] in ("train", "valid", "test"):
        return root.joinpath(*parts)  # already relative to the dataset folder
    return root.joinpath(*parts[1:])  # first component is the dataset folder's own name


class CheXpert(ChestDataset):
    """CheXpert images with the 14 observations (or the 5 competition ones).

    root: the CheXpert-v1.0(-small) folder or its parent. split: None (train + valid, and test
    when its CSV is present), "train", "val" or "test". labels: "all" or "competition".
    frontal_only: keep rows whose Frontal/Lateral is "Frontal". check_images / skip_missing:
    see `select_records`.
    """

    name = "chexpert"

    def __init__(
        self,
        root: Path | str,
        split: str | None = None,
        *,
        labels: str = "all",
        frontal_only: bool = False,
        check_images: bool = True,
        skip_missing: bool = False,
    ) -> None:
        if labels not in ("all", "competition"):
            raise ValueError(f"labels must be 'all' or 'competition', not {labels!r}")
        classes = CHEXPERT_CLASSES if labels == "all" else COMPETITION_CLASSES
        root = locate_root(Path(root))
        wanted = normalize_split(split)
        records: list[Record] = []
        for part in (wanted,) if wanted else ("train", "val", "test"):
            names = _CSV_BY_SPLIT[part]
            if (
                part == "test"
                and wanted is None
                and not any((root / n).is_file() or (root / f"{n}.gz").is_file() for n in names)
            ):
                continue  # the test set is distributed separately
            csv_file = find_file(self.name, root, names, f"the {part} label CSV")
            records += self._read_csv(root, csv_file, part, classes, frontal_only)
        info: dict = {}
        records = select_records(
            self.name, records, split=None, check_images=check_images, skip_missing=skip_missing, info=info
        )
        super().__init__(self.name, records, classes, CHEXPERT_PROMPTS, root=root, info=info)

    def _read_csv(
        self, root: Path, csv_file: Path, split: str, classes: tuple[str, ...], frontal_only: bool
    ) -> list[Record]:
        # train/valid carry all 14 columns; the separately distributed test CSV may not
        required = ["Path"] + (list(classes) if split != "test" else [])
        if frontal_only:
            required.append("Frontal/Lateral")
        records = []
        for line, row in enumerate(read_table(self.name, csv_file, required), start=2):
            view = row.get("Frontal/Lateral", "").strip()
            if frontal_only and view != "Frontal":
                continue
            where = f"{csv_file.name} line {line}"
            labels = {}
            for cls in classes:
                value = parse_label_value(row.get(cls, ""), dataset=self.name, where=f"{where} column {cls!r}")
                if value is not None:
                    labels[cls] = value
            rel = row["Path"].strip()
            if not rel:
                raise DatasetLayoutError(self.name, f"{where}: empty Path", path=csv_file, column="Path")
            patient = _PATIENT.search(rel)
            study = _STUDY.search(rel)
            records.append(
                Record(
                    image_path=image_path(root, rel),
                    labels=labels,
                    report=None,
                    split=split,
                    patient_id=patient.group(1) if patient else None,
                    study_id="/".join(study.groups()) if study else None,
                    meta={
                        "path": rel,
                        "view": view or None,
                        "ap_pa": row.get("AP/PA", "").strip() or None,
                        "sex": row.get("Sex", "").strip() or None,
                        "age": row.get("Age", "").strip() or None,
                    },
                )
            )
        return records
