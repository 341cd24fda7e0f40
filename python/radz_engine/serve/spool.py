"""Files that must survive a crash: received datasets and the SRs made from them.

Written atomically (a temporary file in the same folder, fsync, rename, fsync of the folder),
so a file either is complete or does not exist. File names are hashes of the SOP Instance
UID: no patient data in paths, and the same instance always lands on the same name.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

__all__ = ["Spool", "uid_hash"]


def uid_hash(uid: str) -> str:
    """A short stable hash of a UID: what logs and file names show instead of the UID itself."""
    return hashlib.sha256(str(uid).encode()).hexdigest()[:16]


class Spool:
    """`root/incoming/<hash>.dcm` (as received) and `root/sr/<hash>.dcm` (the answers)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.incoming = self.root / "incoming"
        self.sr = self.root / "sr"
        for folder in (self.incoming, self.sr):
            folder.mkdir(parents=True, exist_ok=True)

    def incoming_path(self, sop_uid: str, tag: str | None = None) -> Path:
        return self.incoming / (f"{uid_hash(sop_uid)}.dcm" if tag is None else f"{uid_hash(sop_uid)}-{tag}.dcm")

    def sr_path(self, sop_uid: str) -> Path:
        return self.sr / f"{uid_hash(sop_uid)}.dcm"

    def write_incoming(self, sop_uid: str, data: bytes, tag: str | None = None) -> Path:
        """The received dataset; `tag` (e.g. random) gives each copy of an instance its own file."""
        return write_atomic(self.incoming_path(sop_uid, tag), data)

    def write_sr(self, sop_uid: str, data: bytes) -> Path:
        return write_atomic(self.sr_path(sop_uid), data)


def write_atomic(path: Path, data: bytes) -> Path:
    """Write `data` to `path` so that a crash leaves either the old file or the complete new one."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path
