"""Common pieces of the real-dataset adapters: `Record`, `ChestDataset`, `DatasetLayoutError`.

An adapter reads a dataset in the layout its publishers distribute (their CSVs, their folder
tree) and turns it into a list of `Record`s: one image path, its labels in the dataset's own
label names, an optional report, the official split and patient/study ids. Nothing here opens
an image; loaders and preprocessing do that later. Only the standard library and numpy are
used, so the adapters work in a torch-free environment.

Label values follow the CheXpert convention that every adapter maps onto:
1 positive, 0 negative, -1 uncertain, and a class missing from `Record.labels` is blank
(not mentioned / not labelled). `ChestDataset.label_matrix` turns that into a float matrix.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "Record",
    "ChestDataset",
    "DatasetLayoutError",
    "UNCERTAIN_POLICIES",
    "SPLITS",
    "normalize_split",
    "default_prompt",
    "find_file",
    "read_table",
    "parse_label_value",
    "select_records",
]

#: How `label_matrix` treats an uncertain (-1) label.
UNCERTAIN_POLICIES = ("positive", "negative", "ignore")

#: Split names used on every Record, whatever the dataset calls them ("validate", "valid", ...).
SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validate": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}

#: How many missing image paths an error message lists before it only gives the count.
_MISSING_SHOWN = 5


class DatasetLayoutError(FileNotFoundError, ValueError):
    """A dataset folder does not match the layout its publishers distribute.

    Raised for a missing file, a CSV without a needed column, an unparsable value, or image
    files listed in the labels but absent on disk. The message names the dataset, what is
    missing or wrong, and what was expected. It is both a FileNotFoundError (missing files)
    and a ValueError (bad content) so callers can catch either.
    """

    def __init__(
        self, dataset: str, message: str, *, path: Path | str | None = None, column: str | None = None
    ) -> None:
        self.dataset = dataset
        self.path = Path(path) if path is not None else None
        self.column = column
        super().__init__(f"{dataset}: {message}")

    def __str__(self) -> str:  # OSError would otherwise format (errno, strerror) pairs
        return str(self.args[0])


@dataclass
class Record:
    """One image of a dataset.

    labels: class name -> 1 (positive), 0 (negative), -1 (uncertain); a class that is absent
    is blank. split: "train" / "val" / "test" or None where the dataset has no official split.
    meta: whatever else the dataset publishes for the image (view, age, boxes, raw label, ...).
    """

    image_path: Path
    labels: dict[str, int]
    report: str | None = None
    split: str | None = None
    patient_id: str | None = None
    study_id: str | None = None
    meta: dict = field(default_factory=dict)


def normalize_split(split: str | None) -> str | None:
    """Map a dataset's split name ("validate", "valid", ...) to train / val / test."""
    if split is None:
        return None
    key = str(split).strip().lower()
    if key not in _SPLIT_ALIASES:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS} (aliases: {sorted(_SPLIT_ALIASES)})")
    return _SPLIT_ALIASES[key]


def default_prompt(class_name: str) -> str:
    """A finding phrase from a label name: 'Pleural_Thickening' -> 'pleural thickening'."""
    return " ".join(class_name.replace("_", " ").split()).lower()


def parse_label_value(text: str, *, dataset: str, where: str) -> int | None:
    """A CheXpert-style cell ('1.0', '0', '-1.0', '') -> 1 / 0 / -1 / None (blank)."""
    text = text.strip()
    if text == "" or text.lower() == "nan":
        return None
    try:
        value = float(text)
    except ValueError:
        value = None
    if value not in (1.0, 0.0, -1.0):
        raise DatasetLayoutError(dataset, f"{where}: label value {text!r} is not one of 1, 0, -1 or blank")
    return int(value)


# --------------------------------------------------------------------------------------------
# Files and tables


def find_file(dataset: str, root: Path, names: Sequence[str], what: str) -> Path:
    """The first of `names` (relative to root) that exists; the publishers gzip some CSVs,
    so `name.gz` is tried after each name. Raises DatasetLayoutError naming what is missing."""
    for name in names:
        for candidate in (root / name, root / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    listed = " or ".join(repr(n) for n in names)
    raise DatasetLayoutError(
        dataset, f"missing {what}: expected {listed} (optionally .gz) in {root}", path=root / names[0]
    )


def open_text(path: Path) -> io.TextIOBase:
    """Open a text file, gunzipping `.gz`; utf-8-sig so a BOM does not end up in a header."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def read_table(dataset: str, path: Path, required: Iterable[str], delimiter: str = ",") -> Iterator[dict[str, str]]:
    """Rows of a CSV as dicts keyed by the header names stripped of whitespace.

    Stripping matters: SIIM's train-rle.csv header is 'ImageId, EncodedPixels' and the
    second column is ' EncodedPixels' to a plain reader. Every name in `required` must be in
    the header, otherwise DatasetLayoutError names the missing columns and the ones found.
    """
    with open_text(path) as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise DatasetLayoutError(
                dataset, f"{path.name} is empty; expected a header row with {sorted(required)}", path=path
            ) from None
        missing = [c for c in required if c not in header]
        if missing:
            raise DatasetLayoutError(
                dataset,
                f"{path.name} has no column {', '.join(repr(c) for c in missing)}; "
                f"expected {list(required)}, found {header}",
                path=path,
                column=missing[0],
            )
        for row in reader:
            if not row or all(not cell.strip() for cell in row):
                continue  # blank lines at the end of hand-edited files
            yield dict(zip(header, row))


# --------------------------------------------------------------------------------------------
# The dataset


class ChestDataset(Sequence[Record]):
    """A list of Records plus what a zero-shot evaluator needs to know about the classes.

    name: registry name ("chexpert", ...). classes: label names as the dataset spells them.
    class_prompts: class -> finding phrase for "This is a chest X-ray showing {finding}".
    task: "multilabel" (independent findings), "multiclass" (exactly one class per image) or
    "binary" (one class). root: the folder it was read from. info: facts found while loading
    (detected version, images skipped as missing, ...).
    """

    name = "dataset"

    def __init__(
        self,
        name: str,
        records: Sequence[Record],
        classes: Sequence[str],
        class_prompts: Mapping[str, str] | None = None,
        *,
        task: str = "multilabel",
        root: Path | str | None = None,
        info: Mapping | None = None,
    ) -> None:
        self.name = name
        self.records = list(records)
        self.classes = tuple(classes)
        prompts = dict(class_prompts or {})
        self.class_prompts = {c: prompts.get(c) or default_prompt(c) for c in self.classes}
        if task not in ("multilabel", "multiclass", "binary"):
            raise ValueError(f"task must be multilabel, multiclass or binary, not {task!r}")
        self.task = task
        self.root = Path(root) if root is not None else None
        self.info = dict(info or {})

    # list-like
    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return self.subset(range(*index.indices(len(self))))
        return self.records[index]

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, records={len(self)}, "
            f"classes={len(self.classes)}, root={str(self.root) if self.root else None!r})"
        )

    def subset(self, indices: Iterable[int]) -> ChestDataset:
        """A plain ChestDataset with the chosen records and the same classes and prompts."""
        return ChestDataset(
            self.name,
            [self.records[i] for i in indices],
            self.classes,
            self.class_prompts,
            task=self.task,
            root=self.root,
            info=self.info,
        )

    def split(self, split: str) -> ChestDataset:
        """The records of one split (train / val / test or an alias such as 'validate')."""
        wanted = normalize_split(split)
        return self.subset(i for i, r in enumerate(self.records) if r.split == wanted)

    # labels
    def label_matrix(self, uncertain: str = "ignore") -> tuple[np.ndarray, tuple[str, ...]]:
        """Labels as a float [N, C] matrix: 1.0 / 0.0, NaN for blank.

        uncertain (-1) becomes 1.0 ("positive", the U-Ones policy), 0.0 ("negative", U-Zeros)
        or NaN ("ignore", left out of training loss and metrics).
        """
        if uncertain not in UNCERTAIN_POLICIES:
            raise ValueError(f"uncertain must be one of {UNCERTAIN_POLICIES}, not {uncertain!r}")
        as_value = {"positive": 1.0, "negative": 0.0, "ignore": np.nan}[uncertain]
        column = {c: j for j, c in enumerate(self.classes)}
        matrix = np.full((len(self.records), len(self.classes)), np.nan, dtype=np.float64)
        for i, record in enumerate(self.records):
            for cls, value in record.labels.items():
                j = column.get(cls)
                if j is None:
                    continue  # a label the dataset reads but the chosen class set leaves out
                matrix[i, j] = as_value if value == -1 else float(value)
        return matrix, self.classes

    def summary(self) -> dict:
        """Counts: records, patients, reports, per split, and per class positive / negative /
        uncertain / blank."""
        per_class = {c: Counter() for c in self.classes}
        for record in self.records:
            for cls in self.classes:
                value = record.labels.get(cls)
                key = {1: "positive", 0: "negative", -1: "uncertain", None: "blank"}[value]
                per_class[cls][key] += 1
        keys = ("positive", "negative", "uncertain", "blank")
        return {
            "name": self.name,
            "records": len(self.records),
            "patients": len({r.patient_id for r in self.records if r.patient_id is not None}),
            "with_report": sum(1 for r in self.records if r.report),
            "splits": dict(Counter(r.split or "none" for r in self.records)),
            "classes": {c: {k: per_class[c][k] for k in keys} for c in self.classes},
            **({"info": dict(self.info)} if self.info else {}),
        }


def select_records(
    dataset: str,
    records: list[Record],
    *,
    split: str | None,
    check_images: bool,
    skip_missing: bool,
    has_splits: bool = True,
    info: dict | None = None,
) -> list[Record]:
    """Keep the requested split, then check that the image files exist (adapters call this).

    With check_images, missing images raise one DatasetLayoutError that lists the first few
    and the count, unless skip_missing, which drops them and counts them in `info`.
    """
    if split is not None:
        if not has_splits:
            raise ValueError(
                f"{dataset} has no official split; load it with split=None and split it yourself (e.g. by patient_id)"
            )
        wanted = normalize_split(split)
        kept = [r for r in records if r.split == wanted]
        if records and not kept:
            present = sorted({r.split or "none" for r in records})
            raise ValueError(f"{dataset} has no records in split {wanted!r}; splits present: {present}")
        records = kept
    if not check_images and not skip_missing:
        return records
    present, missing = [], []
    for record in records:
        (present if record.image_path.is_file() else missing).append(record)
    if missing and not skip_missing:
        shown = ", ".join(str(r.image_path) for r in missing[:_MISSING_SHOWN])
        more = f" (and {len(missing) - _MISSING_SHOWN} more)" if len(missing) > _MISSING_SHOWN else ""
        raise DatasetLayoutError(
            dataset,
            f"{len(missing)} of {len(records)} image files listed in the labels are "
            f"missing: {shown}{more}. Pass skip_missing=True to drop them or "
            "check_images=False to not look.",
            path=missing[0].image_path,
        )
    if missing and info is not None:
        info["skipped_missing_images"] = len(missing)
    return present
