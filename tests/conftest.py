"""Shared fixtures: small phantom sets written once per session."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest


def write_phantom_csv(folder: Path, n: int, seed: int, site: str = "site_a", size: int = 96, fmt: str = "npy") -> Path:
    """n phantom radiographs + labels.csv (the `radz synth` columns): .npy intensities, or 8-bit
    PNGs with fmt="png" (what `radz screen` reads)."""
    from radz_train.data.phantom import generate_cases

    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for case in generate_cases(n, seed=seed, sites=(site,), size=size):
        path = f"images/{case.index:05d}.{fmt}"
        if fmt == "png":
            from PIL import Image

            Image.fromarray((np.clip(case.image, 0, 1) * 255).astype(np.uint8)).save(folder / path)
        else:
            np.save(folder / path, case.image.astype(np.float32))
        rows.append({"path": path, "report": case.report, "site": case.site, **case.labels})
    with (folder / "labels.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder / "labels.csv"


@pytest.fixture(scope="session")
def phantom_csv_64(tmp_path_factory) -> Path:
    return write_phantom_csv(tmp_path_factory.mktemp("phantoms64"), 64, seed=11)


@pytest.fixture(scope="session")
def tiny_export_model():
    """A tiny RadzModel (random weights) shared by the export and bundle tests."""
    from export_fixtures import tiny_model

    return tiny_model()


@pytest.fixture(scope="session")
def tiny_bundle(tiny_export_model, tmp_path_factory):
    """(bundle folder, ExportReport) written once: fp16 variant and a small AUC parity check."""
    from radz_export.bundle import write_bundle

    out = tmp_path_factory.mktemp("bundle") / "tiny"
    report = write_bundle(tiny_export_model, out, fp16=True, auc_phantoms=24)
    return out, report
