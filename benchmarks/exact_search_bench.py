"""Exact similar-case search: FAISS Flat through the C++ core against the numpy matrix product a
user would write, side by side in one run, on the vectors of an index folder.

    python benchmarks/exact_search_bench.py /tmp/rq20k/index_exact [--queries 1000] [--noise 0.02]

Queries are indexed vectors plus Gaussian noise (renormalised), seed 0. Reports ms per query for
1,000 queries in one call (batched: FAISS uses BLAS here, so the system libblas.so.3 matters) and
for 200 one-at-a-time calls, twice each in alternating order, and checks that both sides return the
same neighbours.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("index", type=Path, help="an index folder (radz index build)")
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--noise", type=float, default=0.02)
    p.add_argument("--k", type=int, default=10)
    args = p.parse_args(argv)
    from radz_engine.retrieval.vectors import ExactVectors, FaissVectors

    x = np.load(args.index / "vectors.npy").astype(np.float32)
    rng = np.random.default_rng(0)
    q = x[rng.choice(len(x), args.queries)] + rng.normal(0, args.noise, (args.queries, x.shape[1])).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    sides = {"numpy (matmul + argpartition)": ExactVectors(x), "FAISS Flat (C++ core)": FaissVectors.build(x, "Flat")}
    times: dict[str, dict[str, list[float]]] = {name: {"batched": [], "single": []} for name in sides}
    for _ in range(2):
        for name, side in sides.items():
            start = time.perf_counter()
            side.search(q, args.k)
            times[name]["batched"].append(1000 * (time.perf_counter() - start) / len(q))
            start = time.perf_counter()
            for row in q[:200]:
                side.search(row, args.k)
            times[name]["single"].append(1000 * (time.perf_counter() - start) / 200)
    (_, a), (_, b) = (side.search(q, args.k) for side in sides.values())
    print(f"{len(x)} x {x.shape[1]} vectors, {len(q)} queries, k={args.k}")
    print("| side | batched ms/query (2 runs) | single ms/query (2 runs) |")
    print("|---|---|---|")
    for name, t in times.items():
        print(
            f"| {name} | {' / '.join(f'{v:.3f}' for v in t['batched'])} | {' / '.join(f'{v:.3f}' for v in t['single'])} |"
        )
    print(f"same neighbours: {float((a == b).mean()):.4f} of ids")
    return 0


if __name__ == "__main__":
    sys.exit(main())
