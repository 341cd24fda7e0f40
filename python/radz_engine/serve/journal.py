"""The durable journal of `radz serve`: one row per received SOP Instance UID (SQLite, WAL).

States:  received -> scored -> delivered          the normal path
         received -> failed                        could not be scored (reason kept)
         rejected                                  refused at C-STORE (reason kept; never scored)
         ignored                                   a SOP class accepted but not scored (config)

A row is committed (synchronous=FULL) *before* the C-STORE response is sent, so a success
status means the instance is on disk and journaled. After a crash, `pending_scoring` and
`pending_delivery` give the work to resume. Idempotent by SOP Instance UID: receiving an
instance again never makes a second row.

Copies of one SOP Instance UID (a resend, possibly with different content):
  - an acknowledged copy (state `received`) replaces a row that is `received`, `failed` or
    `rejected`: the newest acknowledged copy wins. Each such copy gets a new `copy` number and
    its own spool file; scoring results are recorded only for the copy they were made from
    (`mark_scored` / `mark_failed` with `copy=`), so an older copy finishing late can neither
    fail nor answer for the newer one;
  - once a row is `scored` or `delivered` (or `ignored`), later copies change nothing: the
    instance is answered once;
  - a refused copy (`rejected`) or an ignored one (`ignored`) never changes a row that was
    acknowledged (`received`, `scored`, `delivered`, `failed`, `ignored`): only a new row or
    one that was itself `rejected`.

Thread-safe: one connection, serialised by a lock (SQLite's own locking covers other processes).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Journal", "Entry", "Received", "STATES"]

STATES = ("received", "scored", "delivered", "failed", "rejected", "ignored")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    sop_uid       TEXT PRIMARY KEY,
    study_uid     TEXT,
    sop_class     TEXT,
    state         TEXT NOT NULL,
    dataset_path  TEXT,
    sr_path       TEXT,
    error         TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_attempt  REAL NOT NULL DEFAULT 0,
    received_at   REAL NOT NULL,
    scored_at     REAL,
    delivered_at  REAL,
    calling_ae    TEXT,
    copy          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS instances_state ON instances (state, next_attempt);
"""


@dataclass(frozen=True)
class Entry:
    sop_uid: str
    study_uid: str | None
    sop_class: str | None
    state: str
    dataset_path: str | None
    sr_path: str | None
    error: str | None
    attempts: int
    next_attempt: float
    received_at: float
    scored_at: float | None
    delivered_at: float | None
    calling_ae: str | None
    copy: int = 0  # which acknowledged copy of the instance this row stands for (see the module doc)


@dataclass(frozen=True)
class Received:
    """What `Journal.receive` did: the row's state afterwards, whether this copy is now the row's
    (`taken`), its copy number, and the spool file of the copy it replaced (to remove)."""

    state: str
    taken: bool
    copy: int
    replaced_path: str | None = None


class Journal:
    """The SQLite journal at `path` (created with its folder)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a committed row survives power loss
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(instances)")}
        if "copy" not in columns:  # a journal written before copies were numbered
            self._db.execute("ALTER TABLE instances ADD COLUMN copy INTEGER NOT NULL DEFAULT 0")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _run(self, sql: str, args: tuple = ()) -> list[tuple]:
        """Execute one statement; rows (if any) are fetched under the lock."""
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- writes ------------------------------------------------------------------------------
    def record_received(
        self,
        sop_uid: str,
        study_uid: str | None,
        sop_class: str | None,
        dataset_path: str | None,
        calling_ae: str | None = None,
        state: str = "received",
        error: str | None = None,
    ) -> str:
        """Journal a received instance; returns its state afterwards (see `receive`)."""
        return self.receive(sop_uid, study_uid, sop_class, dataset_path, calling_ae, state, error).state

    def receive(
        self,
        sop_uid: str,
        study_uid: str | None,
        sop_class: str | None,
        dataset_path: str | None,
        calling_ae: str | None = None,
        state: str = "received",
        error: str | None = None,
    ) -> Received:
        """Journal one received copy of an instance (rules in the module doc). A duplicate of an
        instance already scored or delivered keeps that state (and is not scored again); an
        acknowledged copy of one still waiting, failed or rejected replaces it (the newest wins);
        a refused or ignored copy changes only a new row or a `rejected` one."""
        if state not in ("received", "rejected", "ignored"):
            raise ValueError(f"state: a received instance is 'received', 'rejected' or 'ignored', not {state!r}")
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT state, copy, dataset_path FROM instances WHERE sop_uid = ?", (sop_uid,)
                ).fetchone()
                if row is None:
                    self._db.execute(
                        "INSERT INTO instances (sop_uid, study_uid, sop_class, state, dataset_path, error, received_at,"
                        " calling_ae, copy) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)",
                        (sop_uid, study_uid, sop_class, state, dataset_path, error, now, calling_ae),
                    )
                    result = Received(state, True, 1)
                elif row[0] in ("scored", "delivered", "ignored"):
                    result = Received(row[0], False, int(row[1]))
                elif state == "received" or row[0] == "rejected":
                    # an acknowledged copy replaces a waiting, failed or rejected one; a refused or
                    # ignored copy replaces only a refused one
                    copy = int(row[1]) + 1
                    self._db.execute(
                        "UPDATE instances SET state = ?, study_uid = ?, sop_class = ?, dataset_path = ?, error = ?,"
                        " attempts = 0, received_at = ?, calling_ae = ?, copy = ? WHERE sop_uid = ?",
                        (state, study_uid, sop_class, dataset_path, error, now, calling_ae, copy, sop_uid),
                    )
                    replaced = row[2] if row[2] and row[2] != dataset_path else None
                    result = Received(state, True, copy, replaced)
                else:  # refused / ignored copy of an acknowledged instance (received, failed): unchanged
                    result = Received(row[0], False, int(row[1]))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return result

    def _update(self, sql: str, args: tuple) -> bool:
        with self._lock:
            return self._db.execute(sql, args).rowcount > 0

    def mark_scored(self, sop_uid: str, sr_path: str, copy: int | None = None) -> bool:
        """`received` -> `scored`; with `copy`, only if the row still stands for that copy.
        True when the row changed."""
        return self._update(
            "UPDATE instances SET state = 'scored', sr_path = ?, scored_at = ?, error = NULL, next_attempt = 0"
            " WHERE sop_uid = ? AND state = 'received' AND (? IS NULL OR copy = ?)",
            (sr_path, time.time(), sop_uid, copy, copy),
        )

    def mark_failed(self, sop_uid: str, error: str, copy: int | None = None) -> bool:
        """`received` -> `failed`; with `copy`, only if the row still stands for that copy."""
        return self._update(
            "UPDATE instances SET state = 'failed', error = ? WHERE sop_uid = ? AND state = 'received'"
            " AND (? IS NULL OR copy = ?)",
            (error, sop_uid, copy, copy),
        )

    def mark_delivered(self, sop_uid: str) -> None:
        self._run(
            "UPDATE instances SET state = 'delivered', delivered_at = ?, error = NULL WHERE sop_uid = ?"
            " AND state = 'scored'",
            (time.time(), sop_uid),
        )

    def delivery_failed(self, sop_uid: str, error: str, retry_in_s: float) -> int:
        """Record a failed delivery; it is retried after retry_in_s. Returns the attempts so far."""
        with self._lock:
            self._db.execute(
                "UPDATE instances SET attempts = attempts + 1, next_attempt = ?, error = ?"
                " WHERE sop_uid = ? AND state = 'scored'",
                (time.time() + retry_in_s, error, sop_uid),
            )
            row = self._db.execute("SELECT attempts FROM instances WHERE sop_uid = ?", (sop_uid,)).fetchone()
        return int(row[0]) if row else 0

    # -- reads -------------------------------------------------------------------------------
    def get(self, sop_uid: str) -> Entry | None:
        rows = self._run("SELECT * FROM instances WHERE sop_uid = ?", (sop_uid,))
        return Entry(*rows[0]) if rows else None

    def pending_scoring(self) -> list[Entry]:
        """Received and not yet scored (oldest first): resumed after a restart."""
        return [Entry(*r) for r in self._run("SELECT * FROM instances WHERE state = 'received' ORDER BY received_at")]

    def pending_delivery(self, due_before: float | None = None, limit: int = 1000) -> list[Entry]:
        """Scored and not yet delivered whose next attempt is due (oldest first)."""
        due = time.time() if due_before is None else due_before
        rows = self._run(
            "SELECT * FROM instances WHERE state = 'scored' AND next_attempt <= ? ORDER BY scored_at LIMIT ?",
            (due, int(limit)),
        )
        return [Entry(*r) for r in rows]

    def next_delivery_due(self) -> float | None:
        rows = self._run("SELECT MIN(next_attempt) FROM instances WHERE state = 'scored'")
        return None if not rows or rows[0][0] is None else float(rows[0][0])

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        for state, n in self._run("SELECT state, COUNT(*) FROM instances GROUP BY state"):
            out[state] = int(n)
        return out

    def entries(self, state: str | None = None) -> list[Entry]:
        if state is None:
            return [Entry(*r) for r in self._run("SELECT * FROM instances ORDER BY received_at")]
        return [Entry(*r) for r in self._run("SELECT * FROM instances WHERE state = ? ORDER BY received_at", (state,))]
