"""`FindingSpec`: everything the phantom knows about one finding, in one record.

One spec per finding module; the table in `findings/__init__.py` lists them. The generator
(sampling, anatomy effects, drawing), the report writer (radz_train.data.reports) and the
report labeler (radz_train.data.labeler) all read these records and keep no per-finding
knowledge of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from radz_train.data.phantom.canvas import Scene
    from radz_train.data.phantom.model import Finding
    from radz_train.data.phantom.patient import Anatomy
    from radz_train.data.phantom.wording import Degree

__all__ = ["SIDES", "FindingSpec"]

# How a finding's laterality is drawn when nothing else decides it:
#   "none": no side (central); "one": one side; "any": one side or, sometimes, both;
#   "both": always bilateral.
SIDES = ("none", "one", "any", "both")


@dataclass(frozen=True)
class FindingSpec:
    """One finding: its attributes, how it is drawn, reported and recognised in text.

    Attributes:
        name: label name (snake_case).
        graded: carries a severity (mild / moderate / severe).
        sides: laterality kind, one of SIDES.
        zoned: carries a lung zone (upper / middle / lower).
        size_mm: (min, max) diameter drawn for lesions measured in millimetres, else None.
        anatomy: (Anatomy, Finding, severity index) -> None; edits the patient before rendering.
        draw: (Scene, Finding, rng, severity index) -> None; draws into the lung layers, in the
            order of the case's findings, with the stream ("render", name).
        draw_late: (Scene, Finding) -> None; drawn after every finding's `draw`, in table order.
        vessels: (Scene, amp) -> amp; changes the vessel calibre map.
        describe: (Finding, Degree, rng) -> (findings sentence, impression phrase).
        describe_signs: like `describe` without naming the finding (withheld-name reports), or None.
        negations: sentences that state the finding is absent.
        negate_alone: probability that a report names this finding's absence on its own.
        joint_negation: covered by the combined negations (findings.JOINT_NEGATIONS).
        in_lungs: a lung-parenchyma finding (its presence rules out "The lungs are clear.").
        negation_clause: a clause appended to a positive sentence when absent ("without ..."), or None.
        impression_negation: a sentence appended to the impression when absent, or None.
        patterns: regular expressions (lower-case text) that mention the finding.
        scope_nouns: head nouns that end a negation's scope in "... with a small right <noun>".
    """

    name: str
    graded: bool
    sides: str
    describe: Callable[[Finding, Degree, np.random.Generator], tuple[str, str]]
    negations: tuple[str, ...]
    patterns: tuple[str, ...]
    zoned: bool = False
    size_mm: tuple[float, float] | None = None
    anatomy: Callable[[Anatomy, Finding, int], None] | None = None
    draw: Callable[[Scene, Finding, np.random.Generator, int], None] | None = None
    draw_late: Callable[[Scene, Finding], None] | None = None
    vessels: Callable[[Scene, np.ndarray], np.ndarray] | None = None
    describe_signs: Callable[[Finding, np.random.Generator], tuple[str, str]] | None = None
    negate_alone: float = 0.0
    joint_negation: bool = False
    in_lungs: bool = False
    negation_clause: str | None = None
    impression_negation: str | None = None
    scope_nouns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.sides not in SIDES:
            raise ValueError(f"sides must be one of {SIDES}, got {self.sides!r}")
        if not self.negations or not self.patterns:
            raise ValueError(f"{self.name}: a finding needs negations and label patterns")
