"""The zero-shot study's report: mean +- sd over seeds, built from the per-run JSON records that
benchmarks/zero_shot_results.py writes (one file per variant and seed).

    python benchmarks/zero_shot_report.py [--records docs/results/runs] [--doc docs/RESULTS_ROBUSTNESS.md]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from radz_train.data.phantom.findings import FINDINGS as _PHANTOM_FINDINGS

FINDINGS = list(_PHANTOM_FINDINGS)  # what the phantoms are labelled with (radz synth)
UNSEEN = "emphysema"
SITES = ("site_a", "site_b", "site_c")
MODES = ("softmax", "posneg", "anchor")
ROOT = Path(__file__).resolve().parents[1]


def load_records(record_dir: Path, schedule: dict | None) -> dict[str, list[dict]]:
    """{variant: [record, ...] sorted by seed}, only records trained at `schedule` (None: any)."""
    by_variant: dict[str, list[dict]] = {}
    for path in sorted(record_dir.glob("*.json")):
        record = json.loads(path.read_text())
        if schedule is not None and record.get("schedule") != schedule:
            continue
        by_variant.setdefault(record["variant"], []).append(record)
    for records in by_variant.values():
        records.sort(key=lambda r: r["seed"])
    return by_variant


def mean_sd(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if v == v]
    if not values:
        return float("nan"), float("nan")
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, float("nan")
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def fmt(values: list[float]) -> str:
    """'88.12 +- 0.40' in AUC percent; one run: '88.12 (1 run)'."""
    mean, sd = mean_sd(values)
    if mean != mean:
        return "n/a"
    if sd != sd:
        return f"{100 * mean:.2f} (1 run)"
    return f"{100 * mean:.2f} +- {100 * sd:.2f}"


def png_macro(record: dict, site: str, mode: str) -> float:
    return record["png"][site][mode]["macro"]


def dicom_macro(record: dict, site: str) -> float:
    return record["dicom_screen"][site]["anchor"]["macro"]


def unseen_mean(record: dict, getter) -> float:
    return (getter(record, "site_b") + getter(record, "site_c")) / 2


def compare(main: list[float], other: list[float]) -> str:
    """Difference of means (other - main) with its standard error, and whether it exceeds 2 SE."""
    main, other = [v for v in main if v == v], [v for v in other if v == v]
    m1, s1 = mean_sd(main)
    m2, s2 = mean_sd(other)
    if len(main) < 2 or len(other) < 2:
        return f"{100 * (m2 - m1):+.2f} (too few seeds to judge)"
    se = math.sqrt(s1**2 / len(main) + s2**2 / len(other))
    verdict = "within noise" if abs(m2 - m1) <= 2 * se else ("better" if m2 > m1 else "worse")
    return f"{100 * (m2 - m1):+.2f} +- {100 * se:.2f} ({verdict})"


def schedule_line(s: dict) -> str:
    return (
        f"{s['n_train']} site_a training phantoms (256 px), {s['steps']} steps of {s['batch']}, AdamW lr {s['lr']} "
        f"(all groups), cosine with 5% warm-up; test sets {s['n_test']} PNG phantoms (256 px) and {s['n_dicom']} "
        f"DICOM phantoms ({s['dicom_size']} px, explicit VR little endian) per site."
    )


def main_section(records: list[dict]) -> list[str]:
    lines = [
        f"## Main variant: {len(records)} seed(s) ({', '.join(str(r['seed']) for r in records)})",
        "",
        "Macro AUC over the 9 findings, mean +- sd over seeds (sample sd). site_a is the training site; "
        "site_b and site_c are unseen sites.",
        "",
        "| scoring, input | site_a (in-site) | site_b | site_c | gap in-site - worst unseen |",
        "|---|---:|---:|---:|---:|",
    ]
    for mode in MODES:
        cells = [fmt([png_macro(r, site, mode) for r in records]) for site in SITES]
        gap = [png_macro(r, "site_a", mode) - min(png_macro(r, "site_b", mode), png_macro(r, "site_c", mode)) for r in records]  # fmt: skip
        lines.append(f"| {mode}, 256-px PNG (`radz eval`) | " + " | ".join(cells) + f" | {fmt(gap)} |")
    cells = [fmt([dicom_macro(r, site) for r in records]) for site in SITES]
    gap = [dicom_macro(r, "site_a") - min(dicom_macro(r, "site_b"), dicom_macro(r, "site_c")) for r in records]
    size = records[0]["schedule"]["dicom_size"]
    lines.append(
        f"| anchor, {size}-px DICOM (`radz export` + `radz screen`) | " + " | ".join(cells) + f" | {fmt(gap)} |"
    )
    lines += ["", "Per-class AUC (anchor, 256-px PNG), mean over seeds:", ""]
    lines += ["| class | " + " | ".join(SITES) + " |", "|---|" + "---:|" * len(SITES)]
    for c in FINDINGS:
        cells = [fmt([r["png"][site]["anchor"]["per_class"][c] for r in records]) for site in SITES]
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    return lines + [""]


def ablation_section(
    by_variant: dict[str, list[dict]], descriptions: dict[str, str], finetunes: set[str] = frozenset()
) -> list[str]:
    main = by_variant["main"]
    lines = [
        "## Ablations",
        "",
        "Each row changes one thing from the main variant. Macro AUC (anchor mode) mean +- sd over seeds; "
        "'unseen' is the mean of site_b and site_c per run. The last column is the change of that unseen "
        "mean against the main variant, with its standard error; 'better'/'worse' only where the change "
        "exceeds two standard errors.",
        "",
        "| variant | seeds | site_a PNG | unseen PNG | site_a DICOM | unseen DICOM | unseen PNG vs main |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    main_unseen = [unseen_mean(r, lambda r, s: png_macro(r, s, "anchor")) for r in main]
    # fine-tunes change more than one thing (base, steps): their own section pairs them with their base
    for variant in ["main"] + sorted(v for v in by_variant if v not in ("main", "unseen_class", *finetunes)):
        records = by_variant[variant]
        unseen = [unseen_mean(r, lambda r, s: png_macro(r, s, "anchor")) for r in records]
        cells = [
            fmt([png_macro(r, "site_a", "anchor") for r in records]),
            fmt(unseen),
            fmt([dicom_macro(r, "site_a") for r in records]),
            fmt([unseen_mean(r, dicom_macro) for r in records]),
            "(reference)" if variant == "main" else compare(main_unseen, unseen),
        ]
        lines.append(f"| {descriptions.get(variant, variant)} | {len(records)} | " + " | ".join(cells) + " |")
    return lines + [""]


def finetune_section(by_variant: dict[str, list[dict]], descriptions: dict[str, str]) -> list[str]:
    """Fine-tuned runs against the exact model each started from (its record's "base"), per seed."""
    tuned = {v: [r for r in records if "base" in r] for v, records in by_variant.items()}
    tuned = {v: records for v, records in tuned.items() if records}
    if not tuned:
        return []
    lines = [
        "## Fine-tuning, paired with the model it started from",
        "",
        "Macro AUC (anchor, 512-px DICOM through `radz screen`) of each fine-tuned run and its change from "
        "the very model it started from (the same seed's base run, evaluated alongside: the difference is "
        "paired, so seed-to-seed spread cancels). Change: mean +- sd over seeds; 'better'/'worse' only where "
        "a paired t test says so at 95% (with 2 seeds that needs the change to exceed 9 sd).",
        "",
        "| variant | seeds | base | site_a | site_b | site_c | change site_a | change site_b | change site_c |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for variant, records in sorted(tuned.items()):
        cells = [fmt([dicom_macro(r, site) for r in records]) for site in SITES]
        changes = [paired([dicom_macro(r, site) - dicom_macro(r["base"], site) for r in records]) for site in SITES]
        bases = ", ".join(sorted({r["base"]["run"] for r in records}))
        lines.append(
            f"| {descriptions.get(variant, variant)} | {len(records)} | {bases} | " + " | ".join(cells + changes) + " |"
        )
    return lines + [""]


# Two-sided 95% critical values of Student's t by degrees of freedom (n - 1); 2.0 beyond.
T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26, 10: 2.23}


def paired(differences: list[float]) -> str:
    """Mean +- sd of paired differences in AUC points, judged by a paired t test (95%, two-sided)."""
    differences = [d for d in differences if d == d]
    if not differences:
        return "n/a"
    mean, sd = mean_sd(differences)
    if len(differences) < 2:
        return f"{100 * mean:+.2f} (1 run)"
    se = sd / math.sqrt(len(differences))
    significant = abs(mean) > T95.get(len(differences) - 1, 2.0) * se
    verdict = ("better" if mean > 0 else "worse") if significant else "within noise"
    return f"{100 * mean:+.2f} +- {100 * sd:.2f} ({verdict})"


def unseen_class_section(records: list[dict]) -> list[str]:
    seen = [c for c in FINDINGS if c != UNSEEN]
    lines = [
        f"## Unseen class: {UNSEEN}",
        "",
        f"Training reports describe {UNSEEN} by its signs only and never name it; it is not a DKAM class in "
        "training. At test time it is scored from its knowledge description (anchor) or its name.",
        "",
        "| | " + " | ".join(f"{site} {mode}" for site in SITES for mode in ("anchor",)) + " |",
        "|---|" + "---:|" * len(SITES),
    ]
    cells = [fmt([r["png"][site]["anchor"]["per_class"][UNSEEN] for r in records]) for site in SITES]
    lines.append(f"| {UNSEEN} AUC | " + " | ".join(cells) + " |")
    seen_cells = [fmt([sum(r["png"][site]["anchor"]["per_class"][c] for c in seen) / len(seen) for r in records]) for site in SITES]  # fmt: skip
    lines.append("| seen classes macro AUC | " + " | ".join(seen_cells) + " |")
    return lines + [""]


def bundle_section(record_dir: Path, schedule: dict) -> list[str]:
    """The shipped-bundle target (issue 17) from `zero_shot_results.py --check-bundle` summaries."""
    checks = [json.loads(p.read_text()) for p in sorted((record_dir.parent / "bundle_checks").glob("*.json"))]
    checks = [c for c in checks if c.get("schedule") == schedule]
    if not checks:
        return []
    lines = [
        "## Bundles against the target",
        "",
        "Target: macro AUC >= 0.88 in-site and >= 0.85 on every unseen site, fresh 512-px DICOM phantoms "
        "through `radz screen` (the bundle's scoring and thresholds; `zero_shot_results.py --check-bundle B`).",
        "",
        "| bundle (manifest sha256) | trained from | site_a | site_b | site_c | gap | screened / failed | met |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    for c in checks:
        auc = c["macro_auc"]
        screened = " / ".join(f"{v['n']}/{v['failed']}" for v in c.get("screened", {}).values()) or "?"
        lines.append(
            f"| `{c['bundle']}` ({c['manifest_sha256_12']}) | `{c.get('model_source')}` | "
            + " | ".join(f"{100 * auc[s]:.2f}" for s in SITES)
            + f" | {100 * c['gap_in_site_minus_worst_unseen']:.2f} | {screened} | {'yes' if c['targets_met'] else 'no'} |"
        )
    return lines + [""]


def runs_section(by_variant: dict[str, list[dict]]) -> list[str]:
    lines = [
        "## Every run",
        "",
        "Training wall time, median training throughput and the machine's load average at start and end "
        "(a shared 2-core machine: runs that overlapped other work are slower).",
        "",
        "| run | train min | samples/s | load start -> end | threads | anchor PNG a / b / c | anchor DICOM a / b / c |",
        "|---|---:|---:|---|---:|---|---|",
    ]
    for variant, records in by_variant.items():
        for r in records:
            t = r.get("train") or {}
            wall = t.get("wall_s")
            load = f"{t.get('load_average_start', ['?'])[0]} -> {t.get('load_average_end', ['?'])[0]}" if t else "?"
            png = " / ".join(f"{100 * png_macro(r, s, 'anchor'):.1f}" for s in SITES)
            dicom = " / ".join(f"{100 * dicom_macro(r, s):.1f}" for s in SITES)
            lines.append(
                f"| {variant}-s{r['seed']} | {wall / 60:.1f} | {t.get('samples_per_s_median', '?')} | {load} | "
                f"{r['threads']} | {png} | {dicom} |"
                if wall
                else f"| {variant}-s{r['seed']} | ? | ? | ? | {r['threads']} | {png} | {dicom} |"
            )
    return lines + [""]


def write_report(record_dir: Path, doc: Path, schedule: dict, quick: bool = False) -> None:
    from zero_shot_results import FINETUNE, VARIANTS  # the driver owns the variant list

    by_variant = load_records(record_dir, schedule)
    descriptions = {name: text for name, (text, _) in VARIANTS.items()}
    command = "python benchmarks/zero_shot_results.py --work /tmp/radz_results --variants VARIANTS --seeds SEEDS"
    lines = [
        "# Zero-shot robustness on phantoms: seeds, unseen sites, ablations",
        "",
        "The `tiny` preset (1.44M parameters: 3-layer ViT, 4-layer Llama, from scratch) trained on CPU on "
        "phantoms of `site_a` from their reports only, evaluated zero-shot on held-out phantoms of site_a and "
        "of the unseen sites site_b and site_c. Built from the per-run records in "
        f"`{record_dir.relative_to(ROOT) if record_dir.is_relative_to(ROOT) else record_dir}`.",
        "",
        f"Reproduce (runs already recorded are skipped): `{command}{' --quick' if quick else ''}`; "
        "this report alone: `python benchmarks/zero_shot_report.py`.",
        "",
        "Schedule: " + schedule_line(schedule),
        "",
    ]
    if quick:
        lines += ["**Quick mode (CI): tiny data and a few steps; the numbers below mean nothing.**", ""]
    discussion = record_dir.parent / "discussion.md"  # hand-written reading of the tables, kept on rebuild
    if not quick and discussion.exists():
        lines += [discussion.read_text().strip(), ""]
    if "main" in by_variant:
        lines += main_section(by_variant["main"])
        lines += ablation_section(by_variant, descriptions, set(FINETUNE))
    lines += finetune_section(by_variant, descriptions)
    if "unseen_class" in by_variant:
        lines += unseen_class_section(by_variant["unseen_class"])
    lines += bundle_section(record_dir, schedule)
    if by_variant:
        lines += runs_section(by_variant)
    else:
        lines += ["No runs recorded at this schedule yet.", ""]
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text("\n".join(lines) + "\n")
    print(f"wrote {doc}")


def main() -> None:
    from zero_shot_results import FULL, schedule

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=Path, default=ROOT / "docs" / "results" / "runs")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "RESULTS_ROBUSTNESS.md")
    args = parser.parse_args()
    write_report(args.records, args.doc, schedule(FULL))


if __name__ == "__main__":
    main()
