"""Render a grid of phantom radiographs with their labels and shortened reports.

    python benchmarks/phantom_grid.py [--out docs/phantom_grid.png] [--seed 0]
        [--rows 3] [--cols 4] [--size 256] [--sites site_a,site_b,site_c]

Standalone script (never imported by tests). Uses matplotlib's Agg backend.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/phantom_grid.png")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rows", type=int, default=3)
    ap.add_argument("--cols", type=int, default=4)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--sites", default="site_a,site_b,site_c")
    ap.add_argument("--start", type=int, default=0)
    args = ap.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from radz_train.data.phantom import generate_case

    sites = args.sites.split(",")
    n = args.rows * args.cols
    fig, axes = plt.subplots(args.rows, args.cols, figsize=(3.2 * args.cols, 4.6 * args.rows))
    for k, ax in enumerate(axes.ravel()[:n]):
        case = generate_case(args.start + k, seed=args.seed, site=sites[k % len(sites)], size=args.size)
        ax.imshow(case.image, cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        tags = [
            f"{f.name}"
            + (f" ({f.severity})" if f.severity else "")
            + (f" {f.laterality[0].upper()}" if f.laterality in ("left", "right") else "")
            for f in case.findings
        ] or ["no_finding"]
        ax.set_title(f"#{case.index} {case.site}\n" + ", ".join(tags), fontsize=7)
        imp = case.report.split("IMPRESSION:")[-1].strip()
        ax.set_xlabel("\n".join(textwrap.wrap(imp, 48)[:4]), fontsize=6)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
