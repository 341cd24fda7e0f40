"""Engine.submit's machinery: the C++ DynamicBatcher, the runner threads that pop its batches,
and the one Future of each queued request.

A request's Future is registered under a fresh id before the batcher can hand the request to a
runner, so a runner always finds it; the batcher reports every id exactly once, in a batch to
run or as expired, cancelled or dropped (shut down without draining), and the runner resolves
that Future. Nothing else tracks requests: no second future, no polling sweep.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass

import numpy as np

from radz_engine.errors import DeadlineExceeded, EngineClosed, RequestCancelled
from radz_engine.runtime.prepare import Prepared
from radz_engine.runtime.results import Result
from radz_engine.runtime.stats import EngineStats

__all__ = ["Submitter", "Pending"]

log = logging.getLogger(__name__)
_WAIT_MS = 1000.0  # a runner's wait for a batch; shutdown wakes it at once


@dataclass
class Pending:
    """What a queued request needs to become a Result (no pixels: they are in the batcher)."""

    future: Future
    source: str
    metadata: dict
    timings: dict
    submitted: float


# Scores a batch's embeddings: (embeddings [B, D], the requests, model ms) -> one Result each.
ScoreBatch = Callable[[np.ndarray, list[Pending], float], list[Result]]


class Submitter:
    """The batcher plus `runners` threads; runner n runs its batches on backends[n % len]."""

    def __init__(self, batcher, backends: list, runners: int, score: ScoreBatch, stats: EngineStats) -> None:
        self._batcher = batcher
        self._score = score
        self._stats = stats
        self._lock = threading.Lock()
        self._pending: dict[int, Pending] = {}
        self._ids = itertools.count()
        self._threads = [
            threading.Thread(
                target=self._run, args=(backends[n % len(backends)],), name=f"radz-runner-{n}", daemon=True
            )
            for n in range(runners)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, prepared: Prepared, priority: str, deadline_ms: float | None) -> Future:
        """Queue one prepared input; raises QueueFull (backpressure) or EngineClosed."""
        request_id = next(self._ids)
        future: Future = Future()
        pending = Pending(future, prepared.source, prepared.metadata, prepared.timings(), time.perf_counter())
        with self._lock:
            self._pending[request_id] = pending
        try:
            self._batcher.submit(request_id, prepared.tensor, priority=priority, deadline_ms=deadline_ms)
        except BaseException as error:
            with self._lock:
                self._pending.pop(request_id, None)
            if self._batcher.is_shut_down:
                raise EngineClosed("the engine is closed") from error
            raise
        future.add_done_callback(lambda f: self._batcher.cancel(request_id) if f.cancelled() else None)
        return future

    @property
    def metrics(self) -> dict:
        return self._batcher.metrics()

    def close(self, drain: bool) -> None:
        """Stop accepting requests; run (drain) or drop what is queued; wait for the runners."""
        self._batcher.shutdown(drain=drain)
        for thread in self._threads:
            thread.join(timeout=60)
        with self._lock:  # only if a runner died: nobody else will resolve these
            left = list(self._pending.values())
            self._pending.clear()
        for pending in left:
            _resolve(pending.future, error=EngineClosed("the engine closed before the request ran"))

    # -- runner threads ------------------------------------------------------------------------
    def _take(self, ids) -> list[Pending | None]:
        """The requests of these ids, out of the table; None for one close() already ended
        (a runner that outlived close's join timeout must not fail on it)."""
        with self._lock:
            return [self._pending.pop(i, None) for i in ids]

    def _run(self, backend) -> None:
        batcher = self._batcher
        while True:
            batch = batcher.next_batch(_WAIT_MS)
            if batch is None:
                if batcher.is_shut_down:
                    return
                continue
            for ids, error, reason in (
                (batch.expired, DeadlineExceeded, "deadline passed before the request ran"),
                (batch.cancelled, RequestCancelled, "cancelled before the request ran"),
                (batch.dropped, EngineClosed, "the engine closed before the request ran"),
            ):
                for pending in self._take(ids):
                    if pending is not None:
                        _resolve(pending.future, error=error(reason))
            if len(batch):
                self._run_batch(batcher, backend, batch)

    def _run_batch(self, batcher, backend, batch) -> None:
        popped = time.perf_counter()
        taken = self._take(batch.ids)
        rows = [k for k, pending in enumerate(taken) if pending is not None]
        requests = [taken[k] for k in rows]
        try:
            start = time.perf_counter()
            embeddings = backend.run(np.asarray(batch.inputs))
            if len(rows) != len(taken):
                embeddings = embeddings[rows]
            results = self._score(embeddings, requests, (time.perf_counter() - start) * 1000.0)
            batcher.complete(batch)
        except Exception as error:  # a failing batch fails its requests, never the runner
            log.exception("radz_engine: batch of %d failed", len(requests))
            try:
                batcher.fail(batch, f"{type(error).__name__}: {error}")
            except ValueError:  # already completed
                pass
            for pending in requests:
                _resolve(pending.future, error=RuntimeError(f"batch failed: {type(error).__name__}: {error}"))
            return
        self._stats.add(batches=1)
        for pending, result in zip(requests, results):
            result.timings["queue"] = max(0.0, popped - pending.submitted) * 1000.0
            if _resolve(pending.future, result=result):
                self._stats.add_latency(pending.submitted)


def _resolve(future: Future, result: Result | None = None, error: BaseException | None = None) -> bool:
    """Set the Future's outcome unless the caller cancelled it meanwhile; True when set."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:
        return False
    return True
