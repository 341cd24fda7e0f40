"""Open-loop serving load: Poisson arrivals at increasing rates, latency percentiles against
offered load, until p99 passes a bound.

Open loop: a scheduler thread draws exponential inter-arrival gaps (seeded) and sends each
request at its scheduled time, whether or not earlier ones have finished. Latency is measured
from the *scheduled* arrival time to completion, so a send that is late because the target
pushed back (a blocking queue, a busy association) counts against the target (no coordinated
omission, as in wrk2).

Measurement windows (as Triton's perf_analyzer does): the load runs continuously; requests are
grouped by the window their arrival fell in; after each window completes, the last
`stable_windows` windows are compared and the rate's measurement ends when their p50 agrees within
`tolerance` (default 3 windows within 10%) and their achieved throughput within `tolerance` or
2/sqrt(requests per window), the Poisson scatter of the counts, whichever is wider; or after
`max_windows` (then reported as not stable). The reported percentiles pool those last windows.

Targets (pluggable, one small interface: open(), send(index, on_done), close(), name):
- EngineTarget: radz_engine Engine.submit (in process);
- DicomTarget: "dicom://AE@host:port", a C-STORE per request with pynetdicom; the latency is the
  C-STORE round trip (what a modality or PACS waits for), `workers` associations in parallel;
  with `until_journal` (radz serve's WORK_DIR/journal.sqlite) it is until radz has the SR stored
  in its PACS instead (the journal row `delivered`): the end-to-end latency of `radz serve`.
"""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlparse

import numpy as np

from radz_bench.stats import within

__all__ = ["Target", "EngineTarget", "DicomTarget", "parse_target", "run_rate", "run_load", "LoadOptions"]

OnDone = Callable[[bool, "str | None"], None]


class Target(abc.ABC):
    name = "target"

    def open(self) -> None:
        """Connect / warm up before the first rate."""

    @abc.abstractmethod
    def send(self, index: int, on_done: OnDone) -> None:
        """Start request `index`; call on_done(ok, error_text) when it completes. Should return
        quickly (hand blocking work to threads): the scheduler calls it at the arrival time."""

    def close(self) -> None:
        """Release connections / the engine."""


class EngineTarget(Target):
    """Engine.submit with in-memory images (decode is trivial; C++ preprocessing runs in the
    scheduler's thread, as it would in a caller's)."""

    def __init__(self, engine, images: list, owns_engine: bool = False) -> None:
        self.engine, self.images, self.owns_engine = engine, images, owns_engine
        self.name = (
            f"engine ({engine.backend.name} on {engine.backend.device}, max batch {engine.max_batch_size}, "
            f"max delay {engine.max_delay_ms} ms)"
        )

    def open(self) -> None:
        for item in self.images[: min(8, len(self.images))]:
            self.engine.submit(item).result(60)

    def send(self, index: int, on_done: OnDone) -> None:
        try:
            future = self.engine.submit(self.images[index % len(self.images)])
        except Exception as error:  # QueueFull (backpressure), EngineClosed
            on_done(False, f"{type(error).__name__}: {error}")
            return

        def finished(f):
            if f.cancelled():
                on_done(False, "cancelled")
            elif f.exception() is not None:
                on_done(False, f"{type(f.exception()).__name__}: {f.exception()}")
            else:
                result = f.result()
                on_done(result.error is None, result.error)

        future.add_done_callback(finished)

    def close(self) -> None:
        if self.owns_engine:
            self.engine.close()


def parse_target(url: str) -> tuple[str, str, int]:
    """ "dicom://AE@host:port" -> (called AE title, host, port)."""
    parsed = urlparse(url)
    if parsed.scheme != "dicom" or not parsed.hostname or not parsed.port or not parsed.username:
        raise ValueError(f"--target: expected dicom://AE_TITLE@host:port, got {url!r}")
    return parsed.username, parsed.hostname, int(parsed.port)


class DicomTarget(Target):
    """C-STORE of DICOM datasets (a fresh SOPInstanceUID each time) to a DICOM node, `workers`
    associations in parallel (one per worker thread, opened on first use and kept)."""

    def __init__(
        self,
        url: str,
        datasets: list,
        workers: int = 4,
        calling_ae: str = "RADZBENCH",
        timeout: float = 30.0,
        until_journal=None,
    ) -> None:
        self.ae_title, self.host, self.port = parse_target(url)
        if not datasets:
            raise ValueError("DicomTarget: need at least one dataset to send")
        self.datasets, self.workers, self.calling_ae, self.timeout = datasets, int(workers), calling_ae, timeout
        self.watcher = _JournalWatcher(until_journal, timeout) if until_journal else None
        until = ", until the SR is stored (radz journal)" if until_journal else ""
        self.name = f"{url} (C-STORE, {workers} associations{until})"
        self._local = threading.local()
        self._associations: list = []
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def _association(self):
        assoc = getattr(self._local, "assoc", None)
        if assoc is not None and assoc.is_established:
            return assoc
        from pynetdicom import AE

        ae = AE(ae_title=self.calling_ae)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout
        for uid in sorted({str(ds.SOPClassUID) for ds in self.datasets}):
            ae.add_requested_context(
                uid,
                [str(ds.file_meta.TransferSyntaxUID) for ds in self.datasets if str(ds.SOPClassUID) == uid][:1]
                + ["1.2.840.10008.1.2.1"],
            )
        assoc = ae.associate(self.host, self.port, ae_title=self.ae_title)
        if not assoc.is_established:
            raise ConnectionError(f"association with {self.ae_title}@{self.host}:{self.port} rejected or aborted")
        self._local.assoc = assoc
        with self._lock:
            self._associations.append(assoc)
        return assoc

    def _store(self, index: int) -> tuple[bool, str | None, str]:
        """One C-STORE of a fresh instance: (ok, error text, its SOP Instance UID)."""
        from pydicom.uid import generate_uid

        ds = self.datasets[index % len(self.datasets)].copy()
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        uid = str(ds.SOPInstanceUID)
        try:
            status = self._association().send_c_store(ds)
        except Exception as error:  # connection dropped: the next request re-associates
            self._drop_association()
            return False, f"{type(error).__name__}: {error}", uid
        code = getattr(status, "Status", None)
        if code is None:
            self._drop_association()
            return False, "no C-STORE response (association aborted or timed out)", uid
        ok = code == 0x0000 or (code & 0xF000) == 0xB000
        return ok, (None if code == 0 else f"status 0x{code:04X}"), uid

    def _drop_association(self) -> None:
        assoc, self._local.assoc = getattr(self._local, "assoc", None), None
        if assoc is not None and assoc.is_established:
            assoc.abort()

    def open(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="radz-bench-dicom")
        ok, error, _ = self._pool.submit(self._store, 0).result()
        if not ok:
            raise ConnectionError(f"{self.name}: first C-STORE failed: {error}")
        if self.watcher is not None:
            self.watcher.start()

    def send(self, index: int, on_done: OnDone) -> None:
        def job():
            ok, error, uid = self._store(index)
            if ok and self.watcher is not None:
                self.watcher.watch(uid, on_done)  # done when radz has stored the SR
            else:
                on_done(ok, error)

        self._pool.submit(job)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if self.watcher is not None:
            self.watcher.stop()
        with self._lock:
            for assoc in self._associations:
                try:
                    assoc.release()
                except Exception:  # already gone
                    pass
            self._associations.clear()


class _JournalWatcher:
    """Polls radz serve's journal (read-only) every 5 ms for the UIDs sent, calling each one's
    on_done once its row is `delivered` (the SR is in the PACS), or an error for `failed` /
    `rejected` rows and rows not delivered within `timeout` s. One thread for all requests, so
    the senders stay free (open loop)."""

    def __init__(self, journal_path, timeout: float) -> None:
        from pathlib import Path

        self.path = Path(journal_path)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no radz serve journal here (WORK_DIR/journal.sqlite)")
        self.timeout = timeout
        self._pending: dict[str, tuple] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="radz-bench-journal", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def watch(self, uid: str, on_done: OnDone) -> None:
        with self._lock:
            self._pending[uid] = (on_done, time.perf_counter() + self.timeout)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        import sqlite3

        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30, check_same_thread=False)
        try:
            while not self._stop.wait(0.005):
                with self._lock:
                    uids = list(self._pending)
                if not uids:
                    continue
                states = {}
                for i in range(0, len(uids), 500):  # SQLite's bound-parameter limit
                    chunk = uids[i : i + 500]
                    query = (
                        f"SELECT sop_uid, state, error FROM instances WHERE sop_uid IN ({','.join('?' * len(chunk))})"
                    )
                    states.update({u: (st, err) for u, st, err in db.execute(query, chunk)})
                now = time.perf_counter()
                for uid in uids:
                    state, error = states.get(uid, (None, None))
                    with self._lock:
                        on_done, deadline = self._pending.get(uid, (None, 0.0))
                        finished = state in ("delivered", "failed", "rejected") or now > deadline
                        if finished:
                            self._pending.pop(uid, None)
                    if on_done is not None and finished:
                        ok = state == "delivered"
                        on_done(
                            ok,
                            None
                            if ok
                            else (
                                f"radz journal: {state}: {error}"
                                if state
                                else f"SR not stored within {self.timeout:.0f} s"
                            ),
                        )
        finally:
            db.close()


@dataclass
class LoadOptions:
    rates: list[float] | None = None  # explicit offered loads (req/s); else a geometric ramp
    start_rate: float = 10.0
    factor: float = 1.6
    max_rate: float = 10000.0
    p99_bound_ms: float = 100.0
    window_s: float = 2.0
    min_requests: int = 30  # per window: windows stretch to at least min_requests / rate seconds
    stable_windows: int = 3
    tolerance: float = 0.10
    max_windows: int = 8
    timeout_s: float = 30.0  # a request not done this long after its window closes counts as failed
    seed: int = 0


def _window_stats(records: list, start: float, end: float, deadline: float) -> dict:
    mine = [r for r in records if start <= r[0] < end]
    while time.perf_counter() < deadline and any(r[1] is None for r in mine):
        time.sleep(0.005)
    now = time.perf_counter()
    latencies = np.array([((r[1] if r[1] is not None else now) - r[0]) * 1000.0 for r in mine])
    errors = sum(1 for r in mine if r[1] is None or not r[2])
    completed = sum(1 for r in records if r[1] is not None and start <= r[1] < end and r[2])
    out = {
        "requests": len(mine),
        "errors": errors,
        "timed_out": sum(1 for r in mine if r[1] is None),
        "offered_per_s": len(mine) / (end - start),
        "achieved_per_s": completed / (end - start),
    }
    if latencies.size:
        p = np.percentile(latencies, [50, 90, 95, 99])
        out.update({"p50_ms": float(p[0]), "p90_ms": float(p[1]), "p95_ms": float(p[2]), "p99_ms": float(p[3])})
    else:
        out.update({"p50_ms": None, "p90_ms": None, "p95_ms": None, "p99_ms": None})
    out["_latencies"] = latencies
    out["_errors"] = [r[3] for r in mine if r[3]][:3]
    return out


def run_rate(target: Target, rate: float, opts: LoadOptions) -> dict:
    """One offered load: continuous Poisson arrivals, windows until stable or the cap."""
    if rate <= 0:
        raise ValueError(f"rate: must be > 0 requests/s, got {rate}")
    window = max(opts.window_s, opts.min_requests / rate)
    records: list[list] = []  # [scheduled, done, ok, error]; appended by the scheduler only
    stop = threading.Event()
    t0 = time.perf_counter() + 0.02
    rng = np.random.default_rng(opts.seed)

    def scheduler() -> None:
        t, index = t0, 0
        while not stop.is_set():
            t += rng.exponential(1.0 / rate)
            delay = t - time.perf_counter()
            if delay > 0 and stop.wait(delay):
                return
            record = [t, None, None, None]
            records.append(record)

            def done(ok: bool, error: str | None, record=record) -> None:
                record[3] = error
                record[2] = bool(ok)
                record[1] = time.perf_counter()

            try:
                target.send(index, done)
            except Exception as error:  # noqa: BLE001  (a send that raises is a failed request)
                done(False, f"{type(error).__name__}: {error}")
            index += 1

    thread = threading.Thread(target=scheduler, name="radz-bench-arrivals", daemon=True)
    thread.start()
    windows: list[dict] = []
    stable = False
    try:
        for w in range(opts.max_windows):
            start, end = t0 + w * window, t0 + (w + 1) * window
            pause = end - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            windows.append(_window_stats(records, start, end, end + opts.timeout_s))
            last = windows[-opts.stable_windows :]
            # Poisson counts in a window of n requests scatter by ~1/sqrt(n): throughput is held to
            # the tolerance or to two such standard deviations, whichever is wider
            counts = [x["requests"] for x in last]
            rate_tolerance = max(opts.tolerance, 2.0 / np.sqrt(max(1.0, float(np.mean(counts)))))
            if (
                len(last) == opts.stable_windows
                and all(counts)
                and within([x["p50_ms"] for x in last], opts.tolerance)
                and within([x["achieved_per_s"] for x in last], rate_tolerance)
            ):
                stable = True
                break
    finally:
        stop.set()
        thread.join()
        deadline = time.perf_counter() + opts.timeout_s  # drain, so that the next rate starts clean
        while time.perf_counter() < deadline and any(r[1] is None for r in list(records)):
            time.sleep(0.005)
    used = windows[-opts.stable_windows :]
    latencies = np.concatenate([x["_latencies"] for x in used]) if used else np.zeros(0)
    result = {
        "offered_per_s": round(float(np.mean([x["offered_per_s"] for x in used])), 2) if used else 0.0,
        "rate": rate,
        "achieved_per_s": round(float(np.mean([x["achieved_per_s"] for x in used])), 2) if used else 0.0,
        "requests": int(sum(x["requests"] for x in used)),
        "errors": int(sum(x["errors"] for x in used)),
        "timed_out": int(sum(x["timed_out"] for x in used)),
        "windows": len(windows),
        "window_s": round(window, 3),
        "stable": stable,
        "error_examples": sorted({e for x in used for e in x["_errors"]})[:3],
        "per_window": [
            {k: (round(v, 3) if isinstance(v, float) else v) for k, v in x.items() if not k.startswith("_")}
            for x in windows
        ],
    }
    if latencies.size:
        p = np.percentile(latencies, [50, 90, 95, 99])
        result.update(
            {
                "p50_ms": round(float(p[0]), 3),
                "p90_ms": round(float(p[1]), 3),
                "p95_ms": round(float(p[2]), 3),
                "p99_ms": round(float(p[3]), 3),
            }
        )
    else:
        result.update({"p50_ms": None, "p90_ms": None, "p95_ms": None, "p99_ms": None})
    return result


def run_load(target: Target, opts: LoadOptions, say=None) -> dict:
    """Rates in turn (opts.rates, or start_rate * factor^i up to max_rate) until a rate's p99
    passes opts.p99_bound_ms (that rate is reported too) or its errors exceed 1%."""
    rates = list(opts.rates) if opts.rates else []
    if not rates:
        rate = opts.start_rate
        while rate <= opts.max_rate:
            rates.append(round(rate, 3))
            rate *= opts.factor
    report = {
        "kind": "load",
        "target": target.name,
        "window_s": opts.window_s,
        "stable_windows": opts.stable_windows,
        "tolerance": opts.tolerance,
        "max_windows": opts.max_windows,
        "p99_bound_ms": opts.p99_bound_ms,
        "min_requests": opts.min_requests,
        "rates": [],
        "stopped": None,
    }
    target.open()
    try:
        for i, rate in enumerate(rates):
            opts_i = LoadOptions(**{**vars(opts), "seed": opts.seed + i})
            row = run_rate(target, rate, opts_i)
            report["rates"].append(row)
            if say:
                say(
                    f"load {rate:8.1f} req/s offered -> {row['achieved_per_s']:8.1f} achieved, p50 {row['p50_ms']} ms, "
                    f"p99 {row['p99_ms']} ms, {row['errors']} errors, {row['windows']} windows"
                    f"{'' if row['stable'] else ' (not stable)'}"
                )
            if row["p99_ms"] is None or row["p99_ms"] > opts.p99_bound_ms:
                report["stopped"] = f"p99 {row['p99_ms']} ms > bound {opts.p99_bound_ms} ms at {rate} req/s offered"
                break
            if row["requests"] and row["errors"] > 0.01 * row["requests"]:
                report["stopped"] = f"{row['errors']} of {row['requests']} requests failed at {rate} req/s offered"
                break
    finally:
        target.close()
    return report
