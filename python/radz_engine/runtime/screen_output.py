"""Screening results on disk: .csv / .jsonl appended row by row, .parquet at the end; the
sources already done (resuming); the run summary.

The model card's intended use and notice (docs/MODEL_CARD.md) travel with the output: Parquet
key-value metadata ("radz.card": the card as JSON, "radz.notice"), and for .csv / .jsonl a
sidecar `<out>.card.json` (a comment line would break CSV readers and resuming).

With --embeddings each row carries its image embedding in float16 (runtime/embeddings.py): Parquet
column `embedding` fixed_size_list<float16>[D]; .csv / .jsonl `embedding_f16`, base64 of the
little-endian float16 bytes, in the row itself, so a row and its embedding are written (and
flushed) together. A last line without its newline (a row cut by an interrupted run) does not
count as recorded and is cut off before appending, so that file is screened again."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np

from radz_engine.runtime.embeddings import (
    _LEGACY,
    EMBEDDING_COLUMN,
    EMBEDDING_TEXT_COLUMN,
    _complete_lines,
    decode_f16,
    embedding_array,
)
from radz_engine.runtime.results import MODEL_KEYS, Result, _threshold

__all__ = [
    "OUTPUT_FORMATS",
    "OutputMismatch",
    "ResultWriter",
    "output_model",
    "check_output_model",
    "remove_output",
    "describe_model",
    "recorded",
    "done_sources",
    "drop_failed",
    "summarize",
    "format_summary",
    "card_sidecar",
    "read_output_card",
    "result_schema",
]

OUTPUT_FORMATS = (".csv", ".jsonl", ".parquet")
FLUSH_EVERY_S = 0.25  # ResultWriter: flush at the first row this long after the last flush


def _format(out: Path) -> str:
    suffix = out.suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise ValueError(f"--out {out}: the file name must end in one of {OUTPUT_FORMATS}")
    return suffix[1:]


def _require_pyarrow():
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError as error:
        raise ImportError("parquet output needs pyarrow: pip install pyarrow (or write .csv / .jsonl)") from error
    import pyarrow

    return pyarrow


def _partial(out: Path) -> Path:
    return out.with_name(out.name + ".partial.jsonl")


def card_sidecar(out: str | Path) -> Path:
    """The sidecar JSON that carries the model card and notice of a .csv / .jsonl output."""
    out = Path(out)
    return out.with_name(out.name + ".card.json")


def card_document(card: dict) -> dict:
    """{"notice", "intended_use", "card"}: what an output records of its model card."""
    from radz_engine.bundle.card import notice

    return {"notice": notice(card), "intended_use": card.get("intended_use"), "card": card}


def read_output_card(out: str | Path) -> dict | None:
    """{"notice", "intended_use", "card"} recorded with an output (Parquet metadata or the
    sidecar), None when it has none."""
    out = Path(out)
    if _format(out) == "parquet":
        if not out.exists():
            return None
        pa = _require_pyarrow()
        meta = pa.parquet.read_schema(out).metadata or {}
        if b"radz.card" not in meta:
            return None
        card = json.loads(meta[b"radz.card"])
        return {
            "notice": meta.get(b"radz.notice", b"").decode() or None,
            "intended_use": card.get("intended_use"),
            "card": card,
        }
    sidecar = card_sidecar(out)
    return json.loads(sidecar.read_text()) if sidecar.exists() else None


def _iter_jsonl(path: Path):
    with path.open() as handle:
        for line in _complete_lines(handle):
            line = line.strip()
            if line:
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by an interrupted run: that file is redone


def _is_ok(value) -> bool:
    return value is True or str(value).lower() == "true"


def recorded(out: str | Path) -> dict[str, bool]:
    """{source: ok} of every row already in an output file (and, for parquet, its unfinished
    sidecar); a source recorded twice counts as ok if any of its rows is."""
    out = Path(out)
    kind = _format(out)
    seen: dict[str, bool] = {}

    def add(source, ok) -> None:
        if source:
            seen[str(source)] = seen.get(str(source), False) or _is_ok(ok)

    if kind == "parquet":
        if out.exists():
            pa = _require_pyarrow()
            table = pa.parquet.read_table(out, columns=["source", "ok"])
            for source, ok in zip(table.column("source").to_pylist(), table.column("ok").to_pylist()):
                add(source, ok)
        out = _partial(out)
        kind = "jsonl"
    if not out.exists():
        return seen
    if kind == "csv":
        with out.open(newline="") as handle:
            for row in csv.DictReader(_complete_lines(handle)):
                add(row.get("source"), row.get("ok"))
    else:
        for doc in _iter_jsonl(out):
            if isinstance(doc, dict):
                add(doc.get("source"), doc.get("ok", doc.get("error") is None))
    return seen


def done_sources(out: str | Path, *, retry_failed: bool = False) -> set[str]:
    """Sources already recorded in an output file (and, for parquet, its unfinished sidecar).
    retry_failed: only those that succeeded (failed ones are to be run again)."""
    return {s for s, ok in recorded(out).items() if ok or not retry_failed}


def drop_failed(out: str | Path) -> int:
    """Remove the rows of sources that failed (and never succeeded) from an output file, so that
    retrying them leaves one row per source. Rewrites atomically; returns the rows removed."""
    out = Path(out)
    kind = _format(out)
    keep = {s for s, ok in recorded(out).items() if ok}
    removed = 0
    targets = [(out, kind)] if kind != "parquet" else [(out, "parquet"), (_partial(out), "jsonl")]
    for path, how in targets:
        if not path.exists() or path.stat().st_size == 0:
            continue
        tmp = path.with_name(path.name + ".tmp")
        if how == "parquet":
            pa = _require_pyarrow()
            table = pa.parquet.read_table(path)
            mask = [s in keep for s in table.column("source").to_pylist()]
            removed += len(mask) - sum(mask)
            if removed:
                pa.parquet.write_table(table.filter(pa.array(mask)), tmp, **PARQUET_WRITE_OPTIONS)
                tmp.replace(path)
        elif how == "csv":
            with path.open(newline="") as handle:
                reader = csv.DictReader(_complete_lines(handle))
                fields = reader.fieldnames or []
                rows = list(reader)
            kept = [r for r in rows if r.get("source") in keep]
            removed += len(rows) - len(kept)
            if len(kept) != len(rows):
                with tmp.open("w", newline="") as handle:
                    writer = csv.DictWriter(handle, fieldnames=fields)
                    writer.writeheader()
                    writer.writerows(kept)
                tmp.replace(path)
        else:
            docs = [d for d in _iter_jsonl(path) if isinstance(d, dict)]
            kept = [d for d in docs if d.get("source") in keep]
            removed += len(docs) - len(kept)
            if len(kept) != len(docs):
                tmp.write_text("".join(json.dumps(d) + "\n" for d in kept))
                tmp.replace(path)
    return removed


def _written_parts(out: Path) -> list[tuple[Path, str]]:
    """(file, format) of what an output holds so far, non-empty ones only: the file itself, and
    for .parquet also its unfinished JSONL sidecar."""
    kind = _format(out)
    parts = [(out, kind)] if kind != "parquet" else [(out, "parquet"), (_partial(out), "jsonl")]
    return [(path, how) for path, how in parts if path.exists() and path.stat().st_size > 0]


def output_model(out: str | Path) -> dict | None:
    """{"name", "version", "hash"} of the bundle that wrote an existing output (its first row),
    {} for an output of a radz version that did not record it, None when there is no row yet."""
    out = Path(out)
    for path, how in _written_parts(out):
        if how == "parquet":
            pa = _require_pyarrow()
            wanted = [f"bundle_{k}" for k in MODEL_KEYS]  # not the whole table (embeddings: 1M x D)
            table = pa.parquet.read_table(path, columns=[c for c in wanted if c in pa.parquet.read_schema(path).names])
            if table.num_rows == 0:
                continue
            first = table.slice(0, 1).to_pylist()[0]
            return {k: first[f"bundle_{k}"] for k in MODEL_KEYS if first.get(f"bundle_{k}")}
        if how == "csv":
            with path.open(newline="") as handle:
                first = next(csv.DictReader(handle), None)
            if first is None:
                continue
            return {k: first[f"bundle_{k}"] for k in MODEL_KEYS if first.get(f"bundle_{k}")}
        for doc in _iter_jsonl(path):
            if isinstance(doc, dict):
                return dict(doc.get("model") or {})
    return None


def describe_model(model: dict | None) -> str:
    """ "default 0.1.0 (hash 1a2b3c4d5e6f)" or "an unrecorded bundle"."""
    if not model:
        return "an unrecorded bundle (written before outputs named their model)"
    return f"{model.get('name', '?')} {model.get('version', '?')} (hash {model.get('hash', '?')})"


def check_output_model(out: str | Path, model: dict) -> None:
    """Raise OutputMismatch when `out` holds rows written by another bundle than `model`."""
    found = output_model(out)
    if found is None or found.get("hash") == model.get("hash"):
        return
    raise OutputMismatch(
        f"--out {out} holds results of {describe_model(found)}, this run uses {describe_model(model)}; "
        "write to a new file, or pass --overwrite to replace it"
    )


def remove_output(out: str | Path) -> None:
    """Delete an output file and its unfinished sidecar (--overwrite)."""
    out = Path(out)
    _format(out)
    for path in (out, _partial(out), card_sidecar(out)):
        if path.exists():
            path.unlink()


class OutputMismatch(ValueError):
    """The output file was written by another bundle (resuming into it would mix models)."""


_STRING_COLUMNS = {
    "source",
    "error",
    "positives",
    "sop_instance_uid",
    "study_instance_uid",
    "bundle_name",
    "bundle_version",
    "bundle_hash",
}


# Parquet writer options: dictionary encoding only for the string columns. Scores, timings and
# embeddings are all distinct values: a dictionary that is then abandoned costs time, and reading
# a dictionary-encoded float16 embedding column measured ~2.5x slower (pq.read_table, 200,000 rows).
PARQUET_WRITE_OPTIONS = {"use_dictionary": sorted(_STRING_COLUMNS)}


def result_schema(classes, embeddings: bool = False, embedding_dim: int | None = None):
    """The Arrow schema of screening rows (Result.to_row's columns; with `embeddings`, column
    `embedding` fixed_size_list<float16>[embedding_dim], or list<float16> when the dimension is not
    known), fixed so that every Parquet file agrees even when its rows are all errors."""
    pa = _require_pyarrow()

    columns = list(Result(source="").to_row(classes))
    fields = [(c, pa.bool_() if c == "ok" else pa.string() if c in _STRING_COLUMNS else pa.float64()) for c in columns]
    if embeddings:
        kind = pa.list_(pa.float16()) if embedding_dim is None else pa.list_(pa.float16(), int(embedding_dim))
        fields.append((EMBEDDING_COLUMN, kind))
    return pa.schema(fields)


def _cut_unfinished_line(path: Path) -> None:
    """Remove a last line without its newline: a row cut by an interrupted run (recorded() does
    not count it, so its file is screened again); appending after it would garble the next row."""
    if not path.exists():
        return
    size = path.stat().st_size
    if size == 0:
        return
    with path.open("rb+") as handle:
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return
        end = size
        while end > 0:
            start = max(0, end - (1 << 16))
            handle.seek(start)
            found = handle.read(end - start).rfind(b"\n")
            if found >= 0:
                handle.truncate(start + found + 1)
                return
            end = start
        handle.truncate(0)


def _stored_embeddings(out: Path) -> bool | None:
    """Whether an existing output's rows carry embeddings (None: no rows or header yet)."""
    for path, how in _written_parts(out):
        if how == "parquet":
            pa = _require_pyarrow()
            return EMBEDDING_COLUMN in pa.parquet.read_schema(path).names
        if how == "csv":
            with path.open(newline="") as handle:
                header = next(csv.reader(_complete_lines(handle)), None)
            if header:
                return EMBEDDING_TEXT_COLUMN in header or _LEGACY in header
            continue
        for doc in _iter_jsonl(path):
            if isinstance(doc, dict):
                return EMBEDDING_TEXT_COLUMN in doc or _LEGACY in doc
    return None


class ResultWriter:
    """Appends Results to .csv / .jsonl as they come; .parquet rows go to a JSONL sidecar and
    become parquet in close(). The file is flushed with the first row written FLUSH_EVERY_S
    seconds or more after the last flush, and on close (a flush per row cost ~0.17 ms, 20% of a
    512-px file's screening): a killed run loses the rows written since the last flush, and
    resuming (`radz screen` on the same --out) screens those files again.

    model, thresholds: the engine's bundle identity and thresholds, for rows of Results that do
    not carry them; with `model`, an existing output written by another bundle is refused
    (OutputMismatch). card: the bundle's model card (Bundle.card()): its notice and card go into
    the Parquet metadata, or the `<out>.card.json` sidecar of a .csv / .jsonl output.

    embeddings: each row also carries its Result.embedding as float16 (module docstring); an
    existing output written with(out) them is refused when this run writes without (with) them
    (OutputMismatch), so that an output has an embedding on every ok row or on none.
    embedding_dim: the bundle's embedding dimension (the Parquet column's fixed size even when
    every row failed)."""

    def __init__(
        self,
        out: str | Path,
        classes,
        *,
        embeddings: bool = False,
        model: dict | None = None,
        thresholds: dict | None = None,
        card: dict | None = None,
        embedding_dim: int | None = None,
    ) -> None:
        self.out = Path(out)
        self.embedding_dim = None if embedding_dim is None else int(embedding_dim)
        self.card = dict(card) if card else None
        self.kind = _format(self.out)
        self.classes = list(classes)
        self.embeddings = embeddings
        self.model = dict(model or {})
        self.thresholds = dict(thresholds or {})
        if self.kind == "parquet":
            _require_pyarrow()  # fail before any work, not at the end
        if model:
            check_output_model(self.out, self.model)
        target = _partial(self.out) if self.kind == "parquet" else self.out
        _cut_unfinished_line(target)
        stored = _stored_embeddings(self.out)
        if stored is not None and stored != bool(embeddings):
            raise OutputMismatch(
                f"--out {self.out} holds rows with embeddings; pass --embeddings to add to it, or write to a new file"
                if stored
                else f"--out {self.out} holds rows without embeddings; write the embeddings (--embeddings) "
                "to a new file, or pass --overwrite to replace it"
            )
        if self.kind == "parquet" and self.out.exists():
            names = set(_require_pyarrow().parquet.read_schema(self.out).names)
            if names != set(result_schema(self.classes, embeddings).names):
                raise OutputMismatch(
                    f"--out {self.out}: existing columns differ from this run's "
                    "(another bundle, class list or radz version?); write to a new file, or pass --overwrite"
                )
        self.out.parent.mkdir(parents=True, exist_ok=True)
        if self.card is not None and self.kind != "parquet":
            sidecar = card_sidecar(self.out)
            tmp = sidecar.with_name(sidecar.name + ".tmp")
            tmp.write_text(json.dumps(card_document(self.card), indent=2) + "\n")
            tmp.replace(sidecar)
        self._csv = None
        self._flushed = time.monotonic()
        if self.kind == "csv":
            columns = list(Result(source="").to_row(self.classes, embedding=embeddings))
            exists = target.exists() and target.stat().st_size > 0
            if exists:
                with target.open(newline="") as handle:
                    header = next(csv.reader(handle), [])
                if header != columns:
                    raise OutputMismatch(
                        f"--out {target}: existing columns differ from this run's "
                        f"(another bundle, class list or radz version?); write to a new file, or pass --overwrite"
                    )
            self._handle = target.open("a", newline="")
            self._csv = csv.DictWriter(self._handle, fieldnames=columns)
            if not exists:
                self._csv.writeheader()
        else:
            self._handle = target.open("a")

    def write(self, result: Result) -> None:
        if not result.model and self.model:
            result.model = dict(self.model)
        if not result.thresholds and self.thresholds:
            result.thresholds = dict(self.thresholds)
        if self._csv is not None:
            self._csv.writerow(result.to_row(self.classes, embedding=self.embeddings))
        else:
            self._handle.write(json.dumps(result.to_json(embedding=self.embeddings)) + "\n")
        now = time.monotonic()
        if now - self._flushed >= FLUSH_EVERY_S:
            self._handle.flush()
            self._flushed = now

    def close(self) -> None:
        self._handle.close()
        if self.kind == "parquet":
            self._to_parquet()

    def _to_parquet(self) -> None:
        pa = _require_pyarrow()
        import pyarrow.parquet as pq

        partial = _partial(self.out)
        rows, vectors = [], []
        for doc in _iter_jsonl(partial):
            if not isinstance(doc, dict):
                continue
            result = Result(
                source=doc["source"],
                scores=doc.get("scores", {}),
                positives=doc.get("positives", []),
                timings=doc.get("timings", {}),
                error=doc.get("error"),
                metadata=doc.get("metadata", {}),
                model=doc.get("model") or {},
                thresholds=doc.get("thresholds") or {},
            )
            rows.append(result.to_row(self.classes))
            if self.embeddings:
                text, legacy = doc.get(EMBEDDING_TEXT_COLUMN), doc.get(_LEGACY)
                vectors.append(decode_f16(text) if text else None if legacy is None else np.asarray(legacy))
        old = pq.read_table(self.out) if self.out.exists() else None
        dim = self.embedding_dim
        if dim is None:
            dim = next((v.shape[-1] for v in vectors if v is not None), None)
        if dim is None and old is not None and EMBEDDING_COLUMN in old.column_names:
            kind = old.schema.field(EMBEDDING_COLUMN).type
            dim = kind.list_size if pa.types.is_fixed_size_list(kind) else None
        schema = result_schema(self.classes, self.embeddings, dim)
        base = pa.schema([f for f in schema if f.name != EMBEDDING_COLUMN])
        table = pa.Table.from_pylist(rows, schema=base)
        if self.embeddings:
            column = embedding_array(vectors, dim).cast(schema.field(EMBEDDING_COLUMN).type)
            table = table.append_column(schema.field(EMBEDDING_COLUMN), column)
        meta = {}
        if old is not None:
            meta = dict(old.schema.metadata or {})
            if set(old.column_names) != set(schema.names):
                raise OutputMismatch(
                    f"--out {self.out}: existing columns differ from this run's; its rows stay in {partial}"
                )
            table = pa.concat_tables([old.select(schema.names).cast(schema), table])
        if self.card is not None:
            doc = card_document(self.card)
            meta[b"radz.card"] = json.dumps(doc["card"]).encode()
            meta[b"radz.notice"] = (doc["notice"] or "").encode()
        if meta:
            table = table.replace_schema_metadata(meta)
        tmp = self.out.with_name(self.out.name + ".tmp")
        pq.write_table(table, tmp, **PARQUET_WRITE_OPTIONS)
        tmp.replace(self.out)
        partial.unlink()

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- summary ------------------------------------------------------------------------------------
def summarize(
    results_seen: dict,
    seconds: float,
    model: dict | None = None,
    thresholds: dict | None = None,
    card: dict | None = None,
) -> dict:
    """{"files", "ok", "failed", "skipped", "images_per_s", "positives": {class: n}, "model":
    {"name", "version", "hash"}, "thresholds": {class: threshold}}; with the bundle's card also
    "intended_use" and "notice" (None for a model cleared for clinical use)."""
    ok = results_seen["ok"]
    marks = {}
    if card is not None:
        doc = card_document(card)
        marks = {"intended_use": doc["intended_use"], "notice": doc["notice"]}
    return {
        **marks,
        "model": dict(model or {}),
        "thresholds": {k: _threshold(v) for k, v in (thresholds or {}).items()},
        "files": ok + results_seen["failed"],
        "ok": ok,
        "failed": results_seen["failed"],
        "skipped": results_seen.get("skipped", 0),
        "seconds": round(seconds, 3),
        "images_per_s": round((ok + results_seen["failed"]) / seconds, 2) if seconds > 0 else 0.0,
        "positives": dict(results_seen["positives"]),
    }


def format_summary(summary: dict) -> str:
    lines = [f"NOTICE: {summary['notice']}", ""] if summary.get("notice") else []
    if summary.get("model"):
        use = f", intended use {summary['intended_use']}" if summary.get("intended_use") else ""
        lines += [f"bundle: {describe_model(summary['model'])}{use}", ""]
    lines += [
        "| files | ok | failed | skipped (resumed) | seconds | images/s |",
        "|---|---|---|---|---|---|",
        f"| {summary['files']} | {summary['ok']} | {summary['failed']} | {summary['skipped']} | "
        f"{summary['seconds']} | {summary['images_per_s']} |",
        "",
        "| class | positives |",
        "|---|---|",
    ]
    thresholds = summary.get("thresholds") or {}
    if thresholds:
        lines[-2:] = ["| class | positives | threshold |", "|---|---|---|"]
        lines += [
            f"| {name} | {count} | {'never' if thresholds.get(name) is None else thresholds[name]} |"
            for name, count in summary["positives"].items()
        ]
    else:
        lines += [f"| {name} | {count} |" for name, count in summary["positives"].items()]
    return "\n".join(lines)
