"""RadzServer: received instance -> journal -> Engine -> SR -> PACS, nothing lost.

Order of durable steps for one instance (each survives a crash of any later one):
    1. C-STORE handler: the dataset as received is written to the spool (fsync), the journal
       row committed as `received`, and only then is the success status returned;
    2. scoring: Engine.submit -> the SR is built and written to the spool (fsync), a JSON line
       appended to results/results.jsonl, then the row becomes `scored`;
    3. delivery: the SR is C-STOREd to the PACS, then the row becomes `delivered`.
A restart resumes every `received` row (step 2) and every `scored` row (step 3). The SR's
UID is derived from the source's, so a step repeated after a crash gives the same SR and the
PACS stores it once; the JSON lines are at-least-once (consumers key them by sop_instance_uid).
Copies of one instance (journal.py): the newest acknowledged copy wins until the instance is
scored; outcomes of an older copy are dropped (checked under a per-instance lock that the
C-STORE handler takes too, so "scored" and "a newer copy arrived" never interleave).
Logs name instances by a hash of their UID only: never patient names or IDs; wire values in
logs, the journal and results go through privacy.py (escaped, bounded, patient values removed).
"""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from radz_engine.bundle.card import notice
from radz_engine.serve.checks import CANNOT_UNDERSTAND, OUT_OF_RESOURCES, Rejection, check_dataset, check_size
from radz_engine.serve.config import SCORED_SOP_CLASSES, ServeConfig
from radz_engine.serve.delivery import Deliverer
from radz_engine.serve.http import Metrics, StatusServer
from radz_engine.serve.journal import Journal
from radz_engine.serve.privacy import (
    clean_header,
    describe_error,
    error_comment,
    escape,
    quiet_third_party_logs,
    redact,
)
from radz_engine.serve.spool import Spool, uid_hash

__all__ = ["RadzServer"]

log = logging.getLogger("radz_engine.serve")


def _log_exception(future) -> None:
    """Done-callback for pool tasks: an exception nobody waits for is logged, not lost."""
    if not future.cancelled() and future.exception() is not None:  # no traceback: it may quote wire values
        log.error("radz serve task failed: %s", describe_error(future.exception()))


def check_intended_use(card: dict, config: ServeConfig) -> dict:
    """Refuse (ConfigError) to serve a research-use model unless --research-use was given: its
    SRs would reach a PACS beside clinical results. Returns the card."""
    from radz_engine.serve.config import ConfigError

    if card.get("intended_use") == "research" and not config.research_use:
        raise ConfigError(
            f"--research-use: the bundle's model card ({card.get('name')} {card.get('version')}, hash "
            f"{card.get('hash')}) says intended use 'research' ({notice(card)}); `radz serve` sends its results to "
            "a PACS only with --research-use, and then every SR says so (`radz bundle info` shows the card)"
        )
    return card


class RadzServer:
    """The whole node. `engine`: an Engine to use (default: one made from config.bundle)."""

    def __init__(self, config: ServeConfig, engine=None) -> None:
        self.config = config
        if engine is None:  # the card is checked before anything is loaded or created
            from radz_engine.bundle.loader import load_bundle

            card = load_bundle(config.bundle, verify_hashes=False, check_onnx=False).card()
        else:
            card = engine.bundle.card()
        check_intended_use(card, config)
        config.work_dir.mkdir(parents=True, exist_ok=True)
        config.results_dir.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(config.work_dir / "journal.sqlite")
        self.spool = Spool(config.work_dir / "spool")
        if engine is None:
            from radz_engine.runtime.engine import Engine

            engine = Engine(
                config.bundle,
                backend=config.backend,
                device=list(config.device) if isinstance(config.device, tuple) else config.device,
                threads=config.engine_threads,
                max_delay_ms=2.0,
                backend_options=({"int8": True} if config.int8 else {})
                | ({"checkpoint": str(config.checkpoint)} if config.checkpoint else {})
                or None,
                similar_index=config.similar_index,
                neighbours=config.neighbours,
            )
        elif config.similar_index is not None:
            engine.attach_index(config.similar_index, k=config.neighbours)
        self.engine = engine
        # The SR's algorithm identification comes from the model card (docs/MODEL_CARD.md); the card
        # of the engine's bundle, as it was loaded (its content hash).
        self.card = engine.bundle.card()
        self.model_name = config.model_name or str(self.card["name"])  # the SR's Algorithm Name
        self.model_version = f"{self.card['version']} sha256:{self.card['hash']}"
        self.notice = notice(self.card)
        self.metrics = Metrics(self.journal)
        self._results_lock = threading.Lock()
        self._results = (config.results_dir / "results.jsonl").open("a", encoding="utf-8")
        self._in_pipeline: set[str] = set()
        self._pipeline_lock = threading.Lock()
        self._scorers = ThreadPoolExecutor(config.scoring_workers, thread_name_prefix="radz-score")
        self._finishers = ThreadPoolExecutor(2, thread_name_prefix="radz-sr")
        self._webhooks = ThreadPoolExecutor(1, thread_name_prefix="radz-webhook") if config.webhook else None
        self.deliverer = Deliverer(
            self.journal,
            config,
            on_delivered=self._delivered,
            on_error=lambda error: self.metrics.delivery_errors.inc(),
        )
        self._scp = None
        self._http = None
        self._stopping = threading.Event()
        self._in_flight = threading.BoundedSemaphore(config.max_in_flight)  # datasets held in memory
        self._attempts: dict[str, int] = {}  # scoring attempts that failed for a passing reason
        self._uid_locks = [threading.Lock() for _ in range(256)]  # per instance (striped): see the module doc

    def _uid_lock(self, sop_uid: str) -> threading.Lock:
        return self._uid_locks[int(uid_hash(sop_uid)[:4], 16) % len(self._uid_locks)]

    # -- life cycle --------------------------------------------------------------------------
    def _warm_up(self) -> None:
        """Load what the first request would otherwise wait for: highdicom, the model's first run."""
        import highdicom  # noqa: F401 - a slow first import (seconds)
        import numpy as np

        from radz_engine.preprocessing.pixel_spec import PixelSpec

        identity = PixelSpec(window_center=0.5, window_width=1.0, voi_function="LINEAR_EXACT")
        self.engine.classify([(np.random.default_rng(0).random((64, 64), dtype=np.float32), identity)])

    def start(self) -> RadzServer:
        from radz_engine.serve.config import ConfigError
        from radz_engine.serve.scp import start_scp

        self._warm_up()  # imports highdicom and pydicom's decoders
        quiet_third_party_logs()
        self._sweep_spool()

        try:
            self._scp = start_scp(self.config, self._on_store)
        except OSError as error:
            raise ConfigError(
                f"--port {self.config.port}: cannot listen on {self.config.bind}: {error.strerror or error}"
            ) from None
        if self.config.http_port is not None:
            try:
                self._http = StatusServer("127.0.0.1", int(self.config.http_port), self.health, self.metrics)
            except OSError as error:
                self._scp.shutdown()
                self._scp = None
                raise ConfigError(
                    f"--http-port {self.config.http_port}: cannot listen on 127.0.0.1: {error.strerror or error}"
                ) from None
            self._http.start()
            log.info("/healthz and /metrics on http://127.0.0.1:%d", self._http.port)
        resumed = self.journal.pending_scoring()
        for entry in resumed:
            self._enqueue(entry.sop_uid)
        waiting = self.journal.counts()["scored"]
        if resumed or waiting:
            log.info("resuming after a restart: %d instances to score, %d SRs to deliver", len(resumed), waiting)
        self.deliverer.start()
        return self

    def _sweep_spool(self) -> None:
        """Remove spool files no journal row needs any more (a crash between a state change and
        the file's removal leaves one): received images hold patient data."""
        if self.config.keep_spool:
            return
        needed = {
            self.spool.incoming: {Path(e.dataset_path).name for e in self.journal.pending_scoring() if e.dataset_path},
            self.spool.sr: {Path(e.sr_path).name for e in self.journal.entries("scored") if e.sr_path},
        }
        removed = 0
        for folder, keep in needed.items():
            for path in folder.glob("*.dcm"):
                if path.name not in keep:
                    path.unlink(missing_ok=True)
                    removed += 1
        if removed:
            log.info("removed %d spool files left by an earlier run", removed)

    @property
    def port(self) -> int:
        return self._scp.server_address[1]

    @property
    def http_port(self) -> int | None:
        return None if self._http is None else self._http.port

    def stop(self) -> None:
        """Stop accepting (open associations are aborted: their senders still own what was not
        acknowledged), score what the engine already holds, stop. Anything unfinished stays
        `received` or `scored` in the journal and is resumed by the next start."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._scp is not None:
            self._scp.shutdown()
            for assoc in list(getattr(self._scp, "active_associations", [])):
                assoc.abort()
        self._scorers.shutdown(wait=True, cancel_futures=True)
        self.engine.close(drain=True)
        self._finishers.shutdown(wait=True)
        self.deliverer.stop()
        if self._webhooks is not None:
            self._webhooks.shutdown(wait=True)
        if self._http is not None:
            self._http.stop()
        with self._results_lock:
            self._results.close()
        self.journal.close()

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """True once nothing is waiting to be scored or delivered (tests, benchmarks)."""
        end = time.time() + timeout
        while time.time() < end:
            counts = self.journal.counts()
            with self._pipeline_lock:
                busy = bool(self._in_pipeline)
            if not busy and counts["received"] == 0 and (self.config.forward is None or counts["scored"] == 0):
                return True
            time.sleep(0.05)
        return False

    def health(self) -> dict:
        """The node's state; `ok` is False (HTTP 503) with `reasons` while it cannot do its job:
        the SCP is down, every association is taken, TLS handshakes are backed up, or the SRs
        waiting cannot be delivered."""
        counts = self.journal.counts()
        scp_up = self._scp is not None and not self._stopping.is_set()
        delivering = self.config.forward is None or self.deliverer.alive
        reasons = []
        if not scp_up:
            reasons.append("the DICOM SCP is not running")
        if not delivering:
            reasons.append("the SR delivery thread is not running")
        if self.config.forward is not None and counts["scored"] and self.deliverer.failing:
            reasons.append(f"SR delivery to {self.config.forward} failing: {escape(self.deliverer.last_error, 120)}")
        active = len(self._scp.active_associations) if scp_up else 0
        if scp_up and active >= self.config.max_associations:
            reasons.append(f"all {self.config.max_associations} associations in use (--max-associations)")
        handshakes = self._scp.tls_handshakes() if scp_up and self.config.tls else (0, 0.0)
        if handshakes[0] >= self.config.max_associations:
            reasons.append(f"{handshakes[0]} TLS handshakes waiting: new connections are refused")
        return {
            "ok": not reasons,
            "status": "ok" if not reasons else "degraded",
            "reasons": reasons,
            "delivery_thread_alive": delivering,
            "ae_title": self.config.ae_title,
            "port": self.port if self._scp else None,
            "backend": self.engine.backend.name,
            "device": [b.device for b in getattr(self.engine, "backends", [self.engine.backend])],
            "model": self.model_name,
            "journal": counts,
            "associations": {"active": active, "max": self.config.max_associations},
            "tls_handshakes_waiting": handshakes[0],
            "forward": str(self.config.forward) if self.config.forward else None,
            "last_delivery_error": escape(self.deliverer.last_error, 200)
            if counts["scored"] and self.deliverer.last_error
            else None,
        }

    # -- C-STORE -----------------------------------------------------------------------------
    def _on_store(self, event):
        """The C-STORE handler: check, spool, journal, then answer. Never raises."""
        sop_uid = str(event.request.AffectedSOPInstanceUID or "")
        sop_class = str(event.request.AffectedSOPClassUID or "")
        caller = str(event.assoc.requestor.ae_title).strip()
        if self._stopping.is_set():  # the sender keeps it and sends it again later
            return self._status(OUT_OF_RESOURCES, "radz is shutting down; send again later")
        try:
            return self._store(event, sop_uid, sop_class, caller)
        except Exception as error:  # noqa: BLE001 - the server keeps serving whatever arrives
            log.error("C-STORE of instance %s failed: %s", uid_hash(sop_uid), describe_error(error))
            self.metrics.received.labels("error").inc()
            return self._status(OUT_OF_RESOURCES, f"radz could not store the instance: {type(error).__name__}")

    def _store(self, event, sop_uid: str, sop_class: str, caller: str):
        received = time.time()
        caller = escape(caller, 16)
        if not sop_uid:
            self.metrics.received.labels("rejected").inc()
            return self._status(CANNOT_UNDERSTAND, "no Affected SOP Instance UID")
        data = event.encoded_dataset(include_meta=True)
        ignored = None
        try:
            check_size(len(data), self.config)  # before decoding anything
            ds = event.dataset
            ds.file_meta = event.file_meta
            study = str(ds.get("StudyInstanceUID", "")) or None
            if sop_class not in SCORED_SOP_CLASSES:  # accepted only with --other-sop-classes ignore
                ignored = f"SOP class {escape(sop_class, 64)} is not scored"
            else:
                if str(ds.get("SOPInstanceUID", "")) != sop_uid:
                    raise Rejection(CANNOT_UNDERSTAND, "SOP Instance UID in the dataset differs from the request's")
                ignored = check_dataset(ds, len(data), self.config)
        except Rejection as rejection:
            return self._refuse(sop_uid, sop_class, caller, rejection.status, rejection.reason)
        except Exception as error:  # noqa: BLE001 - a dataset pydicom cannot parse
            return self._refuse(
                sop_uid, sop_class, caller, CANNOT_UNDERSTAND, f"cannot parse the dataset: {describe_error(error)}"
            )
        if ignored is not None:
            with self._uid_lock(sop_uid):
                done = self.journal.receive(sop_uid, study, sop_class, None, caller, state="ignored", error=ignored)
            self.metrics.received.labels("ignored" if done.taken else "duplicate").inc()
            log.info("ignored instance %s from %s: %s", uid_hash(sop_uid), caller, ignored)
            return 0x0000
        known = self.journal.get(sop_uid)
        if known is not None and known.state in ("scored", "delivered", "ignored"):
            self.metrics.received.labels("duplicate").inc()  # answered already: nothing to keep
            return 0x0000
        path = self.spool.write_incoming(sop_uid, data, tag=uuid.uuid4().hex[:12])  # one file per copy
        with self._uid_lock(sop_uid):
            done = self.journal.receive(sop_uid, study, sop_class, str(path), caller)
            if done.taken:
                self._attempts.pop(sop_uid, None)  # a new copy: its own attempts
        if done.taken:
            if done.replaced_path and not self.config.keep_spool:
                Path(done.replaced_path).unlink(missing_ok=True)  # the older copy is superseded
            self._enqueue(sop_uid)
            self.metrics.received.labels("accepted").inc()
        else:  # scored meanwhile by an earlier copy: answered once
            path.unlink(missing_ok=True)
            self.metrics.received.labels("duplicate").inc()
        log.debug(
            "stored instance %s (copy %d) from %s in %.1f ms (%s)",
            uid_hash(sop_uid),
            done.copy,
            caller,
            (time.time() - received) * 1000,
            done.state,
        )
        return 0x0000

    def _refuse(self, sop_uid: str, sop_class: str, caller: str, status: int, reason: str):
        """A failure status for this copy; the journal keeps it only for an instance never
        acknowledged (a refused resend never changes an acknowledged instance's state)."""
        with self._uid_lock(sop_uid):
            done = self.journal.receive(sop_uid, None, sop_class, None, caller, state="rejected", error=reason)
        self.metrics.received.labels("rejected").inc()
        log.warning(
            "refused instance %s from %s (0x%04X): %s%s",
            uid_hash(sop_uid),
            caller,
            status,
            reason,
            "" if done.taken else f"; the copy acknowledged earlier stays {done.state}",
        )
        return self._status(status, reason)

    @staticmethod
    def _status(code: int, comment: str):
        from pydicom.dataset import Dataset

        status = Dataset()
        status.Status = code
        status.ErrorComment = error_comment(comment)  # LO: 64 printable characters, escaped
        return status

    # -- scoring -----------------------------------------------------------------------------
    # Every instance taken into the pipeline leaves it through _leave, which looks at the journal
    # again: a copy received meanwhile (state back to `received`) is scored too. Failures for a
    # passing reason (the engine's queue full, the engine closing) leave the row `received`, to
    # be retried (up to 3 times while running; always after a restart); only a problem with the
    # instance itself (cannot decode, cannot make the SR) makes it `failed`.
    def _enqueue(self, sop_uid: str) -> None:
        if self._stopping.is_set():
            return
        with self._pipeline_lock:
            if sop_uid in self._in_pipeline:
                return
            self._in_pipeline.add(sop_uid)
        try:
            self._scorers.submit(self._score, sop_uid).add_done_callback(_log_exception)
        except RuntimeError:  # the pool is shut down: the row stays `received` for the restart
            self._leave(sop_uid, recheck=False)

    def _leave(self, sop_uid: str, recheck: bool = True) -> None:
        with self._pipeline_lock:
            self._in_pipeline.discard(sop_uid)
        if recheck and not self._stopping.is_set():
            entry = self.journal.get(sop_uid)
            if entry is not None and entry.state == "received" and self._attempts.get(sop_uid, 0) < 3:
                self._enqueue(sop_uid)

    def _score(self, sop_uid: str) -> None:
        """Decode + submit (in a scoring thread); the SR is made when the result arrives."""
        from pydicom import dcmread

        from radz_engine.errors import EngineClosed

        entry = None
        try:
            entry = self.journal.get(sop_uid)
            if entry is None or entry.state != "received":
                self._leave(sop_uid, recheck=False)
                return
            while not self._in_flight.acquire(timeout=0.5):  # bounded memory under a burst
                if self._stopping.is_set():
                    self._leave(sop_uid, recheck=False)
                    return
        except Exception as error:  # noqa: BLE001 - the journal failed: leave the row for the restart
            log.error("scoring instance %s: journal unavailable: %s", uid_hash(sop_uid), describe_error(error))
            self._leave(sop_uid, recheck=False)
            return
        try:
            ds = dcmread(entry.dataset_path)
        except Exception as error:  # noqa: BLE001 - the spooled file is unreadable
            self._in_flight.release()
            self._fail(entry, f"cannot read the received dataset: {describe_error(error)}")
            self._leave(sop_uid)
            return
        try:
            future = self._submit(ds)
        except EngineClosed:  # stopping: the row stays `received`
            self._in_flight.release()
            self._leave(sop_uid, recheck=False)
            return
        except Exception as error:  # noqa: BLE001 - the engine refused it for another reason
            self._in_flight.release()
            self._fail(entry, redact(f"cannot score: {describe_error(error)}", ds), ds)
            self._leave(sop_uid)
            return
        if "PixelData" in ds:
            del ds.PixelData  # decoded and preprocessed already; the SR needs the header only
        future.add_done_callback(lambda f: self._hand_to_finisher(entry, ds, f))

    def _submit(self, ds):
        """Engine.submit, waiting while its queue is full (backpressure) rather than failing."""
        from radz_engine import _core

        while True:
            try:
                return self.engine.submit(ds)
            except _core.QueueFull:
                if self._stopping.is_set():
                    from radz_engine.errors import EngineClosed

                    raise EngineClosed("radz serve is stopping") from None
                time.sleep(0.05)

    def _hand_to_finisher(self, entry, ds, future) -> None:
        try:
            self._finishers.submit(self._finish, entry, ds, future).add_done_callback(_log_exception)
        except RuntimeError:  # finishers shut down: the row stays `received` for the restart
            self._in_flight.release()
            self._leave(entry.sop_uid, recheck=False)

    def _finish(self, entry, ds, future) -> None:
        from concurrent.futures import CancelledError

        from radz_engine.errors import EngineClosed

        try:
            try:
                result = future.result()
            except (EngineClosed, CancelledError):  # stopping: resumed after the restart
                return
            except Exception as error:  # noqa: BLE001 - the batch failed (backend error): passing, retry
                self._attempts[entry.sop_uid] = attempts = self._attempts.get(entry.sop_uid, 0) + 1
                reason = redact(describe_error(error), ds)
                log.warning("instance %s: scoring attempt %d failed: %s", uid_hash(entry.sop_uid), attempts, reason)
                if attempts >= 3:
                    self._fail(entry, f"scoring failed 3 times, last: {reason}", ds)
                return
            if result.error:
                self._fail(entry, redact(escape(result.error, 300), ds), ds)
                return
            self._answer(entry, ds, result)
        except Exception as error:  # noqa: BLE001 - one bad instance never stops the server
            reason = redact(f"cannot make the SR: {describe_error(error)}", ds)
            log.error("instance %s: %s", uid_hash(entry.sop_uid), reason)  # no traceback: it quotes values
            self._fail(entry, reason, ds)
        finally:
            self._in_flight.release()
            self._leave(entry.sop_uid)

    def _answer(self, entry, ds, result) -> None:
        """SR -> spool, JSON line, journal `scored`, then the webhook and the delivery. Recorded
        only while the journal row still stands for this copy (a newer copy replaces it)."""
        from radz_engine.serve.sr import build_sr

        thresholds = self._thresholds()
        left_out = clean_header(ds)  # malformed demographics: left out of the SR, never blocking it
        if left_out:
            log.info("instance %s: left out of the SR (malformed): %s", uid_hash(entry.sop_uid), ", ".join(left_out))
        sr = build_sr(
            ds,
            result,
            self.model_name,
            self.model_version,
            thresholds,
            manufacturer=str(self.card.get("manufacturer") or "radz_engine"),
            notice=self.notice,
            intended_use=self.card["intended_use"],
        )
        buffer = io.BytesIO()
        sr.save_as(buffer, enforce_file_format=True)
        record = {
            "sop_instance_uid": entry.sop_uid,
            "study_instance_uid": entry.study_uid,
            "sr_sop_instance_uid": str(sr.SOPInstanceUID),
            "model": self.model_name,
            "scores": result.scores,
            "positives": result.positives,
            # Index row ids, similarity and findings; not the other studies' file paths (see sr.py).
            **(
                {"neighbours": [{k: v for k, v in n.items() if k != "source"} for n in result.neighbours]}
                if result.neighbours
                else {}
            ),
            "thresholds": thresholds,
            "timings_ms": result.timings,
            "received_at": entry.received_at,
            "scored_at": time.time(),
        }
        with self._uid_lock(entry.sop_uid):
            if not self._current(entry):
                self._drop_stale(entry)
                return
            sr_path = self.spool.write_sr(entry.sop_uid, buffer.getvalue())
            self._write_result(record)
            self.journal.mark_scored(entry.sop_uid, str(sr_path), copy=entry.copy)
        self._attempts.pop(entry.sop_uid, None)
        if not self.config.keep_spool:  # scored: the SR now stands for it
            Path(entry.dataset_path).unlink(missing_ok=True)
        self.metrics.scored.inc()
        self.metrics.to_scored.observe(time.time() - entry.received_at)
        if self._webhooks is not None:
            self._webhooks.submit(self._post_webhook, record).add_done_callback(_log_exception)
        self.deliverer.wake()

    def _current(self, entry) -> bool:
        """The journal row still waits to be scored and stands for `entry`'s copy (call under its lock)."""
        now = self.journal.get(entry.sop_uid)
        return now is not None and now.state == "received" and now.copy == entry.copy

    def _drop_stale(self, entry) -> None:
        """An outcome of a copy a newer one replaced: dropped; the newer copy is scored instead."""
        log.info(
            "instance %s: copy %d was replaced by a newer copy; its outcome is dropped",
            uid_hash(entry.sop_uid),
            entry.copy,
        )
        if not self.config.keep_spool and entry.dataset_path:
            Path(entry.dataset_path).unlink(missing_ok=True)  # this copy's own file only

    def _fail(self, entry, reason: str, ds=None) -> None:
        """The instance itself cannot be scored: journaled `failed` with the reason (escaped,
        without patient or study values), unless a newer copy replaced this one."""
        if entry.dataset_path:
            reason = reason.replace(entry.dataset_path, "<spool>")
        reason = redact(reason, ds)[:300]  # callers pass escaped text (escape, describe_error)
        with self._uid_lock(entry.sop_uid):
            if not self.journal.mark_failed(entry.sop_uid, reason, copy=entry.copy):
                self._drop_stale(entry)
                return
            self._write_result(
                {
                    "sop_instance_uid": entry.sop_uid,
                    "study_instance_uid": entry.study_uid,
                    "error": reason,
                    "received_at": entry.received_at,
                }
            )
        self._attempts.pop(entry.sop_uid, None)
        self.metrics.failed.inc()
        log.warning("instance %s not scored: %s", uid_hash(entry.sop_uid), reason)
        if not self.config.keep_spool and entry.dataset_path:
            Path(entry.dataset_path).unlink(missing_ok=True)  # patient data; a resend brings a new copy

    def _thresholds(self) -> dict:
        return {n: (None if v == float("inf") else v) for n, v in self.engine.scorer.thresholds().items()}

    def _write_result(self, record: dict) -> None:
        line = json.dumps(record, default=float) + "\n"
        with self._results_lock:
            self._results.write(line)
            self._results.flush()
            os.fsync(self._results.fileno())  # on disk before the row becomes `scored`

    def _post_webhook(self, record: dict) -> None:
        import urllib.request

        body = json.dumps(record, default=float).encode()
        last: object = None
        for attempt in range(3):
            try:
                request = urllib.request.Request(
                    self.config.webhook, data=body, method="POST", headers={"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - http(s) checked in config
                    if 200 <= response.status < 300:
                        return
                    last = f"HTTP {response.status}"
            except Exception as error:  # noqa: BLE001 - a webhook is best effort
                last = error
            time.sleep(0.5 * 2**attempt)
        self.metrics.webhook_errors.inc()
        if isinstance(last, BaseException):
            last = describe_error(last)
        log.warning("webhook failed for instance %s: %s", uid_hash(record["sop_instance_uid"]), escape(last, 200))

    def _delivered(self, entry, seconds: float) -> None:
        if not self.config.keep_spool:
            Path(entry.sr_path).unlink(missing_ok=True)
        self.metrics.delivered.inc()
        self.metrics.to_delivered.observe(seconds)
