"""radz_engine._core.DynamicBatcher from Python: caller-owned futures, runner threads, errors, GIL."""

from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import Future

import numpy as np
import pytest

import radz_engine.errors
from radz_engine import _core

INPUT_SHAPE = (3, 4, 4)
OUTPUT_SIZE = 5


def model(inputs: np.ndarray) -> np.ndarray:
    """The stand-in backend: output = f(input), so a result given to the wrong request shows."""
    flat = inputs.reshape(len(inputs), -1)
    return (flat[:, :OUTPUT_SIZE] * 2.0 + flat.sum(axis=1, keepdims=True)).astype(np.float32)


def make_input(value: float) -> np.ndarray:
    return np.arange(np.prod(INPUT_SHAPE), dtype=np.float32).reshape(INPUT_SHAPE) + np.float32(value)


class Runner:
    """The caller's side of the batcher, as an engine would write it: one Future per request,
    registered under its id before submit(), resolved by a runner thread from what next_batch()
    reports (a run, or an expired / cancelled / dropped id). A Future resolved twice raises
    InvalidStateError in the runner thread, which pytest turns into a failure."""

    def __init__(self, batcher: _core.DynamicBatcher, runners: int = 1) -> None:
        self.batcher = batcher
        self.batch_sizes: list[int] = []
        self._futures: dict[int, Future] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(runners)]
        for thread in self.threads:
            thread.start()

    def submit(self, x: np.ndarray, **kwargs) -> tuple[int, Future]:
        future: Future = Future()
        with self._lock:
            request_id = next(self._ids)
            self._futures[request_id] = future  # before submit(): a runner may take it at once
        try:
            self.batcher.submit(request_id, x, **kwargs)
        except BaseException:
            with self._lock:
                del self._futures[request_id]
            raise
        return request_id, future

    def _pop(self, request_id: int) -> Future:
        with self._lock:
            return self._futures.pop(request_id)

    def _loop(self) -> None:
        while True:
            batch = self.batcher.next_batch(timeout_ms=50)
            if batch is None:
                if self.batcher.is_shut_down:
                    return
                continue
            for request_id in batch.expired:
                self._pop(request_id).set_exception(radz_engine.errors.DeadlineExceeded(f"request {request_id}"))
            for request_id in batch.cancelled:
                self._pop(request_id).set_exception(radz_engine.errors.RequestCancelled(f"request {request_id}"))
            for request_id in batch.dropped:
                self._pop(request_id).set_exception(radz_engine.errors.EngineClosed(f"request {request_id}"))
            if len(batch) == 0:
                continue
            with self._lock:
                self.batch_sizes.append(len(batch))
            outputs = model(batch.inputs)
            for request_id, output in zip(batch.ids, outputs, strict=True):
                self._pop(request_id).set_result(output)
            self.batcher.complete(batch)

    def pending(self) -> int:
        with self._lock:
            return len(self._futures)

    def stop(self, drain: bool = True) -> None:
        self.batcher.shutdown(drain=drain)
        for thread in self.threads:
            thread.join(timeout=10)
            assert not thread.is_alive()


def assert_counts_add_up(m: dict) -> None:
    ended = m["completed"] + m["failed"] + m["expired"] + m["cancelled"] + m["dropped"]
    assert m["submitted"] == ended + m["queue_depth"] + m["in_flight_requests"]


@pytest.fixture
def batcher():
    b = _core.DynamicBatcher(INPUT_SHAPE, OUTPUT_SIZE, max_batch_size=8, max_delay_ms=2.0)
    yield b
    b.shutdown(drain=False)


def test_properties(batcher):
    assert batcher.input_shape == INPUT_SHAPE
    assert batcher.output_size == OUTPUT_SIZE
    assert batcher.max_batch_size == 8
    assert not batcher.is_shut_down


def test_a_python_runner_completes_a_request(batcher):
    runner = Runner(batcher)
    x = make_input(1.0)
    _, future = runner.submit(x)
    out = future.result(timeout=5)
    assert out.dtype == np.float32 and out.shape == (OUTPUT_SIZE,)
    np.testing.assert_array_equal(out, model(x[None])[0])
    runner.stop()
    m = batcher.metrics()
    assert m["completed"] == 1 and m["latency_samples"] == 1 and m["latency_p50_ms"] >= 0


def test_sixteen_threads_submitting_concurrently_each_get_their_own_result(batcher):
    # Two runners race the producers: a request may be taken before its submit() returns, so
    # the Future must already be registered (Runner.submit does that first).
    runner = Runner(batcher, runners=2)
    per_thread = 25
    results: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    start = threading.Barrier(16)

    def producer(index: int) -> None:
        start.wait()
        submitted = []
        for i in range(per_thread):
            x = make_input(index * 1000 + i)
            submitted.append((x, runner.submit(x, priority="stat" if i % 4 == 0 else "routine")[1]))
        results[index] = [(x, future.result(timeout=10)) for x, future in submitted]

    threads = [threading.Thread(target=producer, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 16
    for pairs in results.values():
        for x, out in pairs:
            np.testing.assert_array_equal(out, model(x[None])[0])
    runner.stop()
    assert runner.pending() == 0
    metrics = batcher.metrics()
    assert metrics["submitted"] == metrics["completed"] == 16 * per_thread
    assert sum(runner.batch_sizes) == 16 * per_thread
    assert max(runner.batch_sizes) <= 8
    hist = metrics["batch_size_histogram"]
    assert len(hist) == 9 and sum(k * n for k, n in enumerate(hist)) == 16 * per_thread


def test_batch_inputs_are_a_view_that_outlives_completion(batcher):
    batcher.submit(11, make_input(1.0))
    batcher.submit(12, make_input(2.0))
    batcher.shutdown(drain=True)
    batch = batcher.next_batch(timeout_ms=1000)
    assert batch is not None and len(batch) == 2 and batch.ids == [11, 12] and batch.id != 0
    assert batch.expired == batch.cancelled == batch.dropped == []
    inputs = batch.inputs
    assert inputs.shape == (2, *INPUT_SHAPE) and inputs.dtype == np.float32
    assert not inputs.flags.owndata  # zero-copy
    batcher.complete(batch)
    del batch  # the view keeps the batch's buffer alive
    np.testing.assert_array_equal(inputs[1], make_input(2.0))
    assert batcher.next_batch(timeout_ms=1000) is None  # shut down and empty: returns at once


def test_stat_requests_are_served_first(batcher):
    batcher.submit(1, make_input(0))
    batcher.submit(2, make_input(1), priority="stat")
    batcher.shutdown(drain=True)
    batch = batcher.next_batch(timeout_ms=100)
    assert batch.ids == [2, 1]


def test_submit_rejects_wrong_shape_dtype_priority_and_id(batcher):
    with pytest.raises(ValueError, match=r"x: shape must be \(3, 4, 4\), got \(4, 4\)"):
        batcher.submit(1, np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="x: dtype must be float32, got float64"):
        batcher.submit(1, np.zeros(INPUT_SHAPE))
    with pytest.raises(ValueError, match="priority: must be 'stat' or 'routine', got 'urgent'"):
        batcher.submit(1, make_input(0), priority="urgent")
    with pytest.raises(ValueError, match="deadline_ms"):
        batcher.submit(1, make_input(0), deadline_ms=float("nan"))
    with pytest.raises(TypeError):
        batcher.submit(-1, make_input(0))  # ids are unsigned 64-bit
    assert batcher.metrics()["submitted"] == 0
    batcher.submit(1, make_input(0))
    with pytest.raises(ValueError, match="id: request 1 is already queued"):
        batcher.submit(1, make_input(0))
    assert batcher.metrics()["submitted"] == 1


def test_an_id_is_free_again_once_its_request_is_reported(batcher):
    batcher.submit(5, make_input(0))
    assert batcher.cancel(5)
    with pytest.raises(ValueError, match="not yet reported"):
        batcher.submit(5, make_input(0))
    assert batcher.next_batch(timeout_ms=100).cancelled == [5]
    batcher.submit(5, make_input(0))
    batcher.shutdown(drain=True)
    batch = batcher.next_batch(timeout_ms=100)
    assert batch.ids == [5]


def test_submit_accepts_non_contiguous_input(batcher):
    batcher.submit(3, np.asfortranarray(make_input(3.0)))
    batcher.shutdown(drain=True)
    batch = batcher.next_batch(timeout_ms=100)
    np.testing.assert_array_equal(batch.inputs[0], make_input(3.0))
    batcher.complete(batch)


def test_constructor_rejects_bad_options():
    with pytest.raises(ValueError, match="backpressure: must be 'block' or 'reject', got 'drop'"):
        _core.DynamicBatcher(INPUT_SHAPE, OUTPUT_SIZE, backpressure="drop")
    with pytest.raises(ValueError, match="input_shape"):
        _core.DynamicBatcher((3, 0), OUTPUT_SIZE)
    with pytest.raises(ValueError, match="max_batch_size"):
        _core.DynamicBatcher(INPUT_SHAPE, OUTPUT_SIZE, max_batch_size=0)
    with pytest.raises(ValueError, match="max_delay_ms"):
        _core.DynamicBatcher(INPUT_SHAPE, OUTPUT_SIZE, max_delay_ms=-1.0)


def test_complete_and_fail_only_take_a_batch_in_flight(batcher):
    for request_id in (1, 2):
        batcher.submit(request_id, make_input(request_id))
    batcher.shutdown(drain=True)
    batch = batcher.next_batch(timeout_ms=100)
    with pytest.raises(TypeError):
        batcher.complete(batch, model(batch.inputs))  # outputs stay with the caller
    batcher.fail(batch, "backend crashed: CUDA out of memory")
    with pytest.raises(ValueError, match="batch_id: no batch"):
        batcher.complete(batch)
    with pytest.raises(ValueError, match="batch_id: no batch"):
        batcher.fail(batch, "again")
    m = batcher.metrics()
    assert m["failed"] == 2 and m["completed"] == 0 and m["in_flight_requests"] == 0


def test_an_expired_request_is_reported_and_never_runs(batcher):
    batcher.submit(7, make_input(0), deadline_ms=0.0)
    start = time.monotonic()
    batch = batcher.next_batch(timeout_ms=5000)
    assert time.monotonic() - start < 1.0
    assert batch.expired == [7] and batch.ids == [] and len(batch) == 0 and batch.id == 0
    assert batch.inputs.shape == (0, *INPUT_SHAPE)
    with pytest.raises(ValueError, match="batch_id: no batch 0"):
        batcher.complete(batch)  # nothing to run: not in flight
    assert batcher.next_batch(timeout_ms=10) is None  # reported once
    m = batcher.metrics()
    assert m["expired"] == 1 and m["batches"] == 0
    assert_counts_add_up(m)


def test_a_deadline_is_reported_while_a_runner_waits_without_new_arrivals():
    batcher = _core.DynamicBatcher(INPUT_SHAPE, OUTPUT_SIZE, max_delay_ms=10_000, adaptive_delay=False)
    batcher.submit(1, make_input(0))  # would wait 10 s for company
    batcher.submit(2, make_input(1), deadline_ms=50)
    start = time.monotonic()
    batch = batcher.next_batch(timeout_ms=5000)
    waited = time.monotonic() - start
    assert batch.expired == [2] and len(batch) == 0
    assert 0.04 <= waited < 1.0
    assert batcher.metrics()["queue_depth"] == 1
    batcher.shutdown(drain=False)


def test_futures_of_expired_requests_raise_deadline_exceeded(batcher):
    runner = Runner(batcher)
    _, future = runner.submit(make_input(0), deadline_ms=0.0)
    with pytest.raises(radz_engine.errors.DeadlineExceeded):
        future.result(timeout=5)
    runner.stop()


def test_cancel(batcher):
    batcher.submit(1, make_input(0))
    assert batcher.cancel(1) is True
    assert batcher.cancel(1) is False
    assert batcher.cancel(99) is False
    batch = batcher.next_batch(timeout_ms=1000)
    assert batch.cancelled == [1] and len(batch) == 0
    assert batcher.metrics()["cancelled"] == 1


def test_cancel_racing_a_runner_resolves_every_future_once(batcher):
    runner = Runner(batcher, runners=2)
    futures = []
    for i in range(300):
        request_id, future = runner.submit(make_input(i))
        futures.append((batcher.cancel(request_id), future))
    for cancelled, future in futures:
        if cancelled:
            with pytest.raises(radz_engine.errors.RequestCancelled):
                future.result(timeout=5)
        else:
            assert future.result(timeout=5).shape == (OUTPUT_SIZE,)
    runner.stop()
    m = batcher.metrics()
    assert m["cancelled"] == sum(cancelled for cancelled, _ in futures)
    assert m["completed"] + m["cancelled"] == 300
    assert runner.pending() == 0


def test_shutdown_without_drain_reports_queued_requests_as_dropped(batcher):
    batcher.submit(1, make_input(0))
    batcher.shutdown(drain=False)
    batch = batcher.next_batch(timeout_ms=1000)
    assert batch.dropped == [1] and len(batch) == 0
    assert batcher.next_batch(timeout_ms=1000) is None
    with pytest.raises(RuntimeError, match="batcher is shut down"):
        batcher.submit(2, make_input(0))
    assert batcher.metrics()["dropped"] == 1


def test_shutdown_without_drain_under_load_resolves_every_future():
    batcher = _core.DynamicBatcher(INPUT_SHAPE, OUTPUT_SIZE, max_batch_size=4, max_delay_ms=1.0, max_queue=64)
    runner = Runner(batcher, runners=2)
    futures: list[Future] = []
    started = threading.Event()

    def producer() -> None:
        for i in range(100_000):
            try:
                futures.append(runner.submit(make_input(i))[1])
            except RuntimeError as error:
                assert "batcher is shut down" in str(error)
                return
            if i == 50:
                started.set()

    producers = [threading.Thread(target=producer) for _ in range(4)]
    for t in producers:
        t.start()
    assert started.wait(timeout=10)
    runner.stop(drain=False)
    for t in producers:
        t.join(timeout=10)
    closed = 0
    for future in futures:
        try:
            future.result(timeout=5)
        except radz_engine.errors.EngineClosed:
            closed += 1
    assert runner.pending() == 0
    m = batcher.metrics()
    assert m["submitted"] == len(futures)
    assert m["dropped"] == closed and m["completed"] == len(futures) - closed
    assert m["queue_depth"] == m["in_flight_requests"] == 0
    assert_counts_add_up(m)


def test_queue_full_is_the_radz_engine_error():
    assert _core.QueueFull is radz_engine.errors.QueueFull
    rejecting = _core.DynamicBatcher(INPUT_SHAPE, OUTPUT_SIZE, max_queue=1, backpressure="reject")
    rejecting.submit(1, make_input(0))
    with pytest.raises(radz_engine.errors.QueueFull, match="queue full") as caught:
        rejecting.submit(2, make_input(1))
    assert isinstance(caught.value, radz_engine.errors.RadzError)
    assert isinstance(caught.value, RuntimeError)
    assert rejecting.cancel(1)
    rejecting.submit(2, make_input(1))  # the refused id was never taken
    rejecting.shutdown(drain=False)


def test_backpressure_block_times_out_with_queue_full():
    blocking = _core.DynamicBatcher(INPUT_SHAPE, OUTPUT_SIZE, max_queue=1, block_timeout_ms=30)
    blocking.submit(1, make_input(0))
    start = time.monotonic()
    with pytest.raises(radz_engine.errors.QueueFull, match="after blocking 30 ms"):
        blocking.submit(2, make_input(1))
    assert time.monotonic() - start >= 0.025
    assert blocking.metrics()["rejected"] == 1
    blocking.shutdown(drain=False)


def test_the_gil_is_released_while_next_batch_waits(batcher):
    returned = threading.Event()

    def wait_long() -> None:
        assert batcher.next_batch(timeout_ms=3000) is None
        returned.set()

    waiter = threading.Thread(target=wait_long, daemon=True)
    waiter.start()
    time.sleep(0.05)  # the waiter is now inside next_batch
    count = 0
    start = time.monotonic()
    while time.monotonic() - start < 0.1:  # pure Python: needs the GIL
        count += 1
    assert count > 1000
    assert not returned.is_set(), "this thread ran while next_batch was still waiting"
    batcher.shutdown(drain=True)  # wakes the waiter at once
    waiter.join(timeout=2)
    assert returned.is_set()


def test_metrics_dict(batcher):
    runner = Runner(batcher)
    for _, future in [runner.submit(make_input(v)) for v in range(5)]:
        future.result(timeout=5)
    runner.stop()
    m = batcher.metrics()
    assert m["submitted"] == m["completed"] == 5
    assert m["queue_depth"] == m["queue_depth_stat"] + m["queue_depth_routine"] == 0
    assert m["in_flight_requests"] == 0
    assert m["failed"] == m["expired"] == m["cancelled"] == m["dropped"] == m["rejected"] == 0
    assert m["latency_samples"] == 5
    assert 0 < m["latency_p50_ms"] <= m["latency_p90_ms"] <= m["latency_p99_ms"]
    assert_counts_add_up(m)


@pytest.mark.parametrize("adaptive", [True, False])
def test_adaptive_delay_runs_lone_requests_early_only_when_on(adaptive):
    # Requests 600 ms apart with max_delay 500 ms: none could ever share a batch, so the
    # adaptive batcher runs each at once; the fixed one waits max_delay for each.
    batcher = _core.DynamicBatcher(
        INPUT_SHAPE, OUTPUT_SIZE, max_batch_size=8, max_delay_ms=500, adaptive_delay=adaptive
    )
    runner = Runner(batcher)
    for i in range(3):
        out = runner.submit(make_input(i))[1].result(5)
        np.testing.assert_allclose(out, model(make_input(i)[None])[0])
        time.sleep(0.6)
    runner.stop()
    assert batcher.metrics()["early_dispatches"] == (3 if adaptive else 0)
