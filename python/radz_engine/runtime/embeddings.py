"""Image embeddings stored with screening results (`radz screen --embeddings`), and reading them back.

On disk (fp16, the bundle's L2-normalised image embedding rounded to half precision):
- `.parquet` (and the part files of a `radz screen --ray` folder): column `embedding`,
  fixed_size_list<float16>[D] (null on error rows).
- `.csv` / `.jsonl`: column / key `embedding_f16`, the base64 text of the D little-endian float16
  values (empty / null on error rows). In the row, not in .npy shards beside it: one write + flush
  carries a row and its embedding together, so an interrupted run never leaves a row without its
  vector (or a vector without its row), and resuming stays exact.

`read_embeddings(out)` returns the ok rows' embeddings with their sources and scores (the last ok
row of a source screened twice wins). Outputs of radz versions that wrote float32 text (`embedding`
column / list) are read too.
"""

from __future__ import annotations

import base64
import binascii
import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from radz_engine.errors import RadzError

__all__ = [
    "EMBEDDING_COLUMN",
    "EMBEDDING_TEXT_COLUMN",
    "EmbeddingsError",
    "ScreenedEmbeddings",
    "encode_f16",
    "decode_f16",
    "embedding_array",
    "read_embeddings",
]

EMBEDDING_COLUMN = "embedding"  # Parquet: fixed_size_list<float16>[D]
EMBEDDING_TEXT_COLUMN = "embedding_f16"  # CSV / JSONL: base64 of the little-endian float16 bytes
_LEGACY = "embedding"  # CSV: space-separated floats; JSONL: a float list (float32, before fp16)
_F16 = np.dtype("<f2")


class EmbeddingsError(RadzError, ValueError):
    """A screening output's embeddings cannot be read: no such file, written without
    --embeddings, a garbled value, dimensions that disagree, rows of several bundles."""


def encode_f16(vector) -> str:
    """base64 text of a vector as little-endian float16 (the CSV / JSONL form)."""
    return base64.b64encode(np.asarray(vector, dtype=_F16).tobytes()).decode("ascii")


def decode_f16(text: str) -> np.ndarray:
    """The float16 vector of `encode_f16` text. Raises ValueError for text that is not one."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError, TypeError) as error:
        raise ValueError(f"not base64 ({error})") from None
    if not raw or len(raw) % 2:
        raise ValueError(f"{len(raw)} bytes, not a whole number of float16 values")
    return np.frombuffer(raw, dtype=_F16).astype(np.float16)


def embedding_array(vectors, dim: int | None = None):
    """A pyarrow fixed_size_list<float16>[D] array of `vectors` (None entries: null), for Parquet.
    dim: D when no vector is given (an all-error batch); else taken from the vectors."""
    import pyarrow as pa

    present = [v for v in vectors if v is not None]
    if present:
        dim = int(np.asarray(present[0]).shape[-1])
    if dim is None:
        return pa.nulls(len(vectors), pa.list_(pa.float16()))
    flat = np.zeros((len(vectors), dim), dtype=np.float16)
    valid = np.zeros(len(vectors), dtype=bool)
    for i, v in enumerate(vectors):
        if v is not None:
            flat[i] = np.asarray(v, dtype=np.float32)  # rounds to nearest (as encode_f16)
            valid[i] = True
    values = pa.array(flat.reshape(-1), type=pa.float16())
    return pa.FixedSizeListArray.from_arrays(values, dim, mask=pa.array(~valid))


# -- reading --------------------------------------------------------------------------------------
class _Rows(Sequence):
    """rows[i] -> {"source", "ok", "scores" {class: prob}, "positives" [class],
    "sop_instance_uid", "study_instance_uid"}, built on access (a million rows stay arrays)."""

    def __init__(self, sources, classes, scores, positives, sop, study) -> None:
        self._sources, self._classes, self._scores = sources, classes, scores
        self._positives, self._sop, self._study = positives, sop, study

    def __len__(self) -> int:
        return len(self._sources)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        row = self._scores[index]
        positives = self._positives[index]
        return {
            "source": str(self._sources[index]),
            "ok": True,
            "scores": {c: float(v) for c, v in zip(self._classes, row) if not np.isnan(v)},
            "positives": [p for p in positives.split(";") if p] if isinstance(positives, str) else list(positives),
            "sop_instance_uid": self._sop[index] or "",
            "study_instance_uid": self._study[index] or "",
        }

    def __repr__(self) -> str:
        return f"<{len(self)} screened rows>"


@dataclass
class ScreenedEmbeddings:
    """The embeddings of a screening output (`read_embeddings`), one entry per source.

    Attributes:
        path: the output read.
        sources: [n] file names as screened, in output order.
        embeddings: [n, D] float16, row i for sources[i].
        classes: the bundle's class names (score column order).
        scores: [n, C] float64 scores in `classes` order (NaN where a row has none).
        rows: rows[i] -> {"source", "ok", "scores" {class: prob}, "positives" [class],
            "sop_instance_uid", "study_instance_uid"} (a lazy Sequence of dicts).
        model: {"name", "version", "hash"} of the bundle that wrote the rows ({} if unrecorded).
    """

    path: str
    sources: list[str]
    embeddings: np.ndarray
    classes: list[str]
    scores: np.ndarray
    rows: Sequence[dict] = field(repr=False)
    model: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.sources)

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])


@dataclass
class _Chunk:
    """Rows of one file, before keeping the last ok row per source."""

    sources: np.ndarray  # object [k]
    embeddings: np.ndarray  # float16 [k, D]
    scores: np.ndarray  # float64 [k, C]
    positives: np.ndarray  # object [k] ("a;b" strings or lists)
    sop: np.ndarray
    study: np.ndarray
    models: set  # {(name, version, hash)}
    classes: list


def _no_embeddings(path: Path) -> EmbeddingsError:
    return EmbeddingsError(f"{path} has no embeddings: rerun radz screen with --embeddings (to a new output file)")


def _complete_lines(handle):
    """The lines of a results file, less a last line without its newline (cut by an interrupted run)."""
    for line in handle:
        if line.endswith("\n"):
            yield line


def _is_true(value) -> bool:
    return value is True or str(value).lower() == "true"


def _classes_of(columns) -> list[str]:
    thresholds = [c[len("threshold_") :] for c in columns if c.startswith("threshold_")]
    if thresholds:
        return thresholds
    return [c[len("score_") :] for c in columns if c.startswith("score_") and c != "score_ms"]


def _text_bytes(path: Path, number: int, text, legacy: bool) -> bytes:
    """One row's embedding as little-endian float16 bytes (checked together in _stack)."""
    try:
        if legacy:
            values = text.split() if isinstance(text, str) else text
            vector = np.asarray([float(v) for v in values], dtype=np.float32)
            if vector.size == 0:
                raise ValueError("empty")
            return vector.astype(_F16).tobytes()
        if not isinstance(text, str):
            raise ValueError(f"a {type(text).__name__}, not base64 text")
        raw = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError, TypeError) as error:
        raise EmbeddingsError(f"{path}: row {number}: garbled embedding ({error})") from None
    if not raw or len(raw) % 2:
        raise EmbeddingsError(
            f"{path}: row {number}: garbled embedding ({len(raw)} bytes, not a whole number of float16 values)"
        )
    return raw


def _stack(path: Path, numbers: list[int], vectors: list[bytes]) -> np.ndarray:
    """[k, D] float16 of the rows' bytes; an error naming the row for another dimension or
    non-finite values."""
    if not vectors:
        return np.zeros((0, 0), dtype=np.float16)
    size = len(vectors[0])
    for number, v in zip(numbers, vectors):
        if len(v) != size:
            raise EmbeddingsError(
                f"{path}: row {number}: embedding of dimension {len(v) // 2}, earlier rows have {size // 2}"
            )
    out = np.frombuffer(b"".join(vectors), dtype=_F16).reshape(len(vectors), size // 2).astype(np.float16)
    nonfinite = ((out.view(np.uint16) & 0x7C00) == 0x7C00).any(axis=1)
    if nonfinite.any():
        raise EmbeddingsError(
            f"{path}: row {numbers[int(np.flatnonzero(nonfinite)[0])]}: garbled embedding (non-finite values)"
        )
    return out


def _score_matrix(values: list, columns: int) -> np.ndarray:
    """[k, C] float64 of raw score values (floats, numeric text, None / "" -> NaN)."""
    try:
        return np.array([[np.nan if v in (None, "") else v for v in row] for row in values], dtype=np.float64).reshape(
            len(values), columns
        )
    except (TypeError, ValueError):
        return np.array([[_number(v) for v in row] for row in values], dtype=np.float64).reshape(len(values), columns)


def _text_chunk(path: Path, kind: str) -> _Chunk:
    """Rows of a .csv or .jsonl output (or the .partial.jsonl of an unfinished parquet one)."""
    numbers, sources, vectors, scores, positives, sop, study = [], [], [], [], [], [], []
    models: set = set()
    classes: list[str] | None = None
    has_column = False
    with path.open(newline="" if kind == "csv" else None) as handle:
        if kind == "csv":
            reader = csv.DictReader(_complete_lines(handle))
            columns = reader.fieldnames or []
            classes = _classes_of(columns)
            score_columns = [f"score_{c}" for c in classes]
            legacy = EMBEDDING_TEXT_COLUMN not in columns
            key = _LEGACY if legacy else EMBEDDING_TEXT_COLUMN
            has_column = key in columns
            if not has_column:
                if columns:
                    raise _no_embeddings(path)
                records = iter(())
            else:
                records = enumerate(reader, start=1)
            for number, row in records:
                if not _is_true(row.get("ok")) or not row.get(key):
                    continue
                numbers.append(number)
                sources.append(row["source"])
                vectors.append(_text_bytes(path, number, row[key], legacy))
                scores.append([row.get(name) for name in score_columns])
                positives.append(row.get("positives") or "")
                sop.append(row.get("sop_instance_uid") or "")
                study.append(row.get("study_instance_uid") or "")
                models.add(tuple(row.get(f"bundle_{k}") or "" for k in ("name", "version", "hash")))
        else:
            any_row = False
            for number, line in enumerate(_complete_lines(handle), start=1):
                if not line.strip():
                    continue
                try:
                    doc = json.loads(line)
                except json.JSONDecodeError:
                    doc = None
                if not isinstance(doc, dict):
                    raise EmbeddingsError(
                        f"{path}: row {number}: not a JSON object (delete that line; resuming the screening "
                        "redoes any file it held)"
                    )
                any_row = True
                legacy = EMBEDDING_TEXT_COLUMN not in doc
                key = _LEGACY if legacy else EMBEDDING_TEXT_COLUMN
                has_column = has_column or key in doc
                ok = doc.get("ok", doc.get("error") is None)
                if not _is_true(ok) or not doc.get(key):
                    continue
                if classes is None:
                    classes = list(doc.get("scores") or {})
                numbers.append(number)
                sources.append(str(doc.get("source")))
                vectors.append(_text_bytes(path, number, doc[key], legacy))
                found = doc.get("scores") or {}
                scores.append([found.get(c) for c in classes])
                positives.append(list(doc.get("positives") or []))
                meta = doc.get("metadata") or {}
                sop.append(str(meta.get("SOPInstanceUID") or ""))
                study.append(str(meta.get("StudyInstanceUID") or ""))
                model = doc.get("model") or {}
                models.add(tuple(str(model.get(k) or "") for k in ("name", "version", "hash")))
            if any_row and not has_column:
                raise _no_embeddings(path)
    classes = classes or []
    return _Chunk(
        sources=_objects(sources),
        embeddings=_stack(path, numbers, vectors),
        scores=_score_matrix(scores, len(classes)),
        positives=_objects(positives),
        sop=_objects(sop),
        study=_objects(study),
        models=models,
        classes=classes,
    )


def _number(value) -> float:
    """A score as float; NaN when absent or not a number."""
    try:
        return float(value) if value not in (None, "") else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def _objects(values: list) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _parquet_chunk(path: Path, *, filesystem=None) -> _Chunk:
    """Rows of a Parquet file, vectorised (no Python per row)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path, filesystem=filesystem)
    except Exception as error:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise EmbeddingsError(f"{path}: not a readable Parquet file ({error})") from None
    names = schema.names
    if EMBEDDING_COLUMN not in names:
        raise _no_embeddings(path)
    classes = _classes_of(names)
    wanted = ["source", "ok", EMBEDDING_COLUMN, "positives", "sop_instance_uid", "study_instance_uid"]
    wanted += [f"score_{c}" for c in classes] + [f"bundle_{k}" for k in ("name", "version", "hash")]
    table = pq.read_table(path, columns=[c for c in wanted if c in names], filesystem=filesystem)
    column = table.column(EMBEDDING_COLUMN)
    kind = column.type
    if not (pa.types.is_fixed_size_list(kind) or pa.types.is_list(kind) or pa.types.is_large_list(kind)):
        raise EmbeddingsError(f"{path}: column {EMBEDDING_COLUMN!r} is {kind}, not a list of floats")
    if not pa.types.is_floating(kind.value_type):
        raise EmbeddingsError(f"{path}: column {EMBEDDING_COLUMN!r} is {kind}, not a list of floats")
    keep = pc.and_(pc.fill_null(table.column("ok"), False), pc.is_valid(column)).to_numpy(zero_copy_only=False)
    numbers = np.flatnonzero(keep)  # file row of each kept row (0-based)
    k = len(numbers)
    if pa.types.is_fixed_size_list(kind):
        # The child values of each chunk, viewed [rows, D] (no copy for float16), then the kept rows.
        dim = kind.list_size
        parts = []
        start = 0
        for chunk in column.chunks:
            rows = len(chunk)
            values = chunk.values.slice(chunk.offset * dim, rows * dim)
            array = values.to_numpy(zero_copy_only=False).reshape(rows, dim)
            parts.append(array[keep[start : start + rows]].astype(np.float16, copy=False))
            start += rows
        embeddings = np.concatenate(parts) if parts else np.zeros((0, dim), np.float16)
    else:  # list<float> of radz versions before float16
        flat = column.filter(pa.array(keep)).combine_chunks()
        lengths = pc.list_value_length(flat).to_numpy(zero_copy_only=False)
        dim = int(lengths[0]) if k else 0
        bad = np.flatnonzero(lengths != dim)
        if bad.size:
            raise EmbeddingsError(
                f"{path}: row {int(numbers[bad[0]]) + 1}: embedding of dimension {int(lengths[bad[0]])}, "
                f"earlier rows have {dim}"
            )
        values = pc.list_flatten(flat).to_numpy(zero_copy_only=False)
        embeddings = values.astype(np.float16).reshape(k, dim)
    # Non-finite (inf / NaN, also a null value inside an embedding): exponent bits all set.
    nonfinite = ((embeddings.view(np.uint16) & 0x7C00) == 0x7C00).any(axis=1)
    if nonfinite.any():
        row = int(numbers[np.flatnonzero(nonfinite)[0]]) + 1
        raise EmbeddingsError(f"{path}: row {row}: garbled embedding (non-finite or missing values)")
    table = table.drop_columns([EMBEDDING_COLUMN]).filter(pa.array(keep))

    def strings(name: str) -> np.ndarray:
        if name not in table.column_names:
            return _objects([""] * k)
        return table.column(name).to_numpy(zero_copy_only=False).astype(object)

    scores = np.full((k, len(classes)), np.nan, dtype=np.float64)
    for j, c in enumerate(classes):
        if f"score_{c}" in table.column_names:
            scores[:, j] = pc.fill_null(pc.cast(table.column(f"score_{c}"), pa.float64()), float("nan")).to_numpy()
    models = set()
    ident = [f"bundle_{x}" for x in ("name", "version", "hash")]
    if k and all(c in table.column_names for c in ident):
        unique = table.select(ident).group_by(ident).aggregate([]).to_pylist()
        models = {tuple(u[c] or "" for c in ident) for u in unique}
    elif k:
        models = {("", "", "")}
    return _Chunk(
        sources=strings("source"),
        embeddings=embeddings,
        scores=scores,
        positives=strings("positives"),
        sop=strings("sop_instance_uid"),
        study=strings("study_instance_uid"),
        models=models,
        classes=classes,
    )


def _last_per_source(sources: np.ndarray) -> np.ndarray:
    """Indices of the last occurrence of each source, in increasing order."""
    if len(sources) == 0:
        return np.zeros(0, dtype=np.int64)
    try:
        import pyarrow as pa
    except ImportError:
        last = {s: i for i, s in enumerate(sources)}
        return np.sort(np.fromiter(last.values(), dtype=np.int64, count=len(last)))
    table = pa.table({"s": pa.array(sources, type=pa.string()), "i": np.arange(len(sources), dtype=np.int64)})
    grouped = table.group_by("s", use_threads=False).aggregate([("i", "max")])
    return np.sort(grouped.column("i_max").to_numpy())


def _parquet_parts(folder: Path) -> list[Path]:
    """A `radz screen --ray` result folder's part files (names starting with '.' or '_' skipped, as
    Parquet dataset readers do)."""
    return sorted(
        p
        for p in folder.rglob("*.parquet")
        if p.is_file() and not any(part.startswith((".", "_")) for part in p.relative_to(folder).parts)
    )


def read_embeddings(out: str | Path) -> ScreenedEmbeddings:
    """The embeddings of a `radz screen --embeddings` output: a .csv, .jsonl or .parquet file (with
    the rows of its unfinished `.partial.jsonl`, if a run was interrupted) or a `radz screen --ray`
    result folder of Parquet part files.

    Only ok rows with an embedding; a source recorded more than once (resumed, retried, or
    --no-resume) keeps its last ok row. A last line cut by an interrupted run is ignored.

    Raises EmbeddingsError (a RadzError and ValueError) naming the file: no such output, an output
    written without --embeddings, a garbled embedding (and its row), embeddings of different
    dimensions, or rows of more than one bundle.
    """
    from radz_engine.runtime.screen_output import OUTPUT_FORMATS

    path = Path(out)
    chunks: list[tuple[Path, _Chunk]] = []
    if path.is_dir():
        parts = _parquet_parts(path)
        if not parts:
            raise EmbeddingsError(f"{path}: a folder without Parquet part files (not a radz screen --ray output)")
        chunks = [(p, _parquet_chunk(p)) for p in parts]
    else:
        suffix = path.suffix.lower()
        if suffix not in OUTPUT_FORMATS:
            raise EmbeddingsError(f"{path}: not a screening output (the name must end in one of {OUTPUT_FORMATS})")
        partial = path.with_name(path.name + ".partial.jsonl")
        if not path.exists() and not (suffix == ".parquet" and partial.exists()):
            raise EmbeddingsError(f"{path}: no such screening output")
        if suffix == ".parquet":
            if path.exists():
                chunks.append((path, _parquet_chunk(path)))
            if partial.exists() and partial.stat().st_size:
                chunks.append((partial, _text_chunk(partial, "jsonl")))
        elif path.stat().st_size:
            chunks.append((path, _text_chunk(path, suffix[1:])))
    classes: list[str] = []
    dim = None
    for where, chunk in chunks:
        if chunk.classes and not classes:
            classes = chunk.classes
        elif chunk.classes and chunk.classes != classes:
            raise EmbeddingsError(f"{where}: classes {chunk.classes} differ from {classes} in the same output")
        if len(chunk.sources):
            if dim is None:
                dim = chunk.embeddings.shape[1]
            elif chunk.embeddings.shape[1] != dim:
                raise EmbeddingsError(
                    f"{where}: embeddings of dimension {chunk.embeddings.shape[1]}, earlier rows have {dim}"
                )
    chunks = [(w, c) for w, c in chunks if len(c.sources)]
    models = set().union(*(c.models for _, c in chunks)) if chunks else set()
    if len(models) > 1:
        listed = ", ".join(f"{n or '?'} {v or '?'} (hash {h or '?'})" for n, v, h in sorted(models))
        raise EmbeddingsError(f"{path}: rows of more than one bundle ({listed}); their embeddings are not comparable")
    if not chunks:
        empty = np.zeros((0, 0 if dim is None else dim), dtype=np.float16)
        return ScreenedEmbeddings(
            str(path), [], empty, classes, np.zeros((0, len(classes)), np.float64), _Rows([], classes, [], [], [], [])
        )

    def joined(name: str) -> np.ndarray:
        return np.concatenate([getattr(c, name) for _, c in chunks])

    sources = joined("sources")
    keep = _last_per_source(sources)
    unique = len(keep) == len(sources)  # keep is then every row, in order: no copies
    sources = sources if unique else sources[keep]
    embeddings = joined("embeddings") if len(chunks) > 1 else chunks[0][1].embeddings
    embeddings = np.ascontiguousarray(embeddings if unique else embeddings[keep])
    scores = np.concatenate([c.scores.reshape(len(c.sources), -1) for _, c in chunks])
    positives, sop, study = joined("positives"), joined("sop"), joined("study")
    if not unique:
        scores, positives, sop, study = scores[keep], positives[keep], sop[keep], study[keep]
    model = {}
    if models:
        name, version, digest = next(iter(models))
        model = {k: v for k, v in (("name", name), ("version", version), ("hash", digest)) if v}
    listed = sources.tolist()
    return ScreenedEmbeddings(
        path=str(path),
        sources=listed,
        embeddings=embeddings,
        classes=list(classes),
        scores=scores,
        rows=_Rows(listed, list(classes), scores, positives, sop, study),
        model=model,
    )
