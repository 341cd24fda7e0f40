"""Where a bundle's unseen-site gap comes from: the same phantom patients acquired at site_a with
one group of another site's acquisition settings swapped in at a time (paired: same anatomy,
findings, placement draws and noise), scored zero-shot by the bundle (C++ preprocessing, ONNX
Runtime, anchor mode), macro AUC per hybrid.

    python benchmarks/site_gap.py --site site_c     # the shipped default bundle
    python benchmarks/site_gap.py --bundle B --site site_b --n 800 --out docs/results/site_gap/NAME-site_b.json

A group whose swap costs most AUC is what the training should learn to ignore (augmentation) or
what the preprocessing should normalise. Storage (MONOCHROME1, BitsStored) is not a group: the
phantoms are scored from display intensities, and the runtime decodes storage exactly.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from radz_engine.bundle.loader import load_bundle
from radz_train.data.phantom import acquisition, generate_cases
from radz_train.evaluation.bundle_check import cases_auc

# SiteStyle fields by what they model (docs/PHANTOMS.md).
GROUPS = {
    "field_of_view": ("fov_scale",),
    "tilt": ("rotation_deg",),
    "tone": ("contrast", "gamma", "fog"),
    "detector": ("noise", "grain_px", "blur_px", "edge_enhance"),
    "borders": ("collimation_prob", "marker"),
}


def hybrids(base: acquisition.SiteStyle, other: acquisition.SiteStyle) -> dict[str, acquisition.SiteStyle]:
    """base, base with each group of `other` swapped in, base with all but one group, and all."""

    def swap(fields):
        return dataclasses.replace(base, **{f: getattr(other, f) for f in fields})

    every = tuple(f for fields in GROUPS.values() for f in fields)
    out = {"none (training site)": base}
    out.update({f"+{name}": swap(fields) for name, fields in GROUPS.items()})
    out.update({f"all but {name}": swap(tuple(f for f in every if f not in fields)) for name, fields in GROUPS.items()})
    out["all"] = swap(every)
    return out


def macro_auc(bundle, cases) -> float:
    """The bundle's macro AUC (anchor mode) on phantom cases."""
    return cases_auc(bundle, cases, modes=("anchor",))["anchor"]["macro_auc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=None, help="a bundle folder (default: the shipped one)")
    parser.add_argument("--site", default="site_c", help="the unseen site whose settings are swapped in")
    parser.add_argument("--base", default="site_a", help="the training site (default site_a)")
    parser.add_argument("--n", type=int, default=600, help="phantoms per hybrid (default 600)")
    parser.add_argument("--seed", type=int, default=31, help="phantom series (default 31: not a training seed)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    for name in (args.site, args.base):
        if name not in acquisition.SITES:
            parser.error(f"unknown site {name!r}; known: {', '.join(acquisition.SITES)}")
    bundle = load_bundle(args.bundle)
    base = acquisition.SITES[args.base]
    rows = {}
    try:
        for label, style in hybrids(base, acquisition.SITES[args.site]).items():
            # The base site's key keeps the random streams, so every hybrid renders the same patients.
            acquisition.SITES[args.base] = style
            cases = list(generate_cases(args.n, seed=args.seed, sites=(args.base,), size=256))
            rows[label] = macro_auc(bundle, cases)
            print(f"{label:24s} {rows[label]:.4f}", flush=True)
    finally:
        acquisition.SITES[args.base] = base
    truth = list(generate_cases(args.n, seed=args.seed, sites=(args.site,), size=256))
    rows[f"{args.site} itself"] = macro_auc(bundle, truth)
    print(f"{args.site + ' itself':24s} {rows[args.site + ' itself']:.4f}")
    result = {"bundle": str(args.bundle or "shipped default"), "base": args.base, "site": args.site, "n": args.n, "seed": args.seed,
              "groups": {k: list(v) for k, v in GROUPS.items()}, "macro_auc_anchor": rows}  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
