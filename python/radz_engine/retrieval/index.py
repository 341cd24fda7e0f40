"""`SimilarIndex`: a folder of screened image embeddings with their sources and findings, searched
for the images most similar to a query ("show me confirmed cases that look like this one").

    INDEX/manifest.json   format, bundle {name, version, hash}, embedding_dim, count, search
                          {backend, factory, search_parameters}, classes, inputs, sha256 per file
    INDEX/vectors.npy     fp16 [count, D]: the embeddings (the truth: exact search, rebuilds)
    INDEX/rows.jsonl      line i = vector id i: {"source", "findings", "findings_from", "positives", "scores"}
    INDEX/index.faiss     the FAISS index (when the core was built with FAISS)

Rows hold what screening wrote (file sources, scores) and label findings, never DICOM patient or
study attributes. Findings come from a labels CSV when one is given ("findings_from": "labels"),
else from the screening call itself ("screen": the model's own positives, not confirmed).
Every change writes a complete new folder and swaps it in, so a crash leaves the old index or
the new one; opening checks every file's SHA-256 and the shapes, and names the file at fault.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from radz_engine.bundle.format import sha256_file
from radz_engine.errors import SimilarIndexError
from radz_engine.retrieval.labels import match_findings, read_findings
from radz_engine.retrieval.vectors import EXACT_LIMIT, ExactVectors, FaissVectors, have_faiss

__all__ = ["Neighbour", "SimilarIndex", "build_index", "add_to_index", "open_index", "FORMAT", "FORMAT_VERSION"]

log = logging.getLogger(__name__)

FORMAT = "radz-similar-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
VECTORS = "vectors.npy"
ROWS = "rows.jsonl"
FAISS_FILE = "index.faiss"


@dataclass
class Neighbour:
    """One similar indexed image.

    Attributes:
        id: its row in the index.
        source: the file it was screened from (as given to `radz screen`).
        similarity: cosine similarity of the embeddings (1 = identical direction).
        findings: its findings (confirmed labels when the index was built with --labels).
        findings_from: "labels" (a labels CSV) or "screen" (the model's positives at indexing).
    """

    id: int
    source: str
    similarity: float
    findings: list[str] = field(default_factory=list)
    findings_from: str = "screen"

    @property
    def distance(self) -> float:
        """1 - cosine similarity (0 = identical direction)."""
        return 1.0 - self.similarity

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "source": self.source,
            "similarity": round(self.similarity, 6),
            "distance": round(self.distance, 6),
            "findings": list(self.findings),
            "findings_from": self.findings_from,
        }


def _describe(bundle: dict) -> str:
    return f"{bundle.get('name') or '?'} {bundle.get('version') or ''} (hash {bundle.get('hash') or '?'})".replace(
        "  ", " "
    )


class SimilarIndex:
    """An opened index folder (see the module docstring): search it with `search`."""

    def __init__(self, path: Path, manifest: dict, vectors, rows: list[bytes]) -> None:
        self.path = Path(path)
        self.manifest = manifest
        self._vectors = vectors
        self._rows = rows  # raw JSON lines, parsed only for the neighbours returned

    # -- facts -----------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return len(self._rows)

    @property
    def dim(self) -> int:
        return int(self.manifest["embedding_dim"])

    @property
    def bundle(self) -> dict:
        """{"name", "version", "hash"} of the bundle whose embeddings the index holds."""
        return dict(self.manifest["bundle"])

    @property
    def backend(self) -> str:
        """ "faiss" or "numpy" (exact), as searched now."""
        return self._vectors.backend

    @property
    def factory(self) -> str:
        return self._vectors.factory

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return (
            f"SimilarIndex({str(self.path)!r}, {self.size} images, {self.backend} {self.factory!r}, "
            f"bundle {_describe(self.bundle)})"
        )

    def check_bundle(self, identity: dict) -> None:
        """Refuse an index made with another bundle: its embeddings live in another space."""
        mine = self.bundle
        if mine.get("hash") != identity.get("hash"):
            raise SimilarIndexError(
                self.path / MANIFEST,
                f"the index was built with bundle {_describe(mine)}, not {_describe(identity)}: "
                "embeddings of different bundles are not comparable; rebuild it (radz index build) "
                "from a screening run of this bundle",
            )

    def row(self, i: int) -> dict:
        """The stored row of vector id i."""
        return json.loads(self._rows[i])

    # -- search ----------------------------------------------------------------------------------
    def search(self, embeddings: np.ndarray, k: int = 10) -> list[list[Neighbour]]:
        """The k most similar indexed images of each embedding ([D] or [n, D]), best first; fewer
        when the index holds fewer than k images."""
        if isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k > self.size:
            k = max(self.size, 1)  # never allocate [n, k] for a k beyond what the index holds
        sims, ids = self._vectors.search(embeddings, k)
        out = []
        for sim_row, id_row in zip(sims, ids):
            found = []
            for sim, i in zip(sim_row.tolist(), id_row.tolist()):
                if i < 0:
                    continue
                row = self.row(i)
                found.append(
                    Neighbour(
                        id=int(i),
                        source=row["source"],
                        similarity=float(sim),
                        findings=list(row.get("findings") or []),
                        findings_from=row.get("findings_from", "screen"),
                    )
                )
            out.append(found)
        return out


# -- opening -------------------------------------------------------------------------------------
def _read_manifest(path: Path) -> dict:
    file = path / MANIFEST
    if not path.is_dir():
        raise SimilarIndexError(path, "no such index folder (build one with radz index build)")
    if not file.is_file():
        raise SimilarIndexError(file, "missing: not a similar-case index folder, or a build that did not finish")
    try:
        manifest = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SimilarIndexError(file, f"cannot be read as JSON ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise SimilarIndexError(file, f"not a {FORMAT} manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise SimilarIndexError(
            file, f"format_version {manifest.get('format_version')!r}; this radz_engine reads {FORMAT_VERSION}"
        )
    for key in ("bundle", "embedding_dim", "count", "search", "sha256"):
        if key not in manifest:
            raise SimilarIndexError(file, f"no {key!r} entry")
    return manifest


def _verify_files(path: Path, manifest: dict) -> None:
    for name, digest in manifest["sha256"].items():
        file = path / name
        if not file.is_file():
            raise SimilarIndexError(file, "missing (the manifest lists it); rebuild the index")
        if sha256_file(file) != digest:
            raise SimilarIndexError(file, "modified since the index was built (SHA-256 differs); rebuild the index")


def _read_vectors(path: Path, manifest: dict) -> np.ndarray:
    file = path / VECTORS
    try:
        # Memory-mapped: a FAISS-searched index only needs the shape checked here.
        vectors = np.load(file, allow_pickle=False, mmap_mode="r")
    except (OSError, ValueError) as error:
        raise SimilarIndexError(file, f"cannot be read as .npy ({error})") from None
    expected = (int(manifest["count"]), int(manifest["embedding_dim"]))
    if vectors.ndim != 2 or tuple(vectors.shape) != expected:
        raise SimilarIndexError(
            file, f"dimension mismatch: shape {tuple(vectors.shape)}, the manifest says {expected} (count, dim)"
        )
    return vectors


def _read_rows(path: Path, count: int) -> list[bytes]:
    file = path / ROWS
    try:
        rows = [line for line in file.read_bytes().split(b"\n") if line.strip()]
    except OSError as error:
        raise SimilarIndexError(file, f"cannot be read ({error})") from None
    if len(rows) != count:
        raise SimilarIndexError(file, f"{len(rows)} rows, the manifest says {count}")
    return rows


def _searcher(path: Path, manifest: dict, vectors: np.ndarray):
    search = manifest["search"]
    count = int(manifest["count"])
    if search.get("backend") == "faiss":
        if have_faiss():
            found = FaissVectors.load(path / FAISS_FILE, search.get("search_parameters") or "")
            if found.size != count or found.dim != int(manifest["embedding_dim"]):
                raise SimilarIndexError(
                    path / FAISS_FILE,
                    f"holds {found.size} x {found.dim}-d vectors, the manifest says {count} x "
                    f"{manifest['embedding_dim']}-d",
                )
            return found
        if count > EXACT_LIMIT:
            raise SimilarIndexError(
                path,
                f"built with FAISS ({search.get('factory')}, {count} images) but this radz_engine has no FAISS; exact "
                f"numpy search serves up to {EXACT_LIMIT:,} images: rebuild the extension with libfaiss-dev",
            )
        log.warning("radz_engine: %s: no FAISS in this build; searching its %d images exactly in numpy", path, count)
    return ExactVectors(vectors)


def open_index(path: str | Path, *, verify: bool = True) -> SimilarIndex:
    """Open an index folder. verify: check every file's SHA-256 against the manifest."""
    path = Path(path)
    if not path.exists():
        _recover(path)
    manifest = _read_manifest(path)
    if verify:
        _verify_files(path, manifest)
    vectors = _read_vectors(path, manifest)
    rows = _read_rows(path, int(manifest["count"]))
    return SimilarIndex(path, manifest, _searcher(path, manifest, vectors), rows)


# -- building ------------------------------------------------------------------------------------
@dataclass
class _Input:
    sources: list[str]
    embeddings: np.ndarray  # fp16 [n, D]
    rows: list[dict]  # {"source", "findings", "findings_from", "positives", "scores"}
    model: dict
    classes: list[str]
    description: dict


def _hash_input(out: Path) -> str | None:
    """SHA-256 of a screening output file (None for a folder of Ray part files)."""
    return sha256_file(out) if out.is_file() else None


def _read_inputs(outputs: Sequence[str | Path], labels: str | Path | None) -> _Input:
    from radz_engine.runtime.embeddings import read_embeddings

    if not outputs:
        raise SimilarIndexError("SCREEN_OUTPUT", "give at least one radz screen output written with --embeddings")
    findings = read_findings(labels) if labels is not None else None
    by_source: dict[str, tuple[np.ndarray, dict]] = {}
    model: dict | None = None
    classes: list[str] = []
    described = []
    for out in outputs:
        screened = read_embeddings(out)
        if model is not None and screened.model.get("hash") != model.get("hash"):
            raise SimilarIndexError(
                out, f"screened with bundle {_describe(screened.model)}, the other inputs with {_describe(model)}"
            )
        model, classes = dict(screened.model), list(screened.classes)
        labelled = (
            match_findings(screened.sources, findings) if findings is not None else [None] * len(screened.sources)
        )
        for i, source in enumerate(screened.sources):
            row = screened.rows[i]
            from_labels = labelled[i] is not None
            by_source[source] = (
                screened.embeddings[i],
                {
                    "source": source,
                    "findings": labelled[i] if from_labels else list(row.get("positives") or []),
                    "findings_from": "labels" if from_labels else "screen",
                    "positives": list(row.get("positives") or []),
                    "scores": {k: round(float(v), 6) for k, v in (row.get("scores") or {}).items()},
                },
            )
        described.append({"path": str(out), "images": len(screened.sources), "sha256": _hash_input(Path(out))})
    if findings is not None:
        unmatched = sum(1 for _, row in by_source.values() if row["findings_from"] != "labels")
        if unmatched == len(by_source) and by_source:
            raise SimilarIndexError(
                f"--labels {labels}",
                "matches none of the screened sources (paths are resolved against the CSV's folder and the current "
                "folder)",
            )
        if unmatched:
            log.warning(
                "radz index: %d of %d images are not in --labels: their findings are the model's",
                unmatched,
                len(by_source),
            )
    sources = list(by_source)
    if not sources:
        raise SimilarIndexError(outputs[0], "no screened images with embeddings (every row failed?)")
    embeddings = np.stack([by_source[s][0] for s in sources]).astype(np.float16)
    return _Input(
        sources, embeddings, [by_source[s][1] for s in sources], model or {}, classes, {"screened": described}
    )


def _make_searcher(vectors: np.ndarray, factory: str | None, progress: Callable | None):
    n = len(vectors)
    if have_faiss():
        return FaissVectors.build(vectors, factory, progress=progress)
    if factory not in (None, "Flat"):
        raise SimilarIndexError("--factory", f"'{factory}' needs FAISS, and this radz_engine was built without it")
    if n > EXACT_LIMIT:
        raise SimilarIndexError(
            "SCREEN_OUTPUT",
            f"{n:,} images: without FAISS in this build exact numpy search serves up to {EXACT_LIMIT:,}; rebuild the "
            "extension with libfaiss-dev (apt-get install libfaiss-dev)",
        )
    log.warning(
        "radz_engine: no FAISS in this build; the index is searched exactly in numpy (up to %d images)", EXACT_LIMIT
    )
    return ExactVectors(vectors)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _old_copy(target: Path) -> Path:
    return target.with_name(f".{target.name}.old")


def _recover(target: Path) -> None:
    """A crash between the two renames of a swap left the previous index as .NAME.old: put it back."""
    old = _old_copy(target)
    if not target.exists() and old.is_dir() and (old / MANIFEST).is_file():
        old.rename(target)
        log.warning("radz index: %s: restored the previous index (an update was interrupted)", target)


@contextmanager
def _locked(target: Path):
    """One writer per index folder at a time (build / add from several processes): a lock file
    beside the folder, held from reading the old index to swapping in the new one."""
    import fcntl

    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_name(f".{target.name}.lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            _recover(target)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_folder(
    target: Path, vectors: np.ndarray, rows: list[bytes], searcher, manifest: dict, *, replace: bool
) -> None:
    """Write a complete index into a fresh folder beside `target` (files synced to disk), then swap
    it in; the previous one stays as .NAME.old until the new one is in place (restored if not)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    old = _old_copy(target)
    moved = False
    try:
        np.save(tmp / VECTORS, np.ascontiguousarray(vectors, dtype=np.float16))
        with (tmp / ROWS).open("wb") as handle:
            for line in rows:
                handle.write(line + b"\n")
        files = [VECTORS, ROWS]
        if searcher.backend == "faiss":
            searcher.save(tmp / FAISS_FILE)
            files.append(FAISS_FILE)
        manifest["sha256"] = {name: sha256_file(tmp / name) for name in files}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        for name in [*files, MANIFEST]:
            _fsync(tmp / name)
        _fsync(tmp)
        if replace and target.exists():
            if old.exists():
                shutil.rmtree(old)
            target.rename(old)
            moved = True
        tmp.rename(target)
        _fsync(target.parent)
        if moved:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if moved and not target.exists():
            old.rename(target)
        raise


def _manifest(model: dict, dim: int, count: int, searcher, classes: list[str], inputs: list[dict]) -> dict:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "bundle": {k: model.get(k) for k in ("name", "version", "hash")},
        "embedding_dim": int(dim),
        "count": int(count),
        "search": {
            "backend": searcher.backend,
            "factory": searcher.factory,
            "search_parameters": searcher.search_parameters,
            "built_count": int(count),
        },
        "classes": list(classes),
        "inputs": inputs,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _labels_entry(labels) -> list[dict]:
    return [] if labels is None else [{"labels": str(labels), "sha256": sha256_file(labels)}]


def build_index(
    outputs: Sequence[str | Path],
    out: str | Path,
    *,
    labels: str | Path | None = None,
    factory: str | None = None,
    overwrite: bool = False,
    progress: Callable | None = None,
) -> SimilarIndex:
    """Build an index folder `out` from `radz screen --embeddings` outputs (a source screened in
    several keeps its last row). labels: a CSV of confirmed findings (retrieval/labels.py).
    factory: a FAISS factory string (default: exact "Flat" below 100k images, approximate with
    refinement above). progress(done, total) is called while vectors are added."""
    out = Path(out)
    _check_out(out, overwrite)
    data = _read_inputs(outputs, labels)
    searcher = _make_searcher(data.embeddings, factory, progress)
    rows = [json.dumps(r, separators=(",", ":")).encode() for r in data.rows]
    inputs = [*data.description["screened"], *_labels_entry(labels)]
    manifest = _manifest(data.model, data.embeddings.shape[1], len(rows), searcher, data.classes, inputs)
    with _locked(out):
        _check_out(out, overwrite)
        _write_folder(out, data.embeddings, rows, searcher, manifest, replace=True)
    return open_index(out, verify=False)


def _check_out(out: Path, overwrite: bool) -> None:
    """--out may be new, an empty folder, or (with --overwrite) an index folder; never any other
    folder: --overwrite must not delete screening outputs that happen to live there."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    is_index = out.is_dir() and _is_index_folder(out)
    if not is_index:
        raise SimilarIndexError(
            f"--out {out}", "exists and is not a similar-case index folder: give a new or empty folder"
        )
    if not overwrite:
        raise SimilarIndexError(f"--out {out}", "exists; pass --overwrite to replace it, or radz index add to append")


def _is_index_folder(path: Path) -> bool:
    try:
        return json.loads((path / MANIFEST).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _follow_default_parameters(searcher, old_n: int, new_n: int, built: int) -> None:
    """An index searched with its size's default parameters (e.g. HNSW efSearch) gets the new
    size's defaults when it grows; parameters someone set otherwise are kept. A Flat index that
    grew past the exact-search size, or an IVF index grown well past what it was built with, says
    to rebuild. built: the image count at `radz index build`."""
    from radz_engine import _core

    factory = searcher.factory
    if searcher.search_parameters == _core.VectorIndex.default_search_parameters(factory, old_n):
        grown = _core.VectorIndex.default_search_parameters(factory, new_n)
        if grown and grown != searcher.search_parameters:
            searcher.set_search_parameters(grown)
    if factory.startswith("IVF") and new_n > 4 * max(built, 1):
        log.warning(
            "radz index: %d images in an IVF index trained on %d: its lists were fixed then and search slows as "
            "they fill; rebuild (`radz index build --overwrite`) after such growth",
            new_n,
            built,
        )
    better = _core.VectorIndex.default_factory(new_n, searcher.dim)
    if better != factory and factory == "Flat":
        log.warning(
            "radz index: %d images in an exact (Flat) index: `radz index build --overwrite` would choose %r "
            "(faster at this size, recall@10 >= 0.95)",
            new_n,
            better,
        )


def add_to_index(
    path: str | Path,
    outputs: Sequence[str | Path],
    *,
    labels: str | Path | None = None,
    progress: Callable | None = None,
) -> tuple[SimilarIndex, int, int]:
    """Append the images of more screening outputs to an index (same bundle). Sources already
    indexed are skipped. Returns (the index, images added, images skipped)."""
    path = Path(path)
    data = _read_inputs(outputs, labels)
    with _locked(path):
        return _add_locked(path, data, outputs, labels, progress)


def _add_locked(path: Path, data: _Input, outputs, labels, progress) -> tuple[SimilarIndex, int, int]:
    index = open_index(path)
    index.check_bundle(data.model)
    if data.embeddings.shape[1] != index.dim:
        raise SimilarIndexError(
            outputs[0], f"dimension mismatch: {data.embeddings.shape[1]}-d embeddings, the index holds {index.dim}-d"
        )
    known = {json.loads(line)["source"] for line in index._rows}
    keep = [i for i, s in enumerate(data.sources) if s not in known]
    skipped = len(data.sources) - len(keep)
    if not keep:
        return index, 0, skipped
    new_vectors = data.embeddings[keep]
    vectors = np.concatenate([_read_vectors(path, index.manifest), new_vectors])
    rows = index._rows + [json.dumps(data.rows[i], separators=(",", ":")).encode() for i in keep]
    searcher = index._vectors
    if searcher.backend == "faiss":
        step = 65_536
        for start in range(0, len(new_vectors), step):
            searcher.add(new_vectors[start : start + step])
            if progress is not None:
                progress(min(start + step, len(new_vectors)), len(new_vectors))
        built = int(index.manifest["search"].get("built_count") or index.size)
        _follow_default_parameters(searcher, index.size, len(vectors), built)
    else:
        if len(vectors) > EXACT_LIMIT:
            raise SimilarIndexError(
                path, f"{len(vectors):,} images: exact numpy search serves up to {EXACT_LIMIT:,}; rebuild with FAISS"
            )
        searcher = ExactVectors(vectors)
    inputs = [*index.manifest.get("inputs", []), *data.description["screened"], *_labels_entry(labels)]
    manifest = _manifest(index.bundle, index.dim, len(rows), searcher, index.manifest.get("classes", []), inputs)
    if not manifest["search"]["factory"]:  # a kind the core cannot name back after load
        manifest["search"]["factory"] = index.manifest["search"].get("factory", "")
    manifest["created"] = index.manifest.get("created")
    manifest["search"]["built_count"] = int(index.manifest["search"].get("built_count") or index.size)
    manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _write_folder(path, vectors, rows, searcher, manifest, replace=True)
    return open_index(path, verify=False), len(keep), skipped
