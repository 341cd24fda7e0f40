"""Similar-case retrieval: radz index build/add, radz similar, Engine.similar, neighbours on
results; exact numpy search as the reference of the FAISS path; bad index folders and arguments."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import write_phantom_csv
from radz_engine import SimilarIndexError
from radz_engine.retrieval import index as index_module
from radz_engine.retrieval import open_index
from radz_engine.retrieval.vectors import EXACT_LIMIT, ExactVectors, have_faiss


def _screen(paths, out: Path, extra=()) -> Path:
    from radz_engine.cli.screen import main as screen_main

    assert screen_main([*map(str, paths), "--out", str(out), "--embeddings", "--quiet", "--workers", "0", *extra]) == 0
    return out


@pytest.fixture(scope="module")
def screened(tmp_path_factory):
    """(labels CSV, 64 phantom PNGs, a .parquet screening of the first 48 with embeddings, a
    .jsonl screening of the last 16)."""
    labels = write_phantom_csv(tmp_path_factory.mktemp("phantoms"), 64, seed=21, fmt="png")
    paths = sorted((labels.parent / "images").glob("*.png"))
    out = tmp_path_factory.mktemp("screened")
    return (
        labels,
        paths,
        _screen(paths[:48], out / "first.parquet"),
        _screen(paths[48:], out / "rest.jsonl"),
    )


@pytest.fixture(scope="module")
def built(screened, tmp_path_factory):
    labels, _, first, _ = screened
    out = tmp_path_factory.mktemp("index") / "idx"
    index = index_module.build_index([first], out, labels=labels)
    return out, index


def _reference(vectors: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    sims = q.astype(np.float32) @ vectors.astype(np.float32).T
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def test_exact_vectors_match_brute_force_on_random_data():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((500, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = rng.standard_normal((20, 16)).astype(np.float32)
    sims, ids = ExactVectors(x).search(q, 7)
    np.testing.assert_array_equal(ids, _reference(x, q, 7))
    assert np.all(np.diff(sims, axis=1) <= 0)
    sims, ids = ExactVectors(x[:3]).search(q[0], 5)  # fewer vectors than k: -1 padded
    assert ids.shape == (1, 5) and (ids[0, 3:] == -1).all() and sorted(ids[0, :3]) == [0, 1, 2]


def test_build_search_and_findings_from_labels(screened, built):
    labels, paths, first, _ = screened
    out, index = built
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["count"] == 48 and index.size == 48 and index.dim == manifest["embedding_dim"]
    assert manifest["search"]["backend"] == ("faiss" if have_faiss() else "numpy")
    assert manifest["search"]["factory"] == "Flat"  # 48 images: exact
    assert set(manifest["sha256"]) >= {"vectors.npy", "rows.jsonl"}
    vectors = np.load(out / "vectors.npy")
    assert vectors.dtype == np.float16 and vectors.shape == (48, index.dim)
    # Each indexed image finds itself first; the order equals exact search over the stored vectors.
    found = index.search(vectors[:10], k=5)
    np.testing.assert_array_equal([[n.id for n in row] for row in found], _reference(vectors, vectors[:10], 5))
    for i, row in enumerate(found):
        assert row[0].id == i and row[0].similarity == pytest.approx(1.0, abs=2e-3)
        assert row[0].findings_from == "labels"
    # Findings are the labels CSV's 0/1 columns of that image.
    import csv

    with labels.open() as handle:
        truth = {Path(r["path"]).name: r for r in csv.DictReader(handle)}
    for i in range(48):
        row = index.row(i)
        expected = truth[Path(row["source"]).name]
        skip = {"path", "report", "site", "no_finding"}
        assert sorted(row["findings"]) == sorted(n for n, v in expected.items() if n not in skip and v in ("1", "1.0"))


def test_engine_similar_and_neighbours_on_results(screened, built):
    from radz_engine import Engine

    _, paths, _, _ = screened
    out, _ = built
    with Engine() as engine:
        neighbours = engine.similar(paths[3], k=4, index=out)
        assert len(neighbours) == 4 and Path(neighbours[0].source).name == paths[3].name
        assert neighbours[0].distance == pytest.approx(0.0, abs=2e-3)
        with pytest.raises(SimilarIndexError, match="k"):
            engine.similar(paths[3], k=0, index=out)
        with pytest.raises(SimilarIndexError, match="no index"):
            engine.similar(paths[3])
        engine.attach_index(out, k=2)
        result = engine.classify([paths[50]])[0]
        assert len(result.neighbours) == 2 and {"source", "similarity", "findings"} <= set(result.neighbours[0])
        assert result.to_json()["neighbours"] == result.neighbours
        submitted = engine.submit(paths[5]).result(timeout=30)
        assert Path(submitted.neighbours[0]["source"]).name == paths[5].name


def test_add_appends_and_skips_known_sources(screened, built, tmp_path):
    labels, _, first, rest = screened
    out = tmp_path / "idx"
    shutil.copytree(built[0], out)
    index, added, skipped = index_module.add_to_index(out, [rest, first], labels=labels)
    assert (added, skipped) == (16, 48) and index.size == 64
    reopened = open_index(out)  # hashes rewritten with the new files
    assert reopened.size == 64 and json.loads((out / "manifest.json").read_text())["count"] == 64
    vectors = np.load(out / "vectors.npy")
    found = reopened.search(vectors[60], k=3)[0]
    assert found[0].id == 60


def test_cli_build_add_info_similar(screened, tmp_path, capsys):
    from radz_engine.cli import main

    labels, paths, first, rest = screened
    out = tmp_path / "cli_idx"
    assert main(["index", "build", str(first), "--out", str(out), "--labels", str(labels), "--quiet"]) == 0
    assert "48 images" in capsys.readouterr().out
    assert main(["index", "build", str(first), "--out", str(out)]) == 2  # exists
    assert "--overwrite" in capsys.readouterr().err
    assert main(["index", "add", str(out), str(rest), "--quiet"]) == 0
    assert "added 16 images" in capsys.readouterr().out
    assert main(["index", "info", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 64
    assert (
        main(["similar", str(paths[7]), str(tmp_path / "missing.png"), "--index", str(out), "--k", "3", "--json"]) == 0
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 2 and Path(lines[0]["neighbours"][0]["source"]).name == paths[7].name
    assert len(lines[0]["neighbours"]) == 3 and lines[1]["error"]
    with pytest.raises(SystemExit) as exited:
        main(["similar", str(paths[7]), "--index", str(out), "--k", "0"])
    assert exited.value.code == 2 and "--k" in capsys.readouterr().err
    assert main(["similar", str(paths[7]), "--index", str(out)]) == 0
    assert "| 1 |" in capsys.readouterr().out


# -- bad input -----------------------------------------------------------------------------------
def test_missing_or_modified_files_are_named(built, tmp_path):
    for name in ("vectors.npy", "rows.jsonl"):
        copy = tmp_path / f"missing_{name}"
        shutil.copytree(built[0], copy)
        (copy / name).unlink()
        with pytest.raises(SimilarIndexError, match=f"{name}: missing"):
            open_index(copy)
        copy = tmp_path / f"modified_{name}"
        shutil.copytree(built[0], copy)
        with (copy / name).open("ab") as handle:
            handle.write(b"\n")
        with pytest.raises(SimilarIndexError, match=f"{name}: modified"):
            open_index(copy)
    with pytest.raises(SimilarIndexError, match="manifest.json: missing"):
        open_index(tmp_path)
    with pytest.raises(SimilarIndexError, match="no such index folder"):
        open_index(tmp_path / "nowhere")


def test_dimension_mismatch_k_and_other_bundle(built, tmp_path):
    out, index = built
    with pytest.raises(SimilarIndexError, match="dimension mismatch"):
        index.search(np.ones(index.dim + 1, dtype=np.float32), 3)
    with pytest.raises(SimilarIndexError, match="k: must be"):
        index.search(np.ones(index.dim, dtype=np.float32), 0)
    with pytest.raises(SimilarIndexError, match="NaN"):
        index.search(np.full(index.dim, np.nan, dtype=np.float32), 3)
    # A vectors.npy whose shape disagrees with the manifest (rewritten consistently otherwise).
    copy = tmp_path / "wrongdim"
    shutil.copytree(out, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["embedding_dim"] = index.dim * 2
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SimilarIndexError, match="vectors.npy: dimension mismatch"):
        open_index(copy)
    # An index built with another bundle is refused, naming both.
    other = tmp_path / "other"
    shutil.copytree(out, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["bundle"]["hash"] = "0123456789ab"
    (other / "manifest.json").write_text(json.dumps(manifest))
    from radz_engine import Engine

    with Engine() as engine:
        with pytest.raises(SimilarIndexError, match="built with bundle .*0123456789ab"):
            engine.attach_index(other)


def test_empty_and_unmatched_inputs(screened, tmp_path):
    labels, paths, first, _ = screened
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    failed = tmp_path / "failed.jsonl"
    from radz_engine.cli.screen import main as screen_main

    screen_main([str(bad), "--out", str(failed), "--embeddings", "--quiet", "--workers", "0"])
    with pytest.raises(SimilarIndexError, match="no screened images"):
        index_module.build_index([failed], tmp_path / "empty")
    other_labels = tmp_path / "labels.csv"
    other_labels.write_text("path,findings\nnowhere/1.png,effusion\n")
    with pytest.raises(SimilarIndexError, match="matches none"):
        index_module.build_index([first], tmp_path / "unmatched", labels=other_labels)
    no_path = tmp_path / "nopath.csv"
    no_path.write_text("file,findings\na.png,x\n")
    with pytest.raises(SimilarIndexError, match="'path' column"):
        index_module.build_index([first], tmp_path / "nopath", labels=no_path)
    assert not (tmp_path / "empty").exists() and not (tmp_path / "unmatched").exists()


def test_without_faiss_exact_numpy_then_a_clear_limit(screened, tmp_path, monkeypatch, caplog):
    _, _, first, _ = screened
    monkeypatch.setattr(index_module, "have_faiss", lambda: False)
    with caplog.at_level("WARNING"):
        index = index_module.build_index([first], tmp_path / "np_idx")
    assert index.backend == "numpy" and "no FAISS" in caplog.text
    assert "index.faiss" not in json.loads((tmp_path / "np_idx" / "manifest.json").read_text())["sha256"]
    with pytest.raises(SimilarIndexError, match="needs FAISS"):
        index_module.build_index([first], tmp_path / "np_hnsw", factory="HNSW32,Flat")
    big = np.zeros((EXACT_LIMIT + 1, 4), dtype=np.float16)
    with pytest.raises(SimilarIndexError, match="100,000"):
        index_module._make_searcher(big, None, None)


@pytest.mark.skipif(not have_faiss(), reason="the extension was built without FAISS")
def test_faiss_and_numpy_indexes_agree(screened, built, tmp_path, monkeypatch):
    _, _, first, _ = screened
    faiss_index = built[1]
    monkeypatch.setattr(index_module, "have_faiss", lambda: False)
    numpy_index = index_module.build_index([first], tmp_path / "np_idx")
    vectors = np.load(built[0] / "vectors.npy").astype(np.float32)
    rng = np.random.default_rng(3)
    q = vectors[rng.choice(len(vectors), 8)] + rng.normal(0, 0.05, (8, vectors.shape[1])).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    a = faiss_index.search(q, 6)
    b = numpy_index.search(q, 6)
    for ra, rb in zip(a, b):
        np.testing.assert_allclose([n.similarity for n in ra], [n.similarity for n in rb], atol=1e-4)


def test_serve_puts_similar_cases_in_the_sr_and_the_record(built, tmp_path):
    """radz serve --similar-index: each SR carries a "Similar indexed cases" container (sources
    and findings only), the results record the neighbours; the SR stays a valid document."""
    pytest.importorskip("pynetdicom")
    pytest.importorskip("highdicom")
    import subprocess

    from pydicom import dcmread
    from pynetdicom import AE

    from radz_engine.serve.config import ConfigError, ServeConfig
    from radz_engine.serve.server import RadzServer
    from serve_peers import phantom_dicoms

    with pytest.raises(ConfigError, match="--similar-index"):
        ServeConfig(tmp_path / "w0", similar_index=tmp_path)
    with pytest.raises(ConfigError, match="--neighbours"):
        ServeConfig(tmp_path / "w0", similar_index=built[0], neighbours=0)
    config = ServeConfig(
        tmp_path / "work", port=0, http_port=None, research_use=True, similar_index=built[0], neighbours=2
    )
    source = dcmread(phantom_dicoms(tmp_path / "d", 1, seed=4)[0])
    server = RadzServer(config).start()
    try:
        ae = AE(ae_title="TESTSCU")
        ae.add_requested_context(str(source.SOPClassUID))
        assoc = ae.associate("127.0.0.1", server.port, ae_title="RADZ")
        assert assoc.is_established
        assert int(assoc.send_c_store(source).Status) == 0
        assoc.release()
        assert server.wait_idle(60)
        (sr_file,) = (tmp_path / "work" / "spool" / "sr").glob("*.dcm")
        sr = dcmread(sr_file)
    finally:
        server.stop()
    (similar,) = [
        item
        for item in sr.ContentSequence
        if item.ValueType == "CONTAINER" and item.ConceptNameCodeSequence[0].CodeMeaning == "Similar indexed cases"
    ]
    texts = [item.TextValue for item in similar.ContentSequence]
    # Named by index row, never by file path (another study's path may carry its patient's name).
    assert len(texts) == 2 and all(t.startswith("index case ") and "similarity" in t for t in texts)
    assert not any(".png" in t for t in texts)
    (record,) = [
        json.loads(line) for line in (tmp_path / "work" / "results" / "results.jsonl").read_text().splitlines()
    ]
    assert len(record["neighbours"]) == 2 and record["neighbours"][0]["findings_from"] == "labels"
    assert all("source" not in n and isinstance(n["id"], int) for n in record["neighbours"])
    if shutil.which("dsrdump"):
        dump = subprocess.run(["dsrdump", str(sr_file)], capture_output=True, text=True, timeout=60)
        assert dump.returncode == 0 and "Similar indexed cases" in dump.stdout, dump.stderr


def test_labels_match_sources_screened_from_another_folder(screened, tmp_path, monkeypatch):
    """Relative sources written from the phantoms' folder still find their labels when the index
    is built elsewhere (matched by their last two path parts)."""
    labels, paths, _, _ = screened
    monkeypatch.chdir(labels.parent)
    out = _screen([f"images/{p.name}" for p in paths[:6]], tmp_path / "relative.jsonl")
    monkeypatch.chdir(tmp_path)
    index = index_module.build_index([out], tmp_path / "rel_idx", labels=labels)
    assert [index.row(i)["findings_from"] for i in range(index.size)] == ["labels"] * 6


@pytest.mark.skipif(not have_faiss(), reason="the extension was built without FAISS")
def test_trained_factories_need_enough_images_and_warn_after_growth(screened, tmp_path, caplog):
    _, _, first, _ = screened
    with pytest.raises(SimilarIndexError, match=r"--factory: 'IVF16,Flat' needs at least \d+ vectors"):
        index_module.build_index([first], tmp_path / "ivf", factory="IVF16,Flat")
    with pytest.raises(SimilarIndexError, match="--factory"):
        index_module.build_index([first], tmp_path / "bad", factory="NoSuchIndex")
    from radz_engine.retrieval.vectors import FaissVectors

    rng = np.random.default_rng(5)
    x = rng.standard_normal((400, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ivf = FaissVectors.build(x, "IVF4,Flat")
    assert ivf.size == 400 and ivf.factory.startswith("IVF4")
    sims, ids = ivf.search(x[:5], 3)
    assert (ids[:, 0] == np.arange(5)).all()  # nprobe from the defaults finds each vector itself
    with caplog.at_level("WARNING"):
        index_module._follow_default_parameters(ivf, 400, 2000, built=400)
    assert "rebuild" in caplog.text


def test_labels_never_go_to_another_existing_file(tmp_path):
    """The last-two-parts fallback applies only to a source that is not a file here: site A's
    images/1.png never takes site B's images/1.png label."""
    from radz_engine.retrieval.labels import match_findings, read_findings

    for site in ("siteA", "siteB"):
        (tmp_path / site / "images").mkdir(parents=True)
        (tmp_path / site / "images" / "1.png").write_bytes(b"x")
    labels = tmp_path / "siteB" / "labels.csv"
    labels.write_text("path,findings\nimages/1.png,pneumothorax\n")
    found = match_findings(
        [str(tmp_path / "siteA" / "images" / "1.png"), str(tmp_path / "siteB" / "images" / "1.png"), "images/1.png"],
        read_findings(labels),
        base=tmp_path / "elsewhere",
    )
    assert found == [None, ["pneumothorax"], ["pneumothorax"]]


def test_overwrite_replaces_only_an_index_and_a_crash_mid_swap_is_recovered(screened, built, tmp_path):
    _, _, first, _ = screened
    other = tmp_path / "results"
    other.mkdir()
    (other / "keep.parquet").write_bytes(b"precious")
    for overwrite in (False, True):
        with pytest.raises(SimilarIndexError, match="not a similar-case index folder"):
            index_module.build_index([first], other, overwrite=overwrite)
    assert (other / "keep.parquet").read_bytes() == b"precious"
    # A crash between the two renames of an update leaves .NAME.old: the next open restores it.
    idx = tmp_path / "idx"
    shutil.copytree(built[0], idx)
    idx.rename(tmp_path / ".idx.old")
    assert open_index(idx).size == 48 and not (tmp_path / ".idx.old").exists()


def test_a_failing_similar_search_costs_only_the_neighbours(screened, built, caplog):
    from radz_engine import Engine

    _, paths, _, _ = screened
    with Engine() as engine:
        index = open_index(built[0])
        engine.attach_index(index, k=2)
        index._vectors = ExactVectors(np.ones((3, 5), dtype=np.float32))  # a broken index: wrong dimension
        with caplog.at_level("WARNING"):
            result = engine.classify([paths[1]])[0]
    assert result.ok and result.scores and result.neighbours == []
    assert "similar-case search failed" in caplog.text
