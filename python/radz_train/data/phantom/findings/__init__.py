"""The findings table: the one list of findings the phantom draws, reports and labels.

Each finding lives in its own module (how it changes the anatomy, how it is drawn, how a
report phrases it and how the labeler recognises it) as one `FindingSpec`; FINDING_SPECS lists
them. The generator, radz_train.data.reports and radz_train.data.labeler take all their
per-finding knowledge from here, so adding a finding means writing one module and adding
one line below.

Order matters: it is the label order (FINDINGS), the order in which per-finding random draws
are made, and the order of the labeler's mentions. Append new findings at the end.
"""

from __future__ import annotations

from radz_train.data.phantom.findings import (
    atelectasis,
    cardiomegaly,
    consolidation,
    edema,
    emphysema,
    mass,
    nodule,
    pleural_effusion,
    pneumothorax,
)
from radz_train.data.phantom.findings.spec import SIDES, FindingSpec

__all__ = ["FINDINGS", "FINDING_SPECS", "JOINT_NEGATIONS", "LABELS", "SIDES", "FindingSpec"]

FINDING_SPECS: dict[str, FindingSpec] = {
    spec.name: spec
    for spec in (
        cardiomegaly.SPEC,
        pleural_effusion.SPEC,
        pneumothorax.SPEC,
        consolidation.SPEC,
        nodule.SPEC,
        mass.SPEC,
        atelectasis.SPEC,
        edema.SPEC,
        emphysema.SPEC,
    )
}
FINDINGS: tuple[str, ...] = tuple(FINDING_SPECS)
LABELS: tuple[str, ...] = FINDINGS + ("no_finding",)

# One sentence that negates every finding with `joint_negation` at once (reports use one when
# none of them is present, instead of a negation per finding).
JOINT_NEGATIONS = (
    "No pneumothorax or pleural effusion.",
    "No pleural effusion or pneumothorax.",
    "There is no pneumothorax, pleural effusion, or focal consolidation.",
    "No focal consolidation, effusion, or pneumothorax.",
)
