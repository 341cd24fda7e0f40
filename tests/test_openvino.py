"""The OpenVINO backend against ONNX Runtime: fp32 embeddings within 1e-4 on fresh random and
phantom inputs (needs the `openvino` extra; skipped where it is not installed)."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

pytest.importorskip("openvino")

from radz_engine import Engine  # noqa: E402
from radz_engine.backends import BackendUnavailable, create_backend  # noqa: E402
from radz_engine.backends.openvino_backend import OpenVINOBackend  # noqa: E402

TOL = 1e-4


@pytest.fixture(scope="module")
def engines():
    with Engine(backend="onnxruntime", threads=1) as ort, Engine(backend="openvino", threads=1) as ov:
        yield ort, ov


def test_fp32_parity_on_fresh_random_inputs(engines):
    ort, ov = engines
    assert ov.backend.name == "openvino-cpu" and ov.backend.describe()["variant"] == "fp32"
    seed = int.from_bytes(os.urandom(4), "little")
    rng = np.random.default_rng(seed)
    for batch in (1, 7, 32):
        x = rng.standard_normal((batch, *ort.input_shape)).astype(np.float32) * 1.5
        want, got = ort.backend.run(x), ov.backend.run(x)
        assert got.shape == want.shape and got.dtype == np.float32
        assert np.abs(got - want).max() <= TOL, f"seed {seed}, batch {batch}: {np.abs(got - want).max():.2e}"


def test_fp32_parity_on_phantoms_end_to_end(engines):
    """Phantom radiographs through the whole engine: embeddings and class scores agree."""
    from radz_train.data.phantom import generate_cases

    ort, ov = engines
    seed = int.from_bytes(os.urandom(4), "little") % 100000
    images = [case.image.astype(np.float32) for case in generate_cases(12, seed=seed, size=128)]
    want, got = ort.classify(images), ov.classify(images)
    for a, b in zip(want, got):
        assert a.error is None and b.error is None
        assert np.abs(a.embedding - b.embedding).max() <= TOL, f"phantom seed {seed}"
        assert max(abs(a.scores[k] - b.scores[k]) for k in a.scores) <= 10 * TOL


def test_run_from_many_threads(engines):
    """run() is safe from several threads at once (one infer request per thread)."""
    ort, ov = engines
    rng = np.random.default_rng(3)
    inputs = [rng.standard_normal((4, *ort.input_shape)).astype(np.float32) for _ in range(6)]
    want = [ov.backend.run(x) for x in inputs]
    failures: list[int] = []

    def work(k: int) -> None:
        for i in range(len(inputs)):
            j = (i + k) % len(inputs)
            if not np.array_equal(ov.backend.run(inputs[j]), want[j]):
                failures.append(j)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_errors_name_the_problem(engines):
    ort, _ = engines
    with pytest.raises(BackendUnavailable, match="CPU"):
        create_backend("openvino", ort.bundle, "cuda")
    with pytest.raises(ValueError, match="threads"):
        OpenVINOBackend(threads=0)
    with pytest.raises(ValueError, match="pixel_values"):
        create_backend("openvino", ort.bundle, "cpu", threads=1).run(np.zeros((2, 3, 5, 5), np.float32))
    with pytest.raises(RuntimeError, match="load"):
        OpenVINOBackend().run(np.zeros((1, *ort.input_shape), np.float32))
