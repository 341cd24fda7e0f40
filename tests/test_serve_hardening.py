"""radz serve against the attacks of issue 13, each with the real peers (a `radz serve` process,
DCMTK, pynetdicom, Orthanc where the case involves a PACS): acknowledged copies are never lost,
no patient value reaches a log, the journal or results, wire values cannot forge log lines,
only radiographs are scored, truncated pixels are refused, the called AE title is checked, an
idle socket does not block TLS, /healthz tells the truth, bad options are one line."""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import subprocess
import time

import pytest

pytest.importorskip("pynetdicom")
pytest.importorskip("highdicom")

from serve_peers import (  # noqa: E402
    DCMTK,
    ORTHANC,
    Orthanc,
    RadzServe,
    echoscu,
    phantom_dicoms,
    self_signed_certificate,
    storescu,
    wait_for,
)

pytestmark = pytest.mark.skipif(not DCMTK, reason="needs DCMTK (apt install dcmtk)")

CR = "1.2.840.10008.5.1.4.1.1.1"
DX = "1.2.840.10008.5.1.4.1.1.1.1"
SC = "1.2.840.10008.5.1.4.1.1.7"
CT = "1.2.840.10008.5.1.4.1.1.2"
SECRETS = ("ZZSECRETSEX", "ZZSECRETBD", "ZZSECRETSD", "ZZSECRETNAME")


def _journal(work_dir) -> dict:
    db = sqlite3.connect(f"file:{work_dir / 'journal.sqlite'}?mode=ro", uri=True, timeout=30)
    try:
        rows = db.execute("SELECT sop_uid, state, error FROM instances").fetchall()
    except sqlite3.OperationalError:
        rows = []
    finally:
        db.close()
    return {uid: (state, error) for uid, state, error in rows}


def _state(work_dir, uid: str) -> str:
    return _journal(work_dir).get(str(uid), ("",))[0]


def _datasets(folder, n: int, seed: int, size: int = 64) -> list:
    from pydicom import dcmread

    return [dcmread(p) for p in phantom_dicoms(folder, n, seed=seed, size=size)]


@contextlib.contextmanager
def _no_validation():
    """pydicom's value validation off (reading and writing): the attacks need invalid values."""
    from pydicom import config

    modes = config.settings.reading_validation_mode, config.settings.writing_validation_mode
    config.settings.reading_validation_mode = config.settings.writing_validation_mode = config.IGNORE
    try:
        yield
    finally:
        config.settings.reading_validation_mode, config.settings.writing_validation_mode = modes


def _save(ds, path) -> str:
    """Write `ds` as is (invalid values included)."""
    with _no_validation():
        ds.save_as(path, enforce_file_format=True)
    return str(path)


def _set(ds, keyword: str, value) -> None:
    """Set an attribute to a value pydicom would refuse or warn about."""
    with _no_validation():
        setattr(ds, keyword, value)


def _association(port: int, contexts, called: str = "RADZ"):
    from pynetdicom import AE

    ae = AE(ae_title="TESTSCU")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    for sop_class, syntaxes in contexts:
        ae.add_requested_context(sop_class, syntaxes)
    return ae.associate("127.0.0.1", port, ae_title=called)


def _send_files(port: int, paths) -> list[tuple[int, str]]:
    """C-STORE each file (as written, read by pynetdicom) on one association: (status, comment)."""
    from pydicom import dcmread
    from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless

    classes = sorted({str(dcmread(p, stop_before_pixels=True).SOPClassUID) for p in paths})
    assoc = _association(port, [(c, [t]) for c in classes for t in (ExplicitVRLittleEndian, JPEG2000Lossless)])
    assert assoc.is_established
    out = []
    for p in paths:
        status = assoc.send_c_store(p)
        out.append((int(status.Status), str(status.get("ErrorComment", ""))))
    assoc.release()
    return out


@pytest.fixture(scope="module")
def radz(tmp_path_factory):
    """One node for the cases that need no PACS: ignores other SOP classes (item 1's second
    case), at most 4 associations (item 9), no --forward (SRs stay in spool/sr to be read)."""
    server = RadzServe(
        tmp_path_factory.mktemp("radz"),
        extra=["--other-sop-classes", "ignore", "--max-associations", "4"],
    )
    yield server
    server.stop()


# -- items 1 and 2: an acknowledged instance is never lost ---------------------------------------
@pytest.mark.skipif(ORTHANC is None, reason="needs Orthanc (apt install orthanc)")
def test_a_refused_later_copy_never_changes_an_acknowledged_instance(tmp_path):
    """Item 1: a good radiograph (acknowledged), then a copy with the same UID refused
    (Modality CT) or ignored (CT SOP class with --other-sop-classes ignore): the SR reaches the
    PACS, the journal keeps the instance, and a restart deletes nothing."""
    from pydicom.uid import ExplicitVRLittleEndian

    orthanc = Orthanc(tmp_path / "orthanc")
    radz = None
    try:
        radz = RadzServe(
            tmp_path / "radz",
            forward=f"ORTHANC@127.0.0.1:{orthanc.dicom_port}",
            extra=["--other-sop-classes", "ignore"],
        )
        good_a, good_b = _datasets(tmp_path / "in", 2, seed=101)
        paths = [_save(good_a, tmp_path / "a.dcm")]
        good_a.Modality = "CT"
        paths.append(_save(good_a, tmp_path / "a_ct.dcm"))
        paths.append(_save(good_b, tmp_path / "b.dcm"))
        good_b.SOPClassUID = good_b.file_meta.MediaStorageSOPClassUID = CT
        good_b.Modality = "CT"
        paths.append(_save(good_b, tmp_path / "b_ct.dcm"))
        assoc = _association(radz.port, [(c, [ExplicitVRLittleEndian]) for c in (CR, DX, CT)])
        statuses = [int(assoc.send_c_store(p).Status) for p in paths]
        assoc.release()
        assert statuses == [0x0000, 0xC000, 0x0000, 0x0000]  # the CT-modality copy refused, the CT class ignored
        uids = [str(good_a.SOPInstanceUID), str(good_b.SOPInstanceUID)]
        wait_for(lambda: all(_state(radz.work_dir, u) == "delivered" for u in uids), 60, "both SRs delivered")
        radz.stop()
        radz.start()  # a restart must not sweep anything that is still needed
        assert all(_state(radz.work_dir, u) == "delivered" for u in uids)
        assert len(orthanc.instances("SR")) == 2
        log = radz.log_text()
        assert "the copy acknowledged earlier stays" in log
    finally:
        if radz is not None:
            radz.stop()
        orthanc.stop()


def test_a_corrected_resend_racing_the_first_copy_is_scored_once(tmp_path, radz):
    """Item 2: 40 instances whose first copy cannot be decoded (acknowledged: corrupt JPEG 2000),
    each followed at once by the good copy with the same UID: the newest acknowledged copy
    wins; every instance ends scored, with exactly one SR and one result line."""
    import os

    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless

    datasets = _datasets(tmp_path / "in", 40, seed=202)
    paths = []
    for i, ds in enumerate(datasets):
        paths.append(_save(ds, tmp_path / f"good{i}.dcm"))
        bad = ds.copy()
        bad.file_meta = ds.file_meta.copy()
        bad.file_meta.TransferSyntaxUID = JPEG2000Lossless
        bad.PixelData = encapsulate([os.urandom(500)])
        bad["PixelData"].VR = "OB"
        bad["PixelData"].is_undefined_length = True
        paths.insert(2 * i, _save(bad, tmp_path / f"bad{i}.dcm"))
    assert [s for s, _ in _send_files(radz.port, paths)] == [0] * 80  # all acknowledged
    uids = [str(ds.SOPInstanceUID) for ds in datasets]
    wait_for(lambda: all(_state(radz.work_dir, u) in ("scored", "failed") for u in uids), 120, "every instance settled")
    time.sleep(0.5)  # an older copy finishing late must not change anything
    journal = _journal(radz.work_dir)
    assert {u: journal[u][0] for u in uids} == dict.fromkeys(uids, "scored")
    lines = [json.loads(x) for x in (radz.work_dir / "results" / "results.jsonl").read_text().splitlines()]
    answered = [x["sop_instance_uid"] for x in lines if "scores" in x]
    assert sorted(u for u in answered if u in uids) == sorted(uids)  # scored once each
    from radz_engine.serve.spool import uid_hash

    assert all((radz.work_dir / "spool" / "sr" / f"{uid_hash(u)}.dcm").exists() for u in uids)
    assert "Traceback" not in radz.log_text()  # the decoders' own error logs (with tracebacks) are kept out


# -- items 3 and 4: no patient data, no forged log lines ------------------------------------------
def test_malformed_demographics_neither_leak_nor_block_the_sr(tmp_path, radz):
    """Item 3: invalid PatientSex / PatientBirthDate / StudyDate: the SR is made (those left out,
    written empty), and no patient or study value reaches the log, journal, results or metrics."""
    from pydicom import dcmread

    from radz_engine.serve.spool import uid_hash

    (ds,) = _datasets(tmp_path / "in", 1, seed=303)
    _set(ds, "PatientSex", "ZZSECRETSEX")
    _set(ds, "PatientBirthDate", "ZZSECRETBD")
    _set(ds, "StudyDate", "ZZSECRETSD")
    ds.PatientName = "ZZSECRETNAME^A"  # valid: copied into the SR verbatim
    path = _save(ds, tmp_path / "secret.dcm")
    assert storescu(radz.port, [path]).returncode == 0
    uid = str(ds.SOPInstanceUID)
    wait_for(lambda: _state(radz.work_dir, uid) in ("scored", "failed"), 60, "the instance scored")
    assert _state(radz.work_dir, uid) == "scored", _journal(radz.work_dir)[uid]
    sr = dcmread(radz.work_dir / "spool" / "sr" / f"{uid_hash(uid)}.dcm")
    assert sr.PatientSex in ("", None) and sr.PatientBirthDate in ("", None) and sr.StudyDate in ("", None)
    assert str(sr.PatientName) == "ZZSECRETNAME^A" and sr.PatientID == ds.PatientID
    places = {
        "serve.log": radz.log_text(),
        "results.jsonl": (radz.work_dir / "results" / "results.jsonl").read_text(),
        "metrics": radz.metrics(),
        "healthz": json.dumps(radz.health()),
    }
    for name in ("journal.sqlite", "journal.sqlite-wal"):
        if (radz.work_dir / name).exists():
            places[name] = (radz.work_dir / name).read_bytes().decode("latin-1")
    for where, text in places.items():
        for secret in (*SECRETS, str(ds.PatientID)):
            assert secret not in text, f"{secret} in {where}"


def test_wire_values_cannot_forge_log_lines(tmp_path, radz):
    """Item 4: a Modality holding a newline and a forged log line is refused; the log shows it
    escaped on the refusal's own line, and the Error Comment is printable and bounded."""
    (ds,) = _datasets(tmp_path / "in", 1, seed=404)
    forged = "2026-01-01 00:00:00,000 ERROR radz_engine.serve: FORGED LINE"
    _set(ds, "Modality", "CR\n" + forged)
    path = _save(ds, tmp_path / "forged.dcm")
    with _no_validation():
        [(status, comment)] = _send_files(radz.port, [path])
    assert status == 0xC000 and "\n" not in comment and len(comment) <= 64 and "\\" not in comment
    log = radz.log_text()
    assert not any(line.startswith(forged[:19]) for line in log.splitlines())
    assert "modality CR\\n2026" in log  # escaped (and cut short), on the refusal's own line


# -- items 8 and 7: score only whole grayscale radiographs ----------------------------------------
def test_truncated_native_pixel_data_is_refused_before_the_answer(tmp_path, radz):
    """Item 8: native pixel data shorter than Rows x Columns x BitsAllocated declares: failure
    status (the sender keeps it), journaled rejected with the reason."""
    (ds,) = _datasets(tmp_path / "in", 1, seed=808)
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    [(status, comment)] = _send_files(radz.port, [_save(ds, tmp_path / "half.dcm")])
    assert status == 0xC000 and "truncated" in comment
    state, error = _journal(radz.work_dir)[str(ds.SOPInstanceUID)]
    assert state == "rejected" and "truncated" in error


def test_only_grayscale_chest_radiographs_are_scored(tmp_path, radz):
    """Item 7: colour and palette Secondary Captures, a grayscale SC not marked chest, a knee:
    acknowledged, journaled ignored with a reason, no SR. Inconsistent ones (RGB with one
    sample per pixel, WindowWidth 0): refused. A grayscale SC marked CHEST is scored."""
    import numpy as np
    from pydicom.data import get_testdata_file

    base = _datasets(tmp_path / "in", 6, seed=707)
    cases = {}
    rgb = base[0]
    rgb.SOPClassUID = rgb.file_meta.MediaStorageSOPClassUID = SC
    rgb.Modality, rgb.SamplesPerPixel, rgb.PhotometricInterpretation, rgb.PlanarConfiguration = "OT", 3, "RGB", 0
    rgb.BitsAllocated = rgb.BitsStored = 8
    rgb.HighBit = 7
    rgb.PixelData = np.zeros((rgb.Rows, rgb.Columns, 3), np.uint8).tobytes()
    cases["rgb_sc"] = rgb
    palette = base[1]
    palette.SOPClassUID = palette.file_meta.MediaStorageSOPClassUID = SC
    palette.Modality, palette.PhotometricInterpretation = "OT", "PALETTE COLOR"
    cases["palette_sc"] = palette
    grey_sc = base[2]
    grey_sc.SOPClassUID = grey_sc.file_meta.MediaStorageSOPClassUID = SC
    grey_sc.Modality = "OT"
    del grey_sc.BodyPartExamined
    cases["grey_sc_unmarked"] = grey_sc
    knee = base[3]
    knee.BodyPartExamined = "KNEE"
    cases["knee"] = knee
    rgb_dx = base[4]
    rgb_dx.PhotometricInterpretation = "RGB"  # SamplesPerPixel stays 1
    cases["rgb_dx_one_sample"] = rgb_dx
    window = base[5]
    window.WindowWidth = 0
    cases["window_width_0"] = window
    chest_sc = _datasets(tmp_path / "in2", 1, seed=708)[0]
    chest_sc.SOPClassUID = chest_sc.file_meta.MediaStorageSOPClassUID = SC
    chest_sc.Modality = "OT"
    cases["grey_sc_chest"] = chest_sc
    paths = {name: _save(ds, tmp_path / f"{name}.dcm") for name, ds in cases.items()}
    paths["pydicom_rgb_sc"] = get_testdata_file("SC_rgb.dcm")
    paths["pydicom_ybr_sc"] = get_testdata_file("SC_ybr_full_uncompressed.dcm")
    statuses = dict(zip(paths, _send_files(radz.port, list(paths.values())), strict=True))
    from pydicom import dcmread

    uids = {name: str(dcmread(p, stop_before_pixels=True).SOPInstanceUID) for name, p in paths.items()}
    for name in ("rgb_sc", "palette_sc", "grey_sc_unmarked", "knee", "pydicom_rgb_sc", "pydicom_ybr_sc"):
        assert statuses[name][0] == 0x0000, (name, statuses[name])
        state, reason = _journal(radz.work_dir)[uids[name]]
        assert state == "ignored" and reason, (name, state, reason)
    for name in ("rgb_dx_one_sample", "window_width_0"):
        assert statuses[name][0] == 0xC000, (name, statuses[name])
        assert _journal(radz.work_dir)[uids[name]][0] == "rejected"
    assert statuses["grey_sc_chest"][0] == 0x0000
    wait_for(lambda: _state(radz.work_dir, uids["grey_sc_chest"]) == "scored", 60, "the chest SC scored")
    journal = _journal(radz.work_dir)
    assert "colour" in journal[uids["rgb_sc"]][1] and "KNEE" in journal[uids["knee"]][1]


# -- item 6: the called AE title -------------------------------------------------------------------
def test_a_wrong_called_ae_title_is_refused(radz, tmp_path):
    assert echoscu(radz.port, called="NOTRADZ").returncode != 0
    assert echoscu(radz.port, called="RADZ").returncode == 0
    from radz_engine.serve.config import ServeConfig
    from radz_engine.serve.scp import make_ae

    assert make_ae(ServeConfig(tmp_path, check_called_ae=False)).require_called_aet is False


# -- item 9: /healthz tells the truth --------------------------------------------------------------
def test_healthz_is_degraded_while_every_association_is_taken(radz):
    from pydicom.uid import ExplicitVRLittleEndian

    assert radz.health()["http_status"] == 200
    held = [_association(radz.port, [(CR, [ExplicitVRLittleEndian])]) for _ in range(4)]
    try:
        assert all(a.is_established for a in held)
        health = wait_for(lambda: (h := radz.health())["http_status"] == 503 and h, 10, "degraded")
        assert health["status"] == "degraded" and any("associations in use" in r for r in health["reasons"])
        assert echoscu(radz.port).returncode != 0  # the 5th is refused: what the 503 warns of
    finally:
        for a in held:
            a.release()
    wait_for(lambda: radz.health()["http_status"] == 200, 10, "ok again")


def test_healthz_is_degraded_while_sr_delivery_fails(tmp_path):
    from serve_peers import free_port

    radz = RadzServe(tmp_path / "radz", forward=f"ORTHANC@127.0.0.1:{free_port()}")  # nobody listens
    try:
        assert radz.health()["http_status"] == 200
        assert storescu(radz.port, phantom_dicoms(tmp_path / "in", 1, seed=909, size=64)).returncode == 0
        health = wait_for(lambda: (h := radz.health())["http_status"] == 503 and h, 30, "degraded")
        assert any("SR delivery" in r for r in health["reasons"]) and health["journal"]["scored"] == 1
    finally:
        radz.stop()


# -- items 5 and 9: TLS --------------------------------------------------------------------------
def test_an_idle_socket_does_not_block_tls_associations(tmp_path):
    """Item 5: an idle plain TCP connection held open; a TLS C-ECHO still succeeds at once.
    Item 9: with as many idle handshakes as --max-associations, /healthz says degraded."""
    import ssl

    from pynetdicom import AE

    cert, key = self_signed_certificate(tmp_path)
    radz = RadzServe(
        tmp_path / "radz",
        extra=["--tls-cert", str(cert), "--tls-key", str(key), "--max-associations", "2"],
    )
    idle = []
    try:
        idle.append(socket.create_connection(("127.0.0.1", radz.port)))
        time.sleep(0.2)
        client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert))
        ae = AE(ae_title="TLSSCU")
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 5
        ae.add_requested_context("1.2.840.10008.1.1")
        start = time.monotonic()
        assoc = ae.associate("127.0.0.1", radz.port, ae_title="RADZ", tls_args=(client, "127.0.0.1"))
        assert assoc.is_established and int(assoc.send_c_echo().Status) == 0
        assoc.release()
        assert time.monotonic() - start < 2.0
        idle.append(socket.create_connection(("127.0.0.1", radz.port)))
        health = wait_for(lambda: (h := radz.health())["http_status"] == 503 and h, 10, "degraded")
        assert any("TLS handshakes" in r for r in health["reasons"])
    finally:
        for s in idle:
            s.close()
        radz.stop()
    assert "Traceback" not in radz.log_text()


# -- item 10: bad options ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--http-port", "99999"], "--http-port"),
        (["--threads", "0"], "--threads"),
        (["--modalities", ","], "--modalities"),
        (["--port", "abc"], "--port"),
        (["--device", "gpu"], "--device"),
        (["--max-associations", "0"], "--max-associations"),
        (["--body-parts", ""], "--body-parts"),
    ],
)
def test_bad_options_are_one_line_naming_the_option(tmp_path, capsys, options, named):
    from radz_engine.cli import main

    try:
        code = main(["serve", "--work-dir", str(tmp_path), *options])
    except SystemExit as exit_:  # argparse's own errors (a value of the wrong type)
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert named in err and len(err.splitlines()) == 1 and "Traceback" not in err, err


def test_a_port_in_use_is_named_before_anything_starts(tmp_path):
    """Item 10: a port in use is one line naming the option, exit 2, before the model loads."""
    import sys

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for option in ("--port", "--http-port"):
            other = "--http-port" if option == "--port" else "--port"
            run = subprocess.run(
                [sys.executable, "-m", "radz_engine.cli", "serve", "--work-dir", str(tmp_path)]
                + [option, str(port), other, "0"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert run.returncode == 2 and option in run.stderr and "in use" in run.stderr, run.stderr
            assert len(run.stderr.strip().splitlines()) == 1 and "listening" not in run.stdout


# -- item 11: --device ------------------------------------------------------------------------------
def test_device_option_reaches_the_engine_config(tmp_path):
    from radz_engine.cli.serve import build_parser, config_from_args
    from radz_engine.serve.config import ConfigError, ServeConfig

    args = build_parser().parse_args(["--work-dir", str(tmp_path), "--device", "cuda:0,cuda:1"])
    assert config_from_args(args).device == ("cuda:0", "cuda:1")
    assert ServeConfig(tmp_path, device="cuda").device == "cuda"
    for bad in ("cuda:x", "cpu,cuda:0", ","):
        with pytest.raises(ConfigError, match="--device"):
            ServeConfig(tmp_path, device=bad)
    with pytest.raises(ConfigError, match="--checkpoint"):
        ServeConfig(tmp_path, backend="torch")  # the torch backend runs a checkpoint, not the ONNX bundle
    assert ServeConfig(tmp_path, backend="torch", checkpoint=tmp_path, device="cuda:1").checkpoint == tmp_path
