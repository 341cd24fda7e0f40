"""Sends SRs to the PACS by C-STORE, retrying with back-off while it is down.

One thread takes the journal's due `scored` rows and hands them to `workers` sender threads,
each with its own association to the PACS (kept open while there is work, released after
`idle_release_s` of quiet), and marks each delivered on a success (or warning) status. Several
associations let the PACS store SRs in parallel (Orthanc fsyncs each one). A failure
(association refused, timeout, failure status) schedules the row again after
`config.retry_delay(attempts)`, so a PACS that is down is retried at 1, 2, 4, ... 60 s
without losing anything: the rows stay `scored` in the journal, across restarts too.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from radz_engine.serve.journal import Journal
from radz_engine.serve.privacy import describe_error
from radz_engine.serve.spool import uid_hash

__all__ = ["Deliverer"]

log = logging.getLogger("radz_engine.serve")
_SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.33"  # Comprehensive SR Storage


class Deliverer:
    """The delivery thread. `on_delivered(entry, seconds_since_received)` is called per SR."""

    def __init__(
        self, journal: Journal, config, on_delivered=None, on_error=None, workers: int = 4, idle_release_s: float = 5.0
    ) -> None:
        self.journal = journal
        self.config = config
        self.peer = config.forward
        self.on_delivered = on_delivered
        self.on_error = on_error
        self.idle_release_s = idle_release_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._local = threading.local()  # each sender thread's association
        self._assocs: list = []
        self._assocs_lock = threading.Lock()
        self._senders = ThreadPoolExecutor(workers, thread_name_prefix="radz-deliver")
        self._down_until = 0.0  # after an association failure: the PACS is left alone till then
        self._thread = threading.Thread(target=self._loop, name="radz-delivery", daemon=True)
        self.last_error: str | None = None
        self.failing = False  # the last delivery attempt failed (cleared by the next success)

    def start(self) -> None:
        if self.peer is not None:
            self._thread.start()

    def wake(self) -> None:
        """New SRs are waiting."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._senders.shutdown(wait=True)
        self._release_all()

    # -- the loop ----------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        """The delivery thread is running (or was never needed: no --forward)."""
        return self.peer is None or self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._deliver_until_stopped()
            except Exception as error:  # noqa: BLE001 - e.g. the journal's disk is full: log, wait, go on
                log.error("SR delivery loop failed; retrying in 5 s: %s", describe_error(error))
                self._stop.wait(5.0)

    def _deliver_until_stopped(self) -> None:
        last_work = time.time()
        while not self._stop.is_set():
            due = self.journal.pending_delivery(limit=256) if time.time() >= self._down_until else []
            if not due:
                if time.time() - last_work > self.idle_release_s:
                    self._release_all()  # hold no association while idle (PACS limit their number)
                nxt = self.journal.next_delivery_due()
                wait = 1.0 if nxt is None else min(1.0, max(0.01, max(nxt, self._down_until) - time.time()))
                self._wake.wait(wait)
                self._wake.clear()
                continue
            last_work = time.time()
            # Each entry goes to exactly one sender; the next query waits for all of them.
            list(self._senders.map(self._send, due))

    def _send(self, entry) -> bool:
        """Send one SR; False when the association itself failed."""
        from pydicom import dcmread

        if self._stop.is_set():
            return False
        if time.time() < self._down_until:  # another sender just found the PACS down
            self._failed(entry, self.last_error or "PACS unreachable")
            return False

        try:
            sr = dcmread(entry.sr_path)
        except Exception as error:  # the spooled SR is unreadable: cannot ever be delivered as is
            self._failed(entry, f"the spooled SR is unreadable: {describe_error(error)}")
            return True
        assoc = self._association()
        if assoc is None:
            self._down_until = time.time() + self.config.retry_delay(entry.attempts + 1)
            self._failed(entry, self.last_error or "association failed")
            return False
        try:
            status = assoc.send_c_store(sr)
        except Exception as error:  # pynetdicom raises on a broken association
            self._release()
            self._failed(entry, f"C-STORE to {self.peer} failed: {describe_error(error)}")
            return False
        code = int(getattr(status, "Status", -1)) if status is not None and "Status" in status else -1
        if code == 0x0000 or 0xB000 <= code <= 0xBFFF:
            self.journal.mark_delivered(entry.sop_uid)
            self.failing = False
            if self.on_delivered is not None:
                self.on_delivered(entry, time.time() - entry.received_at)
            return True
        if code == -1:  # no response: the association died (timeout, abort)
            self._release()
            self._failed(entry, f"C-STORE to {self.peer}: no response (association aborted or timed out)")
            return False
        self._failed(entry, f"C-STORE to {self.peer}: status 0x{code:04X}")
        return True

    def _failed(self, entry, error: str) -> None:
        attempts = entry.attempts + 1
        delay = self.config.retry_delay(attempts)
        self.journal.delivery_failed(entry.sop_uid, error, delay)
        self.last_error = error
        self.failing = True
        if self.on_error is not None:
            self.on_error(error)
        log.warning(
            "delivery of SR for instance %s failed (attempt %d, retry in %.0f s): %s",
            uid_hash(entry.sop_uid),
            attempts,
            delay,
            error,
        )

    # -- the association ---------------------------------------------------------------------
    def _association(self):
        assoc = getattr(self._local, "assoc", None)
        if assoc is not None and assoc.is_established:
            return assoc
        from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
        from pynetdicom import AE

        ae = AE(ae_title=self.config.ae_title)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
        ae.add_requested_context(_SR_STORAGE, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        assoc = ae.associate(self.peer.host, self.peer.port, ae_title=self.peer.ae_title)
        if not assoc.is_established:
            self.last_error = f"cannot associate with {self.peer} (refused, rejected or unreachable)"
            return None
        self._local.assoc = assoc
        with self._assocs_lock:
            self._assocs.append(assoc)
        return assoc

    def _release(self) -> None:
        """Drop this sender thread's association (it broke)."""
        assoc, self._local.assoc = getattr(self._local, "assoc", None), None
        if assoc is not None:
            with self._assocs_lock:
                if assoc in self._assocs:
                    self._assocs.remove(assoc)
            self._close(assoc)

    def _release_all(self) -> None:
        with self._assocs_lock:
            assocs, self._assocs = self._assocs, []
        for assoc in assocs:
            self._close(assoc)

    @staticmethod
    def _close(assoc) -> None:
        if assoc.is_established:
            try:
                assoc.release()
            except Exception:  # noqa: BLE001 - closing a dead association must not stop delivery
                log.debug("association release failed", exc_info=True)
