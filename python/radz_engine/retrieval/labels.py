"""Confirmed findings for indexed images, from a labels CSV.

Two layouts are read (both have a `path` column, relative to the CSV's folder or absolute):
- a `findings` column: finding names separated by ";" (empty: no finding);
- one 0/1 column per finding (what `radz synth` writes): every column whose values are all 0, 1
  or empty, except bookkeeping columns (index, seed, no_finding).
Images are matched to screening sources by their resolved path.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

from radz_engine.errors import SimilarIndexError

__all__ = ["read_findings", "match_findings"]

log = logging.getLogger(__name__)

_NOT_FINDINGS = {"path", "index", "seed", "no_finding", "report", "site", "findings_json", "source"}


def _binary(values: list[str]) -> bool:
    return all(v.strip() in ("", "0", "1", "0.0", "1.0") for v in values)


def read_findings(csv_path: str | Path) -> dict[str, list[str]]:
    """{resolved image path: [finding, ...]} from a labels CSV (see the module docstring)."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise SimilarIndexError(f"--labels {csv_path}", "no such file")
    try:
        with csv_path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            columns = list(reader.fieldnames or [])
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise SimilarIndexError(f"--labels {csv_path}", f"cannot be read as CSV ({error})") from None
    if "path" not in columns:
        raise SimilarIndexError(f"--labels {csv_path}", f"needs a 'path' column, has {columns[:8]}")
    if "findings" in columns:

        def findings_of(row: dict) -> list[str]:
            return [f.strip() for f in (row.get("findings") or "").split(";") if f.strip()]

    else:
        names = [c for c in columns if c not in _NOT_FINDINGS and _binary([r.get(c) or "" for r in rows])]
        if not names:
            raise SimilarIndexError(
                f"--labels {csv_path}", "no findings: give a 'findings' column (a;b) or one 0/1 column per finding"
            )

        def findings_of(row: dict) -> list[str]:
            return [n for n in names if (row.get(n) or "").strip() in ("1", "1.0")]

    out = {}
    for number, row in enumerate(rows, start=2):
        path = (row.get("path") or "").strip()
        if not path:
            raise SimilarIndexError(f"--labels {csv_path}", f"row {number}: empty path")
        out[os.path.realpath(csv_path.parent / path)] = findings_of(row)
    return out


def _tail(path: str, parts: int = 2) -> str:
    return "/".join(Path(path).parts[-parts:])


def match_findings(
    sources: list[str], findings: dict[str, list[str]], base: Path | None = None
) -> list[list[str] | None]:
    """The findings of each source (None: not in the labels). Sources are resolved against
    `base` (the folder `radz screen` ran in; default: the current one); a source that does not
    resolve to a labelled path (screened from another folder) is matched by its last two path
    parts ("images/0001.png") when exactly one labelled path ends that way and the source is not
    a file here (a file that exists is never given another file's labels)."""
    base = Path.cwd() if base is None else Path(base)
    tails: dict[str, list[str] | None] = {}
    for path, found in findings.items():
        key = _tail(path)
        tails[key] = None if key in tails else found  # None: ambiguous
    out = []
    by_tail = 0
    for source in sources:
        resolved = os.path.realpath(base / source)
        found = findings.get(resolved)
        if found is None and not os.path.exists(resolved):  # a file that exists here is not another one
            found = tails.get(_tail(source))
            by_tail += found is not None
        out.append(found)
    if by_tail:
        log.info("radz index: %d sources matched to --labels by their last two path parts", by_tail)
    return out
