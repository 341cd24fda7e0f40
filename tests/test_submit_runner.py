"""Engine.submit's one-future-per-request path (runtime/runner.py + the C++ DynamicBatcher):
races between submit and completion, deadlines, cancellation, failing batches, close() under
load. The model is the shipped bundle on ONNX Runtime; `GatedBackend` only wraps it to hold a
batch back or make it fail on cue, so the timing of each race is set by the test."""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from radz_engine import DeadlineExceeded, EngineClosed, RadzError, RequestCancelled  # noqa: E402
from radz_engine.backends import create_backend  # noqa: E402
from radz_engine.backends.base import Backend  # noqa: E402
from radz_engine.bundle.default import default_bundle_path  # noqa: E402
from radz_engine.bundle.loader import load_bundle  # noqa: E402
from radz_engine.runtime.engine import Engine  # noqa: E402


class GatedBackend(Backend):
    """The real ONNX Runtime backend, with a gate each run waits at and an optional failure."""

    name = "gated-onnxruntime"

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.running = threading.Event()
        self.fail_next = False
        self.inner: Backend | None = None

    def load(self, bundle, device: str = "cpu") -> Backend:
        self.inner = create_backend("onnxruntime", bundle, device, threads=1)
        self.device = device
        return self

    def run(self, pixel_values: np.ndarray) -> np.ndarray:
        self.running.set()
        assert self.gate.wait(60), "gate never opened"
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("injected failure")
        return self.inner.run(pixel_values)

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()


def images(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random((40 + i % 7, 48)).astype(np.float32) for i in range(n)]


@pytest.fixture
def gated():
    backend = GatedBackend()
    engine = Engine(backend=backend, threads=1, max_batch_size=4, max_delay_ms=1, runners=2)
    yield engine, backend
    backend.gate.set()
    engine.close(drain=False)


def test_every_request_resolves_once_with_its_own_result_under_many_threads():
    pictures = images(24, seed=5)
    with Engine(threads=1, max_batch_size=8, max_delay_ms=0.5, runners=3) as engine:
        expected = [r.embedding for r in engine.classify(pictures)]
        futures: list = [None] * (len(pictures) * 4)
        barrier = threading.Barrier(8)

        def client(k: int) -> None:
            barrier.wait()
            for j in range(k, len(futures), 8):
                futures[j] = engine.submit(pictures[j % len(pictures)], priority="stat" if j % 5 == 0 else "routine")

        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for j, future in enumerate(futures):
            result = future.result(timeout=60)
            np.testing.assert_allclose(result.embedding, expected[j % len(pictures)], atol=1e-5)
        metrics = engine.stats()["batcher_metrics"]
    assert metrics["submitted"] == metrics["completed"] == len(futures)
    assert metrics["queue_depth"] == 0


def test_a_deadline_is_reported_while_the_batch_waits_to_fill():
    # Non-adaptive, 30 s max_delay, batch of 8: one request waits; only its deadline ends it.
    with Engine(threads=1, max_batch_size=8, max_delay_ms=30_000, adaptive_delay=False) as engine:
        start = time.perf_counter()
        future = engine.submit(images(1)[0], deadline_ms=50)
        with pytest.raises(DeadlineExceeded, match="deadline") as caught:
            future.result(timeout=10)
        assert time.perf_counter() - start < 5  # reported at the deadline, not at max_delay
        assert isinstance(caught.value, RadzError) and isinstance(caught.value, TimeoutError)
        assert engine.stats()["batcher_metrics"]["expired"] == 1


def test_a_queued_request_expires_while_every_runner_is_busy(gated):
    engine, backend = gated
    backend.gate.clear()
    first = [engine.submit(x) for x in images(8)]  # both runners now hold a batch at the gate
    assert backend.running.wait(10)
    late = engine.submit(images(1, seed=9)[0], deadline_ms=30)
    time.sleep(0.2)
    backend.gate.set()
    assert all(f.result(timeout=30).ok for f in first)
    with pytest.raises(DeadlineExceeded):
        late.result(timeout=30)


def test_cancelling_a_queued_future_removes_the_request():
    with Engine(threads=1, max_batch_size=8, max_delay_ms=30_000, adaptive_delay=False) as engine:
        future = engine.submit(images(1)[0])
        assert future.cancel()
        with pytest.raises(CancelledError):
            future.result(timeout=1)
        deadline = time.monotonic() + 10
        while engine.stats()["batcher_metrics"]["cancelled"] != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        metrics = engine.stats()["batcher_metrics"]
        assert metrics["cancelled"] == 1 and metrics["queue_depth"] == 0
        engine.close(drain=False)


def test_cancel_racing_the_runner_never_loses_or_doubles_a_result(gated):
    engine, _ = gated
    outcomes = {"result": 0, "cancelled": 0}
    for round_ in range(30):
        future = engine.submit(images(1, seed=round_)[0])
        time.sleep(0.0005 * (round_ % 4))
        if future.cancel():
            outcomes["cancelled"] += 1
        else:
            assert future.result(timeout=30).ok
            outcomes["result"] += 1
    assert sum(outcomes.values()) == 30
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        m = engine.stats()["batcher_metrics"]
        if m["completed"] + m["cancelled"] == 30:
            break
        time.sleep(0.01)
    assert m["completed"] + m["cancelled"] == 30 and m["completed"] >= outcomes["result"]


def test_a_failing_batch_fails_its_requests_and_the_runner_goes_on(gated):
    engine, backend = gated
    backend.fail_next = True
    failed = engine.submit(images(1)[0])
    with pytest.raises(RuntimeError, match="injected failure"):
        failed.result(timeout=30)
    assert engine.submit(images(1, seed=3)[0]).result(timeout=30).ok
    assert engine.stats()["batcher_metrics"]["failed"] == 1


def test_close_without_drain_ends_queued_requests_with_engine_closed(gated):
    engine, backend = gated
    backend.gate.clear()
    futures = [engine.submit(x) for x in images(20)]
    assert backend.running.wait(10)
    closer = threading.Thread(target=engine.close, kwargs={"drain": False})
    closer.start()
    time.sleep(0.1)
    backend.gate.set()  # the batches already running finish
    closer.join(30)
    assert not closer.is_alive()
    ok = closed = 0
    for future in futures:
        try:
            ok += future.result(timeout=30).ok
        except EngineClosed:
            closed += 1
    assert ok + closed == 20 and closed > 0 and ok > 0
    with pytest.raises(EngineClosed):
        engine.submit(images(1)[0])


def test_close_under_load_drains_every_accepted_request():
    engine = Engine(threads=1, max_batch_size=4, max_delay_ms=1, runners=2)
    accepted, refused = [], []
    stop = threading.Event()

    def client(seed: int) -> None:
        pictures = images(6, seed=seed)
        mine: list = []
        while not stop.is_set():
            if len(mine) >= 16:  # a client with at most 16 in flight: the queue never fills
                mine[-16].exception(timeout=60)
            try:
                mine.append(engine.submit(pictures[len(mine) % 6]))
            except EngineClosed:
                refused.append(1)
                break
        accepted.extend(mine)

    threads = [threading.Thread(target=client, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    engine.close(drain=True)
    stop.set()
    for t in threads:
        t.join(30)
    assert accepted and all(f.result(timeout=60).ok for f in list(accepted))
    assert len(refused) == 4  # every client saw the engine close


def test_errors_share_one_base_class():
    import radz_engine

    for name in (
        "BundleError",
        "BackendUnavailable",
        "DicomInputError",
        "RadzInputError",
        "EngineClosed",
        "QueueFull",
        "DeadlineExceeded",
        "RequestCancelled",
    ):
        assert issubclass(getattr(radz_engine, name), radz_engine.RadzError), name
    assert issubclass(RequestCancelled, RadzError)
    with pytest.raises(radz_engine.BundleError):
        load_bundle(default_bundle_path().parent / "no-such-bundle")
    from radz_engine import _core

    assert _core.QueueFull is radz_engine.QueueFull
    assert {"Engine", "Result", "load_bundle", "RadzError"} <= set(dir(radz_engine))
    assert "importlib" not in dir(radz_engine)
