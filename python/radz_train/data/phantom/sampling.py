"""Which findings a case has: the clinical prior of the phantom series.

About 35% of studies are normal. Co-occurrence follows the clinical picture: edema brings
cardiomegaly and (mostly bilateral) effusions, effusion brings basal atelectasis,
pneumonia-like consolidation brings a parapneumonic effusion, emphysema brings nodules,
masses and pneumothorax. Which attributes each finding carries (severity, side, zone,
size) comes from the findings table.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from radz_train.data.phantom.findings import FINDING_SPECS, FINDINGS
from radz_train.data.phantom.model import SEVERITIES, ZONES, Finding
from radz_train.data.phantom.seeding import case_seed, stream

__all__ = ["sample_findings"]

_SEVERITY_P = [0.4, 0.35, 0.25]  # mild, moderate, severe
# bilateral probability of a lone finding's side, by the table's laterality kind
_LONE_BILATERAL = {"one": 0.0, "any": 0.15}


def _co_occurrence(rng: np.random.Generator, side: Callable[[float], str]) -> dict[str, dict]:
    """The findings present ({name: attributes drawn so far}); empty for a normal study."""
    present: dict[str, dict] = {}
    if rng.random() < 0.13:
        present["edema"] = {"laterality": "bilateral"}
        if rng.random() < 0.7:
            present["cardiomegaly"] = {}
        if rng.random() < 0.6:
            present["pleural_effusion"] = {"laterality": side(0.75)}
    if rng.random() < 0.12:
        present.setdefault("cardiomegaly", {})
    if rng.random() < 0.13:
        present.setdefault("pleural_effusion", {"laterality": side(0.25)})
    if rng.random() < 0.14:
        present["consolidation"] = {"laterality": side(0.2)}
        if rng.random() < 0.25:
            present.setdefault("pleural_effusion", {"laterality": present["consolidation"]["laterality"]})
    if rng.random() < 0.10:
        present["emphysema"] = {"laterality": "bilateral"}
        if rng.random() < 0.25:
            present["pneumothorax"] = {"laterality": side(0.0)}
        if rng.random() < 0.2:
            present["nodule"] = {"laterality": side(0.0)}
        if rng.random() < 0.15:
            present["mass"] = {"laterality": side(0.0)}
    if rng.random() < 0.08:
        present.setdefault("pneumothorax", {"laterality": side(0.0)})
    if rng.random() < 0.11:
        present.setdefault("nodule", {"laterality": side(0.0)})
    if rng.random() < 0.08:
        present.setdefault("mass", {"laterality": side(0.0)})
    p_atel = 0.4 if "pleural_effusion" in present else 0.10
    if rng.random() < p_atel:
        eff = present.get("pleural_effusion", {}).get("laterality")
        present["atelectasis"] = {"laterality": eff or side(0.25)}
    return present


def _lone_finding(rng: np.random.Generator, side: Callable[[float], str]) -> dict[str, dict]:
    """An abnormal study that drew nothing above: one finding, uniformly."""
    name = FINDINGS[int(rng.integers(len(FINDINGS)))]
    kind = FINDING_SPECS[name].sides
    lat = "bilateral" if kind == "both" else (None if kind == "none" else side(_LONE_BILATERAL[kind]))
    return {name: {"laterality": lat}}


def _finding(name: str, attrs: dict, rng: np.random.Generator, side: Callable[[float], str]) -> Finding:
    """The Finding `name` with its severity, side, zone and size drawn (as the table says it has them)."""
    spec = FINDING_SPECS[name]
    sev = SEVERITIES[int(rng.choice(3, p=_SEVERITY_P))] if spec.graded else None
    sided = spec.sides != "none"
    lat = attrs.get("laterality") if sided else None
    if sided and lat is None:
        lat = side(0.0)
    loc = ZONES[int(rng.integers(3))] if spec.zoned else None
    size = float(np.round(rng.uniform(*spec.size_mm))) if spec.size_mm else None
    return Finding(name, sev, lat, loc, size)


def sample_findings(index: int, *, seed: int = 0) -> list[Finding]:
    """Draw the findings of case `index` (depends on (seed, index) only); see the module docstring."""
    rng = stream(case_seed(seed, index), "findings")
    if rng.random() < 0.35:
        return []

    def side(p_bilateral: float) -> str:
        r = rng.random()
        return "bilateral" if r < p_bilateral else ("right" if r < (1 + p_bilateral) / 2 else "left")

    present = _co_occurrence(rng, side) or _lone_finding(rng, side)
    # table order keeps the random draws reproducible
    return [_finding(name, present[name], rng, side) for name in FINDINGS if name in present]
