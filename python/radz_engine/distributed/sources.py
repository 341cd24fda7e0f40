"""Where the files are and what is already done: local paths and pyarrow filesystem URIs
(s3://, gs://, hdfs://, file://, ...), and the sources already in a Parquet result dataset.

Local inputs go through `radz_engine.io.discover.expand_paths` (the same folders / CSV lists as
`radz screen`) and become absolute, because Ray workers on other nodes (or in another working
directory) must find them. URIs are listed with `pyarrow.fs` and read as bytes by the workers.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import posixpath

from radz_engine.io.discover import expand_paths, image_like_name
from radz_engine.runtime.prepare import Prepared
from radz_engine.runtime.results import Result
from radz_engine.runtime.screen import prepare_file

__all__ = ["is_uri", "list_sources", "prepare_source", "done_sources_in", "result_files"]

log = logging.getLogger(__name__)


def is_uri(path) -> bool:
    return isinstance(path, str) and "://" in path


def _from_uri(uri: str):
    """(pyarrow filesystem, path inside it, 'scheme://authority' prefix) for a URI."""
    from pyarrow import fs

    filesystem, inner = fs.FileSystem.from_uri(uri)
    at = uri.find(inner, len(uri.split("://", 1)[0]) + 3) if inner else -1
    prefix = uri[:at] if at >= 0 else uri.split("://", 1)[0] + "://"  # "s3://", "file://", "hdfs://host:port"
    return filesystem, inner, prefix


def _list_uri(uri: str) -> list[str]:
    from pyarrow import fs

    filesystem, inner, prefix = _from_uri(uri)
    info = filesystem.get_file_info(inner)
    if info.type == fs.FileType.Directory:
        found = filesystem.get_file_info(fs.FileSelector(inner, recursive=True))
        base = inner.rstrip("/")
        files = [
            f.path
            for f in found
            if f.type == fs.FileType.File
            and image_like_name(f.base_name)
            and not any(part.startswith(".") for part in posixpath.relpath(f.path, base).split("/"))
        ]
        return [prefix + p for p in sorted(files)]
    if info.type == fs.FileType.File and inner.lower().endswith(".csv"):
        with filesystem.open_input_stream(inner) as handle:
            reader = csv.DictReader(io.TextIOWrapper(handle, encoding="utf-8", newline=""))
            if not reader.fieldnames or "path" not in reader.fieldnames:
                raise ValueError(f"{uri}: a CSV list needs a 'path' column (has {reader.fieldnames})")
            rows = [row["path"] for row in reader if row.get("path")]
        folder = posixpath.dirname(inner)
        return [p if is_uri(p) else prefix + (p if p.startswith("/") else posixpath.join(folder, p)) for p in rows]
    return [uri]  # a file, or a missing one: the worker turns that into an error row


def list_sources(paths) -> list[str]:
    """Every input file as a string: absolute local paths (folders and CSV lists expanded like
    `radz screen`) or URIs; duplicates dropped (one result row per file), order kept."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[str] = []
    for item in paths:
        if is_uri(str(item)):
            out.extend(_list_uri(str(item)))
        else:
            out.extend(os.path.abspath(p) for p in expand_paths([item]))
    return list(dict.fromkeys(out))


def prepare_source(source: str, preprocess_args: dict) -> Prepared | Result:
    """`prepare_file` for a local path or a URI (read as bytes through pyarrow). Never raises;
    the source (the URI as given) names the result and its error."""
    if not is_uri(source) or source.startswith("file://"):
        local = source.removeprefix("file://")
        return _renamed(prepare_file(local, preprocess_args), local, source)
    try:
        filesystem, inner, _ = _from_uri(source)
        with filesystem.open_input_file(inner) as handle:
            data = handle.read()
    except Exception as error:  # noqa: BLE001 - missing / unreadable object: an error row, like a missing file
        return Result(source=source, error=f"{source}: {type(error).__name__}: {error}")
    return _renamed(prepare_file(data, preprocess_args), "<bytes>", source)


def _renamed(item: Prepared | Result, name: str, source: str) -> Prepared | Result:
    if name != source:
        if isinstance(item, Result) and item.error:
            item.error = item.error.replace(name, source, 1)
        item.source = source
    return item


def result_files(out: str) -> tuple:
    """(pyarrow filesystem, [parquet file paths]) of a result dataset folder (empty if absent).
    Files whose name starts with '.' or '_' are ignored, as pyarrow's dataset reader does."""
    from pyarrow import fs

    if is_uri(out):
        filesystem, inner, _ = _from_uri(out)
    else:
        filesystem, inner = fs.LocalFileSystem(), os.path.abspath(out)
    info = filesystem.get_file_info(inner)
    if info.type == fs.FileType.NotFound:
        return filesystem, []
    if info.type != fs.FileType.Directory:
        raise ValueError(
            f"--out {out}: is a file; with Ray the results are a Parquet dataset folder "
            "(give a folder name, e.g. results/ or results.parquet/)"
        )
    found = filesystem.get_file_info(fs.FileSelector(inner, recursive=True))
    files = [
        f.path
        for f in found
        if f.type == fs.FileType.File and f.base_name.endswith(".parquet") and not f.base_name.startswith((".", "_"))
    ]
    return filesystem, sorted(files)


def done_sources_in(out: str, *, quarantine: bool = True) -> set[str]:
    """Sources already in the result dataset `out`. A part file that cannot be read (a run killed
    while writing it) is renamed to '_unreadable_<name>' (ignored by Parquet readers) when
    `quarantine`, so its files are redone and the dataset stays readable."""
    import pyarrow.parquet as pq

    filesystem, files = result_files(out)
    done: set[str] = set()
    for path in files:
        try:
            table = pq.read_table(path, columns=["source"], filesystem=filesystem)
        except Exception as error:  # noqa: BLE001 - any unreadable part file is redone, never fatal
            log.warning("radz_engine.distributed: %s is unreadable (%s); its files will be redone", path, error)
            if quarantine:
                head, name = posixpath.split(path)
                filesystem.move(path, posixpath.join(head, "_unreadable_" + name))
            continue
        done.update(table.column("source").to_pylist())
    return done


def dataset_models(out: str) -> set[str]:
    """Content hashes of the bundles that wrote the result dataset `out` ("" for part files of
    a radz version that did not record them); empty when there is no readable part file."""
    import pyarrow.parquet as pq

    filesystem, files = result_files(out)
    hashes: set[str] = set()
    for path in files:
        try:
            if "bundle_hash" not in pq.read_schema(path, filesystem=filesystem).names:
                hashes.add("")
                continue
            table = pq.read_table(path, columns=["bundle_hash"], filesystem=filesystem)
        except Exception:  # noqa: BLE001 - unreadable part files are handled by done_sources_in
            continue
        hashes.update(h or "" for h in table.column("bundle_hash").to_pylist())
    return hashes


def drop_failed_in(out: str) -> int:
    """Remove the rows of files that failed (and never succeeded) from the result dataset `out`,
    so that a rerun screens them again and leaves one row per file. Each part file is rewritten
    under a '_' name (ignored by readers) and moved over the original; a part file left empty
    is deleted. Returns the rows removed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    filesystem, files = result_files(out)
    tables = {}
    succeeded: set[str] = set()
    for path in files:
        try:
            table = pq.read_table(path, filesystem=filesystem)
        except Exception:  # noqa: BLE001 - unreadable part files are handled by done_sources_in
            continue
        tables[path] = table
        succeeded.update(s for s, ok in zip(table.column("source").to_pylist(), table.column("ok").to_pylist()) if ok)
    removed = 0
    for path, table in tables.items():
        keep = [s in succeeded for s in table.column("source").to_pylist()]
        if all(keep):
            continue
        removed += len(keep) - sum(keep)
        if not any(keep):
            filesystem.delete_file(path)
            continue
        head, name = posixpath.split(path)
        tmp = posixpath.join(head, "_retry_" + name)
        with filesystem.open_output_stream(tmp) as handle:
            pq.write_table(table.filter(pa.array(keep)), handle)
        filesystem.move(tmp, path)
    return removed
