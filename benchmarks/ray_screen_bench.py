"""`radz screen` without Ray vs `radz screen --ray` on this machine, side by side in one run.

    python benchmarks/ray_screen_bench.py --n 400 --size 512 --rounds 3 --json docs/ray_screen_bench.json

Writes 2n phantom DICOMs (radz_train, seed 21), starts a local Ray cluster (127.0.0.1 only, all
cores, its own temp folder, stopped at the end), then runs both commands as fresh processes on
8 files (start-up cost), n files (CSV lists) and all 2n, alternating which side goes first each
round, on the default bundle, batch 32, default workers / threads / actors. Reports per side and
size (median, min and max over rounds):
  - wall img/s: n / wall-clock of the whole command (Python start, engine or actor start-up,
    listing, decoding, model, writing); the number a user sees;
  - tool img/s: the command's own summary (without Ray: from the first file to the last, after
    the engine is loaded; with Ray: from listing to the last part file, actor start-up included).
The Ray cluster's own start-up is measured once, apart. Also checks that both give the same
scores (max |difference|). Never imported by tests.
"""

from __future__ import annotations

import os
import secrets

# Before Ray is imported: loopback only, the auth token held in the environment (nothing in
# ~/.ray; the CLI processes inherit it), no usage stats.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402


def _phantoms(folder: Path, n: int, size: int) -> None:
    from radz_train.data.dicom_out import write_case
    from radz_train.data.phantom import generate_cases

    folder.mkdir(parents=True, exist_ok=True)
    for case in generate_cases(n, seed=21, size=size):
        write_case(case, folder / f"{case.index:05d}.dcm")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _run(command: list[str], summary_path: Path) -> dict:
    start = time.perf_counter()
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    summary = json.loads(summary_path.read_text())
    return {
        "wall_s": round(wall, 3),
        "files": summary["files"],
        "tool_images_per_s": summary["images_per_s"],
        "tool_seconds": summary["seconds"],
        "load_average_1min_after": round(os.getloadavg()[0], 2),
    }


def _scores(path: Path) -> dict:
    import pyarrow.parquet as pq
    from pyarrow import csv

    table = csv.read_csv(path) if path.suffix == ".csv" else pq.read_table(path)
    columns = [c for c in table.column_names if c.startswith("score_") and c != "score_ms"]
    rows = table.select(["source", *columns]).to_pylist()
    return {r["source"]: [r[c] for c in columns] for r in rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=400, help="phantom DICOMs")
    parser.add_argument("--size", type=int, default=512, help="phantom size in pixels")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", default="docs/ray_screen_bench.json")
    args = parser.parse_args(argv)

    import numpy as np
    import onnxruntime
    import ray

    work = Path(tempfile.mkdtemp(prefix="rz_raybench_"))
    ray_tmp = tempfile.mkdtemp(prefix="rz_ray_")
    try:
        data = work / "dicoms"
        start = time.perf_counter()
        _phantoms(data, 2 * args.n, args.size)
        print(
            f"{2 * args.n} phantom DICOMs ({args.size} x {args.size}) in {time.perf_counter() - start:.1f} s",
            flush=True,
        )
        files = sorted(data.glob("*.dcm"))
        inputs = {}
        for n in (8, args.n):
            listing = work / f"first_{n}.csv"
            listing.write_text("path\n" + "".join(f"{p}\n" for p in files[:n]))
            inputs[n] = str(listing)
        inputs[2 * args.n] = str(data)
        cores = len(os.sched_getaffinity(0))
        load_before = os.getloadavg()
        start = time.perf_counter()
        ray.init(num_cpus=cores, _temp_dir=ray_tmp, include_dashboard=False, log_to_driver=False)
        cluster_start_s = time.perf_counter() - start
        address = ray.get_runtime_context().gcs_address
        print(f"Ray cluster at {address} ({cores} CPUs) started in {cluster_start_s:.1f} s", flush=True)

        base = [
            sys.executable,
            "-m",
            "radz_engine.cli",
            "screen",
            "--batch-size",
            str(args.batch_size),
            "--no-progress",
        ]
        sides = {
            "radz screen": lambda n, i: [*base, inputs[n], "--out", str(work / f"plain{n}_{i}.csv")],
            "radz screen --ray": lambda n, i: [
                *base,
                inputs[n],
                "--out",
                str(work / f"ray{n}_{i}"),
                f"--ray={address}",
            ],
        }
        runs: dict = {f"{name} ({n} files)": [] for n in inputs for name in sides}
        for i in range(args.rounds):
            for n in inputs:
                order = list(sides) if i % 2 == 0 else list(reversed(sides))
                for name in order:
                    summary_path = work / f"summary_{i}.json"
                    run = _run([*sides[name](n, i), "--summary-json", str(summary_path)], summary_path)
                    assert run["files"] == n, run
                    run["wall_images_per_s"] = round(n / run["wall_s"], 2)
                    runs[f"{name} ({n} files)"].append(run)
                    print(f"round {i + 1} {name} ({n} files): {run}", flush=True)
        load_after = os.getloadavg()

        n2 = 2 * args.n
        plain, on_ray = _scores(work / f"plain{n2}_0.csv"), _scores(work / f"ray{n2}_0")
        assert sorted(plain) == sorted(on_ray), "the two sides screened different files"
        diff = max(
            float(np.nanmax(np.abs(np.array(plain[s], float) - np.array(on_ray[s], float)), initial=0.0)) for s in plain
        )

        def stat(name, key):
            values = [r[key] for r in runs[name]]
            return {
                "median": round(statistics.median(values), 2),
                "min": round(min(values), 2),
                "max": round(max(values), 2),
            }

        result = {
            "command": "python benchmarks/ray_screen_bench.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "machine": {
                "cpu": _cpu_model(),
                "cores_available": cores,
                "load_average_before": load_before,
                "load_average_after": load_after,
                "python": platform.python_version(),
                "ray": ray.__version__,
                "onnxruntime": onnxruntime.__version__,
            },
            "data": {"phantom_dicoms": list(inputs), "size": args.size, "seed": 21},
            "settings": {
                "batch_size": args.batch_size,
                "bundle": "default (tiny preset)",
                "radz screen": "default --workers (cores - 1) and --threads (all cores)",
                "radz screen --ray": f"default actors (cluster CPUs / 1 thread = {cores}), local cluster "
                f"already running ({cores} CPUs)",
            },
            "ray_cluster_start_s": round(cluster_start_s, 2),
            "runs": runs,
            "summary": {
                name: {
                    "wall_images_per_s": stat(name, "wall_images_per_s"),
                    "tool_images_per_s": stat(name, "tool_images_per_s"),
                    "wall_s": stat(name, "wall_s"),
                }
                for name in runs
            },
            "max_abs_score_difference": diff,
        }
        result["ratio_ray_over_plain_wall_images_per_s"] = {
            n: round(
                result["summary"][f"radz screen --ray ({n} files)"]["wall_images_per_s"]["median"]
                / result["summary"][f"radz screen ({n} files)"]["wall_images_per_s"]["median"],
                3,
            )
            for n in inputs
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(
            json.dumps(result["summary"], indent=2),
            "\nratio",
            result["ratio_ray_over_plain_wall_images_per_s"],
            "\nmax |score difference|",
            diff,
            f"\nload average before {load_before}, after {load_after}",
        )
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
