"""radz serve building blocks: journal, config, checks, the SR (read back with pydicom and DCMTK)."""

from __future__ import annotations

import shutil
import subprocess
import time

import numpy as np
import pytest

pytest.importorskip("pynetdicom")
pytest.importorskip("highdicom")

from radz_engine.serve.config import ConfigError, ServeConfig, parse_peer  # noqa: E402
from radz_engine.serve.journal import Journal  # noqa: E402
from serve_peers import phantom_dicoms  # noqa: E402


# -- journal ------------------------------------------------------------------------------------
def test_journal_walks_the_states_and_is_idempotent(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    assert journal.record_received("1.2.3", "9.9", "1.2.840.10008.5.1.4.1.1.1", "/spool/a.dcm", "SCU") == "received"
    assert journal.record_received("1.2.3", "9.9", "1.2.840.10008.5.1.4.1.1.1", "/spool/a.dcm", "SCU") == "received"
    assert [e.sop_uid for e in journal.pending_scoring()] == ["1.2.3"]
    journal.mark_scored("1.2.3", "/spool/sr.dcm")
    # Received again after scoring: stays scored, is not queued for scoring again.
    assert journal.record_received("1.2.3", "9.9", "1.2.840.10008.5.1.4.1.1.1", "/spool/a.dcm", "SCU") == "scored"
    assert journal.pending_scoring() == []
    assert [e.sop_uid for e in journal.pending_delivery()] == ["1.2.3"]
    assert journal.delivery_failed("1.2.3", "PACS down", retry_in_s=60) == 1
    assert journal.pending_delivery() == []  # not due for a minute
    assert journal.get("1.2.3").error == "PACS down" and journal.next_delivery_due() > 0
    journal.mark_delivered("1.2.3")
    journal.record_received("4.5.6", None, "x", None, "SCU", state="rejected", error="no pixel data")
    journal.close()
    # Everything survives closing (a restart).
    again = Journal(tmp_path / "j.sqlite")
    assert again.counts() == {"received": 0, "scored": 0, "delivered": 1, "failed": 0, "rejected": 1, "ignored": 0}
    assert again.get("4.5.6").error == "no pixel data"
    # A rejected instance sent again (fixed) is taken.
    assert again.record_received("4.5.6", None, "x", "/spool/b.dcm", "SCU") == "received"
    with pytest.raises(ValueError, match="state"):
        again.record_received("7", None, "x", None, state="delivered")


def test_journal_copies_refusals_never_change_an_acknowledged_instance(tmp_path):
    """Issue 13 items 1-2: a refused or ignored copy leaves an acknowledged row as it is; an
    acknowledged copy replaces a waiting one, and an older copy's outcome is not recorded."""
    journal = Journal(tmp_path / "j.sqlite")
    first = journal.receive("1", "s", "c", "/a-1.dcm", "A")
    assert (first.state, first.taken, first.copy) == ("received", True, 1)
    for state in ("rejected", "ignored"):
        later = journal.receive("1", None, "c", None, "A", state=state, error="modality CT")
        assert (later.state, later.taken) == ("received", False)
    assert journal.get("1").state == "received" and journal.get("1").error is None
    second = journal.receive("1", "s", "c", "/a-2.dcm", "A")  # a corrected resend
    assert (second.state, second.taken, second.copy, second.replaced_path) == ("received", True, 2, "/a-1.dcm")
    assert not journal.mark_failed("1", "cannot decode", copy=1)  # the first copy's outcome: dropped
    assert not journal.mark_scored("1", "/sr", copy=1)
    assert journal.get("1").state == "received" and journal.get("1").dataset_path == "/a-2.dcm"
    assert journal.mark_scored("1", "/sr", copy=2) and journal.get("1").state == "scored"
    assert journal.receive("1", None, "c", None, "A", state="rejected", error="x").state == "scored"
    journal.mark_failed("2", "x")  # no row: nothing
    journal.receive("2", None, "c", "/b.dcm", "A")
    journal.mark_failed("2", "cannot decode")
    assert journal.receive("2", None, "c", None, "A", state="rejected", error="x").state == "failed"
    assert journal.receive("3", None, "c", None, "A", state="rejected", error="x").taken
    assert journal.receive("3", None, "c", None, "A", state="rejected", error="y").taken  # refused again
    assert journal.get("3").error == "y"
    journal.close()


def test_journal_written_before_copies_were_numbered_still_opens(tmp_path):
    import sqlite3

    db = sqlite3.connect(tmp_path / "j.sqlite")
    db.executescript(
        "CREATE TABLE instances (sop_uid TEXT PRIMARY KEY, study_uid TEXT, sop_class TEXT, state TEXT NOT NULL,"
        " dataset_path TEXT, sr_path TEXT, error TEXT, attempts INTEGER NOT NULL DEFAULT 0, next_attempt REAL NOT NULL"
        " DEFAULT 0, received_at REAL NOT NULL, scored_at REAL, delivered_at REAL, calling_ae TEXT);"
        "INSERT INTO instances (sop_uid, state, dataset_path, received_at) VALUES ('1', 'received', '/a.dcm', 1.0);"
    )
    db.commit()
    db.close()
    journal = Journal(tmp_path / "j.sqlite")
    assert journal.get("1").copy == 0 and journal.mark_scored("1", "/sr", copy=0)
    journal.close()


def test_journal_mark_failed_only_from_received(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    journal.record_received("1", None, "c", "/p", "A")
    journal.mark_failed("1", "cannot decode")
    assert journal.get("1").state == "failed" and journal.get("1").error == "cannot decode"
    journal.mark_scored("1", "/sr")  # no effect: failed is final until the instance is sent again
    assert journal.get("1").state == "failed"


# -- config -------------------------------------------------------------------------------------
def test_config_names_the_bad_option(tmp_path):
    assert str(parse_peer("ORTHANC@127.0.0.1:4242")) == "ORTHANC@127.0.0.1:4242"
    for text in ("ORTHANC@host", "@h:1", "ORTHANC@h:99999"):
        with pytest.raises(ConfigError, match="--forward"):
            parse_peer(text)
    with pytest.raises(ConfigError, match="--ae-title"):
        ServeConfig(tmp_path, ae_title="A" * 17)
    with pytest.raises(ConfigError, match="allow-list"):
        ServeConfig(tmp_path, bind="0.0.0.0")
    assert ServeConfig(tmp_path, bind="0.0.0.0", allowed_callers=("PACS",)).allowed_callers == ("PACS",)
    with pytest.raises(ConfigError, match="--tls-cert and --tls-key"):
        ServeConfig(tmp_path, tls_cert=tmp_path / "c.pem")
    with pytest.raises(ConfigError, match="--webhook"):
        ServeConfig(tmp_path, webhook="ftp://x")
    config = ServeConfig(tmp_path, retry_base_s=1, retry_max_s=10)
    assert [config.retry_delay(a) for a in (1, 2, 3, 4, 5, 6)] == [1, 2, 4, 8, 10, 10]


def test_serve_cli_reports_bad_options_without_a_traceback(tmp_path, capsys):
    from radz_engine.cli import main

    assert main(["serve", "--work-dir", str(tmp_path), "--forward", "nonsense"]) == 2
    assert "--forward" in capsys.readouterr().err


# -- checks -------------------------------------------------------------------------------------
def test_checks_reject_with_a_reason(tmp_path):
    from pydicom import dcmread

    from radz_engine.serve.checks import Rejection, check_dataset

    path = phantom_dicoms(tmp_path / "d", 1, seed=3)[0]
    config = ServeConfig(tmp_path, max_rows=64)
    ds = dcmread(path)
    with pytest.raises(Rejection, match="exceeds the limit of 64"):
        check_dataset(ds, 1000, config)
    config = ServeConfig(tmp_path, max_dataset_mb=0.001)
    with pytest.raises(Rejection, match="MiB exceeds"):
        check_dataset(ds, 10_000, config)
    config = ServeConfig(tmp_path)
    check_dataset(ds, 10_000, config)  # fine as it is
    ds.Modality = "CT"
    with pytest.raises(Rejection, match="modality CT"):
        check_dataset(ds, 10_000, config)
    ds.Modality = "CR"
    del ds.PixelData
    with pytest.raises(Rejection, match="no pixel data"):
        check_dataset(ds, 10_000, config)
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"  # CT Image Storage
    with pytest.raises(Rejection, match="is not scored"):
        check_dataset(ds, 10_000, config)


# -- the SR -------------------------------------------------------------------------------------
def test_sr_answers_the_source_instance(tmp_path):
    from pydicom import dcmread

    from radz_engine.runtime.engine import Engine
    from radz_engine.serve.sr import FINDING_SCHEME, build_sr, sr_uids

    path = phantom_dicoms(tmp_path / "d", 1, seed=8)[0]
    source = dcmread(path)
    with Engine(threads=1) as engine:
        result = engine.classify([path])[0]
        thresholds = {n: (None if t == float("inf") else t) for n, t in engine.scorer.thresholds().items()}
    sr = build_sr(source, result, "radz-default", "v1", thresholds)
    out = tmp_path / "sr.dcm"
    sr.save_as(out, enforce_file_format=True)
    back = dcmread(out)
    assert back.Modality == "SR" and back.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.33"
    assert back.StudyInstanceUID == source.StudyInstanceUID
    assert back.SeriesInstanceUID != source.SeriesInstanceUID
    assert back.PatientID == source.PatientID  # the PACS files it with the patient
    evidence = back.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert evidence.ReferencedSOPInstanceUID == source.SOPInstanceUID
    # Deterministic: the same instance and model give the same SR UID; another model another.
    assert back.SOPInstanceUID == sr_uids(source.SOPInstanceUID, source.SeriesInstanceUID, "radz-default/v1")["sop"]
    assert build_sr(source, result, "radz-default", "v2", thresholds).SOPInstanceUID != back.SOPInstanceUID
    # Every class: its probability, threshold and call.
    findings = {}
    for item in back.ContentSequence:
        if item.ValueType == "CONTAINER" and item.ConceptNameCodeSequence[0].CodingSchemeDesignator == FINDING_SCHEME:
            values = {c.ConceptNameCodeSequence[0].CodeValue: c for c in item.ContentSequence}
            findings[item.ConceptNameCodeSequence[0].CodeValue] = (
                float(values["probability"].MeasuredValueSequence[0].NumericValue),
                values["call"].ConceptCodeSequence[0].CodeMeaning,
            )
        if item.ValueType == "IMAGE":
            assert item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert set(findings) == set(result.scores)
    for name, (probability, call) in findings.items():
        assert probability == pytest.approx(result.scores[name], abs=1e-9)
        assert call == ("Yes" if name in result.positives else "No")
    if shutil.which("dsrdump"):  # DCMTK reads it as a valid SR document
        dump = subprocess.run(["dsrdump", str(out)], capture_output=True, text=True, timeout=60)
        assert dump.returncode == 0, dump.stderr
        assert "Comprehensive SR Document" in dump.stdout and "Diagnostic Imaging Report" in dump.stdout
        assert not dump.stderr.strip(), dump.stderr


def _sr_text_items(sr) -> dict:
    return {
        item.ConceptNameCodeSequence[0].CodeMeaning: item.TextValue
        for item in sr.ContentSequence
        if item.ValueType == "TEXT"
    }


def test_sr_carries_the_model_card_and_passes_dciodvfy(tmp_path):
    """Issue 18: a research model's SR, as the server writes it, says so (a text item, the series
    description) and names the algorithm and device from the model card; dciodvfy (dicom3tools)
    finds no error in it."""
    from pydicom import dcmread

    from radz_engine.bundle.loader import load_bundle
    from radz_engine.serve.sr import build_sr

    source = dcmread(phantom_dicoms(tmp_path / "d", 1, seed=9)[0])
    card = load_bundle(check_onnx=False).card()
    text = "For research use only; not for diagnostic use; model trained on synthetic data"
    server = _server(tmp_path)  # --research-use given; no --forward: the SR stays in the spool
    try:
        assert server.notice == text and _send(server.port, [source]) == [0]
        assert server.wait_idle(60)
        (sr_file,) = (tmp_path / "work" / "spool" / "sr").glob("*.dcm")
        out = tmp_path / "sr.dcm"
        shutil.copy(sr_file, out)
    finally:
        server.stop()
    back = dcmread(out)
    texts = _sr_text_items(back)
    assert texts["Comment"] == text
    assert texts["Algorithm Name"] == card["name"] == "default"
    assert texts["Algorithm Version"] == f"0.1.0 sha256:{card['hash']}"
    assert texts["Device Observer Manufacturer"] == back.Manufacturer == "radz_engine project"
    assert texts["Device Observer Model Name"] == back.ManufacturerModelName == "default"
    assert back.SeriesDescription == "RESEARCH USE ONLY - NOT FOR DIAGNOSIS: radz findings (default)"
    assert back.SoftwareVersions == f"0.1.0 sha256:{card['hash']}"
    assert back.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == "99RADZ"
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy not installed (apt install dicom3tools; .ci/run installs it)")
    check = subprocess.run(["dciodvfy", str(out)], capture_output=True, text=True, timeout=60)
    lines = (check.stdout + check.stderr).splitlines()
    errors = [line for line in lines if line.startswith("Error")]
    assert not errors, errors
    # Only warnings about the private finding codes (a scheme dciodvfy cannot know): nothing else.
    assert all("99RADZ" in line for line in lines if line.startswith("Warning")), lines
    # A clinical-evaluation card: its own notice; a clinical one: none, and a plain description.
    from radz_engine.runtime.results import Result

    result = Result(source="x", scores={"edema": 0.5}, positives=["edema"])
    other = build_sr(
        source,
        result,
        "m",
        "1",
        {},
        notice="For clinical evaluation only; not for diagnostic use",
        intended_use="clinical-evaluation",
    )
    assert other.SeriesDescription.startswith("CLINICAL EVALUATION ONLY - NOT FOR DIAGNOSIS")
    plain = build_sr(source, result, "m", "1", {})
    assert "Comment" not in _sr_text_items(plain) and plain.SeriesDescription == "radz findings (m)"


def test_serve_refuses_a_research_bundle_without_research_use(tmp_path, capsys):
    from radz_engine.cli.serve import main
    from radz_engine.serve.server import RadzServer

    with pytest.raises(
        ConfigError,
        match=r"--research-use: the bundle's model card \(default 0\.1\.0, hash \w{12}\) "
        r"says intended use 'research'",
    ):
        RadzServer(ServeConfig(tmp_path / "work", port=0, http_port=None))
    assert not (tmp_path / "work").exists()  # refused before anything was created or loaded
    assert main(["--work-dir", str(tmp_path / "cli"), "--port", "0", "--http-port", "-1"]) == 2
    err = capsys.readouterr().err
    assert "radz serve: --research-use:" in err and "For research use only" in err and "Traceback" not in err


def test_spool_writes_atomically_and_hides_uids(tmp_path):
    from radz_engine.serve.spool import Spool, uid_hash

    spool = Spool(tmp_path)
    path = spool.write_incoming("1.2.840.99.1", b"abc")
    assert path.read_bytes() == b"abc" and "1.2.840" not in path.name and uid_hash("1.2.840.99.1") in path.name
    spool.write_incoming("1.2.840.99.1", b"new")
    assert path.read_bytes() == b"new"
    assert [p.name for p in (tmp_path / "incoming").iterdir()] == [path.name]  # no temporary files left
    assert np.unique([uid_hash(str(i)) for i in range(1000)]).size == 1000


# -- the server in this process (real pynetdicom associations on loopback) ----------------------
def _send(port: int, datasets) -> list[int]:
    from pynetdicom import AE

    ae = AE(ae_title="TESTSCU")
    for sop_class in {str(ds.SOPClassUID) for ds in datasets}:
        ae.add_requested_context(sop_class)
    assoc = ae.associate("127.0.0.1", port, ae_title="RADZ")
    assert assoc.is_established
    statuses = [int(assoc.send_c_store(ds).Status) for ds in datasets]
    assoc.release()
    return statuses


def _server(tmp_path, **engine_options):
    from radz_engine.runtime.engine import Engine
    from radz_engine.serve.server import RadzServer

    config = ServeConfig(tmp_path / "work", port=0, http_port=None, max_in_flight=4, research_use=True)
    return RadzServer(config, engine=Engine(threads=1, **engine_options)).start()


def test_a_full_engine_queue_delays_scoring_but_fails_nothing(tmp_path):
    from pydicom import dcmread

    datasets = [dcmread(p) for p in phantom_dicoms(tmp_path / "d", 10, seed=31)]
    server = _server(tmp_path, max_queue=1, backpressure="reject")  # QueueFull at once when busy
    real_run = server.engine.backend.run

    def slow_run(x):  # the real model, made slow so that the engine's queue fills up (even on a loaded machine)
        time.sleep(0.3)
        return real_run(x)

    server.engine.backend.run = slow_run
    try:
        assert _send(server.port, datasets) == [0] * 10
        assert server.wait_idle(120)
        counts = server.journal.counts()
        assert counts["scored"] == 10 and counts["failed"] == 0, counts
        assert server.engine.stats()["batcher_metrics"]["rejected"] > 0  # the queue did fill up
        # Every received image is removed from the spool once its SR exists (patient data).
        assert not list(server.spool.incoming.glob("*.dcm"))
        # Sent again after scoring: acknowledged, not scored again, nothing spooled.
        assert _send(server.port, datasets[:3]) == [0] * 3
        assert server.journal.counts()["scored"] == 10
        assert not list(server.spool.incoming.glob("*.dcm"))
        lines = (server.config.results_dir / "results.jsonl").read_text().splitlines()
        assert len(lines) == 10
    finally:
        server.stop()


def test_stopping_leaves_unfinished_instances_received_for_the_restart(tmp_path):
    from pydicom import dcmread

    datasets = [dcmread(p) for p in phantom_dicoms(tmp_path / "d", 24, seed=32)]
    server = _server(tmp_path)
    assert _send(server.port, datasets) == [0] * 24
    server.stop()  # at once: some are scored, the rest must not be marked failed
    journal = Journal(tmp_path / "work" / "journal.sqlite")
    counts = journal.counts()
    assert counts["failed"] == 0 and counts["received"] + counts["scored"] == 24, counts
    journal.close()
    again = _server(tmp_path)  # the restart scores the rest
    try:
        assert again.wait_idle(120)
        assert again.journal.counts()["scored"] == 24
    finally:
        again.stop()


def test_start_removes_spool_files_no_row_needs(tmp_path):
    from pydicom import dcmread

    datasets = [dcmread(p) for p in phantom_dicoms(tmp_path / "d", 2, seed=33)]
    server = _server(tmp_path)
    try:
        assert _send(server.port, datasets) == [0, 0]
        assert server.wait_idle(60)
    finally:
        server.stop()
    # Leftovers of a crash between a state change and a file's removal (patient data).
    uid = str(datasets[0].SOPInstanceUID)
    from radz_engine.serve.spool import Spool

    spool = Spool(tmp_path / "work" / "spool")
    spool.write_incoming(uid, b"stale image")
    spool.write_sr(uid, b"stale SR")  # its row is `scored`: the SR is still needed
    again = _server(tmp_path)
    try:
        assert not spool.incoming_path(uid).exists()
        assert spool.sr_path(uid).exists()
    finally:
        again.stop()
