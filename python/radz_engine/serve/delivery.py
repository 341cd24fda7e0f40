"""Sends SRs to the PACS by C-STORE, retrying with back-off while it is down.

One thread: takes the journal's due `scored` rows, sends each SR over one association kept
open between sends, and marks it delivered on a success (or warning) status. A failure
(association refused, timeout, failure status) schedules the row again after
`config.retry_delay(attempts)`, so a PACS that is down is retried at 1, 2, 4, ... 60 s
without losing anything: the rows stay `scored` in the journal, across restarts too.
"""

from __future__ import annotations

import logging
import threading
import time

from .journal import Journal
from .spool import uid_hash

__all__ = ["Deliverer"]

log = logging.getLogger("radz_engine.serve")
_SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.33"  # Comprehensive SR Storage


class Deliverer:
    """The delivery thread. `on_delivered(entry, seconds_since_received)` is called per SR."""

    def __init__(self, journal: Journal, config, on_delivered=None, on_error=None) -> None:
        self.journal = journal
        self.config = config
        self.peer = config.forward
        self.on_delivered = on_delivered
        self.on_error = on_error
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._assoc = None
        self._thread = threading.Thread(target=self._loop, name="radz-delivery", daemon=True)
        self.last_error: str | None = None

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
        self._release()

    # -- the loop ----------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            due = self.journal.pending_delivery(limit=256)
            if not due:
                self._release_if_idle()
                nxt = self.journal.next_delivery_due()
                wait = 1.0 if nxt is None else min(1.0, max(0.0, nxt - time.time()))
                self._wake.wait(wait)
                self._wake.clear()
                continue
            for entry in due:
                if self._stop.is_set():
                    return
                if not self._send(entry):
                    break  # the PACS is unreachable: the rest wait for their own retry time

    def _send(self, entry) -> bool:
        """Send one SR; False when the association itself failed (stop this round)."""
        from pydicom import dcmread

        try:
            sr = dcmread(entry.sr_path)
        except Exception as error:  # the spooled SR is unreadable: cannot ever be delivered as is
            self._failed(entry, f"SR file {entry.sr_path} unreadable: {error}")
            return True
        assoc = self._association()
        if assoc is None:
            self._failed(entry, self.last_error or "association failed")
            return False
        try:
            status = assoc.send_c_store(sr)
        except Exception as error:  # pynetdicom raises on a broken association
            self._release()
            self._failed(entry, f"C-STORE to {self.peer} failed: {error}")
            return False
        code = int(getattr(status, "Status", -1)) if status is not None and "Status" in status else -1
        if code == 0x0000 or 0xB000 <= code <= 0xBFFF:
            self.journal.mark_delivered(entry.sop_uid)
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
        if self.on_error is not None:
            self.on_error(error)
        log.warning("delivery of SR for instance %s failed (attempt %d, retry in %.0f s): %s",
                    uid_hash(entry.sop_uid), attempts, delay, error)

    # -- the association ---------------------------------------------------------------------
    def _association(self):
        if self._assoc is not None and self._assoc.is_established:
            return self._assoc
        from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
        from pynetdicom import AE

        ae = AE(ae_title=self.config.ae_title)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
        ae.add_requested_context(_SR_STORAGE, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        assoc = ae.associate(self.peer.host, self.peer.port, ae_title=self.peer.ae_title)
        if not assoc.is_established:
            self.last_error = f"cannot associate with {self.peer} (refused, rejected or unreachable)"
            return None
        self._assoc = assoc
        return assoc

    def _release(self) -> None:
        assoc, self._assoc = self._assoc, None
        if assoc is not None and assoc.is_established:
            try:
                assoc.release()
            except Exception:  # noqa: BLE001 - closing a dead association must not stop delivery
                log.debug("association release failed", exc_info=True)

    def _release_if_idle(self) -> None:
        # Keep no association open while there is nothing to send (PACS limit their number).
        self._release()
