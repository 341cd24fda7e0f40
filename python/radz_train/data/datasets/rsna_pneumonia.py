"""RSNA Pneumonia Detection Challenge (Kaggle, stage 2): box labels -> one label per image.

Layout as distributed on Kaggle:

    stage_2_train_labels.csv          patientId, x, y, width, height, Target
                                      one row per box; Target 0 rows have empty box fields
    stage_2_detailed_class_info.csv   patientId, class ("Lung Opacity", "Normal",
                                      "No Lung Opacity / Not Normal"); one row per labels row,
                                      so duplicated for images with several boxes (optional)
    stage_2_train_images/<patientId>.dcm

`patientId` names one image (one per patient). The image is positive when any of its rows
has Target 1; its boxes go to meta["boxes"] as (x, y, width, height). The competition's
target is "Lung Opacity" suggestive of pneumonia; the class is called "Pneumonia" here
(`class_name="Lung Opacity"` uses the challenge's detailed-class name instead). There is no
official split.
"""

from __future__ import annotations

from pathlib import Path

from radz_train.data.datasets.base import (
    ChestDataset,
    DatasetLayoutError,
    Record,
    find_file,
    read_table,
    select_records,
)

__all__ = ["RsnaPneumonia"]

LABELS_CSV = "stage_2_train_labels.csv"
DETAILED_CSV = "stage_2_detailed_class_info.csv"
IMAGES_DIR = "stage_2_train_images"
PROMPTS = {"Pneumonia": "pneumonia", "Lung Opacity": "lung opacity suggestive of pneumonia"}


class RsnaPneumonia(ChestDataset):
    """RSNA pneumonia images with one binary class.

    root: the folder holding stage_2_train_labels.csv. split must be None (no official split).
    class_name: "Pneumonia" or "Lung Opacity". images_dir: the DICOM folder name.
    check_images / skip_missing: see `select_records`.
    """

    name = "rsna_pneumonia"

    def __init__(
        self,
        root: Path | str,
        split: str | None = None,
        *,
        class_name: str = "Pneumonia",
        images_dir: str = IMAGES_DIR,
        check_images: bool = True,
        skip_missing: bool = False,
    ) -> None:
        if class_name not in PROMPTS:
            raise ValueError(f"class_name must be one of {sorted(PROMPTS)}, not {class_name!r}")
        root = Path(root)
        labels_csv = find_file(self.name, root, [LABELS_CSV], "the box label file")
        if (check_images or skip_missing) and not (root / images_dir).is_dir():
            raise DatasetLayoutError(
                self.name,
                f"missing image folder {images_dir}/ in {root}; expected <patientId>.dcm files there",
                path=root / images_dir,
            )
        positive: dict[str, int] = {}  # insertion order = first appearance in the CSV
        boxes: dict[str, list[tuple[float, float, float, float]]] = {}
        columns = ["patientId", "x", "y", "width", "height", "Target"]
        for line, row in enumerate(read_table(self.name, labels_csv, columns), start=2):
            pid, target = row["patientId"].strip(), row["Target"].strip()
            where = f"{labels_csv.name} line {line}"
            if target not in ("0", "1"):
                raise DatasetLayoutError(
                    self.name, f"{where}: Target {target!r} is not 0 or 1", path=labels_csv, column="Target"
                )
            positive[pid] = max(positive.get(pid, 0), int(target))
            boxes.setdefault(pid, [])
            if target == "1":
                try:
                    box = tuple(float(row[k]) for k in ("x", "y", "width", "height"))
                except ValueError:
                    raise DatasetLayoutError(
                        self.name, f"{where}: Target 1 without a numeric x, y, width, height box", path=labels_csv
                    ) from None
                boxes[pid].append(box)  # type: ignore[arg-type]
        detailed = self._read_detailed(root)
        records = [
            Record(
                image_path=root / images_dir / f"{pid}.dcm",
                labels={class_name: value},
                report=None,
                split=None,
                patient_id=pid,
                study_id=None,
                meta={"boxes": boxes[pid], "detailed_class": detailed.get(pid)},
            )
            for pid, value in positive.items()
        ]
        info: dict = {}
        records = select_records(
            self.name,
            records,
            split=split,
            check_images=check_images,
            skip_missing=skip_missing,
            has_splits=False,
            info=info,
        )
        super().__init__(self.name, records, (class_name,), PROMPTS, task="binary", root=root, info=info)

    def _read_detailed(self, root: Path) -> dict[str, str]:
        """patientId -> detailed class, when stage_2_detailed_class_info.csv is present."""
        if not any((root / n).is_file() for n in (DETAILED_CSV, f"{DETAILED_CSV}.gz")):
            return {}
        path = find_file(self.name, root, [DETAILED_CSV], "the detailed class file")
        return {
            row["patientId"].strip(): row["class"].strip()
            for row in read_table(self.name, path, ["patientId", "class"])
        }
