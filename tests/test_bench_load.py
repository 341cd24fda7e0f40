"""radz bench load: open-loop Poisson arrivals, measurement windows, targets.

No timed assertions: only that arrivals do not wait for completions (open loop), windows and
stability work, and the engine and DICOM targets complete requests.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from radz_bench.load import DicomTarget, LoadOptions, Target, parse_target, run_load, run_rate


class InstantTarget(Target):
    name = "instant"

    def __init__(self):
        self.sent = 0

    def send(self, index, on_done):
        self.sent += 1
        on_done(True, None)


class SlowTarget(Target):
    """Completes each request 0.3 s after it was sent, one at a time (a closed loop with one
    client would send about 3 requests per second to it)."""

    name = "slow"

    def __init__(self):
        self.sent = 0
        self.lock = threading.Lock()

    def send(self, index, on_done):
        self.sent += 1

        def later():
            with self.lock:
                time.sleep(0.3)
            on_done(True, None)

        threading.Thread(target=later, daemon=True).start()


def test_arrivals_do_not_wait_for_completions():
    target = SlowTarget()
    opts = LoadOptions(window_s=1.0, min_requests=1, max_windows=1, stable_windows=3, timeout_s=0.2)
    row = run_rate(target, 60.0, opts)
    assert target.sent > 15  # ~60 sent in the 1 s window; a closed loop would manage ~3
    assert row["windows"] == 1 and not row["stable"]
    assert row["timed_out"] > 0  # the backlog behind a 0.3 s server outlives the window


def test_instant_target_becomes_stable_and_sweep_stops_at_the_bound():
    opts = LoadOptions(
        rates=[200.0, 400.0], window_s=0.3, min_requests=20, stable_windows=3, tolerance=5.0, max_windows=6
    )
    report = run_load(InstantTarget(), opts)
    assert [r["rate"] for r in report["rates"]] == [200.0, 400.0]
    for row in report["rates"]:
        assert row["stable"] and row["windows"] == 3 and row["errors"] == 0
        assert row["requests"] > 0 and row["p99_ms"] is not None and row["p50_ms"] <= row["p99_ms"]
    bounded = run_load(
        InstantTarget(),
        LoadOptions(rates=[100.0, 200.0], p99_bound_ms=-1.0, window_s=0.3, tolerance=5.0, max_windows=3),
    )
    assert len(bounded["rates"]) == 1 and "bound" in bounded["stopped"]


def test_engine_target_cli(tmp_path, capsys):
    from radz_bench.cli import main

    out = tmp_path / "load"
    rc = main(
        [
            "load",
            "--rates",
            "20,40",
            "--window-s",
            "0.5",
            "--min-requests",
            "5",
            "--max-windows",
            "3",
            "--tolerance",
            "5",
            "--p99-bound-ms",
            "10000",
            "--threads",
            "1",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["target"].startswith("engine (onnxruntime-cpu")
    assert [r["rate"] for r in report["rates"]] == [20.0, 40.0]
    assert all(r["requests"] > 0 and r["errors"] == 0 for r in report["rates"])
    assert "| offered req/s |" in capsys.readouterr().out
    assert out.with_suffix(".png").exists()


def test_parse_target():
    assert parse_target("dicom://RADZ@127.0.0.1:11112") == ("RADZ", "127.0.0.1", 11112)
    with pytest.raises(ValueError, match="dicom://AE_TITLE@host:port"):
        parse_target("dicom://127.0.0.1:104")


@pytest.fixture()
def orthanc(tmp_path):
    """A real Orthanc on 127.0.0.1 (tests/serve_peers.py: own config, ports, storage; stopped by pid)."""
    from serve_peers import ORTHANC, Orthanc

    if ORTHANC is None:
        pytest.skip("Orthanc is not installed (apt install orthanc)")
    peer = Orthanc(tmp_path / "orthanc")
    try:
        yield peer
    finally:
        peer.stop()


def test_dicom_target_against_orthanc(orthanc):
    from radz_bench.cli import _phantom_datasets

    target = DicomTarget(f"dicom://ORTHANC@127.0.0.1:{orthanc.dicom_port}", _phantom_datasets(2, 128), workers=2)
    opts = LoadOptions(
        rates=[10.0], window_s=0.5, min_requests=3, max_windows=3, tolerance=5.0, p99_bound_ms=60000.0, timeout_s=20.0
    )
    report = run_load(target, opts)
    row = report["rates"][0]
    assert row["requests"] > 0 and row["errors"] == 0, row
    # Orthanc keeps every C-STOREd instance (fresh UIDs), seen through its REST API.
    assert len(orthanc.get("/instances")) >= row["requests"]


def test_dicom_target_until_the_sr_is_stored_through_radz_serve(tmp_path, orthanc):
    """Load against a real `radz serve` forwarding to a real Orthanc, each request done when
    radz's journal says its SR is stored: every request's SR ends up in Orthanc."""
    from radz_bench.cli import _phantom_datasets
    from serve_peers import RadzServe

    radz = RadzServe(tmp_path / "radz", forward=f"ORTHANC@127.0.0.1:{orthanc.dicom_port}")
    try:
        target = DicomTarget(
            f"dicom://RADZ@127.0.0.1:{radz.port}",
            _phantom_datasets(2, 128),
            workers=2,
            until_journal=radz.work_dir / "journal.sqlite",
        )
        opts = LoadOptions(
            rates=[4.0],
            window_s=1.0,
            min_requests=3,
            max_windows=2,
            tolerance=5.0,
            p99_bound_ms=60000.0,
            timeout_s=60.0,
        )
        report = run_load(target, opts)
        row = report["rates"][0]
        assert row["requests"] > 0 and row["errors"] == 0, row
        assert "until the SR is stored" in report["target"]
        srs = orthanc.post("/tools/find", {"Level": "Instance", "Query": {"Modality": "SR"}})
        assert len(srs) >= row["requests"]
    finally:
        radz.stop()
