"""radz serve under bad input: every bad instance gets a failure status or a journaled error
with its reason, and the server keeps serving. Includes a bounded-time fuzz test."""

from __future__ import annotations

import os
import random
import socket
import sqlite3
import time

import pytest

pytest.importorskip("pynetdicom")
pytest.importorskip("highdicom")

from serve_peers import DCMTK, RadzServe, echoscu, wait_for  # noqa: E402

pytestmark = pytest.mark.skipif(not DCMTK, reason="needs DCMTK (apt install dcmtk)")

CR = "1.2.840.10008.5.1.4.1.1.1"
DX = "1.2.840.10008.5.1.4.1.1.1.1"
CT = "1.2.840.10008.5.1.4.1.1.2"


def _phantom(tmp_path, seed: int = 4, size: int = 96):
    from pydicom import dcmread

    from radz_train.data.dicom_out import write_case
    from radz_train.data.phantom import generate_case

    path = write_case(generate_case(seed, seed=seed, site="site_a", size=size), tmp_path / f"p{seed}.dcm")
    return dcmread(path), path


def _journal(work_dir) -> dict:
    db = sqlite3.connect(f"file:{work_dir / 'journal.sqlite'}?mode=ro", uri=True, timeout=30)
    try:
        return {uid: (state, error) for uid, state, error in db.execute("SELECT sop_uid, state, error FROM instances")}
    finally:
        db.close()


def _association(port: int, contexts):
    from pynetdicom import AE

    ae = AE(ae_title="TESTSCU")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    for sop_class, syntaxes in contexts:
        ae.add_requested_context(sop_class, syntaxes)
    return ae.associate("127.0.0.1", port, ae_title="RADZ")


@pytest.fixture
def radz(tmp_path):
    server = RadzServe(tmp_path / "radz", extra=["--max-rows", "2048", "--max-dataset-mb", "8"])
    yield server
    server.stop()


def test_bad_datasets_get_a_failure_status_or_a_journaled_error(tmp_path, radz):
    from pydicom.encaps import encapsulate
    from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, generate_uid

    def fresh():
        ds, _ = _phantom(tmp_path)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        return ds

    no_pixels = fresh()
    del no_pixels.PixelData
    wrong_modality = fresh()
    wrong_modality.Modality = "CT"
    too_big = fresh()
    too_big.Rows = 4096  # over --max-rows 2048 (the header is checked before any decoding)
    corrupt = fresh()
    corrupt.file_meta.TransferSyntaxUID = JPEG2000Lossless
    corrupt.PixelData = encapsulate([os.urandom(2000)])
    corrupt["PixelData"].VR = "OB"
    corrupt["PixelData"].is_undefined_length = True

    assoc = _association(radz.port, [(c, [t]) for c in (CR, DX) for t in (ExplicitVRLittleEndian, JPEG2000Lossless)])
    assert assoc.is_established
    statuses = {}
    for name, ds in [
        ("no_pixels", no_pixels),
        ("wrong_modality", wrong_modality),
        ("too_big", too_big),
        ("corrupt", corrupt),
    ]:
        status = assoc.send_c_store(ds)
        statuses[name] = (int(status.Status), str(status.get("ErrorComment", "")))
    assoc.release()
    assert statuses["no_pixels"][0] == 0xC000 and "no pixel data" in statuses["no_pixels"][1]
    assert statuses["wrong_modality"][0] == 0xC000 and "modality CT" in statuses["wrong_modality"][1]
    assert statuses["too_big"][0] == 0xA700 and "exceeds" in statuses["too_big"][1]
    # Corrupt compressed pixels pass the header checks: accepted, then journaled as failed, with why.
    assert statuses["corrupt"][0] == 0x0000
    wait_for(
        lambda: _journal(radz.work_dir).get(str(corrupt.SOPInstanceUID), ("",))[0] == "failed",
        60,
        "the corrupt instance journaled as failed",
    )
    journal = _journal(radz.work_dir)
    assert journal[str(no_pixels.SOPInstanceUID)] == ("rejected", "no pixel data (7FE0,0010)")
    assert journal[str(wrong_modality.SOPInstanceUID)][0] == "rejected"
    assert journal[str(too_big.SOPInstanceUID)][0] == "rejected"
    assert "cannot" in journal[str(corrupt.SOPInstanceUID)][1] or "decod" in journal[str(corrupt.SOPInstanceUID)][1]
    assert echoscu(radz.port).returncode == 0  # still serving
    assert radz.health()["ok"]


def test_unsupported_sop_class_and_transfer_syntax_are_refused_at_negotiation(tmp_path, radz):
    from pydicom.uid import ExplicitVRLittleEndian

    mpeg2 = "1.2.840.10008.1.2.4.100"
    assoc = _association(
        radz.port,
        [(CT, [ExplicitVRLittleEndian]), (CR, [mpeg2]), (DX, [mpeg2]), ("1.2.840.10008.1.1", [ExplicitVRLittleEndian])],
    )
    assert assoc.is_established  # the echo context is fine
    accepted = {(c.abstract_syntax, c.transfer_syntax[0]) for c in assoc.accepted_contexts}
    assert accepted == {("1.2.840.10008.1.1", ExplicitVRLittleEndian)}
    ds, _ = _phantom(tmp_path)
    with pytest.raises(ValueError, match="presentation context"):
        assoc.send_c_store(ds)  # pynetdicom has no context to send it on
    assoc.release()
    assert echoscu(radz.port).returncode == 0


def test_other_sop_classes_ignored_by_configuration(tmp_path):
    from pydicom.uid import ExplicitVRLittleEndian

    server = RadzServe(tmp_path / "radz", extra=["--other-sop-classes", "ignore"])
    try:
        ds, _ = _phantom(tmp_path)
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = CT
        ds.Modality = "CT"
        assoc = _association(server.port, [(CT, [ExplicitVRLittleEndian])])
        status = assoc.send_c_store(ds)
        assoc.release()
        assert int(status.Status) == 0x0000
        assert _journal(server.work_dir)[str(ds.SOPInstanceUID)][0] == "ignored"
    finally:
        server.stop()


def test_association_dropped_midway_leaves_the_server_serving(tmp_path, radz):
    import struct

    from pydicom.uid import ExplicitVRLittleEndian

    # A real association that dies in the middle of a P-DATA PDU (header says 64 KiB, 512 bytes
    # follow, then the connection closes): nothing was acknowledged, so nothing is journaled
    # (the sender still owns the instance), and the server goes on.
    assoc = _association(radz.port, [(CR, [ExplicitVRLittleEndian]), (DX, [ExplicitVRLittleEndian])])
    assert assoc.is_established
    raw = assoc.dul.socket.socket
    raw.sendall(struct.pack(">BBI", 0x04, 0, 65536) + os.urandom(512))
    raw.shutdown(socket.SHUT_RDWR)
    raw.close()
    # Half a PDU then silence, and bytes that are no PDU at all, on fresh connections.
    for junk in (b"\x01\x00\x00\x00\x10\x00", b"GET / HTTP/1.0\r\n\r\n" * 10):
        with socket.create_connection(("127.0.0.1", radz.port), timeout=10) as s:
            s.sendall(junk)
    assert echoscu(radz.port).returncode == 0
    assert _journal(radz.work_dir) == {}
    assert radz.health()["ok"]


def _mutate(data: bytes, start: int, rng: random.Random) -> bytes:
    """Flip, overwrite, insert or cut bytes after the file meta (which the sender must parse)."""
    body = bytearray(data[start:])
    for _ in range(rng.randint(1, 8)):
        kind = rng.random()
        at = rng.randrange(len(body))
        if kind < 0.5:
            body[at] ^= 1 << rng.randrange(8)
        elif kind < 0.7:
            body[at : at + 4] = rng.randbytes(4)
        elif kind < 0.85:
            body[at:at] = rng.randbytes(rng.randint(1, 16))
        else:
            del body[at:]
            if not body:
                body = bytearray(b"\x00")
    return data[:start] + bytes(body)


@pytest.mark.slow
def test_fuzz_mutated_datasets_for_a_bounded_time(tmp_path, radz):
    """Send mutated radiographs (uncompressed and JPEG 2000) for 20 s; every one is answered
    or refused, nothing stays half-done in the journal, and the server serves on."""
    from pydicom.filereader import read_preamble
    from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, generate_uid

    seeds = []
    for i, syntax in enumerate((ExplicitVRLittleEndian, JPEG2000Lossless)):
        ds, _ = _phantom(tmp_path, seed=10 + i)
        if syntax != ExplicitVRLittleEndian:
            ds.compress(syntax)
        path = tmp_path / f"seed{i}.dcm"
        ds.save_as(path, enforce_file_format=True)
        seeds.append(path)
    rng = random.Random(1234)
    deadline, sent, answered = time.time() + 20, 0, {}
    assoc = None
    while time.time() < deadline:
        source = rng.choice(seeds)
        data = source.read_bytes()
        with open(source, "rb") as handle:  # where the file meta ends: mutations go after it
            read_preamble(handle, False)
            from pydicom.filereader import _read_file_meta_info

            meta = _read_file_meta_info(handle)
            start = handle.tell()
        uid = generate_uid()
        mutated = _mutate(data, start, rng).replace(str(meta.MediaStorageSOPInstanceUID).encode(), uid.encode())
        path = tmp_path / "fuzz.dcm"
        path.write_bytes(mutated)
        if assoc is None or not assoc.is_established:
            assoc = _association(
                radz.port, [(c, [t]) for c in (CR, DX) for t in (ExplicitVRLittleEndian, JPEG2000Lossless)]
            )
        try:
            status = assoc.send_c_store(path)
            answered[uid] = int(status.Status) if "Status" in status else None
        except Exception:  # noqa: BLE001 - a mutation pynetdicom itself cannot send
            assoc.abort()
            assoc = None
        sent += 1
    if assoc is not None and assoc.is_established:
        assoc.release()
    assert sent > 20
    outcomes = {
        "accepted": sum(v == 0 for v in answered.values()),
        "refused": sum(v not in (0, None) for v in answered.values()),
        "sender_failed": sent - len(answered),
    }
    print("fuzz outcomes:", outcomes)
    assert outcomes["accepted"] and outcomes["refused"], outcomes  # both paths were exercised
    assert echoscu(radz.port).returncode == 0 and radz.health()["ok"]
    # Everything acknowledged was journaled, and nothing is left half-done.
    wait_for(
        lambda: all(state != "received" for state, _ in _journal(radz.work_dir).values()),
        120,
        "the fuzzed instances to reach a final state",
    )
    journal = _journal(radz.work_dir)
    for uid, status in answered.items():
        if status == 0x0000:
            # ignored: a mutation can leave a well-formed image that is not a chest radiograph
            assert uid in journal and journal[uid][0] in ("scored", "failed", "ignored"), (uid, journal.get(uid))
        elif status is not None:
            assert journal.get(uid, ("rejected",))[0] == "rejected"
    for state, error in journal.values():
        if state in ("failed", "rejected"):
            assert error, "every failure keeps its reason"
