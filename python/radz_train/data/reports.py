"""Free-text radiology reports for phantom radiographs.

`write_report(findings, seed=...)` returns a report with a FINDINGS and an IMPRESSION
section. Wording varies (synonyms, sentence templates, order), severity and side words
follow the `Finding`, absent findings are sometimes negated explicitly ("No pneumothorax.",
"without effusion"), and normal studies get normal sentences ("The lungs are clear.",
"No acute cardiopulmonary process."). Every positive sentence describes what the phantom
actually draws (meniscus, visceral pleural line, air bronchograms, Kerley lines, ...), because
later stages train on the text alone. Reports never hedge: the ground truth is certain.

This module holds the report's layout only; what is said about each finding (its sentences,
negations, which negations it shares) comes from the findings table
(radz_train.data.phantom.findings).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from radz_train.data.phantom.findings import FINDING_SPECS, FINDINGS, JOINT_NEGATIONS
from radz_train.data.phantom.model import Finding
from radz_train.data.phantom.wording import cap, degree_words, pick, severity_word, side_word

__all__ = ["severity_word", "side_word", "write_report"]

_CLEAR_LUNGS = ("The lungs are clear.", "Lungs are clear bilaterally.", "The lungs are well expanded and clear.")
_NORMAL_IMPRESSION = (
    "No acute cardiopulmonary process.",
    "No acute cardiopulmonary abnormality.",
    "Normal chest radiograph.",
    "No acute intrathoracic process.",
)
_OSSEOUS = (
    "No acute osseous abnormality.",
    "The osseous structures are unremarkable.",
    "Visualized bones are intact.",
    "",
)
_OPENERS = ("", "", "Frontal view of the chest. ", "PA view of the chest. ", "Single frontal radiograph of the chest. ")
_P_JOINT, _P_CLEAR_LUNGS, _P_CLAUSE, _P_IMPRESSION_NEGATION, _P_NUMBERED = 0.5, 0.8, 0.2, 0.3, 0.5

_JOINT = {name for name, spec in FINDING_SPECS.items() if spec.joint_negation}
_IN_LUNGS = {name for name, spec in FINDING_SPECS.items() if spec.in_lungs}
_SIGNS_ONLY = sorted(name for name, spec in FINDING_SPECS.items() if spec.describe_signs is not None)


def _positive(f: Finding, rng: np.random.Generator) -> tuple[str, str]:
    """(findings sentence, impression phrase) for one present finding."""
    words = degree_words(f.severity, rng)
    spec = FINDING_SPECS.get(f.name)
    if spec is None:
        raise ValueError(f"finding name must be one of {FINDINGS}, got {f.name!r}")
    return spec.describe(f, words, rng)


def _describe(
    findings: Sequence[Finding], withhold: Sequence[str], rng: np.random.Generator
) -> tuple[list[str], list[str]]:
    """Positive sentences and impression phrases, in a random order."""
    positives, summary = [], []
    for f in findings:
        spec = FINDING_SPECS.get(f.name)
        signs = spec.describe_signs if spec is not None and f.name in withhold else None
        s, imp = signs(f, rng) if signs is not None else _positive(f, rng)
        positives.append(s)
        summary.append(imp)
    order = rng.permutation(len(positives))
    return [positives[i] for i in order], [summary[i] for i in order]


def _negatives(names: set[str], rng: np.random.Generator) -> list[str]:
    """Explicit negations of some absent findings (and "The lungs are clear." when they are)."""
    absent = [n for n in FINDINGS if n not in names]
    negatives = []
    if _JOINT.isdisjoint(names) and rng.random() < _P_JOINT:
        negatives.append(pick(rng, JOINT_NEGATIONS))
        absent = [n for n in absent if n not in _JOINT]
    for name, spec in FINDING_SPECS.items():
        if spec.negate_alone and name in absent and rng.random() < spec.negate_alone:
            negatives.append(pick(rng, spec.negations))
            absent.remove(name)
    k = int(rng.integers(0, 4)) if names else int(rng.integers(1, 4))
    for i in rng.permutation(len(absent))[:k]:
        negatives.append(pick(rng, FINDING_SPECS[absent[int(i)]].negations))
    if names.isdisjoint(_IN_LUNGS) and rng.random() < _P_CLEAR_LUNGS:
        negatives.insert(0, pick(rng, _CLEAR_LUNGS))
    return negatives


def _fold_negation(sentences: list[str], names: set[str], rng: np.random.Generator) -> None:
    """Now and then, fold a negation into the last positive sentence ("..., without pleural effusion.")."""
    for name, spec in FINDING_SPECS.items():
        if spec.negation_clause and sentences and name not in names and rng.random() < _P_CLAUSE:
            sentences[-1] = sentences[-1].rstrip(".") + f", {spec.negation_clause}."


def _impression(summary: list[str], names: set[str], rng: np.random.Generator) -> str:
    if not summary:
        return pick(rng, _NORMAL_IMPRESSION)
    if len(summary) > 1 and rng.random() < _P_NUMBERED:
        imp = " ".join(f"{i + 1}. {cap(s)}." for i, s in enumerate(summary))
    else:
        imp = cap("; ".join(summary)) + "."
    for name, spec in FINDING_SPECS.items():
        if spec.impression_negation and name not in names and rng.random() < _P_IMPRESSION_NEGATION:
            imp += " " + spec.impression_negation
    return imp


def write_report(findings: Sequence[Finding], *, seed: int = 0, withhold: Sequence[str] = ()) -> str:
    """Report text for `findings` (empty = normal study); deterministic given `seed`.

    `withhold`: finding names that must never appear in the text; such findings are described
    by their visual signs only (supported: findings whose table entry has `describe_signs`).

    Format::

        FINDINGS: <sentences>

        IMPRESSION: <summary>
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(seed) >> 32, 0xEE]))
    unsupported = sorted(set(withhold) - set(_SIGNS_ONLY))
    if unsupported:
        raise ValueError(f"withhold: no sign-only wording for {unsupported} (supported: {_SIGNS_ONLY})")
    names = {f.name for f in findings}
    sentences, summary = _describe(findings, withhold, rng)
    negatives = _negatives(names, rng)
    _fold_negation(sentences, names, rng)
    body = " ".join(sentences + negatives + [pick(rng, _OSSEOUS)]).strip()
    body = pick(rng, _OPENERS) + body
    return f"FINDINGS: {body}\n\nIMPRESSION: {_impression(summary, names, rng)}"
