"""Similar-case retrieval at scale: exact search against approximate FAISS indexes, side by side
in one run, on 128-d L2-normalised embeddings (radz_engine._core.VectorIndex).

    python benchmarks/retrieval_scale_bench.py --sizes 100000,300000,1000000 \\
        --out-json docs/retrieval_scale_bench.json --out-md /tmp/retrieval_scale.md

Vectors:
  - with --embeddings FILE (fp16/fp32 [n, 128] from real screening: a .npy, or the Parquet that
    `radz screen --embeddings` writes, column `embedding`): rows are drawn with replacement and get isotropic Gaussian noise
    of norm --noise (relative to the unit vector), then are renormalised, until N;
  - without: a clustered synthetic set (see `clustered`): 64 "finding patterns", each with 32
    sub-clusters (sites, devices, patients) and its own 16-d spread, plus isotropic noise.
    Measured on 20,000 of them: cosine of random pairs -0.12 .. 0.12 (10th-90th percentile), a
    fresh query's 1st / 10th / 100th nearest neighbour 0.82 / 0.62 / 0.44: structured like image
    embeddings of one domain, neither uniform on the sphere nor near-duplicates.
Queries (--queries, default 1,000) are fresh draws from the same source, never in the index, or
with --query-embeddings held-out real embeddings (e.g. another site's screening) as they are.

Per N and index: build time (train + add, FAISS on all its OpenMP threads), memory per vector
(serialised size / N), recall@k against exact search (numpy float32 matmul), and single-thread
query latency p50/p99 (one query per call, k=10, through the Python binding, after 20 warm-up
queries): wall time, and the calling thread's CPU time (a single query runs on that thread
only), which leaves out the time the thread waited for a core on a shared machine. Flat's
latency is timed on the first --exact-queries queries (it is slow; its recall is 1). Writes
JSON and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from radz_engine import _core

DIM = 128

# (factory, [search parameter strings], largest N to run it at). Debian's FAISS is a generic
# build (no AVX2 kernels) and BLAS is the reference one, so k-means (IVF training) and list scans
# are slow here: IVF runs at the smaller sizes only, to show where it stands.
CONFIGS = [
    ("Flat", [""], None),
    ("HNSW32,Flat", ["efSearch=64", "efSearch=128", "efSearch=256"], None),
    ("HNSW16,Flat", ["efSearch=128", "efSearch=256"], 100_000),
    ("IVF1024,Flat", ["nprobe=8", "nprobe=16", "nprobe=32"], 300_000),
]


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, seed: int, patterns: int = 64, sub: int = 32, rank: int = 16) -> np.ndarray:
    """n unit vectors: pattern centre + sub-cluster offset + the pattern's low-rank spread + noise."""
    shape_rng = np.random.default_rng(12345)  # the same clusters for base and queries
    centres = unit(shape_rng.standard_normal((patterns, DIM)))
    offsets = unit(shape_rng.standard_normal((patterns, sub, DIM)))
    bases = np.linalg.qr(shape_rng.standard_normal((patterns, DIM, rank)))[0]  # [P, DIM, rank]
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), np.float32)
    for lo in range(0, n, 100_000):
        m = min(n, lo + 100_000) - lo
        p = rng.integers(0, patterns, m)
        s = rng.integers(0, sub, m)
        z = rng.standard_normal((m, rank)) * np.linspace(1.0, 0.2, rank) * 0.35
        spread = np.empty((m, DIM))
        for i in range(patterns):
            sel = p == i
            spread[sel] = z[sel] @ bases[i].T
        noise = rng.standard_normal((m, DIM)) * (0.15 / np.sqrt(DIM))
        out[lo : lo + m] = unit(centres[p] + 0.45 * offsets[p, s] + spread + noise)
    return out


def read_embeddings(path: Path) -> np.ndarray:
    """[n, dim] from a .npy, or from the `embedding` column of `radz screen --embeddings` Parquet."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        column = pq.read_table(path, columns=["embedding"]).column("embedding").combine_chunks()
        return column.values.to_numpy(zero_copy_only=False).reshape(len(column), -1)
    return np.load(path)


def from_file(path: Path, n: int, seed: int, noise: float) -> np.ndarray:
    real = read_embeddings(path)
    if real.ndim != 2 or real.shape[1] != DIM:
        raise SystemExit(f"--embeddings {path}: expected shape [n, {DIM}], got {real.shape}")
    real = unit(real.astype(np.float32))
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), np.float32)
    for lo in range(0, n, 100_000):
        m = min(n, lo + 100_000) - lo
        rows = real[rng.integers(0, len(real), m)]
        out[lo : lo + m] = unit(rows + rng.standard_normal((m, DIM)) * (noise / np.sqrt(DIM)))
    return out


def exact_top_k(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    ids = np.empty((len(queries), k), np.int64)
    for lo in range(0, len(queries), 100):
        s = queries[lo : lo + 100] @ base.T
        part = np.argpartition(-s, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(s, part, axis=1), axis=1)
        ids[lo : lo + 100] = np.take_along_axis(part, order, axis=1)
    return ids


def recall(truth: np.ndarray, found: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(t) & set(f)) / k for t, f in zip(truth.tolist(), found.tolist())]))


def measure(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, list[float], list[float]]:
    """Searches one query at a time; wall and this thread's CPU time per call, in ms."""
    _core.VectorIndex.set_num_threads(1)  # this thread's FAISS work; single queries use one anyway
    for q in queries[:20]:
        index.search(q, k)
    found = np.empty((len(queries), k), np.int64)
    wall, cpu = [], []
    for i, q in enumerate(queries):
        c0 = time.thread_time_ns()
        t0 = time.perf_counter_ns()
        _, ids = index.search(q, k)
        wall.append((time.perf_counter_ns() - t0) / 1e6)
        cpu.append((time.thread_time_ns() - c0) / 1e6)
        found[i] = ids[0]
    return found, wall, cpu


def run_size(n: int, base: np.ndarray, queries: np.ndarray, k: int, configs, threads: int, exact_queries: int):
    t0 = time.perf_counter()
    truth = exact_top_k(base, queries, k)
    print(f"N={n}: exact top-{k} by numpy in {time.perf_counter() - t0:.1f} s", flush=True)
    rows = []
    for factory, params_list, max_n in configs:
        if max_n is not None and n > max_n:
            continue
        _core.VectorIndex.set_num_threads(threads)
        index = _core.VectorIndex(DIM, factory)
        t0 = time.perf_counter()
        if not index.is_trained:
            # FAISS's k-means samples 256 vectors per list at most; 64 per list is plenty here.
            m = min(n, max(index.train_size_hint, 64 * int(factory[3:].split(",")[0])))
            index.train(base[np.random.default_rng(0).choice(n, m, replace=False)])
        train_s = time.perf_counter() - t0
        index.add(base)
        build_s = time.perf_counter() - t0
        mem = index.memory_bytes()
        for params in params_list:
            index.set_search_parameters(params)
            # Exact search's latency on fewer queries: it is slow, and its recall is 1 by definition.
            qs = queries[:exact_queries] if factory == "Flat" else queries
            found, wall, cpu = measure(index, qs, k)
            row = {
                "n": n,
                "factory": factory,
                "params": params,
                "build_s": round(build_s, 2),
                "train_s": round(train_s, 2),
                "bytes_per_vector": round(mem / n, 1),
                "recall_at_k": round(recall(truth[: len(qs)], found), 4),
                "latency_queries": len(qs),
                "p50_ms": round(float(np.percentile(wall, 50)), 3),
                "p99_ms": round(float(np.percentile(wall, 99)), 3),
                "mean_ms": round(float(np.mean(wall)), 3),
                "cpu_p50_ms": round(float(np.percentile(cpu, 50)), 3),
                "cpu_p99_ms": round(float(np.percentile(cpu, 99)), 3),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
        del index
    return rows


def markdown(rows: list[dict], k: int) -> str:
    lines = [
        f"| N | index | search params | build s | bytes/vector | recall@{k} | p50 ms | p99 ms | CPU p50 ms "
        "| CPU p99 ms |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']:,} | {r['factory']} | {r['params'] or '-'} | {r['build_s']:.1f} | {r['bytes_per_vector']:.0f} "
            f"| {r['recall_at_k']:.3f} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['cpu_p50_ms']:.3f} "
            f"| {r['cpu_p99_ms']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,300000,1000000", help="comma-separated index sizes")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--exact-queries", type=int, default=100, help="queries timed on Flat (exact, slow)")
    ap.add_argument(
        "--embeddings", type=Path, help="real embeddings [n, 128] (.npy or screening .parquet) to grow from"
    )
    ap.add_argument("--noise", type=float, default=0.1, help="noise norm added to each drawn real embedding")
    ap.add_argument("--query-embeddings", type=Path, help="held-out real embeddings (.npy / .parquet) used as queries")
    ap.add_argument("--factories", help="only these factories (';'-separated, e.g. 'Flat;HNSW32,Flat')")
    ap.add_argument(
        "--config",
        action="append",
        metavar="FACTORY=PARAMS|PARAMS",
        help="instead of the built-in list: a factory and its search parameter sets, e.g. "
        "'HNSW32,Flat=efSearch=192|efSearch=256' (repeatable; all sizes)",
    )
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="OpenMP threads for building")
    ap.add_argument("--out-json", type=Path)
    ap.add_argument("--out-md", type=Path)
    args = ap.parse_args(argv)
    if not getattr(_core, "HAVE_FAISS", False):
        raise SystemExit("radz_engine._core was built without FAISS")

    sizes = [int(s) for s in args.sizes.split(",")]
    configs = CONFIGS
    if args.config:
        configs = [(c.split("=", 1)[0], c.split("=", 1)[1].split("|") if "=" in c else [""], None) for c in args.config]
    if args.factories:
        wanted = args.factories.split(";")
        configs = [c for c in CONFIGS if c[0] in wanted]
    top = max(sizes)
    t0 = time.perf_counter()
    if args.embeddings:
        source = f"{args.embeddings} + Gaussian noise of norm {args.noise}, renormalised"
        base = from_file(args.embeddings, top, 1, args.noise)
        if args.query_embeddings:
            queries = unit(read_embeddings(args.query_embeddings).astype(np.float32))[: args.queries]
            source += f"; queries: {args.query_embeddings} as they are"
        else:
            queries = from_file(args.embeddings, args.queries, 2, args.noise)
    else:
        source = "clustered synthetic (benchmarks/retrieval_scale_bench.py clustered())"
        base = clustered(top, 1)
        queries = clustered(args.queries, 2)
    print(f"{top:,} base + {args.queries} query vectors ({source}) in {time.perf_counter() - t0:.1f} s", flush=True)

    rows = []
    for n in sizes:  # in the order given: put the size that matters most first
        rows += run_size(n, base[:n], queries, args.k, configs, args.threads, args.exact_queries)
    report = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "vectors": source,
        "dim": DIM,
        "queries": args.queries,
        "k": args.k,
        "build_threads": args.threads,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), {platform.python_version()}",
        "rows": rows,
    }
    table = markdown(rows, args.k)
    print(table)
    if args.out_json:
        args.out_json.write_text(json.dumps(report, indent=1) + "\n")
    if args.out_md:
        args.out_md.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
