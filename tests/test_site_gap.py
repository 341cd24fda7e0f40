"""benchmarks/site_gap.py: the hybrids swap exactly one group of the other site's settings, the
phantom sites are restored afterwards, and a small run through the shipped bundle writes its table."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import site_gap  # noqa: E402  (a benchmarks script)

from radz_train.data.phantom.acquisition import SITES  # noqa: E402


def test_hybrids_swap_exactly_one_group_or_all_but_one():
    base, other = SITES["site_a"], SITES["site_c"]
    hybrids = site_gap.hybrids(base, other)
    every = {f for fields in site_gap.GROUPS.values() for f in fields}
    differing = {f.name for f in dataclasses.fields(base) if getattr(base, f.name) != getattr(other, f.name)}
    assert every <= {f.name for f in dataclasses.fields(base)}
    # every pixel-shaping setting the sites differ by is in a group (the rest is storage and tags)
    assert differing - every <= {"name", "modality", "photometric", "bits_stored", "view_position", "pixel_spacing_mm"}
    assert hybrids["none (training site)"] == base
    for name, fields in site_gap.GROUPS.items():
        swapped = hybrids[f"+{name}"]
        for f in dataclasses.fields(base):
            expected = other if f.name in fields else base
            assert getattr(swapped, f.name) == getattr(expected, f.name), (name, f.name)
        rest = hybrids[f"all but {name}"]
        for f in dataclasses.fields(base):
            expected = other if f.name in every - set(fields) else base
            assert getattr(rest, f.name) == getattr(expected, f.name), (name, f.name)
    assert hybrids["all"].name == "site_a"  # the site key (random streams) stays the base's


def test_site_gap_runs_on_the_shipped_bundle(tmp_path):
    out = tmp_path / "gap.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "site_gap.py"), "--n", "40", "--site", "site_b", "--out", str(out)]
    subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
    result = json.loads(out.read_text())
    rows = result["macro_auc_anchor"]
    assert len(rows) == 2 + 2 * len(site_gap.GROUPS) + 1 and "site_b itself" in rows
    assert all(0.0 <= v <= 1.0 for v in rows.values())


def test_site_gap_restores_the_training_site_when_scoring_fails(monkeypatch):
    original = SITES["site_a"]
    seen = []

    def failing(bundle, cases):
        seen.append(len(cases))
        if len(seen) == 2:  # the first hybrid with another site's settings swapped in
            raise RuntimeError("scoring failed")
        return 0.5

    monkeypatch.setattr(site_gap, "macro_auc", failing)
    monkeypatch.setattr(sys, "argv", ["site_gap.py", "--n", "2"])
    with pytest.raises(RuntimeError, match="scoring failed"):
        site_gap.main()
    assert len(seen) == 2 and SITES["site_a"] is original


def test_site_gap_refuses_an_unknown_site(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "site_gap.py"), "--site", "site_x"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "unknown site 'site_x'" in result.stderr
