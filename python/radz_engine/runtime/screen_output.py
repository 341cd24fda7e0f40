"""Screening results on disk: .csv / .jsonl appended row by row, .parquet at the end; the
sources already done (resuming); the run summary."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from radz_engine.runtime.results import Result

__all__ = ["OUTPUT_FORMATS", "ResultWriter", "done_sources", "summarize", "format_summary"]

OUTPUT_FORMATS = (".csv", ".jsonl", ".parquet")


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


def done_sources(out: str | Path) -> set[str]:
    """Sources already recorded in an output file (and, for parquet, its unfinished sidecar)."""
    out = Path(out)
    kind = _format(out)
    done: set[str] = set()
    if kind == "parquet":
        if out.exists():
            pa = _require_pyarrow()
            done.update(str(s) for s in pa.parquet.read_table(out, columns=["source"]).column("source").to_pylist())
        out = _partial(out)
        kind = "jsonl"
    if not out.exists():
        return done
    with out.open(newline="") as handle:
        if kind == "csv":
            done.update(row["source"] for row in csv.DictReader(handle) if row.get("source"))
        else:
            for line in handle:
                line = line.strip()
                if line:
                    try:
                        done.add(json.loads(line)["source"])
                    except (json.JSONDecodeError, KeyError):
                        continue  # a line cut by an interrupted run: that file is redone
    return done


class ResultWriter:
    """Appends Results to .csv / .jsonl as they come (flushed per row, so an interrupted run
    loses nothing); .parquet rows go to a JSONL sidecar and become parquet in close()."""

    def __init__(self, out: str | Path, classes, *, embeddings: bool = False) -> None:
        self.out = Path(out)
        self.kind = _format(self.out)
        self.classes = list(classes)
        self.embeddings = embeddings
        if self.kind == "parquet":
            _require_pyarrow()  # fail before any work, not at the end
        self.out.parent.mkdir(parents=True, exist_ok=True)
        target = _partial(self.out) if self.kind == "parquet" else self.out
        self._csv = None
        if self.kind == "csv":
            columns = list(Result(source="").to_row(self.classes, embedding=embeddings))
            exists = target.exists() and target.stat().st_size > 0
            if exists:
                with target.open(newline="") as handle:
                    header = next(csv.reader(handle), [])
                if header != columns:
                    raise ValueError(
                        f"--out {target}: existing columns differ from this run's "
                        f"(another bundle or class list?); write to a new file"
                    )
            self._handle = target.open("a", newline="")
            self._csv = csv.DictWriter(self._handle, fieldnames=columns)
            if not exists:
                self._csv.writeheader()
        else:
            self._handle = target.open("a")

    def write(self, result: Result) -> None:
        if self._csv is not None:
            row = result.to_row(self.classes, embedding=self.embeddings)
            if self.embeddings and row.get("embedding") is not None:
                row["embedding"] = " ".join(f"{v:.6g}" for v in row["embedding"])
            self._csv.writerow(row)
        else:
            self._handle.write(json.dumps(result.to_json(embedding=self.embeddings)) + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()
        if self.kind == "parquet":
            self._to_parquet()

    def _to_parquet(self) -> None:
        pa = _require_pyarrow()
        import pyarrow.parquet as pq

        partial = _partial(self.out)
        rows = []
        with partial.open() as handle:
            for line in handle:
                if line.strip():
                    doc = json.loads(line)
                    result = Result(
                        source=doc["source"],
                        scores=doc.get("scores", {}),
                        positives=doc.get("positives", []),
                        timings=doc.get("timings", {}),
                        error=doc.get("error"),
                        metadata=doc.get("metadata", {}),
                    )
                    row = result.to_row(self.classes)
                    if self.embeddings:
                        row["embedding"] = doc.get("embedding")
                    rows.append(row)
        table = pa.Table.from_pylist(rows)
        if self.out.exists():
            old = pq.read_table(self.out)
            table = pa.concat_tables([old, table.select(old.column_names).cast(old.schema)]) if rows else old
        tmp = self.out.with_name(self.out.name + ".tmp")
        pq.write_table(table, tmp)
        tmp.replace(self.out)
        partial.unlink()

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- summary ------------------------------------------------------------------------------------
def summarize(results_seen: dict, seconds: float) -> dict:
    """{"files", "ok", "failed", "skipped", "images_per_s", "positives": {class: n}}."""
    ok = results_seen["ok"]
    return {
        "files": ok + results_seen["failed"],
        "ok": ok,
        "failed": results_seen["failed"],
        "skipped": results_seen.get("skipped", 0),
        "seconds": round(seconds, 3),
        "images_per_s": round((ok + results_seen["failed"]) / seconds, 2) if seconds > 0 else 0.0,
        "positives": dict(results_seen["positives"]),
    }


def format_summary(summary: dict) -> str:
    lines = [
        "| files | ok | failed | skipped (resumed) | seconds | images/s |",
        "|---|---|---|---|---|---|",
        f"| {summary['files']} | {summary['ok']} | {summary['failed']} | {summary['skipped']} | "
        f"{summary['seconds']} | {summary['images_per_s']} |",
        "",
        "| class | positives |",
        "|---|---|",
    ]
    lines += [f"| {name} | {count} |" for name, count in summary["positives"].items()]
    return "\n".join(lines)
