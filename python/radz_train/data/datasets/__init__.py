"""Real chest radiograph datasets, read from the layouts their publishers distribute.

    from radz_train.data.datasets import load_dataset, list_datasets
    ds = load_dataset("chexpert", "/data/CheXpert-v1.0-small", split="val", frontal_only=True)
    y, classes = ds.label_matrix(uncertain="ignore")
    prompts = [f"This is a chest X-ray showing {ds.class_prompts[c]}" for c in classes]

Each adapter checks the folder first and raises DatasetLayoutError naming the missing file or
column; image files listed in the labels but absent are reported together (check_images=True,
the default) or dropped (skip_missing=True). Only the standard library and numpy are imported.
"""

from __future__ import annotations

from pathlib import Path

from radz_train.data.datasets.base import UNCERTAIN_POLICIES, ChestDataset, DatasetLayoutError, Record, normalize_split
from radz_train.data.datasets.chestxray14 import ChestXray14
from radz_train.data.datasets.chexpert import CheXpert
from radz_train.data.datasets.covidx import Covidx
from radz_train.data.datasets.mimic_cxr import MimicCxr
from radz_train.data.datasets.padchest import PadChest
from radz_train.data.datasets.rsna_pneumonia import RsnaPneumonia
from radz_train.data.datasets.siim_acr import SiimAcr

__all__ = [
    "DATASETS",
    "load_dataset",
    "list_datasets",
    "ChestDataset",
    "Record",
    "DatasetLayoutError",
    "UNCERTAIN_POLICIES",
]

#: Registry: name -> adapter class (each a ChestDataset subclass taking (root, split, **opts)).
DATASETS: dict[str, type[ChestDataset]] = {
    "mimic_cxr": MimicCxr,
    "chexpert": CheXpert,
    "chestxray14": ChestXray14,
    "rsna_pneumonia": RsnaPneumonia,
    "siim_acr": SiimAcr,
    "covidx": Covidx,
    "padchest": PadChest,
}

# Other names people use for the same datasets.
_ALIASES = {
    "mimic": "mimic_cxr",
    "mimic_cxr_jpg": "mimic_cxr",
    "nih": "chestxray14",
    "chestx_ray14": "chestxray14",
    "nih_chestxray14": "chestxray14",
    "rsna": "rsna_pneumonia",
    "siim": "siim_acr",
    "siim_acr_pneumothorax": "siim_acr",
}


def list_datasets() -> list[str]:
    """The registered dataset names."""
    return sorted(DATASETS)


def _canonical(name: str) -> str:
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; known: {list_datasets()}")
    return key


def load_dataset(name: str, root: Path | str, split: str | None = None, **opts) -> ChestDataset:
    """Read dataset `name` from `root`; `split` is train / val / test (or None for all) and
    `opts` go to the adapter (frontal_only, check_images, skip_missing, ...)."""
    if split is not None:
        normalize_split(split)  # a bad split name fails before any file is read
    return DATASETS[_canonical(name)](root, split=split, **opts)
