"""FALLBACK ONLY: a pure-Python dynamic batcher with the same API as the C++
`_core.DynamicBatcher`, used by `Engine.submit` when the extension was built without it.

It exists so that `submit` works in every build; the C++ batcher (GIL released while waiting,
lock-free of Python) is the real one and is used whenever `hasattr(_core, "DynamicBatcher")`.
Semantics kept the same: two priorities ("stat" before "routine"), max_batch_size, max_delay_ms
measured from the oldest waiting request, per-request deadlines, cancel, bounded queue with
"block" (with timeout) or "reject" backpressure, shutdown with drain or cancel.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque

import numpy as np

__all__ = ["PythonBatcher", "QueueFull", "DeadlineExceeded", "BatcherShutdown"]

PRIORITIES = ("stat", "routine")


class QueueFull(RuntimeError):
    """The queue is at max_queue (reject mode, or block mode after block_timeout_ms)."""


class DeadlineExceeded(TimeoutError):
    """A request's deadline passed before it was batched."""


class BatcherShutdown(RuntimeError):
    """The batcher was shut down before the request ran."""


class Ticket:
    """A submitted request: result(timeout), done(), cancel(), id."""

    def __init__(self, ticket_id: int, x: np.ndarray, deadline: float | None) -> None:
        self.id = ticket_id
        self.x = x
        self.deadline = deadline
        self.submitted = time.perf_counter()
        self._event = threading.Event()
        self._value = None
        self._error: BaseException | None = None
        self.cancelled = False

    def _set(self, value=None, error: BaseException | None = None) -> bool:
        if self._event.is_set():
            return False
        self._value, self._error = value, error
        self._event.set()
        return True

    def done(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> bool:
        """Cancel if not yet batched; True if it was cancelled."""
        self.cancelled = True
        return self._set(error=BatcherShutdown(f"request {self.id} cancelled"))

    def result(self, timeout: float | None = None) -> np.ndarray:
        if not self._event.wait(timeout):
            raise TimeoutError(f"request {self.id}: no result within {timeout} s")
        if self._error is not None:
            raise self._error
        return self._value


class Batch:
    """Inputs [B, *input_shape], the tickets' ids, a batch id."""

    def __init__(self, batch_id: int, tickets: list[Ticket]) -> None:
        self.id = batch_id
        self.tickets = tickets
        self.ids = [t.id for t in tickets]
        self.inputs = np.stack([t.x for t in tickets])
        self.started = time.perf_counter()

    def __len__(self) -> int:
        return len(self.tickets)


class PythonBatcher:
    """See the module docstring; arguments as `_core.DynamicBatcher`."""

    def __init__(self, input_shape: tuple, output_size: int, max_batch_size: int = 32, max_delay_ms: float = 2.0,
                 max_queue: int = 1024, backpressure: str = "block", block_timeout_ms: float = 1000) -> None:
        if backpressure not in ("block", "reject"):
            raise ValueError(f"backpressure: must be 'block' or 'reject', got {backpressure!r}")
        if max_batch_size < 1 or max_queue < 1:
            raise ValueError(f"max_batch_size and max_queue must be >= 1, got {max_batch_size}, {max_queue}")
        self.input_shape = tuple(int(d) for d in input_shape)
        self.output_size = int(output_size)
        self.max_batch_size = int(max_batch_size)
        self.max_delay = float(max_delay_ms) / 1000.0
        self.max_queue = int(max_queue)
        self.backpressure = backpressure
        self.block_timeout = float(block_timeout_ms) / 1000.0
        self._queues = {p: deque() for p in PRIORITIES}
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._batch_ids = itertools.count(1)
        self._closed = False
        self._inflight: dict[int, Batch] = {}
        self._latencies: deque = deque(maxlen=10000)
        self._sizes: dict[int, int] = {}
        self._counts = {"submitted": 0, "completed": 0, "failed": 0, "expired": 0, "cancelled": 0, "rejected": 0}

    def _depth(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def submit(self, x, priority: str = "routine", deadline_ms: float | None = None) -> Ticket:
        if priority not in PRIORITIES:
            raise ValueError(f"priority: must be one of {PRIORITIES}, got {priority!r}")
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.shape != self.input_shape:
            raise ValueError(f"x: need shape {self.input_shape}, got {x.shape}")
        deadline = None if deadline_ms is None else time.perf_counter() + float(deadline_ms) / 1000.0
        with self._cond:
            if self._closed:
                raise BatcherShutdown("batcher is shut down")
            if self._depth() >= self.max_queue:
                if self.backpressure == "reject" or not self._cond.wait_for(
                        lambda: self._closed or self._depth() < self.max_queue, self.block_timeout):
                    self._counts["rejected"] += 1
                    raise QueueFull(f"queue full ({self.max_queue} requests waiting)")
                if self._closed:
                    raise BatcherShutdown("batcher is shut down")
            ticket = Ticket(next(self._ids), x, deadline)
            self._queues[priority].append(ticket)
            self._counts["submitted"] += 1
            self._cond.notify_all()
        return ticket

    def _take(self, now: float) -> list[Ticket]:
        out: list[Ticket] = []
        for p in PRIORITIES:
            q = self._queues[p]
            while q and len(out) < self.max_batch_size:
                t = q.popleft()
                if t.done():  # cancelled
                    self._counts["cancelled"] += 1
                elif t.deadline is not None and now > t.deadline:
                    t._set(error=DeadlineExceeded(f"request {t.id}: deadline passed before it was batched"))
                    self._counts["expired"] += 1
                else:
                    out.append(t)
        return out

    def _oldest(self) -> float | None:
        heads = [q[0].submitted for q in self._queues.values() if q]
        return min(heads) if heads else None

    def next_batch(self, timeout_ms: float = 100) -> Batch | None:
        """The next batch, or None after timeout_ms with nothing to run (or after shutdown)."""
        end = time.perf_counter() + float(timeout_ms) / 1000.0
        with self._cond:
            while True:
                now = time.perf_counter()
                oldest = self._oldest()
                if oldest is not None and (self._depth() >= self.max_batch_size or now >= oldest + self.max_delay
                                           or self._closed):
                    tickets = self._take(now)
                    self._cond.notify_all()
                    if tickets:
                        batch = Batch(next(self._batch_ids), tickets)
                        self._inflight[batch.id] = batch
                        self._sizes[len(batch)] = self._sizes.get(len(batch), 0) + 1
                        return batch
                    continue
                if self._closed or now >= end:
                    return None
                wake = end if oldest is None else min(end, oldest + self.max_delay)
                self._cond.wait(max(0.0, wake - now))

    def complete(self, batch: Batch, outputs) -> None:
        outputs = np.asarray(outputs, dtype=np.float32)
        if outputs.shape != (len(batch), self.output_size):
            raise ValueError(f"outputs: need shape ({len(batch)}, {self.output_size}), got {outputs.shape}")
        now = time.perf_counter()
        with self._cond:
            self._inflight.pop(batch.id, None)
            for t, row in zip(batch.tickets, outputs):
                if t._set(value=row.copy()):
                    self._latencies.append(now - t.submitted)
                    self._counts["completed"] += 1

    def fail(self, batch: Batch, message: str) -> None:
        with self._cond:
            self._inflight.pop(batch.id, None)
            for t in batch.tickets:
                if t._set(error=RuntimeError(message)):
                    self._counts["failed"] += 1

    def shutdown(self, drain: bool = True) -> None:
        """drain=True: waiting requests still run (runners keep popping); False: cancel them."""
        with self._cond:
            self._closed = True
            if not drain:
                for q in self._queues.values():
                    while q:
                        q.popleft()._set(error=BatcherShutdown("batcher shut down before the request ran"))
            self._cond.notify_all()

    def metrics(self) -> dict:
        with self._cond:
            lat = np.array(self._latencies) * 1000.0 if self._latencies else np.zeros(0)
            pct = {f"latency_p{p}_ms": float(np.percentile(lat, p)) if lat.size else None for p in (50, 90, 99)}
            return {"queue_depth": self._depth(), "in_flight": sum(len(b) for b in self._inflight.values()),
                    "batch_size_histogram": dict(sorted(self._sizes.items())), **self._counts, **pct,
                    "implementation": "python-fallback"}
