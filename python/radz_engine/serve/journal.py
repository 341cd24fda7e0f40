"""The durable journal of `radz serve`: one row per received SOP Instance UID (SQLite, WAL).

States:  received -> scored -> delivered          the normal path
         received -> failed                        could not be scored (reason kept)
         rejected                                  refused at C-STORE (reason kept; never scored)
         ignored                                   a SOP class accepted but not scored (config)

A row is committed (synchronous=FULL) *before* the C-STORE response is sent, so a success
status means the instance is on disk and journaled. After a crash, `pending_scoring` and
`pending_delivery` give the work to resume. Idempotent by SOP Instance UID: receiving an
instance again never makes a second row (the new copy replaces the spooled file only while
the first has not been scored).

Thread-safe: one connection, serialised by a lock (SQLite's own locking covers other processes).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Journal", "Entry", "STATES"]

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
    calling_ae    TEXT
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
        dataset_path: str,
        calling_ae: str | None = None,
        state: str = "received",
        error: str | None = None,
    ) -> str:
        """Journal a received instance; returns its state afterwards. A duplicate of an
        instance already scored or delivered keeps that state (and is not scored again); a
        duplicate of one still waiting, failed or rejected is taken as a retry."""
        if state not in ("received", "rejected", "ignored"):
            raise ValueError(f"state: a received instance is 'received', 'rejected' or 'ignored', not {state!r}")
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT state FROM instances WHERE sop_uid = ?", (sop_uid,)).fetchone()
                if row is None:
                    self._db.execute(
                        "INSERT INTO instances (sop_uid, study_uid, sop_class, state, dataset_path, error, received_at,"
                        " calling_ae) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (sop_uid, study_uid, sop_class, state, dataset_path, error, now, calling_ae),
                    )
                    result = state
                elif row[0] in ("scored", "delivered", "ignored"):
                    result = row[0]
                else:  # received / failed / rejected: this copy replaces it
                    self._db.execute(
                        "UPDATE instances SET state = ?, dataset_path = ?, error = ?, attempts = 0, received_at = ?,"
                        " calling_ae = ? WHERE sop_uid = ?",
                        (state, dataset_path, error, now, calling_ae, sop_uid),
                    )
                    result = state
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return result

    def mark_scored(self, sop_uid: str, sr_path: str) -> None:
        self._run(
            "UPDATE instances SET state = 'scored', sr_path = ?, scored_at = ?, error = NULL, next_attempt = 0"
            " WHERE sop_uid = ? AND state = 'received'",
            (sr_path, time.time(), sop_uid),
        )

    def mark_failed(self, sop_uid: str, error: str) -> None:
        self._run(
            "UPDATE instances SET state = 'failed', error = ? WHERE sop_uid = ? AND state = 'received'",
            (error, sop_uid),
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
