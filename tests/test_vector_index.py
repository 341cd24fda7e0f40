"""The C++ VectorIndex (FAISS, inner product) through the binding: exact search equals numpy's
argsort on fresh random data; fp16 input, errors, save/load."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from radz_engine import _core

pytestmark = pytest.mark.skipif(
    not getattr(_core, "HAVE_FAISS", False),
    reason="radz_engine._core was built without FAISS, so it has no VectorIndex (install libfaiss-dev and rebuild)",
)

D = 32


def unit(a: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng()  # fresh data each run: exactness must not depend on a seed


def numpy_top_k(base: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    s = q.astype(np.float64) @ base.astype(np.float64).T
    ids = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, ids, axis=1), ids


def test_exact_search_equals_numpy(rng):
    base = unit(rng.standard_normal((2000, D)))
    q = unit(rng.standard_normal((50, D)))
    index = _core.VectorIndex(D)
    assert (index.factory, index.dim, index.size, len(index)) == ("Flat", D, 0, 0)
    assert index.is_trained and index.train_size_hint == 0 and index.search_parameters == ""
    index.add(base[:700])
    index.add(base[700:])
    assert index.size == 2000
    sims, ids = index.search(q, 10)
    want_sims, want_ids = numpy_top_k(base, q, 10)
    assert sims.dtype == np.float32 and ids.dtype == np.int64 and sims.shape == ids.shape == (50, 10)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(sims, want_sims, atol=1e-5)
    # A 1-D query is one row; a stored vector finds itself first.
    s1, i1 = index.search(base[1234], 3)
    assert i1.shape == (1, 3) and i1[0, 0] == 1234 and s1[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert index.memory_bytes() >= 2000 * D * 4
    assert "Flat" in repr(index) and "size=2000" in repr(index)


def test_fewer_than_k_padded():
    index = _core.VectorIndex(2)
    index.add(np.eye(2, dtype=np.float32))
    sims, ids = index.search(np.array([1.0, 0.0], np.float32), 4)
    assert ids.tolist() == [[0, 1, -1, -1]]
    assert sims[0, 0] == 1.0 and np.isneginf(sims[0, 2:]).all()


def test_fp16_and_non_contiguous_inputs(rng):
    base = unit(rng.standard_normal((300, D)))
    q = unit(rng.standard_normal((8, D)))
    a = _core.VectorIndex(D)
    a.add(base.astype(np.float16))  # converted with a copy, as screening stores embeddings
    b = _core.VectorIndex(D)
    b.add(base.astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(a.search(q.astype(np.float16), 5)[1], b.search(q.astype(np.float16), 5)[1])
    wide = np.zeros((8, 2 * D), np.float64)
    wide[:, ::2] = q
    np.testing.assert_array_equal(a.search(wide[:, ::2], 5)[1], a.search(q, 5)[1])  # strided float64


def test_approximate_index_recall_and_params(rng):
    centres = unit(rng.standard_normal((20, D)))
    base = unit(centres[rng.integers(0, 20, 3000)] + 0.15 * rng.standard_normal((3000, D)))
    q = unit(centres[rng.integers(0, 20, 50)] + 0.15 * rng.standard_normal((50, D)))
    index = _core.VectorIndex(D, "IVF16,Flat")
    assert not index.is_trained and index.train_size_hint == 16 * 39
    with pytest.raises(RuntimeError, match="not trained"):
        index.add(base)
    index.train(base)
    index.add(base)
    index.set_search_parameters(_core.VectorIndex.default_search_parameters("IVF16,Flat", 3000))
    assert index.search_parameters == "nprobe=16"
    _, ids = index.search(q, 10)
    _, want = numpy_top_k(base, q, 10)
    hits = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids.tolist(), want.tolist())])
    assert hits >= 0.95  # nprobe 16 of 16 lists: every list is probed


def test_default_factory():
    assert _core.VectorIndex.default_factory(1000, 128) == "Flat"
    big = _core.VectorIndex.default_factory(1_000_000, 128)
    assert big == "IVF4096,Flat"
    params = _core.VectorIndex.default_search_parameters(big, 1_000_000)
    assert params == "nprobe=16"
    index = _core.VectorIndex(128, big)
    index.set_search_parameters(params)
    assert index.search_parameters == params
    assert _core.VectorIndex.default_search_parameters("Flat", 10) == ""


def test_errors():
    with pytest.raises(ValueError, match="^dim:"):
        _core.VectorIndex(0)
    with pytest.raises(ValueError, match="^factory: FAISS cannot build 'Nope'"):
        _core.VectorIndex(8, "Nope")
    index = _core.VectorIndex(4)
    with pytest.raises(RuntimeError, match="the index is empty"):
        index.search(np.ones(4, np.float32), 1)
    with pytest.raises(ValueError, match=r"^x: must have shape \[N, 4\], got \(3,\)"):
        index.add(np.ones(3, np.float32))
    with pytest.raises(ValueError, match="^x: must have shape"):
        index.add(np.ones((2, 5), np.float32))
    with pytest.raises(ValueError, match="^x: must be a float array"):
        index.add(np.ones((2, 4), np.int64))
    with pytest.raises(ValueError, match="^x: must be a float array, got dtype <U"):
        index.add("not an array")
    bad = np.ones((2, 4), np.float32)
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"^x: element \[1, 2\] is not finite"):
        index.add(bad)
    index.add(np.eye(4, dtype=np.float32))
    with pytest.raises(ValueError, match="^k:"):
        index.search(np.ones(4, np.float32), 0)
    with pytest.raises(ValueError, match="^q: must have shape"):
        index.search(np.ones((1, 3), np.float32), 1)
    with pytest.raises(ValueError, match="^q: element"):
        index.search(np.full(4, np.inf, np.float32), 1)
    with pytest.raises(ValueError, match="^params: cannot set 'efSearch=5'"):
        index.set_search_parameters("efSearch=5")
    with pytest.raises(RuntimeError, match="already trained"):
        index.train(np.eye(4, dtype=np.float32))
    with pytest.raises(ValueError, match="^x: 'IVF8,Flat' needs at least 312 training vectors, got 4"):
        _core.VectorIndex(4, "IVF8,Flat").train(np.eye(4, dtype=np.float32))
    with pytest.raises(ValueError, match="^n:"):
        _core.VectorIndex.set_num_threads(0)


def test_save_load(tmp_path, rng):
    base = unit(rng.standard_normal((500, D)))
    q = unit(rng.standard_normal((10, D)))
    index = _core.VectorIndex(D, "HNSW16,Flat")
    index.add(base)
    index.set_search_parameters("efSearch=77")
    path = tmp_path / "index.faiss"
    index.save(str(path))
    assert path.exists() and not (tmp_path / "index.faiss.tmp").exists()
    loaded = _core.VectorIndex.load(str(path))
    assert (loaded.factory, loaded.dim, loaded.size) == ("HNSW16,Flat", D, 500)
    assert loaded.search_parameters == "efSearch=77"
    for a, b in zip(index.search(q, 7), loaded.search(q, 7)):
        np.testing.assert_array_equal(a, b)
    loaded.add(base[:3])  # a loaded index keeps growing: ids continue
    assert loaded.search(base[1], 1)[1][0, 0] in (1, 501)


def test_load_errors(tmp_path):
    missing = tmp_path / "missing.faiss"
    with pytest.raises(ValueError, match=f"^path: no index file at '{missing}'"):
        _core.VectorIndex.load(str(missing))
    corrupt = tmp_path / "corrupt.faiss"
    corrupt.write_bytes(b"IxFI" + bytes(range(256)) * 4)
    with pytest.raises(ValueError, match=f"^path: '{corrupt}' is not a readable FAISS index"):
        _core.VectorIndex.load(str(corrupt))
    index = _core.VectorIndex(8)
    index.add(unit(np.random.default_rng(0).standard_normal((50, 8))))
    truncated = tmp_path / "truncated.faiss"
    index.save(str(truncated))
    truncated.write_bytes(truncated.read_bytes()[:700])
    with pytest.raises(ValueError, match="^path: .*truncated.faiss"):
        _core.VectorIndex.load(str(truncated))
    with pytest.raises(RuntimeError, match="^path: cannot save the index to"):
        index.save(str(tmp_path / "no" / "such" / "dir" / "x.faiss"))


def test_searches_from_threads_during_add(rng):
    base = unit(rng.standard_normal((4000, D)))
    index = _core.VectorIndex(D)
    index.add(base[:1000])
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader(offset: int) -> None:
        try:
            while not stop.is_set():
                _, ids = index.search(base[offset : offset + 2], 3)
                assert ids[0, 0] == offset and ids[1, 0] == offset + 1
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=reader, args=(i * 10,)) for i in range(3)]
    for t in threads:
        t.start()
    for lo in range(1000, 4000, 500):
        index.add(base[lo : lo + 500])
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert index.size == 4000
