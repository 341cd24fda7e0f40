"""The findings table: every finding in it is drawn, reported and labelled, and it is the only list.

radz_train.data.phantom.findings.FINDING_SPECS holds everything the project knows about each
finding; the generator, the report writer and the labeler must all read it, so that adding a
finding happens in one place.
"""

from __future__ import annotations

import ast
import itertools
import re
from pathlib import Path

import numpy as np
import pytest

from radz_train.data import labeler, phantom, reports
from radz_train.data.labeler import find_mentions, label_report
from radz_train.data.phantom import FINDING_SPECS, FINDINGS, LABELS, Finding, generate_case, sample_findings
from radz_train.data.phantom.findings import JOINT_NEGATIONS, SIDES
from radz_train.data.phantom.wording import degree_words
from radz_train.data.reports import write_report

SIZE = 96
_LATERALITIES = {
    "none": (None,),
    "one": ("left", "right"),
    "any": ("left", "right", "bilateral"),
    "both": ("bilateral",),
}


def _variants(name: str) -> list[Finding]:
    """Every severity / side / zone the table says `name` can have (a mid-range size for lesions)."""
    spec = FINDING_SPECS[name]
    severities = ("mild", "moderate", "severe") if spec.graded else (None,)
    zones = ("upper", "middle", "lower") if spec.zoned else (None,)
    size = None if spec.size_mm is None else float(round(sum(spec.size_mm) / 2))
    return [
        Finding(name, sev, lat, zone, size)
        for sev, lat, zone in itertools.product(severities, _LATERALITIES[spec.sides], zones)
    ]


def _positives(labels: dict[str, int]) -> set[str]:
    return {n for n in FINDINGS if labels[n] != 0}


def test_the_table_is_the_label_list_everywhere():
    assert FINDINGS == tuple(FINDING_SPECS) and LABELS == FINDINGS + ("no_finding",)
    assert labeler.FINDINGS == FINDINGS and labeler.LABELS == LABELS
    assert list(labeler._COMPILED) == list(FINDINGS)
    for name, spec in FINDING_SPECS.items():
        assert spec.name == name and spec.sides in SIDES
        assert [p.pattern for p in labeler._COMPILED[name]] == list(spec.patterns)
        for noun in spec.scope_nouns:  # the labeler's scope breaker is built from the table too
            assert noun in labeler._SCOPE_BREAK.pattern


def test_sampled_attributes_follow_the_table():
    for i in range(600):
        for f in sample_findings(i, seed=4):
            spec = FINDING_SPECS[f.name]
            assert (f.severity is not None) == spec.graded
            assert f.laterality in _LATERALITIES[spec.sides]
            assert (f.location is not None) == spec.zoned
            if spec.size_mm is None:
                assert f.size_mm is None
            else:
                assert spec.size_mm[0] <= f.size_mm <= spec.size_mm[1]


@pytest.mark.parametrize("name", FINDINGS)
def test_every_finding_is_drawn(name):
    spec = FINDING_SPECS[name]
    assert spec.draw or spec.anatomy or spec.draw_late, f"{name} has no drawing in the table"
    base = generate_case(3, seed=5, size=SIZE, findings=[])
    for f in _variants(name):
        case = generate_case(3, seed=5, size=SIZE, findings=[f])
        diff = np.abs(case.image.astype(np.float64) - base.image)
        assert diff.max() > 0.05, f"{f} is not visible"
        assert case.labels[name] == 1 and case.labels["no_finding"] == 0


@pytest.mark.parametrize("name", FINDINGS)
def test_every_sentence_of_a_finding_is_labelled_back_to_it(name):
    spec = FINDING_SPECS[name]
    for f in _variants(name):
        for seed in range(12):
            rng = np.random.default_rng(seed)
            sentence, impression = spec.describe(f, degree_words(f.severity, rng), rng)
            for text in (sentence, impression):
                got = label_report(text)
                assert _positives(got) == {name} and got["no_finding"] == 0, (text, got)


@pytest.mark.parametrize("name", FINDINGS)
def test_every_report_of_a_finding_is_labelled_back_to_it(name):
    for f in _variants(name):
        for seed in range(12):
            text = write_report([f], seed=seed)
            got = label_report(text)
            assert _positives(got) == {name} and got["no_finding"] == 0, (text, got)


@pytest.mark.parametrize("name", FINDINGS)
def test_every_negation_is_labelled_negative(name):
    for sentence in FINDING_SPECS[name].negations:
        got = label_report(sentence)
        assert _positives(got) == set() and got["no_finding"] == 1, (sentence, got)
        # a negation that names the finding is found as a negative mention of it
        assert all(m.status == 0 for m in find_mentions(sentence))
    spec = FINDING_SPECS[name]
    for text in (spec.negation_clause, spec.impression_negation):
        if text:
            got = label_report(text if text.endswith(".") else f"{text}.")
            assert got[name] == 0 and got["no_finding"] == 1, (text, got)


def test_joint_negations_negate_all_their_findings():
    joint = {n for n, s in FINDING_SPECS.items() if s.joint_negation}
    assert joint
    for sentence in JOINT_NEGATIONS:
        got = label_report(sentence)
        assert _positives(got) == set() and got["no_finding"] == 1, (sentence, got)
        assert {m.finding for m in find_mentions(sentence)} <= joint


def test_normal_reports_are_labelled_normal():
    for seed in range(200):
        got = label_report(write_report([], seed=seed))
        assert _positives(got) == set() and got["no_finding"] == 1


@pytest.mark.parametrize("name", [n for n, s in FINDING_SPECS.items() if s.describe_signs is not None])
def test_sign_only_wording_never_names_the_finding_but_is_labelled(name):
    for f in _variants(name):
        for seed in range(12):
            text = write_report([f], seed=seed, withhold=(name,))
            assert name.replace("_", " ") not in text.lower()
            assert label_report(text)[name] == 1, text


def _words() -> set[str]:
    """Words that only a per-finding list would contain: the findings' names and scope nouns."""
    words = {w for n in FINDINGS for w in n.split("_")}
    words |= {noun for s in FINDING_SPECS.values() for noun in s.scope_nouns}
    return words


def _string_constants(path: Path) -> list[str]:
    """Every string literal of a module except docstrings."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
    ]


@pytest.mark.parametrize(
    "path",
    [
        Path(reports.__file__),
        Path(labeler.__file__),
        *(Path(phantom.__file__).parent / m for m in ("render.py", "anatomy.py", "generate.py", "model.py")),
    ],
    ids=lambda p: p.name,
)
def test_the_table_is_the_only_list_of_findings(path):
    """reports.py, labeler.py and the renderer name no finding: all per-finding knowledge is in the table."""
    pattern = re.compile(r"\b(?:" + "|".join(sorted(_words())) + r")", re.IGNORECASE)
    offenders = [s for s in _string_constants(path) if pattern.search(s)]
    assert offenders == [], f"{path.name} names findings itself: {offenders}"
