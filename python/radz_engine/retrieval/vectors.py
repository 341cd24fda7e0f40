"""Nearest-neighbour search over image embeddings: FAISS through the C++ core when the build has
it (`_core.VectorIndex`), else exact numpy search for up to EXACT_LIMIT vectors.

Both answer `search(queries [n, D], k) -> (similarities [n, k], ids [n, k])`, best first, ids -1
where the index holds fewer than k vectors. Similarity is the inner product of L2-normalised
embeddings (cosine).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from radz_engine.errors import SimilarIndexError

__all__ = ["EXACT_LIMIT", "have_faiss", "ExactVectors", "FaissVectors"]

# Exact numpy search answers a query over 100k x 128 fp32 vectors in a few ms; beyond that an
# approximate FAISS index is the tool (and the numpy matrix would not fit many machines).
EXACT_LIMIT = 100_000
_CHUNK = 1024  # queries per matrix product: bounds the [chunk, N] similarity block


def have_faiss() -> bool:
    """Whether the C++ core was built with FAISS (its VectorIndex)."""
    try:
        from radz_engine import _core
    except ImportError:
        return False
    return hasattr(_core, "VectorIndex")


def _check_queries(queries: np.ndarray, dim: int, k: int) -> np.ndarray:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise SimilarIndexError("k", f"must be an integer >= 1, got {k!r}")
    q = np.asarray(queries, dtype=np.float32)
    if q.ndim == 1:
        q = q[None, :]
    if q.ndim != 2 or q.shape[1] != dim:
        raise SimilarIndexError(
            "embedding", f"dimension mismatch: the index holds {dim}-d embeddings, got shape {tuple(np.shape(queries))}"
        )
    if not np.isfinite(q).all():
        raise SimilarIndexError("embedding", "contains NaN or infinity")
    return np.ascontiguousarray(q)


class ExactVectors:
    """Exact inner-product search in numpy (the reference the FAISS path is tested against)."""

    backend = "numpy"
    factory = "Flat"
    search_parameters = ""

    def __init__(self, vectors: np.ndarray) -> None:
        self._x = np.ascontiguousarray(vectors, dtype=np.float32)
        self.dim = int(self._x.shape[1])

    @property
    def size(self) -> int:
        return int(self._x.shape[0])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = _check_queries(queries, self.dim, k)
        if self.size == 0:
            raise SimilarIndexError("index", "the index is empty")
        n, kk = q.shape[0], min(int(k), self.size)
        sims = np.full((n, int(k)), -np.inf, dtype=np.float32)
        ids = np.full((n, int(k)), -1, dtype=np.int64)
        for start in range(0, n, _CHUNK):
            block = q[start : start + _CHUNK] @ self._x.T  # [b, N]
            if kk < self.size:
                top = np.argpartition(-block, kk - 1, axis=1)[:, :kk]
            else:
                top = np.broadcast_to(np.arange(self.size), (block.shape[0], self.size))
            top_sims = np.take_along_axis(block, top, axis=1)
            order = np.lexsort((top, -top_sims), axis=1)  # similarity descending, then lower id
            ids[start : start + block.shape[0], :kk] = np.take_along_axis(top, order, axis=1)
            sims[start : start + block.shape[0], :kk] = np.take_along_axis(top_sims, order, axis=1)
        return sims, ids


class FaissVectors:
    """A `_core.VectorIndex` (FAISS in the C++ core), loaded from or saved to one file."""

    backend = "faiss"

    def __init__(self, index) -> None:
        self._index = index
        self.dim = int(index.dim)

    @classmethod
    def build(
        cls, vectors: np.ndarray, factory: str | None = None, search_parameters: str | None = None, progress=None
    ) -> FaissVectors:
        """Trains (when the factory needs it) and fills an index; `progress(done, total)` is
        called as vectors are added."""
        from radz_engine import _core

        x = np.ascontiguousarray(vectors, dtype=np.float32)
        n, dim = x.shape
        factory = factory or _core.VectorIndex.default_factory(n, dim)
        try:
            index = _core.VectorIndex(dim, factory)
        except ValueError as error:
            raise SimilarIndexError("--factory", str(error)) from None
        if not index.is_trained:
            need = int(index.train_size_hint)
            if n < need:
                raise SimilarIndexError(
                    "--factory", f"'{factory}' needs at least {need} vectors to train, the input has {n}; use 'Flat'"
                )
            # A fixed-seed sample of twice what FAISS asks for (~78 vectors per IVF list; the scale
            # benchmark trained on 64 per list), at least 100k: enough for the quantiser, the same
            # index for the same input, training time bounded by the list count, not the archive.
            # Kinds whose hint undercounts (scalar quantisers: 1) still train on up to 100k.
            take = min(n, max(2 * need, 100_000))
            sample = x if take >= n else x[np.sort(np.random.default_rng(0).choice(n, take, replace=False))]
            try:
                index.train(np.ascontiguousarray(sample))
            except (RuntimeError, ValueError) as error:
                raise SimilarIndexError("--factory", f"'{factory}': FAISS could not train it ({error})") from None
        step = 65_536
        for start in range(0, n, step):
            index.add(x[start : start + step])
            if progress is not None:
                progress(min(start + step, n), n)
        params = (
            _core.VectorIndex.default_search_parameters(factory, n) if search_parameters is None else search_parameters
        )
        if params:
            index.set_search_parameters(params)
        return cls(index)

    @classmethod
    def load(cls, path: Path, search_parameters: str = "") -> FaissVectors:
        from radz_engine import _core

        try:
            index = _core.VectorIndex.load(str(path))
        except (RuntimeError, ValueError) as error:
            raise SimilarIndexError(path, f"cannot be read as a FAISS index ({error})") from None
        if search_parameters:
            index.set_search_parameters(search_parameters)
        return cls(index)

    def save(self, path: Path) -> None:
        self._index.save(str(path))

    def set_search_parameters(self, parameters: str) -> None:
        self._index.set_search_parameters(parameters)

    def add(self, vectors: np.ndarray) -> None:
        self._index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    @property
    def size(self) -> int:
        return int(self._index.size)

    @property
    def factory(self) -> str:
        return str(self._index.factory)

    @property
    def search_parameters(self) -> str:
        return str(self._index.search_parameters)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = _check_queries(queries, self.dim, k)
        if self.size == 0:
            raise SimilarIndexError("index", "the index is empty")
        sims, ids = self._index.search(q, int(k))
        return np.asarray(sims, dtype=np.float32), np.asarray(ids, dtype=np.int64)
