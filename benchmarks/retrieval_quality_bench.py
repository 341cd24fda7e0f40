"""Similar-case retrieval quality on phantoms (issue 16): does "the most similar screened images"
mean "images with the same findings"?

    python benchmarks/retrieval_quality_bench.py --work /tmp/radz_retrieval [--n-index 20000]
        [--n-query 1000] [--index-site site_a] [--query-site site_b] [--size 256] [--workers 2]
        [--out docs/retrieval_quality.json]

Steps, all through the public commands: `radz synth` an index set (one site) and a held-out query
set (another site), `radz screen --embeddings` both, `radz index build --labels` (exact, and an
approximate FAISS index when the build has FAISS). Then, per query, its 10 nearest indexed images
against the query's own confirmed findings:

- share@10: the fraction of the 10 that share at least one finding with the query (queries with
  at least one finding);
- same@10: the fraction whose finding set equals the query's (all queries, "no finding" included);
- recall@10 of the approximate index against exact search.

Baselines side by side: 10 random indexed images, and the 10 nearest by the model's class-score
vector (what a user would do with the screening CSV alone). Prints a Markdown table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def run(cmd: list[str]) -> float:
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - start


def radz(*args: str) -> list[str]:
    return [sys.executable, "-m", "radz_engine.cli", *args]


def finding_sets(labels_csv: Path) -> dict[str, frozenset]:
    """{image file name: frozenset of findings} from a radz synth labels.csv."""
    from radz_engine.retrieval.labels import read_findings

    return {Path(path).name: frozenset(found) for path, found in read_findings(labels_csv).items()}


def precision(query_sets: list[frozenset], neighbour_sets: list[list[frozenset]]) -> dict:
    share_hits = share_total = same_hits = same_total = 0
    for mine, found in zip(query_sets, neighbour_sets):
        same_hits += sum(s == mine for s in found)
        same_total += len(found)
        if mine:
            share_hits += sum(bool(s & mine) for s in found)
            share_total += len(found)
    return {"share_at_10": share_hits / max(share_total, 1), "same_at_10": same_hits / max(same_total, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path("/tmp/radz_retrieval"))
    p.add_argument("--n-index", type=int, default=20000)
    p.add_argument("--n-query", type=int, default=1000)
    p.add_argument("--index-site", default="site_a")
    p.add_argument("--query-site", default="site_b")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--approx-factory", default="HNSW32,Flat", help="the approximate index compared with exact")
    p.add_argument("--out", type=Path, default=Path("docs/retrieval_quality.json"))
    args = p.parse_args(argv)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    sets = {"index": (args.n_index, 101, args.index_site), "query": (args.n_query, 202, args.query_site)}
    for name, (n, seed, site) in sets.items():
        folder = work / name
        if not (folder / "labels.csv").exists():
            seconds[f"synth {name}"] = run(
                radz("synth", "--out", str(folder), "--n", str(n), "--seed", str(seed), "--sites", site)
                + ["--size", str(args.size), "--format", "png", "--workers", str(args.workers), "--quiet"]
            )
        out = work / f"{name}.parquet"
        if not out.exists():
            seconds[f"screen {name}"] = run(
                radz("screen", str(folder / "images"), "--out", str(out), "--embeddings", "--quiet")
            )
    from radz_engine.retrieval import open_index
    from radz_engine.retrieval.vectors import have_faiss
    from radz_engine.runtime.embeddings import read_embeddings

    exact_dir = work / "index_exact"
    seconds["index build (exact)"] = run(
        radz("index", "build", str(work / "index.parquet"), "--out", str(exact_dir))
        + ["--labels", str(work / "index" / "labels.csv"), "--overwrite", "--quiet"]
    )
    indexes = {"exact": open_index(exact_dir)}
    if have_faiss() and args.approx_factory:
        approx_dir = work / "index_approx"
        seconds[f"index build ({args.approx_factory})"] = run(
            radz("index", "build", str(work / "index.parquet"), "--out", str(approx_dir))
            + ["--labels", str(work / "index" / "labels.csv"), "--factory", args.approx_factory, "--overwrite"]
            + ["--quiet"]
        )
        indexes[args.approx_factory] = open_index(approx_dir)

    truth_index = finding_sets(work / "index" / "labels.csv")
    truth_query = finding_sets(work / "query" / "labels.csv")
    queries = read_embeddings(work / "query.parquet")
    query_sets = [truth_query[Path(s).name] for s in queries.sources]
    q = queries.embeddings.astype(np.float32)
    exact = indexes["exact"]
    rows_sets = [truth_index[Path(exact.row(i)["source"]).name] for i in range(exact.size)]

    results: dict[str, dict] = {}
    exact_ids = None
    for name, index in indexes.items():
        start = time.perf_counter()
        found = index.search(q, args.k)
        search_s = time.perf_counter() - start
        ids = np.array([[n.id for n in row] for row in found])
        sets_found = [[rows_sets[i] for i in row] for row in ids]
        results[name] = {**precision(query_sets, sets_found), "ms_per_query_batched": 1000 * search_s / len(q)}
        if name == "exact":
            exact_ids = ids
        else:
            results[name]["recall_at_10_vs_exact"] = float(
                np.mean([len(set(a) & set(b)) / args.k for a, b in zip(ids, exact_ids)])
            )
    rng = np.random.default_rng(0)
    random_ids = np.array([rng.choice(exact.size, args.k, replace=False) for _ in range(len(q))])
    results["random"] = precision(query_sets, [[rows_sets[i] for i in row] for row in random_ids])
    # The 10 nearest by the model's class-score vector (cosine), what the screening CSV alone gives.
    classes = sorted(exact.row(0)["scores"])
    index_scores = np.array([[exact.row(i)["scores"][c] for c in classes] for i in range(exact.size)], np.float32)
    query_scores = np.array([[row["scores"][c] for c in classes] for row in queries.rows], np.float32)

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    by_score = np.argsort(-(unit(query_scores) @ unit(index_scores).T), axis=1)[:, : args.k]
    results["class scores"] = precision(query_sets, [[rows_sets[i] for i in row] for row in by_score])

    with_findings = sum(1 for s in query_sets if s)
    doc = {
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "index_images": exact.size,
        "query_images": len(q),
        "queries_with_findings": with_findings,
        "index_site": args.index_site,
        "query_site": args.query_site,
        "size": args.size,
        "k": args.k,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(
        f"\n{exact.size} indexed ({args.index_site}), {len(q)} queries ({args.query_site}, {with_findings} with findings)"
    )
    print("| neighbours | share@10 | same@10 | recall@10 vs exact | ms/query (batched) |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        recall = (
            f"{r['recall_at_10_vs_exact']:.3f}" if "recall_at_10_vs_exact" in r else ("1" if name == "exact" else "")
        )
        ms = f"{r['ms_per_query_batched']:.3f}" if "ms_per_query_batched" in r else ""
        print(f"| {name} | {r['share_at_10']:.3f} | {r['same_at_10']:.3f} | {recall} | {ms} |")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
