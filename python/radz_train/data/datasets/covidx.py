"""COVIDx CXR (COVID-Net): space-separated label files and train/ test/ (val/) image folders.

Layout as distributed (Kaggle "covidx-cxr2" and the COVID-Net repository's labels/ folder):

    train.txt, test.txt (val.txt from CXR-4 on)   -- or the versioned names, e.g.
    train_COVIDx8B.txt / test_COVIDx8B.txt, train_COVIDx_CXR-3A.txt, ...
    train/<filename>, test/<filename>, val/<filename>

Each line of a label file is space separated, in one of two layouts (detected by column count):

    3 columns (early files, e.g. test_COVIDx2.txt):  patient_id filename class
    4 columns (COVIDx5 and later):                  patient_id filename class source

and with one of two label sets, detected from the class tokens: normal / pneumonia / COVID-19
(up to COVIDx5 and the "A" files: 8A, 9A, CXR-3A) or positive / negative (COVIDx6, 7B, 8B,
9B, CXR-3B, CXR-4).

The class token is found from the right, so a filename that contains a space still parses.
Binary files give one class, "COVID-19" (1 = positive); three-class files give the classes
normal / pneumonia / COVID-19 as a one-hot multiclass task. The raw class string stays in
meta["label"].
"""

from __future__ import annotations

from pathlib import Path

from radz_train.data.datasets.base import ChestDataset, DatasetLayoutError, Record, normalize_split, select_records

__all__ = ["Covidx", "BINARY_CLASSES", "THREE_CLASSES"]

BINARY_CLASSES = ("COVID-19",)
THREE_CLASSES = ("normal", "pneumonia", "COVID-19")
_BINARY = {"positive": 1, "negative": 0}
_THREE = {"normal": "normal", "pneumonia": "pneumonia", "covid-19": "COVID-19"}
PROMPTS = {"COVID-19": "COVID-19 pneumonia", "normal": "no abnormalities", "pneumonia": "pneumonia"}
_IMAGE_DIR = {"train": "train", "val": "val", "test": "test"}


def find_label_file(dataset: str, root: Path, split: str, explicit: str | None) -> Path:
    """The label file of a split: `explicit`, `<split>.txt`, or the one `<split>_COVIDx*.txt`."""
    if explicit is not None:
        path = root / explicit
        if not path.is_file():
            raise DatasetLayoutError(dataset, f"missing label file {explicit} for split {split!r} in {root}", path=path)
        return path
    names = {"train": ["train.txt"], "val": ["val.txt", "valid.txt"], "test": ["test.txt"]}[split]
    for name in names:
        if (root / name).is_file():
            return root / name
    versioned = sorted(root.glob(f"{split}_COVIDx*.txt"))
    if len(versioned) == 1:
        return versioned[0]
    if len(versioned) > 1:
        raise DatasetLayoutError(
            dataset,
            f"several {split} label files in {root}: "
            f"{[p.name for p in versioned]}; choose one with "
            f"label_files={{'{split}': ...}}",
            path=versioned[0],
        )
    raise DatasetLayoutError(
        dataset,
        f"missing label file for split {split!r}: expected {' or '.join(names)} or {split}_COVIDx*.txt in {root}",
        path=root / names[0],
    )


def parse_line(dataset: str, tokens: list[str], where: str) -> tuple[str, str, str, str | None, int]:
    """(patient_id, filename, class, source, columns) of one split line."""
    known = set(_BINARY) | set(_THREE)
    if len(tokens) >= 3 and tokens[-1].lower() in known:
        return tokens[0], " ".join(tokens[1:-1]), tokens[-1], None, 3
    if len(tokens) >= 4 and tokens[-2].lower() in known:
        return tokens[0], " ".join(tokens[1:-2]), tokens[-2], tokens[-1], 4
    raise DatasetLayoutError(
        dataset,
        f"{where}: expected 'patient_id filename class [source]' "
        f"with class one of positive/negative/normal/pneumonia/"
        f"COVID-19, got {' '.join(tokens)!r}",
    )


class Covidx(ChestDataset):
    """COVIDx CXR images, binary (COVID-19 positive/negative) or three-class.

    root: the folder holding the label files and image folders. split: None (train + test,
    and val when present), "train", "val" or "test". label_files: {split: file name} to pick
    a versioned file. check_images / skip_missing: see `select_records`.
    """

    name = "covidx"

    def __init__(
        self,
        root: Path | str,
        split: str | None = None,
        *,
        label_files: dict[str, str] | None = None,
        check_images: bool = True,
        skip_missing: bool = False,
    ) -> None:
        root = Path(root)
        label_files = {normalize_split(k): v for k, v in (label_files or {}).items()}
        wanted = normalize_split(split)
        parts = [wanted] if wanted else ["train", "test"]
        if wanted is None and ("val" in label_files or any((root / n).is_file() for n in ("val.txt", "valid.txt"))):
            parts.insert(1, "val")
        rows, layouts = [], set()
        for part in parts:
            path = find_label_file(self.name, root, part, label_files.get(part))
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                pid, filename, label, source, columns = parse_line(
                    self.name, line.split(), f"{path.name} line {number}"
                )
                layouts.add(columns)
                rows.append((part, pid, filename, label, source, f"{path.name} line {number}"))
        kinds = {"binary" if r[3].lower() in _BINARY else "three-class" for r in rows}
        if len(kinds) > 1:
            raise DatasetLayoutError(
                self.name,
                "label files mix binary (positive/negative) and "
                "three-class (normal/pneumonia/COVID-19) labels; "
                "choose files of one version with label_files=",
            )
        binary = kinds == {"binary"}
        records = []
        for part, pid, filename, label, source, _where in rows:
            if binary:
                labels = {"COVID-19": _BINARY[label.lower()]}
            else:
                labels = dict.fromkeys(THREE_CLASSES, 0)
                labels[_THREE[label.lower()]] = 1
            records.append(
                Record(
                    image_path=root / _IMAGE_DIR[part] / filename,
                    labels=labels,
                    report=None,
                    split=part,
                    patient_id=pid,
                    study_id=None,
                    meta={"filename": filename, "label": label, "source": source},
                )
            )
        info = {"columns": sorted(layouts), "labels": "binary" if binary else "three-class"}
        records = select_records(
            self.name, records, split=None, check_images=check_images, skip_missing=skip_missing, info=info
        )
        super().__init__(
            self.name,
            records,
            BINARY_CLASSES if binary else THREE_CLASSES,
            PROMPTS,
            task="binary" if binary else "multiclass",
            root=root,
            info=info,
        )
