"""Engine (ONNX Runtime CPU) vs plain PyTorch eager, side by side in one run: now a thin
wrapper over `radz bench` (python/radz_bench), kept so that the commands in docs/ still work.

    python benchmarks/engine_bench.py --threads 1 --rounds 3 --screen 200 --workers 1 --json docs/engine_bench.json

is `radz bench --device cpu --batch 1,8,32 --threads 1 --rounds 3 --latency-requests 300 --screen 200
--workers 1 --out docs/engine_bench`, on the default bundle (the `tiny` preset), with the eager
reference built from the bundle's checkpoint when it is here, else random weights of the same
architecture (the report says which).
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latency-requests", type=int, default=300)
    parser.add_argument("--screen", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--json", default="engine_bench.json", help="output (also .md and .png beside it)")
    args = parser.parse_args(argv)
    from radz_bench.cli import main as bench_main

    return bench_main(
        [
            "--device",
            "cpu",
            "--batch",
            args.batches,
            "--threads",
            str(args.threads),
            "--rounds",
            str(args.rounds),
            "--latency-requests",
            str(args.latency_requests),
            "--screen",
            str(args.screen),
            "--workers",
            str(args.workers),
            "--out",
            args.json,
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
