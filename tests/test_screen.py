"""radz screen: folders and CSV lists, per-file errors recorded (never fatal), resume, formats."""

from __future__ import annotations

import csv
import importlib.util
import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from radz_engine.cli.screen import main as screen_main  # noqa: E402
from radz_engine.io.discover import expand_paths  # noqa: E402
from radz_engine.runtime.screen_output import done_sources, read_output_card  # noqa: E402


@pytest.fixture(scope="module")
def study_folder(tmp_path_factory):
    """4 phantom DICOMs in a subfolder, 1 PNG, 1 broken .dcm, 1 ignored .txt."""
    from PIL import Image

    from radz_train.data.dicom_out import write_case
    from radz_train.data.phantom import generate_cases

    root = tmp_path_factory.mktemp("screen")
    (root / "study" / "series").mkdir(parents=True)
    cases = list(generate_cases(5, seed=4, size=128))
    for case in cases[:4]:
        write_case(case, root / "study" / "series" / f"{case.index:03d}.dcm")
    Image.fromarray(np.round(cases[4].image * 255).astype(np.uint8)).save(root / "study" / "image.png")
    (root / "study" / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")  # truncated header
    (root / "study" / "notes.txt").write_text("not an image")
    return root / "study"


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_expand_paths_folders_and_csv(study_folder, tmp_path):
    files = expand_paths(study_folder)
    assert len(files) == 6 and not any(f.endswith(".txt") for f in files)
    listing = tmp_path / "list.csv"
    listing.write_text("path,label\n" + f"{files[0]},1\n" + "does/not/exist.dcm,0\n")
    assert expand_paths([listing]) == [files[0], str(tmp_path / "does/not/exist.dcm")]
    bad = tmp_path / "bad.csv"
    bad.write_text("file\nx.dcm\n")
    with pytest.raises(ValueError, match="'path' column"):
        expand_paths(bad)


def test_screen_records_errors_and_resumes(study_folder, tmp_path, capsys):
    out = tmp_path / "results.csv"
    assert (
        screen_main(
            [
                str(study_folder),
                "--out",
                str(out),
                "--workers",
                "0",
                "--threads",
                "1",
                "--batch-size",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "| 6 | 5 | 1 | 0 |" in printed and "| cardiomegaly |" in printed
    rows = _rows(out)
    assert len(rows) == 6
    broken = [r for r in rows if r["source"].endswith("broken.dcm")]
    assert broken[0]["ok"] == "False" and "broken.dcm" in broken[0]["error"]
    good = [r for r in rows if r["ok"] == "True"]
    assert all(float(r["score_edema"]) >= 0 for r in good)
    assert all(r["sop_instance_uid"] for r in good if r["source"].endswith(".dcm"))

    # Resume: only the failed file is retried (its old row replaced); --no-retry-failed keeps it.
    assert screen_main([str(study_folder), "--out", str(out), "--workers", "0", "--threads", "1", "--no-progress"]) == 0
    printed = capsys.readouterr()
    assert "| 1 | 0 | 1 | 5 |" in printed.out and "retrying 1 that failed" in printed.err
    assert len(_rows(out)) == 6
    resume = [str(study_folder), "--out", str(out), "--workers", "0", "--threads", "1", "--no-progress"]
    assert screen_main([*resume, "--no-retry-failed"]) == 0
    assert "| 0 | 0 | 0 | 6 |" in capsys.readouterr().out
    assert len(_rows(out)) == 6
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:-2]))
    assert screen_main([str(study_folder), "--out", str(out), "--workers", "1", "--threads", "1", "--no-progress"]) == 0
    assert "| 2 | 1 | 1 | 4 |" in capsys.readouterr().out  # the broken file (last row after its retry) + one
    again = _rows(out)
    assert sorted(r["source"] for r in again) == sorted(r["source"] for r in rows)
    first = {r["source"]: r for r in rows}
    for r in again:  # the process pool gives the same numbers as in-process decoding
        assert r["score_edema"] == first[r["source"]]["score_edema"]


def test_screen_jsonl_and_engine_stream(study_folder, tmp_path, capsys):
    out = tmp_path / "results.jsonl"
    assert (
        screen_main(
            [str(study_folder), "--out", str(out), "--workers", "0", "--threads", "1", "--embeddings", "--no-progress"]
        )
        == 0
    )
    docs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(docs) == 6 and sum(d["ok"] for d in docs) == 5
    good = next(d for d in docs if d["ok"] and d["source"].endswith(".dcm"))
    assert (
        len(good["embedding_f16"]) == 344  # base64 of 128 float16 values (tests/test_screen_embeddings.py)
        and good["metadata"]["SOPInstanceUID"]
        and set(good["timings"]) >= {"decode", "model"}
    )
    assert done_sources(out) == {d["source"] for d in docs}

    from radz_engine.runtime.engine import Engine

    with Engine(threads=1, max_batch_size=4) as engine:
        streamed = list(engine.screen(study_folder, progress=False, workers=0))
        direct = engine.classify(expand_paths(study_folder))
    assert [r.source for r in streamed] == [r.source for r in direct]
    for a, b in zip(streamed, direct):
        assert a.ok == b.ok
        if a.ok:
            np.testing.assert_allclose(list(a.scores.values()), list(b.scores.values()), atol=1e-5)


def test_screen_fails_loudly(study_folder, tmp_path, capsys):
    """A missing path or a folder with nothing to screen: one line on stderr, exit 2; every
    file failing: exit 1; some failing: a line with the counts."""
    out = str(tmp_path / "r.csv")
    assert screen_main([str(tmp_path / "does/not/exist"), "--out", out, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"radz screen: {tmp_path / 'does/not/exist'}: no such file or folder"]
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    assert screen_main([str(empty), "--out", out, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "no DICOM, PNG or JPEG files found" in err and "1 not DICOM/PNG/JPEG by content" in err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.dcm").write_bytes(b"x")
    (bad / "b.png").write_bytes(b"not a png")
    assert screen_main([str(bad), "--out", out, "--workers", "0", "--threads", "1", "--no-progress"]) == 1
    assert "all 2 files failed (first: " in capsys.readouterr().err
    assert screen_main([str(study_folder), "--out", str(tmp_path / "s.csv"), "--workers", "0", "--no-progress"]) == 0
    assert "1 of 6 files failed" in capsys.readouterr().err
    for flag, value in (("--workers", "-1"), ("--batch-size", "0"), ("--threads", "0"), ("--device", "gpu")):
        with pytest.raises(SystemExit) as exit_info:  # argparse: usage + one error line, exit 2
            screen_main([str(study_folder), "--out", out, flag, value, "--no-progress"])
        assert exit_info.value.code == 2
        assert f"argument {flag}" in capsys.readouterr().err


def test_discover_by_content(tmp_path):
    """Archives name DICOM by UID or give no suffix: found by the preamble + DICM marker, or
    (no preamble) by pydicom; everything else skipped and counted by reason."""
    import pydicom

    from radz_engine.io.discover import discover, sniff_file
    from radz_train.data.dicom_out import write_case
    from radz_train.data.phantom import generate_cases

    cases = list(generate_cases(2, seed=3, size=64))
    write_case(cases[0], tmp_path / "1.2.840.113619.2.55.3.1")
    write_case(cases[1], tmp_path / "IMG0001")
    ds = pydicom.dcmread(tmp_path / "IMG0001")
    del ds.file_meta  # a bare dataset (implicit VR little endian), no preamble, no DICM
    ds.preamble = None
    pydicom.dcmwrite(tmp_path / "bare", ds, enforce_file_format=False, implicit_vr=True, little_endian=True)
    (tmp_path / "notes").write_text("not an image")
    (tmp_path / "README.txt").write_text("not an image")
    (tmp_path / ".hidden.dcm").write_bytes(b"x")
    assert sniff_file(tmp_path / "bare") == "dicom-no-preamble"
    assert sniff_file(tmp_path / "IMG0001") == "dicom"
    found = discover(tmp_path)
    assert [p.rsplit("/", 1)[1] for p in found.files] == ["1.2.840.113619.2.55.3.1", "IMG0001", "bare"]
    assert found.skipped == {"not DICOM/PNG/JPEG by content": 2, "hidden": 1}
    assert "skipped 3 files (2 not DICOM/PNG/JPEG by content, e.g." in found.skipped_line()


def test_screen_bad_arguments(study_folder, tmp_path, capsys):
    assert screen_main([str(study_folder), "--out", str(tmp_path / "r.xlsx"), "--no-progress"]) == 2
    assert "must end in one of" in capsys.readouterr().err
    if importlib.util.find_spec("pyarrow") is None:
        assert screen_main([str(study_folder), "--out", str(tmp_path / "r.parquet"), "--no-progress"]) == 2
        assert "pip install pyarrow" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="pyarrow is not installed")
def test_screen_parquet_resumes(study_folder, tmp_path, capsys):
    import pyarrow.parquet as pq

    out = tmp_path / "results.parquet"
    args = [str(study_folder), "--out", str(out), "--workers", "0", "--threads", "1", "--no-progress"]
    assert screen_main(args) == 0
    assert pq.read_table(out).num_rows == 6
    assert screen_main([*args, "--no-retry-failed"]) == 0
    assert pq.read_table(out).num_rows == 6 and "| 0 | 0 | 0 | 6 |" in capsys.readouterr().out
    assert screen_main(args) == 0  # the broken file is retried, its row replaced
    assert pq.read_table(out).num_rows == 6 and "| 1 | 0 | 1 | 5 |" in capsys.readouterr().out
    meta = pq.read_schema(out).metadata  # the model card's notice in the key-value metadata (issue 18)
    assert meta[b"radz.notice"] == b"For research use only; not for diagnostic use; model trained on synthetic data"
    assert json.loads(meta[b"radz.card"])["intended_use"] == "research"
    assert read_output_card(out)["card"]["name"] == "default" and not (tmp_path / "results.parquet.card.json").exists()


def test_screen_int8_scores_close_to_fp32(study_folder, tmp_path):
    fp32, int8 = tmp_path / "fp32.csv", tmp_path / "int8.csv"
    common = ["--workers", "0", "--threads", "1", "--no-progress"]
    assert screen_main([str(study_folder), "--out", str(fp32), *common]) == 0
    assert screen_main([str(study_folder), "--out", str(int8), "--int8", *common]) == 0
    a = {r["source"]: r for r in _rows(fp32)}
    b = {r["source"]: r for r in _rows(int8)}
    assert a.keys() == b.keys()
    for source, row in a.items():
        assert row["ok"] == b[source]["ok"]
        for key in (k for k in row if k.startswith("score_") and k != "score_ms" and row[k]):  # not the timing
            assert abs(float(row[key]) - float(b[source][key])) < 0.05, (source, key)


def test_results_name_their_model(study_folder, tmp_path, capsys):
    """Every row and the summary carry the bundle's name, version, short content hash and the
    thresholds used; resuming into an output of another bundle is refused (--overwrite replaces)."""
    import shutil

    from radz_engine.bundle.default import default_bundle_path
    from radz_engine.bundle.format import write_manifest
    from radz_engine.bundle.loader import load_bundle

    identity = load_bundle().identity()
    assert identity["name"] == "default" and identity["version"] == "0.1.0" and len(identity["hash"]) == 12
    out, summary = tmp_path / "r.jsonl", tmp_path / "summary.json"
    common = ["--workers", "0", "--threads", "1", "--quiet"]
    assert screen_main([str(study_folder), "--out", str(out), "--summary-json", str(summary), *common]) == 0
    printed = capsys.readouterr().out
    assert f"bundle: default 0.1.0 (hash {identity['hash']}), intended use research" in printed
    notice = "For research use only; not for diagnostic use; model trained on synthetic data"
    assert printed.startswith(f"NOTICE: {notice}\n")
    # The model card travels with the output (issue 18): a sidecar beside .jsonl / .csv.
    sidecar = json.loads((tmp_path / "r.jsonl.card.json").read_text())
    assert sidecar["notice"] == notice and sidecar["intended_use"] == "research"
    assert sidecar["card"]["hash"] == identity["hash"] and read_output_card(out) == sidecar
    docs = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(d["model"] == identity for d in docs)  # failed rows too
    threshold = {c["name"]: c["threshold"] for c in load_bundle().classes}["cardiomegaly"]
    assert 0.0 < threshold < 1.0  # the shipped bundle is calibrated
    assert all(d["thresholds"]["cardiomegaly"] == pytest.approx(threshold, abs=1e-6) for d in docs)
    doc = json.loads(summary.read_text())
    assert doc["model"] == identity and set(doc["thresholds"]) == set(doc["positives"])
    assert doc["notice"] == notice and doc["intended_use"] == "research"
    csv_out = tmp_path / "r.csv"
    assert screen_main([str(study_folder), "--out", str(csv_out), *common]) == 0
    rows = _rows(csv_out)
    assert all(r["bundle_hash"] == identity["hash"] and r["threshold_edema"] for r in rows)
    assert read_output_card(csv_out)["notice"] == notice  # the CSV itself stays plain CSV (resume reads it)

    other = tmp_path / "other_bundle"  # the same model with one threshold changed: another hash
    shutil.copytree(default_bundle_path(), other)
    classes = json.loads((other / "classes.json").read_text())
    classes["classes"][0]["threshold"] = classes["classes"][0]["calibration"]["threshold"] = 0.5
    (other / "classes.json").write_text(json.dumps(classes))
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["name"] = "other_bundle"
    write_manifest(other, manifest)
    capsys.readouterr()
    assert screen_main([str(study_folder), "--out", str(csv_out), "--bundle", str(other), *common]) == 2
    err = capsys.readouterr().err
    assert f"holds results of default 0.1.0 (hash {identity['hash']})" in err and "--overwrite" in err
    assert screen_main([str(study_folder), "--out", str(csv_out), "--bundle", str(other), "--overwrite", *common]) == 0
    rows = _rows(csv_out)
    assert len(rows) == 6 and {r["bundle_name"] for r in rows} == {"other_bundle"}
    assert {r["threshold_cardiomegaly"] for r in rows} == {"0.5"}


def test_screen_progress_without_a_terminal(study_folder, tmp_path, capsys):
    """stderr is not a terminal here: plain progress lines, no carriage-return bar."""
    out = str(tmp_path / "r.csv")
    assert screen_main([str(study_folder), "--out", out, "--workers", "0", "--progress-every", "0"]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "radz screen: 6/6 files (1 failed)" in err


def test_screen_with_the_torch_backend_matches_onnxruntime(tmp_path, tiny_export_model, tiny_bundle, capsys):
    """`radz screen --backend torch --checkpoint C` (the GPU path; here on the CPU) gives the ONNX
    Runtime scores of the bundle exported from that checkpoint; --checkpoint goes only with torch."""
    pytest.importorskip("torch")
    from PIL import Image

    from radz_train.data.phantom import generate_cases
    from radz_train.training.checkpoint import save_checkpoint

    checkpoint = tmp_path / "checkpoint"
    save_checkpoint(checkpoint, tiny_export_model, {}, step=0)
    images = tmp_path / "png"
    images.mkdir()
    for case in generate_cases(3, seed=12, size=48):
        Image.fromarray((case.image * 255).clip(0, 255).astype("uint8")).save(images / f"{case.index:03d}.png")
    common = [str(images), "--bundle", str(tiny_bundle[0]), "--workers", "0", "--quiet"]
    assert screen_main([*common, "--out", str(tmp_path / "ort.jsonl")]) == 0
    torch_out = tmp_path / "torch.jsonl"
    assert screen_main([*common, "--out", str(torch_out), "--backend", "torch", "--checkpoint", str(checkpoint)]) == 0
    ort = {d["source"]: d for d in map(json.loads, (tmp_path / "ort.jsonl").read_text().splitlines())}
    torch_rows = [json.loads(line) for line in torch_out.read_text().splitlines()]
    assert len(torch_rows) == 3
    for row in torch_rows:
        assert row["ok"] and row["scores"].keys() == ort[row["source"]]["scores"].keys()
        np.testing.assert_allclose(list(row["scores"].values()), list(ort[row["source"]]["scores"].values()), atol=1e-4)
    capsys.readouterr()
    assert screen_main([*common, "--out", str(tmp_path / "x.jsonl"), "--backend", "torch"]) == 2
    assert "--checkpoint" in capsys.readouterr().err
    assert screen_main([*common, "--out", str(tmp_path / "x.jsonl"), "--checkpoint", str(checkpoint)]) == 2
    assert "--checkpoint" in capsys.readouterr().err
