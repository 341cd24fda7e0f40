"""Screening many files: discovery (folders, CSV lists), decoding + preprocessing in a process
pool, the model in batches, results streamed in input order, output files that can be resumed.

Why workers preprocess too: a decoded 2048 x 2048 radiograph is 8 MB of uint16 but its model
input is ~200 KB, so doing the C++ preprocessing in the worker cuts what crosses the process
boundary ~40x; the parent only batches, runs the model and scores.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import warnings
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from radz_engine.runtime.prepare import Prepared, prepare
from radz_engine.runtime.results import Result

__all__ = [
    "IMAGE_SUFFIXES",
    "expand_paths",
    "screen_paths",
    "ResultWriter",
    "done_sources",
    "summarize",
    "format_summary",
]

# Files picked up in folders: DICOM usually has .dcm or no suffix at all.
IMAGE_SUFFIXES = {".dcm", ".dicom", ".dic", ".png", ".jpg", ".jpeg", ""}
OUTPUT_FORMATS = (".csv", ".jsonl", ".parquet")


def expand_paths(paths) -> list[str]:
    """Files from files, folders (recursive, IMAGE_SUFFIXES, hidden files skipped) and CSV lists
    (a `path` column; relative paths are relative to the CSV's folder). Order: as given, folders
    sorted. Raises FileNotFoundError / ValueError naming the argument."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[str] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found = [
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in IMAGE_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            ]
            out.extend(str(p) for p in sorted(found))
        elif path.suffix.lower() == ".csv" and path.is_file():
            out.extend(_csv_paths(path))
        elif path.is_file() or not path.exists():
            out.append(str(path))  # a missing file becomes a per-file error, not a crash
    return out


def _csv_paths(path: Path) -> list[str]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "path" not in reader.fieldnames:
            raise ValueError(f"{path}: a CSV list needs a 'path' column (has {reader.fieldnames})")
        rows = [row["path"] for row in reader if row.get("path")]
    return [p if os.path.isabs(p) else str(path.parent / p) for p in rows]


# -- workers ------------------------------------------------------------------------------------
def prepare_file(source: str | bytes, preprocess_args: dict) -> Prepared | Result:
    """`prepare` for one file in a worker: never raises (errors are Results), reader notes such
    as colour -> luminance are not errors here and are not printed by every worker."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return prepare(source, preprocess_args)


def _prepared(sources: list[str], preprocess_args: dict, workers: int, window: int) -> Iterator[Prepared | Result]:
    """prepare_file over sources, in order, with at most `window` files in flight."""
    if workers <= 0:
        for source in sources:
            yield prepare_file(source, preprocess_args)
        return
    # spawn, not fork: the parent runs C++ and ONNX Runtime thread pools (fork could deadlock).
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        queue: deque = deque()
        it = iter(sources)
        for source in it:
            queue.append(pool.submit(prepare_file, source, preprocess_args))
            if len(queue) >= window:
                break
        while queue:
            result = queue.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                queue.append(pool.submit(prepare_file, nxt, preprocess_args))
            yield result


def default_workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


def screen_paths(
    engine,
    paths,
    *,
    progress: bool = True,
    workers: int | None = None,
    skip: Iterable[str] = (),
    batch_size: int | None = None,
) -> Iterator[Result]:
    """Results for every file under `paths` (see expand_paths) except those in `skip`, in order.

    workers: decoding processes (None: cores - 1; 0: decode in this process).
    batch_size: model batch (default: the engine's max_batch_size).
    """
    skip = set(map(str, skip))
    sources = [s for s in expand_paths(paths) if s not in skip]
    workers = default_workers() if workers is None else int(workers)
    batch = int(batch_size or engine.max_batch_size)
    args = engine.bundle.preprocess_args()
    stream = _prepared(sources, args, workers, window=max(2 * batch, 4 * max(1, workers)))
    if progress:
        from radz_engine.runtime.progress import progress as bar

        stream = bar(stream, total=len(sources), desc="radz screen", unit="img")
    chunk: list[Prepared | Result] = []
    for item in stream:
        chunk.append(item)
        if sum(1 for c in chunk if isinstance(c, Prepared)) >= batch:
            yield from run_chunk(engine, chunk)
            chunk = []
    if chunk:
        yield from run_chunk(engine, chunk)


def run_chunk(engine, chunk: list[Prepared | Result]) -> list[Result]:
    """engine.run_prepared, with a failing batch failing its files instead of the screen."""
    try:
        results = engine.run_prepared(chunk)
    except Exception as error:
        return [
            c
            if isinstance(c, Result)
            else Result(
                source=c.source,
                error=f"{c.source}: model failed ({type(error).__name__}: {error})",
                metadata=c.metadata,
            )
            for c in chunk
        ]
    for result, item in zip(results, chunk):
        if isinstance(item, Prepared):
            result.timings["queue"] = 0.0  # no queue in screening (the column stays filled)
    return results


# -- output -------------------------------------------------------------------------------------
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
