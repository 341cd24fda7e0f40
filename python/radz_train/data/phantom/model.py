"""What a generated case is: its findings (`Finding`), labels and the `PhantomCase` record."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from radz_train.data.phantom.findings import FINDINGS

__all__ = ["LATERALITIES", "SEVERITIES", "ZONES", "Finding", "PhantomCase", "labels_from_findings"]

SEVERITIES = ("mild", "moderate", "severe")
LATERALITIES = ("left", "right", "bilateral")
ZONES = ("upper", "middle", "lower")


@dataclass(frozen=True)
class Finding:
    """One finding on one image.

    Attributes:
        name: one of FINDINGS.
        severity: "mild" | "moderate" | "severe", or None where it does not apply
            (nodule, mass: their size is `size_mm`).
        laterality: "left" | "right" | "bilateral" (patient side), or None (cardiomegaly).
        location: lung zone "upper" | "middle" | "lower" for focal findings, else None.
        size_mm: diameter of a nodule or mass in millimetres, else None.
    """

    name: str
    severity: str | None = None
    laterality: str | None = None
    location: str | None = None
    size_mm: float | None = None

    def __post_init__(self) -> None:
        if self.name not in FINDINGS:
            raise ValueError(f"name must be one of {FINDINGS}, got {self.name!r}")
        if self.severity is not None and self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES} or None, got {self.severity!r}")
        if self.laterality is not None and self.laterality not in LATERALITIES:
            raise ValueError(f"laterality must be one of {LATERALITIES} or None, got {self.laterality!r}")
        if self.location is not None and self.location not in ZONES:
            raise ValueError(f"location must be one of {ZONES} or None, got {self.location!r}")

    def to_dict(self) -> dict:
        """Plain dict without the None fields (for JSON)."""
        items = (
            ("name", self.name),
            ("severity", self.severity),
            ("laterality", self.laterality),
            ("location", self.location),
            ("size_mm", self.size_mm),
        )
        return {k: v for k, v in items if v is not None}


@dataclass
class PhantomCase:
    """One generated radiograph with its ground truth.

    Attributes:
        index, seed: the case index and the base seed it was generated from.
        site: site key (see SITES).
        findings: the findings present (empty list = normal study).
        labels: {label: 0/1} for every name in LABELS (no_finding = 1 iff no findings).
        report: free-text report (FINDINGS + IMPRESSION), see radz_train.data.reports.
        image: float32 [size, size] display intensity in [0, 1]; 1 = bright (bone).
        acquisition: per-image acquisition parameters (site, scale, rotation, ...), for DICOM.
    """

    index: int
    seed: int
    site: str
    findings: list[Finding]
    labels: dict[str, int]
    report: str
    image: np.ndarray
    acquisition: dict = field(default_factory=dict)


def labels_from_findings(findings: Sequence[Finding]) -> dict[str, int]:
    """{label: 0/1} for every name in LABELS."""
    names = {f.name for f in findings}
    labels = {n: int(n in names) for n in FINDINGS}
    labels["no_finding"] = int(not names)
    return labels
