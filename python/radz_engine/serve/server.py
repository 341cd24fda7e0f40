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
Logs name instances by a hash of their UID only: never patient names or IDs.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .checks import CANNOT_UNDERSTAND, OUT_OF_RESOURCES, Rejection, check_dataset, check_size
from .config import SCORED_SOP_CLASSES, ServeConfig
from .delivery import Deliverer
from .http import Metrics, StatusServer
from .journal import Journal
from .spool import Spool, uid_hash

__all__ = ["RadzServer"]

log = logging.getLogger("radz_engine.serve")


class RadzServer:
    """The whole node. `engine`: an Engine to use (default: one made from config.bundle)."""

    def __init__(self, config: ServeConfig, engine=None) -> None:
        self.config = config
        config.work_dir.mkdir(parents=True, exist_ok=True)
        config.results_dir.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(config.work_dir / "journal.sqlite")
        self.spool = Spool(config.work_dir / "spool")
        if engine is None:
            from ..engine import Engine

            engine = Engine(config.bundle, threads=config.engine_threads, max_delay_ms=2.0)
        self.engine = engine
        manifest = engine.bundle.manifest
        self.model_name = config.model_name or manifest.get("model_name") or Path(engine.bundle.path).name
        self.model_version = f"radz {manifest.get('format_version', '?')} sha256:{self._bundle_digest(manifest)}"
        self.metrics = Metrics(self.journal)
        self._results_lock = threading.Lock()
        self._results = (config.results_dir / "results.jsonl").open("a", encoding="utf-8")
        self._in_pipeline: set[str] = set()
        self._pipeline_lock = threading.Lock()
        self._scorers = ThreadPoolExecutor(config.scoring_workers, thread_name_prefix="radz-score")
        self._finishers = ThreadPoolExecutor(2, thread_name_prefix="radz-sr")
        self._webhooks = ThreadPoolExecutor(1, thread_name_prefix="radz-webhook") if config.webhook else None
        self.deliverer = Deliverer(self.journal, config, on_delivered=self._delivered,
                                   on_error=lambda error: self.metrics.delivery_errors.inc())
        self._scp = None
        self._http = None
        self._stopped = threading.Event()

    @staticmethod
    def _bundle_digest(manifest: dict) -> str:
        import hashlib

        return hashlib.sha256(json.dumps(manifest.get("sha256", {}), sort_keys=True).encode()).hexdigest()[:12]

    # -- life cycle --------------------------------------------------------------------------
    def _warm_up(self) -> None:
        """Load what the first request would otherwise wait for: highdicom, the model's first run."""
        import highdicom  # noqa: F401 - a slow first import (seconds)
        import numpy as np

        from ..pixel_spec import PixelSpec

        identity = PixelSpec(window_center=0.5, window_width=1.0, voi_function="LINEAR_EXACT")
        self.engine.classify([(np.random.default_rng(0).random((64, 64), dtype=np.float32), identity)])

    def start(self) -> "RadzServer":
        from .scp import start_scp

        self._warm_up()

        resumed = self.journal.pending_scoring()
        for entry in resumed:
            self._enqueue(entry.sop_uid)
        waiting = self.journal.counts()["scored"]
        if resumed or waiting:
            log.info("resuming after a restart: %d instances to score, %d SRs to deliver", len(resumed), waiting)
        self.deliverer.start()
        self._scp = start_scp(self.config, self._on_store)
        if self.config.http_port is not None:
            self._http = StatusServer("127.0.0.1", int(self.config.http_port), self.health, self.metrics)
            self._http.start()
            log.info("/healthz and /metrics on http://127.0.0.1:%d", self._http.port)
        return self

    @property
    def port(self) -> int:
        return self._scp.server_address[1]

    @property
    def http_port(self) -> int | None:
        return None if self._http is None else self._http.port

    def stop(self) -> None:
        """Stop accepting, finish what was received (it is journaled either way), stop."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._scp is not None:
            self._scp.shutdown()
        self._scorers.shutdown(wait=True)
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
        counts = self.journal.counts()
        scp_up = self._scp is not None and not self._stopped.is_set()
        return {"ok": scp_up, "ae_title": self.config.ae_title, "port": self.port if self._scp else None,
                "backend": self.engine.backend.name, "model": self.model_name, "journal": counts,
                "forward": str(self.config.forward) if self.config.forward else None,
                "last_delivery_error": self.deliverer.last_error if counts["scored"] else None}

    # -- C-STORE -----------------------------------------------------------------------------
    def _on_store(self, event):
        """The C-STORE handler: check, spool, journal, then answer. Never raises."""
        sop_uid = str(event.request.AffectedSOPInstanceUID or "")
        sop_class = str(event.request.AffectedSOPClassUID or "")
        caller = str(event.assoc.requestor.ae_title).strip()
        try:
            return self._store(event, sop_uid, sop_class, caller)
        except Exception as error:  # noqa: BLE001 - the server keeps serving whatever arrives
            log.exception("C-STORE of instance %s failed", uid_hash(sop_uid))
            self.metrics.received.labels("error").inc()
            return self._status(OUT_OF_RESOURCES, f"radz could not store the instance: {type(error).__name__}")

    def _store(self, event, sop_uid: str, sop_class: str, caller: str):
        received = time.time()
        if not sop_uid:
            self.metrics.received.labels("rejected").inc()
            return self._status(CANNOT_UNDERSTAND, "no Affected SOP Instance UID")
        data = event.encoded_dataset(include_meta=True)
        try:
            check_size(len(data), self.config)  # before decoding anything
            ds = event.dataset
            ds.file_meta = event.file_meta
            study = str(ds.get("StudyInstanceUID", "")) or None
            if sop_class not in SCORED_SOP_CLASSES:  # accepted only with --other-sop-classes ignore
                self.journal.record_received(sop_uid, study, sop_class, None, caller, state="ignored",
                                             error=f"SOP class {sop_class} is not scored")
                self.metrics.received.labels("ignored").inc()
                return 0x0000
            if str(ds.get("SOPInstanceUID", "")) != sop_uid:
                raise Rejection(CANNOT_UNDERSTAND, "SOP Instance UID in the dataset differs from the request's")
            check_dataset(ds, len(data), self.config)
        except Rejection as rejection:
            self.journal.record_received(sop_uid, None, sop_class, None, caller, state="rejected",
                                         error=rejection.reason)
            self.metrics.received.labels("rejected").inc()
            log.warning("rejected instance %s from %s: %s", uid_hash(sop_uid), caller, rejection.reason)
            return self._status(rejection.status, rejection.reason)
        except Exception as error:  # noqa: BLE001 - a dataset pydicom cannot parse
            reason = f"cannot parse the dataset: {type(error).__name__}: {str(error)[:200]}"
            self.journal.record_received(sop_uid, None, sop_class, None, caller, state="rejected", error=reason)
            self.metrics.received.labels("rejected").inc()
            log.warning("rejected instance %s from %s: %s", uid_hash(sop_uid), caller, reason)
            return self._status(CANNOT_UNDERSTAND, reason)
        path = self.spool.write_incoming(sop_uid, data)
        state = self.journal.record_received(sop_uid, study, sop_class, str(path), caller)
        if state == "received":
            self._enqueue(sop_uid)
            self.metrics.received.labels("accepted").inc()
        else:
            self.metrics.received.labels("duplicate").inc()
        log.debug("stored instance %s from %s in %.1f ms (%s)", uid_hash(sop_uid), caller,
                  (time.time() - received) * 1000, state)
        return 0x0000

    @staticmethod
    def _status(code: int, comment: str):
        from pydicom.dataset import Dataset

        status = Dataset()
        status.Status = code
        status.ErrorComment = comment[:64]  # LO: 64 characters
        return status

    # -- scoring -----------------------------------------------------------------------------
    def _enqueue(self, sop_uid: str) -> None:
        with self._pipeline_lock:
            if sop_uid in self._in_pipeline:
                return
            self._in_pipeline.add(sop_uid)
        self._scorers.submit(self._score, sop_uid)

    def _leave(self, sop_uid: str) -> None:
        with self._pipeline_lock:
            self._in_pipeline.discard(sop_uid)

    def _score(self, sop_uid: str) -> None:
        """Decode + submit (in a scoring thread); the SR is made when the result arrives."""
        from pydicom import dcmread

        entry = self.journal.get(sop_uid)
        try:
            ds = dcmread(entry.dataset_path)
            future = self.engine.submit(ds)
        except Exception as error:  # noqa: BLE001 - unreadable spool file, engine closed
            self._fail(entry, f"cannot score: {type(error).__name__}: {error}")
            return
        future.add_done_callback(lambda f: self._finishers.submit(self._finish, entry, ds, f))

    def _finish(self, entry, ds, future) -> None:
        try:
            result = future.result()
            if result.error:
                self._fail(entry, result.error)
                return
            from .sr import build_sr

            thresholds = self._thresholds()
            sr = build_sr(ds, result, self.model_name, self.model_version, thresholds)
            buffer = io.BytesIO()
            sr.save_as(buffer, enforce_file_format=True)
            sr_path = self.spool.write_sr(entry.sop_uid, buffer.getvalue())
            record = {"sop_instance_uid": entry.sop_uid, "study_instance_uid": entry.study_uid,
                      "sr_sop_instance_uid": str(sr.SOPInstanceUID), "model": self.model_name,
                      "scores": result.scores, "positives": result.positives, "thresholds": thresholds,
                      "timings_ms": result.timings, "received_at": entry.received_at, "scored_at": time.time()}
            self._write_result(record)
            self.journal.mark_scored(entry.sop_uid, str(sr_path))
            if not self.config.keep_spool:  # scored: the SR now stands for it
                Path(entry.dataset_path).unlink(missing_ok=True)
            self.metrics.scored.inc()
            self.metrics.to_scored.observe(time.time() - entry.received_at)
            if self._webhooks is not None:
                self._webhooks.submit(self._post_webhook, record)
            self.deliverer.wake()
        except Exception as error:  # noqa: BLE001 - one bad instance never stops the server
            log.exception("scoring instance %s failed", uid_hash(entry.sop_uid))
            self._fail(entry, f"cannot make the SR: {type(error).__name__}: {error}")
        finally:
            self._leave(entry.sop_uid)

    def _fail(self, entry, reason: str) -> None:
        self.journal.mark_failed(entry.sop_uid, reason)
        self.metrics.failed.inc()
        self._write_result({"sop_instance_uid": entry.sop_uid, "study_instance_uid": entry.study_uid,
                            "error": reason, "received_at": entry.received_at})
        log.warning("instance %s not scored: %s", uid_hash(entry.sop_uid), reason.replace(entry.dataset_path or "", "<spool>"))
        self._leave(entry.sop_uid)

    def _thresholds(self) -> dict:
        return {n: (None if v == float("inf") else v) for n, v in self.engine.scorer.thresholds().items()}

    def _write_result(self, record: dict) -> None:
        line = json.dumps(record, default=float) + "\n"
        with self._results_lock:
            self._results.write(line)
            self._results.flush()

    def _post_webhook(self, record: dict) -> None:
        import urllib.request

        body = json.dumps(record, default=float).encode()
        last: object = None
        for attempt in range(3):
            try:
                request = urllib.request.Request(self.config.webhook, data=body, method="POST",
                                                 headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - http(s) checked in config
                    if 200 <= response.status < 300:
                        return
                    last = f"HTTP {response.status}"
            except Exception as error:  # noqa: BLE001 - a webhook is best effort
                last = error
            time.sleep(0.5 * 2**attempt)
        self.metrics.webhook_errors.inc()
        log.warning("webhook failed for instance %s: %s", uid_hash(record["sop_instance_uid"]), last)

    def _delivered(self, entry, seconds: float) -> None:
        if not self.config.keep_spool:
            Path(entry.sr_path).unlink(missing_ok=True)
        self.metrics.delivered.inc()
        self.metrics.to_delivered.observe(seconds)
