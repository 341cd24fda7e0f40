"""radz serve against real peers: Orthanc (the Debian package) and DCMTK (storescu, echoscu).

Every server here is a real process on loopback with its own ports and folders, stopped by pid.
"""

from __future__ import annotations

import io
import json
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

pytest.importorskip("pynetdicom")
pytest.importorskip("highdicom")

from serve_peers import DCMTK, ORTHANC, Orthanc, RadzServe, echoscu, free_port, phantom_dicoms, storescu, wait_for  # noqa: E402

needs_peers = pytest.mark.skipif(
    ORTHANC is None or not DCMTK, reason="needs Orthanc and DCMTK (apt install orthanc dcmtk)"
)
pytestmark = needs_peers


def _sr_references(orthanc: Orthanc) -> dict[str, list]:
    """{source SOP Instance UID: [SR datasets referencing it]} over every SR stored in Orthanc."""
    from pydicom import dcmread

    out: dict[str, list] = {}
    for instance in orthanc.instances("SR"):
        sr = dcmread(io.BytesIO(orthanc.file(instance)))
        ref = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
        out.setdefault(str(ref.ReferencedSOPInstanceUID), []).append(sr)
    return out


def _all_srs(orthanc: Orthanc, n: int) -> dict | None:
    refs = _sr_references(orthanc)
    return refs if len(refs) >= n else None


def _journal_counts(work_dir) -> dict:
    db = sqlite3.connect(f"file:{work_dir / 'journal.sqlite'}?mode=ro", uri=True, timeout=30)
    try:
        return dict(db.execute("SELECT state, COUNT(*) FROM instances GROUP BY state").fetchall())
    except sqlite3.OperationalError:  # not created yet
        return {}
    finally:
        db.close()


@pytest.fixture
def peers(tmp_path):
    started = []

    def start(kind, *args, **kwargs):
        peer = kind(*args, **kwargs)
        started.append(peer)
        return peer

    yield start
    for peer in reversed(started):
        peer.stop()


class _Webhook:
    """A real HTTP server on loopback collecting the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                outer.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/results"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_storescu_to_orthanc_to_radz_and_the_sr_back_in_orthanc(tmp_path, peers):
    """The full loop: storescu -> Orthanc -> (Lua route) -> radz -> SR -> Orthanc, via REST."""
    from pydicom import dcmread

    from radz_engine.runtime.engine import Engine

    files = phantom_dicoms(tmp_path / "in", 6, seed=41)
    radz_port = free_port()
    orthanc = peers(Orthanc, tmp_path / "orthanc", radz_port=radz_port, route_radiographs=True)
    hook = _Webhook()
    try:
        radz = peers(
            RadzServe,
            tmp_path / "radz",
            port=radz_port,
            forward=f"ORTHANC@127.0.0.1:{orthanc.dicom_port}",
            extra=["--allow", "ORTHANC", "--webhook", hook.url],
        )
        sent = storescu(orthanc.dicom_port, files, called="ORTHANC")
        assert sent.returncode == 0, sent.stderr
        refs = wait_for(lambda: _all_srs(orthanc, len(files)), 120, "one SR per radiograph in Orthanc")
        sources = {str(dcmread(f).SOPInstanceUID): f for f in files}
        assert set(refs) == set(sources) and all(len(v) == 1 for v in refs.values())
        with Engine(threads=1) as engine:
            expected = {uid: engine.classify([path])[0] for uid, path in sources.items()}
        for uid, (sr,) in refs.items():
            source = dcmread(sources[uid])
            assert sr.StudyInstanceUID == source.StudyInstanceUID and sr.SeriesInstanceUID != source.SeriesInstanceUID
            probabilities = {
                item.ConceptNameCodeSequence[0].CodeValue: float(
                    next(c for c in item.ContentSequence if c.ConceptNameCodeSequence[0].CodeValue == "probability")
                    .MeasuredValueSequence[0]
                    .NumericValue
                )
                for item in sr.ContentSequence
                if item.ValueType == "CONTAINER"
            }
            want = expected[uid].scores
            assert probabilities.keys() == want.keys()
            np.testing.assert_allclose([probabilities[k] for k in want], list(want.values()), atol=1e-5)
        # The research notice as the PACS shows it (issue 18), read back through Orthanc's REST API:
        # the series description and a text item of the content tree; the algorithm from the card.
        notice = "For research use only; not for diagnostic use; model trained on synthetic data"
        instance = orthanc.instances("SR")[0]
        series = orthanc.get(f"/instances/{instance}/series")
        assert series["MainDicomTags"]["SeriesDescription"].startswith("RESEARCH USE ONLY - NOT FOR DIAGNOSIS")
        tags = orthanc.get(f"/instances/{instance}/simplified-tags")
        texts = {
            item.get("ConceptNameCodeSequence", [{}])[0].get("CodeMeaning"): item.get("TextValue")
            for item in tags["ContentSequence"]
        }
        assert texts["Comment"] == notice and texts["Algorithm Name"] == "default"
        assert texts["Algorithm Version"].startswith("0.1.0 sha256:") and tags["ManufacturerModelName"] == "default"
        assert "--research-use" in radz.args
        wait_for(lambda: _journal_counts(radz.work_dir).get("delivered") == len(files), 30, "journal: delivered")
        health = radz.health()
        assert health["ok"] and health["journal"]["delivered"] == len(files)
        metrics = radz.metrics()
        assert f'radz_received_total{{outcome="accepted"}} {float(len(files))}' in metrics
        assert f"radz_delivered_total {float(len(files))}" in metrics
        lines = [json.loads(x) for x in (radz.work_dir / "results" / "results.jsonl").read_text().splitlines()]
        assert sorted(x["sop_instance_uid"] for x in lines) == sorted(sources)
        wait_for(lambda: len(hook.bodies) == len(files), 30, "webhook posts")
        assert sorted(b["sop_instance_uid"] for b in hook.bodies) == sorted(sources)
        # Hospitals' logs must not carry patient data: names and IDs never appear.
        log = radz.log_text()
        for f in files:
            ds = dcmread(f)
            assert str(ds.PatientName) not in log and str(ds.PatientID) not in log
            assert str(ds.SOPInstanceUID) not in log
        # The spool is cleaned once each SR is delivered.
        assert not list((radz.work_dir / "spool" / "incoming").glob("*.dcm"))
        assert not list((radz.work_dir / "spool" / "sr").glob("*.dcm"))
    finally:
        hook.stop()


def test_calling_ae_allow_list_rejects_unknown_callers(tmp_path, peers):
    radz = peers(RadzServe, tmp_path / "radz", extra=["--allow", "MODALITY1"])
    assert echoscu(radz.port, calling="MODALITY1").returncode == 0
    refused = echoscu(radz.port, calling="INTRUDER")
    assert refused.returncode != 0 and "reject" in (refused.stderr + refused.stdout).lower()
    files = phantom_dicoms(tmp_path / "in", 1, seed=2)
    assert storescu(radz.port, files, calling="INTRUDER").returncode != 0
    assert _journal_counts(radz.work_dir) == {}


def test_pacs_down_then_up_sr_delivered_after_retries(tmp_path, peers):
    files = phantom_dicoms(tmp_path / "in", 3, seed=5)
    orthanc_port = free_port()
    radz = peers(RadzServe, tmp_path / "radz", forward=f"ORTHANC@127.0.0.1:{orthanc_port}")
    assert storescu(radz.port, files).returncode == 0
    wait_for(lambda: _journal_counts(radz.work_dir).get("scored") == 3, 60, "3 instances scored")
    time.sleep(1.5)  # at least one failed delivery attempt
    health = radz.health()
    assert health["journal"]["scored"] == 3 and "cannot associate" in (health["last_delivery_error"] or "")
    orthanc = peers(Orthanc, tmp_path / "orthanc", dicom_port=orthanc_port)
    wait_for(lambda: _journal_counts(radz.work_dir).get("delivered") == 3, 90, "delivery once the PACS is up")
    refs = _sr_references(orthanc)
    assert len(refs) == 3 and all(len(v) == 1 for v in refs.values())
    assert "radz_delivery_errors_total" in radz.metrics()


@pytest.mark.slow
def test_sigkill_midway_through_500_instances_loses_nothing(tmp_path, peers):
    """SIGKILL radz while 500 instances stream in; restart it; the sender re-sends what it is
    unsure of (here: everything, as a cautious modality would); Orthanc ends up with exactly
    one SR per instance."""
    import subprocess

    from pydicom import dcmread

    files = phantom_dicoms(tmp_path / "in", 500, seed=77, size=64)
    orthanc = peers(Orthanc, tmp_path / "orthanc")
    forward = f"ORTHANC@127.0.0.1:{orthanc.dicom_port}"
    radz = RadzServe(tmp_path / "radz", forward=forward)
    sender = subprocess.Popen(
        ["storescu", "-aec", "RADZ", "127.0.0.1", str(radz.port), *map(str, files)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: sum(_journal_counts(radz.work_dir).values()) >= 150, 120, "150 instances journaled", interval=0.01
        )
        radz.kill()
        before = _journal_counts(radz.work_dir)
        sender.wait(60)
    finally:
        if sender.poll() is None:
            sender.kill()
    assert sum(before.values()) < 500, f"the kill came too late to test anything: {before}"
    radz = peers(RadzServe, tmp_path / "radz", port=radz.port, forward=forward)  # same work dir and port
    resent = storescu(radz.port, files)
    assert resent.returncode == 0, resent.stderr[-2000:]
    wait_for(lambda: _journal_counts(radz.work_dir).get("delivered") == 500, 240, "all 500 delivered")
    refs = _sr_references(orthanc)
    sources = {str(dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files}
    assert set(refs) == sources
    assert all(len(srs) == 1 for srs in refs.values())
    assert len(orthanc.instances("SR")) == 500
    assert "resuming after a restart" in radz.log_text() or before.get("received", 0) == 0


def _refused(assoc) -> bool:
    """True when the association was not established; closes the TLS socket pynetdicom leaves
    open after a failed handshake (it would otherwise surface as an unraisable ResourceWarning)."""
    sock = getattr(getattr(assoc.dul, "socket", None), "socket", None)
    if sock is not None:
        sock.close()
    return not assoc.is_established


def test_tls_with_a_self_signed_certificate(tmp_path, peers):
    import shutil
    import ssl
    import subprocess

    from pydicom import dcmread
    from pynetdicom import AE

    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=radz-test",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    radz = peers(RadzServe, tmp_path / "radz", extra=["--tls-cert", str(cert), "--tls-key", str(key)])
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert))
    files = phantom_dicoms(tmp_path / "in", 2, seed=13)
    ae = AE(ae_title="TLSSCU")
    ae.add_requested_context("1.2.840.10008.1.1")
    for f in files:
        ae.add_requested_context(dcmread(f, stop_before_pixels=True).SOPClassUID)
    assoc = ae.associate("127.0.0.1", radz.port, ae_title="RADZ", tls_args=(client, "127.0.0.1"))
    assert assoc.is_established
    assert int(assoc.send_c_echo().Status) == 0
    assert all(int(assoc.send_c_store(dcmread(f)).Status) == 0 for f in files)
    assoc.release()
    wait_for(lambda: _journal_counts(radz.work_dir).get("scored") == 2, 60, "2 instances scored")
    assert echoscu(radz.port).returncode != 0  # plain DICOM is not spoken on a TLS port
    untrusting = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)  # does not know the certificate
    assert _refused(ae.associate("127.0.0.1", radz.port, ae_title="RADZ", tls_args=(untrusting, "127.0.0.1")))
    # --tls-ca: callers must present a certificate that CA signed (here the same self-signed one).
    mutual = peers(
        RadzServe, tmp_path / "radz-mtls", extra=["--tls-cert", str(cert), "--tls-key", str(key), "--tls-ca", str(cert)]
    )
    assert _refused(ae.associate("127.0.0.1", mutual.port, ae_title="RADZ", tls_args=(client, "127.0.0.1")))
    with_cert = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert))
    with_cert.load_cert_chain(str(cert), str(key))
    assoc = ae.associate("127.0.0.1", mutual.port, ae_title="RADZ", tls_args=(with_cert, "127.0.0.1"))
    assert assoc.is_established and int(assoc.send_c_echo().Status) == 0
    assoc.release()
