"""Which files a screening run reads: files as given, folders (recursive) and CSV lists.

In folders a file is an input when its content says so, whatever its name: DICOM with the
128-byte preamble and the "DICM" marker, DICOM without preamble (a file that starts with a
group 0002 / 0008 element and that pydicom reads), PNG or JPEG. Archives name DICOM files by
their SOP Instance UID (`1.2.840.113619.2.55.3.1`) or give them no suffix at all, so the name is
never enough. Files named .dcm / .dicom / .dic / .png / .jpg / .jpeg are taken without looking
inside (a broken one becomes a per-file error, never a silent skip). Everything else is skipped
and counted by reason (`Discovery.skipped`).
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["IMAGE_SUFFIXES", "Discovery", "discover", "expand_paths", "sniff_file", "image_like_name"]

# Names taken without reading the content.
IMAGE_SUFFIXES = {".dcm", ".dicom", ".dic", ".png", ".jpg", ".jpeg"}
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
# Preamble-less DICOM starts with its first element's tag: group 0002 (file meta) or 0008.
_NO_PREAMBLE_GROUPS = (b"\x02\x00", b"\x08\x00")

# Skip reasons (keys of Discovery.skipped).
HIDDEN = "hidden"
NOT_AN_IMAGE = "not DICOM/PNG/JPEG by content"
UNREADABLE = "cannot be opened"


def sniff_file(path: str | os.PathLike) -> str | None:
    """ "dicom", "dicom-no-preamble", "png" or "jpeg" by content, None for anything else.

    Reads 132 bytes; a preamble-less candidate is confirmed by pydicom (header only, no pixels).
    Raises OSError when the file cannot be read."""
    with open(path, "rb") as handle:
        head = handle.read(132)
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(_PNG_MAGIC):
        return "png"
    if head.startswith(_JPEG_MAGIC):
        return "jpeg"
    if head[:2] in _NO_PREAMBLE_GROUPS and _pydicom_reads(path):
        return "dicom-no-preamble"
    return None


def image_like_name(name: str) -> bool:
    """True for names an archive may give an image: an image suffix, no suffix, or a UID-like
    numeric last part (`1.2.840.113619.2.55.3.1`). For listings whose content is not read
    cheaply (remote filesystems); local folders are sniffed by `sniff_file` instead."""
    suffix = os.path.splitext(name)[1].lower()
    return suffix in IMAGE_SUFFIXES or suffix == "" or suffix[1:].isdigit()


def _pydicom_reads(path) -> bool:
    try:
        import pydicom
    except ImportError:  # pragma: no cover - pydicom is a core dependency
        return False
    try:
        ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
        # force=True parses almost anything; a real image has these.
        return "SOPClassUID" in ds and ("Rows" in ds or "SOPInstanceUID" in ds)
    except Exception:  # pydicom raises many types on garbage
        return False


@dataclass
class Discovery:
    """What `discover` found.

    files: the inputs, in order (as given; folders sorted).
    skipped: {reason: count} of files in folders that are not inputs.
    examples: {reason: first skipped path}.
    missing: arguments that do not exist (they are also in `files`: each is a per-file error).
    folders: the folder arguments, for messages."""

    files: list[str] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)

    def skipped_line(self) -> str:
        """ "skipped 3 files (2 not DICOM/PNG/JPEG by content, e.g. a/notes.txt; 1 hidden)" or ""."""
        total = sum(self.skipped.values())
        if not total:
            return ""
        parts = [f"{n} {reason}, e.g. {self.examples[reason]}" for reason, n in self.skipped.most_common()]
        return f"skipped {total} file{'s' if total != 1 else ''} ({'; '.join(parts)})"

    def _skip(self, reason: str, path: Path) -> None:
        self.skipped[reason] += 1
        self.examples.setdefault(reason, str(path))


def discover(paths) -> Discovery:
    """Inputs from files, folders (recursive, by content; hidden files skipped) and CSV lists
    (a `path` column; relative paths are relative to the CSV's folder). A path that does not
    exist stays in `files` (it becomes a per-file error) and is listed in `missing`.
    Raises ValueError for a CSV list without a `path` column."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found = Discovery()
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found.folders.append(str(path))
            for p in sorted(path.rglob("*")):
                if not p.is_file():
                    continue
                if any(part.startswith(".") for part in p.relative_to(path).parts):
                    found._skip(HIDDEN, p)
                elif p.suffix.lower() in IMAGE_SUFFIXES:
                    found.files.append(str(p))
                else:
                    try:
                        kind = sniff_file(p)
                    except OSError:
                        found._skip(UNREADABLE, p)
                        continue
                    if kind is None:
                        found._skip(NOT_AN_IMAGE, p)
                    else:
                        found.files.append(str(p))
        elif path.suffix.lower() == ".csv" and path.is_file():
            found.files.extend(_csv_paths(path))
        else:
            if not path.exists():
                found.missing.append(str(path))
            found.files.append(str(path))  # a missing file becomes a per-file error, not a crash
    return found


def expand_paths(paths) -> list[str]:
    """`discover(paths).files`: the input files, in order. Raises ValueError naming a CSV list
    without a 'path' column."""
    return discover(paths).files


def _csv_paths(path: Path) -> list[str]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "path" not in reader.fieldnames:
            raise ValueError(f"{path}: a CSV list needs a 'path' column (has {reader.fieldnames})")
        rows = [row["path"] for row in reader if row.get("path")]
    return [p if os.path.isabs(p) else str(path.parent / p) for p in rows]
