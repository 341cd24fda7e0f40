"""radz screen --embeddings: float16 embeddings stored with each row (Parquet column, base64 in
.csv / .jsonl), read back by runtime.embeddings.read_embeddings; resume, interrupted runs, errors."""

from __future__ import annotations

import base64
import csv
import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from radz_engine.cli.screen import main as screen_main  # noqa: E402
from radz_engine.errors import RadzError  # noqa: E402
from radz_engine.runtime.embeddings import EmbeddingsError, decode_f16, encode_f16, read_embeddings  # noqa: E402
from radz_engine.runtime.engine import Engine  # noqa: E402
from radz_engine.runtime.results import Result  # noqa: E402
from radz_engine.runtime.screen_output import OutputMismatch, ResultWriter, recorded  # noqa: E402

FORMATS = ["csv", "jsonl", "parquet"]
CLI = ["--workers", "0", "--threads", "1", "--batch-size", "4", "--quiet"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """3 phantom DICOMs, 1 PNG and a broken .dcm."""
    from PIL import Image

    from radz_train.data.dicom_out import write_case
    from radz_train.data.phantom import generate_cases

    root = tmp_path_factory.mktemp("embeddings")
    cases = list(generate_cases(4, seed=21, size=96))
    for case in cases[:3]:
        write_case(case, root / f"{case.index:03d}.dcm")
    Image.fromarray(np.round(cases[3].image * 255).astype(np.uint8)).save(root / "image.png")
    (root / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")
    return root


@pytest.fixture(scope="module")
def screened(folder):
    """(engine class names, model identity, thresholds, dim, Results of Engine.screen)."""
    with Engine(threads=1, max_batch_size=4) as engine:
        results = list(engine.screen(folder, progress=False, workers=0))
        return engine.class_names, engine.model_info, engine.thresholds(), engine.bundle.embedding_dim, results


def _write(out, screened, results=None, close=True):
    classes, model, thresholds, dim, all_results = screened
    writer = ResultWriter(out, classes, embeddings=True, model=model, thresholds=thresholds, embedding_dim=dim)
    for r in all_results if results is None else results:
        writer.write(r)
    if close:
        writer.close()
    return writer


def _expected(results):
    good = [r for r in results if r.ok]
    return [r.source for r in good], np.stack([r.embedding for r in good]).astype(np.float16)


def test_engine_results_carry_float32_embeddings(screened):
    classes, _, _, dim, results = screened
    assert len(results) == 5 and sum(r.ok for r in results) == 4
    for r in results:
        if r.ok:
            assert r.embedding.dtype == np.float32 and r.embedding.shape == (dim,)
            assert abs(float(np.linalg.norm(r.embedding)) - 1.0) < 1e-3
        else:
            assert r.embedding is None
    good = next(r for r in results if r.ok)
    row, doc = good.to_row(classes, embedding=True), good.to_json(embedding=True)
    assert row["embedding_f16"] == doc["embedding_f16"] == encode_f16(good.embedding)
    assert np.array_equal(decode_f16(row["embedding_f16"]), good.embedding.astype(np.float16))
    assert len(base64.b64decode(row["embedding_f16"])) == 2 * dim
    # Without --embeddings the columns are unchanged.
    assert not any("embedding" in k for k in good.to_row(classes)) and "embedding_f16" not in good.to_json()
    bad = next(r for r in results if not r.ok)
    assert bad.to_row(classes, embedding=True)["embedding_f16"] is None


@pytest.mark.parametrize("kind", FORMATS)
def test_round_trip_equals_result_embedding(screened, tmp_path, kind):
    out = tmp_path / f"r.{kind}"
    _write(out, screened)
    got = read_embeddings(out)
    sources, embeddings = _expected(screened[4])
    assert got.sources == sources and got.embeddings.dtype == np.float16
    assert np.array_equal(got.embeddings, embeddings)
    assert got.classes == list(screened[0]) and got.model == screened[1] and got.dim == screened[3]
    by_source = {r.source: r for r in screened[4]}
    for i, row in enumerate(got.rows):
        result = by_source[row["source"]]
        assert row["ok"] is True and row["positives"] == result.positives
        assert row["scores"] == pytest.approx(result.scores, abs=1e-6)
        np.testing.assert_allclose(got.scores[i], [result.scores[c] for c in got.classes], atol=1e-6)
        assert row["sop_instance_uid"] == result.metadata.get("SOPInstanceUID", "")
    if kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        column = pq.read_schema(out).field("embedding").type
        assert pa.types.is_fixed_size_list(column) and column.list_size == screened[3]
        assert column.value_type == pa.float16()
    # Appending to the finished output (a second run): the source's last ok row wins.
    first = next(r for r in screened[4] if r.ok)
    moved = Result(
        source=first.source,
        scores=first.scores,
        positives=first.positives,
        embedding=-first.embedding,
        model=first.model,
        thresholds=first.thresholds,
        metadata=first.metadata,
    )
    _write(out, screened, [moved])
    again = read_embeddings(out)
    assert len(again) == len(sources) and again.sources[-1] == first.source
    assert np.array_equal(again.embeddings[-1], (-first.embedding).astype(np.float16))


@pytest.mark.parametrize("kind", FORMATS)
def test_cli_embeddings_resume_and_retry_keep_one_row_per_source(folder, screened, tmp_path, kind):
    out = tmp_path / f"cli.{kind}"
    assert screen_main([str(folder), "--out", str(out), "--embeddings", *CLI]) == 0
    got = read_embeddings(out)
    sources, embeddings = _expected(screened[4])
    assert sorted(got.sources) == sorted(sources)
    order = [got.sources.index(s) for s in sources]
    # Another engine (batch size 4 here as there): the same float16 values, at most one rounding step apart.
    np.testing.assert_allclose(got.embeddings[order].astype(np.float32), embeddings.astype(np.float32), atol=1e-3)
    # Resume retries the broken file (its old row replaced): one row per source, the same embeddings.
    assert screen_main([str(folder), "--out", str(out), "--embeddings", *CLI]) == 0
    assert screen_main([str(folder), "--out", str(out), "--embeddings", "--no-retry-failed", *CLI]) == 0
    assert _row_count(out, kind) == 5
    resumed = read_embeddings(out)
    assert resumed.sources == got.sources and np.array_equal(resumed.embeddings, got.embeddings)
    # Resuming without --embeddings would leave ok rows without embeddings: refused.
    assert screen_main([str(folder), "--out", str(out), *CLI]) == 2


def _row_count(out, kind):
    if kind == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(out).num_rows
    if kind == "csv":
        with open(out, newline="") as handle:
            return len(list(csv.DictReader(handle)))
    return len(out.read_text().splitlines())


@pytest.mark.parametrize("kind", FORMATS)
def test_interrupted_run_reads_back_and_resumes(folder, screened, tmp_path, kind):
    """A run killed while writing a row leaves a last line without its newline: read_embeddings
    ignores it, resume does not count it (that file is screened again) and cuts it before appending."""
    out = tmp_path / f"cut.{kind}"
    results = screened[4]
    ok = [r for r in results if r.ok]
    writer = _write(out, screened, ok[:3], close=False)  # parquet: the rows are in the .partial.jsonl
    writer._handle.close()  # killed: close() (the parquet conversion) never ran
    target = out.with_name(out.name + ".partial.jsonl") if kind == "parquet" else out
    data = target.read_bytes()
    target.write_bytes(data[: len(data) - 40])  # the third row cut inside its embedding
    got = read_embeddings(out)
    assert got.sources == [r.source for r in ok[:2]]
    assert np.array_equal(got.embeddings, np.stack([r.embedding for r in ok[:2]]).astype(np.float16))
    assert set(recorded(out)) == {r.source for r in ok[:2]}
    assert screen_main([str(folder), "--out", str(out), "--embeddings", *CLI]) == 0
    assert _row_count(out, kind) == 5
    final = read_embeddings(out)
    assert sorted(final.sources) == sorted(r.source for r in ok)
    if kind == "parquet":
        assert not target.exists()


def test_errors_name_the_file_and_row(folder, screened, tmp_path):
    classes, model, thresholds, dim, results = screened
    missing = tmp_path / "absent.parquet"
    with pytest.raises(EmbeddingsError, match="absent.parquet: no such screening output"):
        read_embeddings(missing)
    with pytest.raises(EmbeddingsError, match="not a screening output"):
        read_embeddings(tmp_path / "x.txt")
    for kind in FORMATS:  # written without --embeddings
        plain = tmp_path / f"plain.{kind}"
        with ResultWriter(plain, classes, model=model) as writer:
            for r in results:
                writer.write(r)
        with pytest.raises(
            EmbeddingsError, match=f"plain.{kind} has no embeddings: rerun radz screen with --embeddings"
        ):
            read_embeddings(plain)
        with pytest.raises(OutputMismatch, match="without embeddings"):
            ResultWriter(plain, classes, embeddings=True, model=model)
    assert issubclass(EmbeddingsError, RadzError) and issubclass(EmbeddingsError, ValueError)

    # A garbled base64 value (CSV row 2), a vector of another dimension (JSONL row 3).
    good = tmp_path / "good.csv"
    _write(good, screened)
    with open(good, newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows[1]["embedding_f16"] = rows[1]["embedding_f16"][:-10] + "!!!!"
    garbled = tmp_path / "garbled.csv"
    with open(garbled, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(EmbeddingsError, match=r"garbled.csv: row 2: garbled embedding"):
        read_embeddings(garbled)
    jsonl = tmp_path / "good.jsonl"
    _write(jsonl, screened)
    docs = [json.loads(line) for line in jsonl.read_text().splitlines()]
    docs[2]["embedding_f16"] = encode_f16(np.ones(dim // 2, np.float32))
    short = tmp_path / "short.jsonl"
    short.write_text("".join(json.dumps(d) + "\n" for d in docs))
    with pytest.raises(
        EmbeddingsError, match=rf"short.jsonl: row 3: embedding of dimension {dim // 2}, earlier rows have {dim}"
    ):
        read_embeddings(short)
    docs[2]["embedding_f16"] = encode_f16(np.full(dim, np.inf, np.float32))
    short.write_text("".join(json.dumps(d) + "\n" for d in docs))
    with pytest.raises(EmbeddingsError, match="short.jsonl: row 3: garbled embedding"):
        read_embeddings(short)
    lines = [json.dumps(d) + "\n" for d in docs]
    short.write_text("".join(lines[:1] + ['{"source": "x", "ok": tr\n'] + lines[1:]))
    with pytest.raises(EmbeddingsError, match="short.jsonl: row 2: not a JSON object"):
        read_embeddings(short)
    docs[2]["model"] = {**docs[2]["model"], "hash": "0123456789ab"}
    docs[2]["embedding_f16"] = docs[0]["embedding_f16"]
    short.write_text("".join(json.dumps(d) + "\n" for d in docs))
    with pytest.raises(EmbeddingsError, match="more than one bundle"):
        read_embeddings(short)


def test_parquet_legacy_float_lists_and_ragged(screened, tmp_path):
    """Outputs of radz versions before float16 (a list<double> `embedding`) are read and, when
    appended to, converted; a ragged list column is an error naming the row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    classes, model, thresholds, dim, results = screened
    rows = [r.to_row(classes, model=model, thresholds=thresholds) for r in results]
    vectors = [None if r.embedding is None else [float(v) for v in r.embedding] for r in results]
    legacy = tmp_path / "legacy.parquet"
    table = pa.Table.from_pylist(rows).append_column("embedding", pa.array(vectors, pa.list_(pa.float64())))
    pq.write_table(table, legacy)
    sources, embeddings = _expected(results)
    got = read_embeddings(legacy)
    assert got.sources == sources and np.array_equal(got.embeddings, embeddings)
    _write(legacy, screened, results[:1])  # appended: the column becomes fixed_size_list<float16>
    assert pq.read_schema(legacy).field("embedding").type == pa.list_(pa.float16(), dim)
    assert read_embeddings(legacy).sources == [*sources[1:], sources[0]]

    ok_rows = [i for i, r in enumerate(results) if r.ok]
    vectors[ok_rows[1]] = vectors[ok_rows[1]][:-1]
    ragged = tmp_path / "ragged.parquet"
    pq.write_table(
        pa.Table.from_pylist(rows).append_column("embedding", pa.array(vectors, pa.list_(pa.float64()))), ragged
    )
    with pytest.raises(
        EmbeddingsError, match=rf"ragged.parquet: row {ok_rows[1] + 1}: embedding of dimension {dim - 1}"
    ):
        read_embeddings(ragged)
    vectors[ok_rows[1]] = [float("nan")] * dim
    pq.write_table(
        pa.Table.from_pylist(rows).append_column("embedding", pa.array(vectors, pa.list_(pa.float16(), dim))), ragged
    )
    with pytest.raises(EmbeddingsError, match=rf"ragged.parquet: row {ok_rows[1] + 1}: garbled embedding"):
        read_embeddings(ragged)


def test_legacy_text_outputs_are_read(screened, tmp_path):
    """.csv (space-separated floats) and .jsonl (float lists) of radz versions before float16."""
    classes, model, thresholds, dim, results = screened
    sources, embeddings = _expected(results)
    out = tmp_path / "old.csv"
    rows = []
    for r in results:
        row = r.to_row(classes, model=model, thresholds=thresholds)
        row["embedding"] = "" if r.embedding is None else " ".join(f"{v:.6g}" for v in r.embedding)
        rows.append(row)
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    got = read_embeddings(out)
    assert got.sources == sources
    np.testing.assert_allclose(got.embeddings.astype(np.float32), embeddings.astype(np.float32), atol=1e-3)
    jsonl = tmp_path / "old.jsonl"
    docs = []
    for r in results:
        doc = r.to_json()
        doc["embedding"] = None if r.embedding is None else [float(v) for v in r.embedding]
        docs.append(doc)
    jsonl.write_text("".join(json.dumps(d) + "\n" for d in docs))
    got = read_embeddings(jsonl)
    assert got.sources == sources and np.array_equal(got.embeddings, embeddings)


def test_ray_part_files_carry_float16_embeddings(folder, screened, tmp_path):
    """The Ray pipeline's engine actor (called here without Ray) makes the same fixed_size_list<float16>
    column; read_embeddings reads a folder of part files ('_' files skipped), the last part's row winning."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from radz_engine.bundle.default import default_bundle_path
    from radz_engine.bundle.loader import load_bundle
    from radz_engine.distributed.pipeline import EngineActor, decode_batch

    classes, model, thresholds, dim, results = screened
    files = [r.source for r in results]
    batch = decode_batch(
        {"source": np.array(files, dtype=object)}, load_bundle(default_bundle_path()).preprocess_args()
    )
    actor = EngineActor({"threads": 1, "max_batch_size": 4}, None, True)
    table = actor(batch)
    assert table.schema.field("embedding").type == pa.list_(pa.float16(), dim)
    out = tmp_path / "ray_out"
    out.mkdir()
    pq.write_table(table.slice(0, 3), out / "radz-a_0.parquet")
    pq.write_table(table, out / "radz-b_0.parquet")
    pq.write_table(table.slice(0, 1), out / "_unreadable_radz-c_0.parquet")
    got = read_embeddings(out)
    sources, embeddings = _expected(results)
    assert sorted(got.sources) == sorted(sources) and got.model == model
    order = [got.sources.index(s) for s in sources]
    np.testing.assert_allclose(got.embeddings[order].astype(np.float32), embeddings.astype(np.float32), atol=1e-3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmbeddingsError, match="empty: a folder without Parquet part files"):
        read_embeddings(tmp_path / "empty")


def test_killed_run_reads_back_and_resumes(tmp_path):
    """`radz screen --embeddings` killed (SIGKILL) mid-run into a .parquet: its rows so far are in
    the .partial.jsonl, read back as they are; the resumed run finishes with one row per file."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from PIL import Image

    from radz_train.data.phantom import generate_cases

    images = tmp_path / "images"
    images.mkdir()
    for case in generate_cases(30, seed=5, size=64):
        Image.fromarray(np.round(case.image * 255).astype(np.uint8)).save(images / f"{case.index:03d}.png")
    out = tmp_path / "killed.parquet"
    partial = tmp_path / "killed.parquet.partial.jsonl"
    args = [str(images), "--out", str(out), "--embeddings", "--workers", "0", "--threads", "1", "--batch-size", "1"]
    process = subprocess.Popen(
        [sys.executable, "-m", "radz_engine.cli", "screen", *args, "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if partial.exists() and partial.read_bytes().count(b"\n") >= 3:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    process.wait(60)
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()
    process.stderr.close()
    assert not out.exists()
    before = read_embeddings(out)  # the unfinished run's rows, from its .partial.jsonl
    assert 3 <= len(before) < 30 and before.embeddings.shape[1] == before.dim
    assert screen_main([*args, "--quiet"]) == 0
    after = read_embeddings(out)
    assert len(after) == 30 and _row_count(out, "parquet") == 30 and not partial.exists()
    index = {s: i for i, s in enumerate(after.sources)}
    assert np.array_equal(after.embeddings[[index[s] for s in before.sources]], before.embeddings)
