"""Per-instance costs behind radz serve's throughput, each measured alone (docs/SERVE.md).

    python benchmarks/serve_costs.py [--n 20] [--size 512]

On n phantom radiographs: building the Comprehensive SR with highdicom, encoding it, the atomic
spool write, and a C-STORE into a real Orthanc (started here on loopback, its own folder) over
one kept association: milliseconds per instance, medians.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the real-peer helpers the tests use


def per_call_ms(fn, items) -> float:
    times = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args(argv)

    from pydicom import dcmread
    from pynetdicom import AE

    from radz_engine.runtime.engine import Engine
    from radz_engine.serve.spool import write_atomic
    from radz_engine.serve.sr import build_sr
    from serve_peers import Orthanc, phantom_dicoms

    work = Path(tempfile.mkdtemp(prefix="radz_serve_costs_"))
    datasets = [dcmread(p) for p in phantom_dicoms(work / "in", args.n, seed=5, size=args.size)]
    with Engine(threads=2) as engine:
        results = engine.classify(datasets)
        thresholds = {k: (None if v == float("inf") else v) for k, v in engine.scorer.thresholds().items()}
    build_sr(datasets[0], results[0], "radz", "v", thresholds)  # imports and first-call costs
    pairs = list(zip(datasets, results))
    srs = []
    build = per_call_ms(lambda p: srs.append(build_sr(p[0], p[1], "radz", "v", thresholds)), pairs)
    encoded = []

    def encode(sr):
        buffer = io.BytesIO()
        sr.save_as(buffer, enforce_file_format=True)
        encoded.append(buffer.getvalue())

    encode_ms = per_call_ms(encode, srs)
    spool_ms = per_call_ms(lambda i: write_atomic(work / f"sr{i}.dcm", encoded[i]), range(len(encoded)))
    orthanc = Orthanc(work / "orthanc")
    try:
        ae = AE(ae_title="COSTS")
        ae.add_requested_context("1.2.840.10008.5.1.4.1.1.88.33")
        assoc = ae.associate("127.0.0.1", orthanc.dicom_port, ae_title="ORTHANC")
        store_ms = per_call_ms(lambda sr: assoc.send_c_store(sr), srs)
        assoc.release()
    finally:
        orthanc.stop()
    print(f"{args.n} instances, {args.size} px, medians per instance:")
    print(f"  build SR (highdicom)       {build:7.1f} ms")
    print(f"  encode SR (pydicom)        {encode_ms:7.1f} ms")
    print(f"  spool write (fsync)        {spool_ms:7.1f} ms")
    print(f"  C-STORE into Orthanc       {store_ms:7.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
