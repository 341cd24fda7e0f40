"""Which files a screening run reads: files as given, folders (recursive) and CSV lists."""

from __future__ import annotations

import csv
import os
from pathlib import Path

__all__ = ["IMAGE_SUFFIXES", "expand_paths"]

# Files picked up in folders: DICOM usually has .dcm or no suffix at all.
IMAGE_SUFFIXES = {".dcm", ".dicom", ".dic", ".png", ".jpg", ".jpeg", ""}


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
