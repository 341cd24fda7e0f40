"""radz_engine._core.DynamicBatcher from Python: runner threads, many producers, errors, GIL."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

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
    """A Python runner thread: pops batches and completes them with `model`."""

    def __init__(self, batcher: _core.DynamicBatcher) -> None:
        self.batcher = batcher
        self.batch_sizes: list[int] = []
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            batch = self.batcher.next_batch(timeout_ms=50)
            if batch is None:
                if self.batcher.is_shut_down:
                    return
                continue
            self.batch_sizes.append(len(batch))
            self.batcher.complete(batch, model(batch.inputs))

    def stop(self) -> None:
        self.batcher.shutdown(drain=True)
        self.thread.join(timeout=5)
        assert not self.thread.is_alive()


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
    ticket = batcher.submit(x)
    out = ticket.result(timeout=5)
    assert out.dtype == np.float32 and out.shape == (OUTPUT_SIZE,)
    np.testing.assert_array_equal(out, model(x[None])[0])
    assert ticket.done()
    assert ticket.latency_ms is not None and ticket.latency_ms >= 0
    runner.stop()


def test_sixteen_threads_submitting_concurrently_each_get_their_own_result(batcher):
    runner = Runner(batcher)
    per_thread = 25
    results: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    start = threading.Barrier(16)

    def producer(index: int) -> None:
        start.wait()
        pairs = []
        tickets = []
        for i in range(per_thread):
            x = make_input(index * 1000 + i)
            tickets.append((x, batcher.submit(x, priority="stat" if i % 4 == 0 else "routine")))
        for x, ticket in tickets:
            pairs.append((x, ticket.result(timeout=10)))
        results[index] = pairs

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
    metrics = batcher.metrics()
    assert metrics["submitted"] == metrics["completed"] == 16 * per_thread
    assert sum(runner.batch_sizes) == 16 * per_thread
    assert max(runner.batch_sizes) <= 8
    hist = metrics["batch_size_histogram"]
    assert len(hist) == 9 and sum(k * n for k, n in enumerate(hist)) == 16 * per_thread


def test_batch_inputs_are_a_view_that_outlives_completion(batcher):
    tickets = [batcher.submit(make_input(v)) for v in (1.0, 2.0)]
    batcher.shutdown(drain=True)
    batch = batcher.next_batch(timeout_ms=1000)
    assert batch is not None and len(batch) == 2 and batch.ids == [t.id for t in tickets]
    inputs = batch.inputs
    assert inputs.shape == (2, *INPUT_SHAPE) and inputs.dtype == np.float32
    assert not inputs.flags.owndata  # zero-copy
    batcher.complete(batch, model(inputs))
    del batch  # the view keeps the batch's buffer alive
    np.testing.assert_array_equal(inputs[1], make_input(2.0))
    assert batcher.next_batch(timeout_ms=1000) is None  # shut down and empty: returns at once


def test_stat_requests_are_served_first(batcher):
    routine = batcher.submit(make_input(0))
    stat = batcher.submit(make_input(1), priority="stat")
    batcher.shutdown(drain=True)
    batch = batcher.next_batch(timeout_ms=100)
    assert batch.ids == [stat.id, routine.id]


def test_submit_rejects_wrong_shape_dtype_and_priority(batcher):
    with pytest.raises(ValueError, match=r"x: shape must be \(3, 4, 4\), got \(4, 4\)"):
        batcher.submit(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="x: dtype must be float32, got float64"):
        batcher.submit(np.zeros(INPUT_SHAPE))
    with pytest.raises(ValueError, match="priority: must be 'stat' or 'routine', got 'urgent'"):
        batcher.submit(make_input(0), priority="urgent")
    with pytest.raises(ValueError, match="deadline_ms"):
        batcher.submit(make_input(0), deadline_ms=float("nan"))


def test_submit_accepts_non_contiguous_input(batcher):
    x = np.asfortranarray(make_input(3.0))
    ticket = batcher.submit(x)
    batcher.shutdown(drain=True)
    batch = batcher.next_batch(timeout_ms=100)
    np.testing.assert_array_equal(batch.inputs[0], make_input(3.0))
    batcher.complete(batch, model(batch.inputs))
    ticket.result(timeout=1)


def test_constructor_rejects_bad_options():
    with pytest.raises(ValueError, match="backpressure: must be 'block' or 'reject', got 'drop'"):
        _core.DynamicBatcher(INPUT_SHAPE, OUTPUT_SIZE, backpressure="drop")
    with pytest.raises(ValueError, match="input_shape"):
        _core.DynamicBatcher((3, 0), OUTPUT_SIZE)
    with pytest.raises(ValueError, match="max_batch_size"):
        _core.DynamicBatcher(INPUT_SHAPE, OUTPUT_SIZE, max_batch_size=0)
    with pytest.raises(ValueError, match="max_delay_ms"):
        _core.DynamicBatcher(INPUT_SHAPE, OUTPUT_SIZE, max_delay_ms=-1.0)


def test_complete_checks_the_outputs_and_fail_reaches_every_ticket(batcher):
    tickets = [batcher.submit(make_input(v)) for v in (1.0, 2.0)]
    batcher.shutdown(drain=True)
    batch = batcher.next_batch(timeout_ms=100)
    with pytest.raises(ValueError, match=r"outputs: shape must be \(2, 5\), got \(2, 4\)"):
        batcher.complete(batch, np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="outputs: dtype must be float32"):
        batcher.complete(batch, np.zeros((2, 5), np.float16))
    batcher.fail(batch, "backend crashed: CUDA out of memory")
    for ticket in tickets:
        with pytest.raises(RuntimeError, match="backend crashed: CUDA out of memory"):
            ticket.result(timeout=1)
    with pytest.raises(ValueError, match="batch_id: no batch"):
        batcher.complete(batch, np.zeros((2, 5), np.float32))


def test_result_times_out_with_timeout_error(batcher):
    ticket = batcher.submit(make_input(0))
    with pytest.raises(TimeoutError, match="no result after"):
        ticket.result(timeout=0.02)
    assert not ticket.done()


def test_deadline_exceeded_is_raised_and_the_request_never_runs(batcher):
    ticket = batcher.submit(make_input(0), deadline_ms=0.0)
    with pytest.raises(_core.DeadlineExceeded, match="deadline exceeded"):
        ticket.result(timeout=1)
    assert issubclass(_core.DeadlineExceeded, TimeoutError)
    assert batcher.next_batch(timeout_ms=10) is None
    assert batcher.metrics()["expired"] == 1


def test_cancel(batcher):
    ticket = batcher.submit(make_input(0))
    assert ticket.cancel() is True
    assert ticket.cancel() is False
    with pytest.raises(_core.RequestCancelled, match="cancelled"):
        ticket.result(timeout=1)
    assert batcher.metrics()["cancelled"] == 1


def test_shutdown_without_drain_fails_queued_requests(batcher):
    ticket = batcher.submit(make_input(0))
    batcher.shutdown(drain=False)
    with pytest.raises(RuntimeError, match="engine shut down before the request ran"):
        ticket.result(timeout=1)
    with pytest.raises(RuntimeError, match="batcher is shut down"):
        batcher.submit(make_input(0))


def test_backpressure_reject_and_block():
    rejecting = _core.DynamicBatcher(INPUT_SHAPE, OUTPUT_SIZE, max_queue=1, backpressure="reject")
    rejecting.submit(make_input(0))
    with pytest.raises(_core.QueueFull, match="queue full"):
        rejecting.submit(make_input(1))
    assert issubclass(_core.QueueFull, RuntimeError)
    blocking = _core.DynamicBatcher(INPUT_SHAPE, OUTPUT_SIZE, max_queue=1, block_timeout_ms=30)
    blocking.submit(make_input(0))
    start = time.monotonic()
    with pytest.raises(_core.QueueFull, match="after blocking 30 ms"):
        blocking.submit(make_input(1))
    assert time.monotonic() - start >= 0.025
    assert blocking.metrics()["rejected"] == 1
    rejecting.shutdown(drain=False)
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
    for ticket in [batcher.submit(make_input(v)) for v in range(5)]:
        ticket.result(timeout=5)
    runner.stop()
    m = batcher.metrics()
    assert m["submitted"] == m["completed"] == 5
    assert m["queue_depth"] == m["queue_depth_stat"] + m["queue_depth_routine"] == 0
    assert m["in_flight_requests"] == 0 and m["failed"] == m["expired"] == m["cancelled"] == m["rejected"] == 0
    assert m["latency_samples"] == 5
    assert 0 < m["latency_p50_ms"] <= m["latency_p90_ms"] <= m["latency_p99_ms"]


@pytest.mark.parametrize("adaptive", [True, False])
def test_adaptive_delay_runs_lone_requests_early_only_when_on(adaptive):
    # Requests 600 ms apart with max_delay 500 ms: none could ever share a batch, so the
    # adaptive batcher runs each at once; the fixed one waits max_delay for each.
    batcher = _core.DynamicBatcher(INPUT_SHAPE, OUTPUT_SIZE, max_batch_size=8, max_delay_ms=500,
                                   adaptive_delay=adaptive)
    runner = Runner(batcher)
    for i in range(3):
        out = batcher.submit(make_input(i)).result(5)
        np.testing.assert_allclose(out, model(make_input(i)[None])[0])
        time.sleep(0.6)
    batcher.shutdown(drain=True)
    runner.thread.join(5)
    assert batcher.metrics()["early_dispatches"] == (3 if adaptive else 0)
