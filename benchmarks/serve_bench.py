"""radz serve latency and throughput against a real Orthanc, on this machine.

    python benchmarks/serve_bench.py --json docs/serve_bench.json

Starts Orthanc and `radz serve --forward ORTHANC@...` (both on loopback, their own ports and
folders), sends phantom radiographs to radz by C-STORE (pynetdicom), and reads the journal:
  received_at  = radz has the instance (spooled + journaled, before the C-STORE response)
  delivered_at = Orthanc answered the SR's C-STORE with success (the SR is stored in Orthanc)
1. low load: one image at a time, the next sent once the previous SR is in Orthanc;
   received -> SR stored in Orthanc, p50 / p99;
2. throughput: 8 concurrent associations sending as fast as they can; images/s from the first
   instance received to the last SR stored, and the same latency under that load.
"""

from __future__ import annotations

import argparse
import json
import platform
import sqlite3
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the real-peer helpers the tests use


def journal_rows(work_dir: Path) -> dict:
    db = sqlite3.connect(f"file:{work_dir / 'journal.sqlite'}?mode=ro", uri=True, timeout=30)
    try:
        return {
            uid: (state, received, delivered)
            for uid, state, received, delivered in db.execute(
                "SELECT sop_uid, state, received_at, delivered_at FROM instances"
            )
        }
    finally:
        db.close()


def association(port: int, sop_classes):
    from pynetdicom import AE

    ae = AE(ae_title="BENCHSCU")
    for sop_class in sop_classes:
        ae.add_requested_context(sop_class)
    assoc = ae.associate("127.0.0.1", port, ae_title="RADZ")
    if not assoc.is_established:
        raise RuntimeError("radz refused the association")
    return assoc


def percentiles(seconds) -> dict:
    """n, p50/p90/p99 and max in ms (radz_bench's summary, rounded)."""
    from radz_bench.stats import summarize

    stats = summarize(seconds)
    return {
        "n": stats["n"],
        "p50_ms": round(stats["median_ms"], 1),
        **{k: round(stats[k], 1) for k in ("p90_ms", "p99_ms", "max_ms")},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/radz_serve_bench"))
    parser.add_argument("--size", type=int, default=512, help="phantom side in pixels (default 512)")
    parser.add_argument("--single", type=int, default=60, help="images for the low-load latency")
    parser.add_argument("--associations", type=int, default=8)
    parser.add_argument("--per-association", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2, help="model intra-op threads in radz serve")
    parser.add_argument("--device", default="cpu", help="radz serve --device (cpu, cuda, cuda:N, cuda:0,cuda:1)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    import shutil

    from pydicom import dcmread

    from serve_peers import Orthanc, RadzServe, free_port, phantom_dicoms, wait_for

    shutil.rmtree(args.work, ignore_errors=True)
    total = args.single + args.associations * args.per_association
    print(f"making {total} phantom DICOMs at {args.size} px ...", file=sys.stderr)
    files = phantom_dicoms(args.work / "in", total, seed=2024, size=args.size)
    datasets = [dcmread(f) for f in files]
    sop_classes = sorted({str(ds.SOPClassUID) for ds in datasets})
    orthanc = Orthanc(args.work / "orthanc")
    radz = RadzServe(
        args.work / "radz",
        port=free_port(),
        forward=f"ORTHANC@127.0.0.1:{orthanc.dicom_port}",
        extra=["--threads", str(args.threads)] + (["--device", args.device] if args.device != "cpu" else []),
    )
    report = {
        "machine": f"{platform.node()} ({platform.processor() or platform.machine()}), "
        f"{__import__('os').cpu_count()} cores",
        "size_px": args.size,
        "model_threads": args.threads,
        "device": args.device,
    }
    try:
        # 1. low load
        single, acks = datasets[: args.single], []
        assoc = association(radz.port, sop_classes)
        for ds in single:
            start = time.perf_counter()
            status = assoc.send_c_store(ds)
            acks.append(time.perf_counter() - start)
            assert int(status.Status) == 0, hex(int(status.Status))
            uid = str(ds.SOPInstanceUID)
            wait_for(
                lambda u=uid: journal_rows(radz.work_dir).get(u, ("",))[0] == "delivered",
                60,
                "the SR in Orthanc",
                interval=0.002,
            )
        assoc.release()
        rows = journal_rows(radz.work_dir)
        lat = [rows[str(ds.SOPInstanceUID)][2] - rows[str(ds.SOPInstanceUID)][1] for ds in single]
        report["low_load"] = {"received_to_sr_stored": percentiles(lat), "c_store_ack": percentiles(acks)}
        print("low load:", report["low_load"], file=sys.stderr)

        # 2. throughput with concurrent associations
        rest = datasets[args.single :]
        chunks = [rest[i :: args.associations] for i in range(args.associations)]
        errors: list = []

        def sender(chunk):
            try:
                a = association(radz.port, sop_classes)
                for ds in chunk:
                    if int(a.send_c_store(ds).Status) != 0:
                        errors.append(str(ds.SOPInstanceUID))
                a.release()
            except Exception as error:  # noqa: BLE001 - reported below
                errors.append(repr(error))

        threads = [threading.Thread(target=sender, args=(c,)) for c in chunks]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        uids = [str(ds.SOPInstanceUID) for ds in rest]
        wait_for(
            lambda: all(journal_rows(radz.work_dir).get(u, ("",))[0] == "delivered" for u in uids),
            900,
            "every SR in Orthanc",
            interval=0.2,
        )
        rows = journal_rows(radz.work_dir)
        received = [rows[u][1] for u in uids]
        delivered = [rows[u][2] for u in uids]
        span = max(delivered) - min(received)
        report["concurrent"] = {
            "associations": args.associations,
            "images": len(uids),
            "errors": errors[:5],
            "images_per_s": round(len(uids) / span, 1),
            "seconds": round(span, 2),
            "received_to_sr_stored": percentiles(np.array(delivered) - np.array(received)),
        }
        print("concurrent:", report["concurrent"], file=sys.stderr)
        assert len(orthanc.instances("SR")) == len(files)
    finally:
        radz.stop()
        orthanc.stop()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
