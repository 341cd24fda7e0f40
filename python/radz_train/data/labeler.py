"""Rule-based radiology report labeler (CheXpert-labeler style, regular expressions only).

Pipeline per report:
  1. lower-case, drop section headers ("FINDINGS:", "IMPRESSION:");
  2. split into sentences, then into clauses at scope breakers ("but", "however",
     "although", "whereas", ", and there is", ...), so a negation never crosses them;
  3. find mentions per finding with the synonym patterns of the findings table
     (radz_train.data.phantom.findings: "enlarged cardiac silhouette", "blunting of the
     costophrenic angle", "visceral pleural line", "air bronchograms", "Kerley B lines",
     "hyperinflation", ...); this module itself knows no finding by name;
  4. classify each mention as
       uncertain (-1): "possible", "may represent", "cannot exclude", "cannot be excluded",
                       "suspicious for", "questionable", "versus", ...
       negative (0):   a negation cue earlier in the clause ("no", "without", "negative for",
                       "free of", "no evidence of", "resolved"), inside the mention
                       ("heart is not enlarged") or right after it ("is not seen",
                       "has resolved", "are absent");
       positive (1):   otherwise;
     pseudo-negations ("no change in", "not only") are ignored;
  5. aggregate per finding: positive wins over uncertain, uncertain over negative;
     unmentioned = 0. `no_finding` = 1 iff no finding is positive or uncertain, so
     "No acute cardiopulmonary process." gives no_finding = 1.

Public API:
    label_report(text, *, uncertain=-1) -> dict[str, int]   (keys: LABELS)
    label_reports(texts, *, uncertain=-1) -> list[dict[str, int]]
    find_mentions(text) -> list[Mention]   (for debugging rules)
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from radz_train.data.phantom.findings import FINDING_SPECS, FINDINGS, LABELS

__all__ = ["FINDINGS", "LABELS", "Mention", "find_mentions", "label_report", "label_reports"]

# Every finding, its synonym patterns and the nouns that end a negation's scope come from the
# findings table (one list for generator, reports and labeler).
_COMPILED = {name: [re.compile(p) for p in spec.patterns] for name, spec in FINDING_SPECS.items()}
_SCOPE_NOUNS = "|".join(noun for spec in FINDING_SPECS.values() for noun in spec.scope_nouns)

# Cue words. Pre-cues act on mentions after them in the same clause.
_NEG_PRE = re.compile(
    r"\b(?:no|not|without|negative\s+for|free\s+of|absence\s+of|rather\s+than|"
    r"neither|nor|resolution\s+of|resolved|clear\s+of|no\s+longer|never|denies)\b"
)
_PSEUDO_NEG = re.compile(
    r"\b(?:no\s+(?:significant\s+|interval\s+|appreciable\s+)?change|not\s+only|"
    r"no\s+increase|no\s+decrease|not\s+significantly\s+changed|without\s+(?:significant\s+)?change|"
    r"cannot\s+(?:be\s+)?(?:excluded?|ruled\s+out)|can\s*not\s+(?:be\s+)?(?:excluded?|ruled\s+out)|"
    r"not\s+(?:be\s+)?excluded|not\s+(?:be\s+)?ruled\s+out)\b"
)
_UNC_PRE = re.compile(
    r"\b(?:possible|possibly|probable|probably|may|might|could|questionable|question\s+of|"
    r"suspicious\s+for|suspected|suspect|concerning\s+for|concern\s+for|suggestive\s+of|"
    r"suggests?|cannot\s+(?:be\s+)?exclude[d]?|can\s*not\s+(?:be\s+)?exclude[d]?|"
    r"cannot\s+(?:be\s+)?ruled?\s+out|not\s+(?:be\s+)?excluded|equivocal|indeterminate|"
    r"versus|vs|differential|borderline|likely|presumably|either)\b"
)
_UNC_POST = re.compile(
    r"^[\s,]*(?:(?:is|are|which\s+is)\s+)?(?:cannot\s+be\s+excluded|not\s+(?:be\s+)?excluded|"
    r"(?:is|are\s+)?(?:not\s+)?(?:entirely\s+)?excluded\s*\?|(?:is|are)\s+(?:questioned|suspected|possible)|"
    r"can\s*not\s+be\s+(?:excluded|ruled\s+out)|versus|vs\b|\?|may\s+be\s+present)"
)
_NEG_POST = re.compile(
    r"^[\s,]*(?:(?:is|are|was|were|has|have|had)\s+)?(?:(?:been|now)\s+)?"
    r"(?:not\s+(?:seen|identified|present|visualized|demonstrated|evident|appreciated|noted)|"
    r"no\s+longer\s+(?:seen|present|visualized)|resolved|absent|excluded|ruled\s+out|cleared)\b"
)
_INSIDE_NEG = re.compile(r"\b(?:not|no)\b")
_SCOPE_BREAK = re.compile(
    r"\bbut\b|\bhowever\b|\balthough\b|\bthough\b|\bwhereas\b|\bwhile\b|\bexcept\b|"
    r"\bapart\s+from\b|\bnevertheless\b|\byet\b|;|:|"
    r",\s*(?:and\s+)?(?:there\s+(?:is|are)|which\s+(?:is|are)|with\s+(?:a|an)\b)|"
    r"\band\s+there\s+(?:is|are)\b|\band\s+(?=(?:a|an|the)\s)|"
    r"\bwith\s+(?:a|an)\s+(?=[\w-]+\s+[\w-]*\s*(?:" + _SCOPE_NOUNS + r"))"
)
_HEADER = re.compile(r"\b(?:findings|impression|history|indication|comparison|technique)\s*:", re.IGNORECASE)
_SENT = re.compile(r"(?<!\d)\.(?!\d)|\n|!|\?(?=\s|$)|(?:^|\s)\d+\.\s")


@dataclass(frozen=True)
class Mention:
    """One finding mention: the finding, its text, its clause and its status (1 / 0 / -1)."""

    finding: str
    text: str
    clause: str
    status: int


def _clauses(text: str) -> list[str]:
    text = _HEADER.sub(". ", text.lower())
    out = []
    for sent in _SENT.split(text):
        # keep "?" as an uncertainty marker: split it off only at sentence ends
        for clause in _SCOPE_BREAK.split(sent):
            clause = clause.strip(" ,")
            if clause:
                out.append(clause)
    return out


def _status(clause: str, start: int, end: int) -> int:
    before = clause[:start]
    after = clause[end:]
    inside = clause[start:end]
    if _UNC_POST.search(after) or _UNC_PRE.search(before):
        return -1
    before_clean = _PSEUDO_NEG.sub(" ", before)
    if _NEG_PRE.search(before_clean) or _INSIDE_NEG.search(inside) or _NEG_POST.search(after):
        return 0
    return 1


def find_mentions(text: str) -> list[Mention]:
    """All finding mentions in `text` with their status."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")  # noqa: TRY004 (documented API)
    out = []
    for clause in _clauses(text):
        # "?" inside a clause marks uncertainty for what precedes it ("pneumothorax?")
        for name, pats in _COMPILED.items():
            for pat in pats:
                for m in pat.finditer(clause):
                    out.append(Mention(name, m.group(0), clause, _status(clause, m.start(), m.end())))
    return out


def label_report(text: str, *, uncertain: int = -1) -> dict[str, int]:
    """Labels of one report: {label: 1 | 0 | uncertain} for every name in LABELS.

    Args:
        text: report text (any case; section headers are ignored).
        uncertain: value used for uncertain mentions (-1 default; 1 for U-ones, 0 for U-zeros).
    """
    if uncertain not in (-1, 0, 1):
        raise ValueError(f"uncertain must be -1, 0 or 1, got {uncertain!r}")
    status = {n: None for n in FINDINGS}
    for m in find_mentions(text):
        cur = status[m.finding]
        rank = {1: 3, -1: 2, 0: 1}
        if cur is None or rank[m.status] > rank[cur]:
            status[m.finding] = m.status
    labels = {}
    for n in FINDINGS:
        s = status[n]
        labels[n] = 0 if s is None else (uncertain if s == -1 else s)
    labels["no_finding"] = int(not any(status[n] in (1, -1) for n in FINDINGS))
    return labels


def label_reports(texts: Iterable[str], *, uncertain: int = -1) -> list[dict[str, int]]:
    """`label_report` over many reports."""
    return [label_report(t, uncertain=uncertain) for t in texts]
