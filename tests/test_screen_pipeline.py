"""The screening pipeline (runtime/screen.py): decode threads by default, a process pool sending one
channel on request, the same results every way; thread budget defaults; ONNX Runtime options."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from radz_engine import Engine
from radz_engine.runtime import screen
from radz_engine.runtime.prepare import Prepared, prepare
from radz_engine.runtime.results import Result


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """8 phantom DICOMs, a colour PNG (a reader note: colour -> luminance) and a broken .dcm."""
    from PIL import Image

    from radz_train.data.dicom_out import write_case
    from radz_train.data.phantom import generate_cases

    root = tmp_path_factory.mktemp("screen_pipeline")
    cases = list(generate_cases(9, seed=8, size=96))
    for case in cases[:8]:
        write_case(case, root / f"{case.index:03d}.dcm")
    grey = np.round(cases[8].image * 255).astype(np.uint8)
    Image.fromarray(np.stack([grey, grey, grey], axis=-1)).save(root / "colour.png")
    (root / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")
    return root


@pytest.fixture(scope="module")
def engine():
    with Engine(threads=1, max_batch_size=4) as eng:
        yield eng


def _by_source(results):
    return {r.source: r for r in results}


def test_threads_processes_and_in_thread_agree(folder, engine):
    """Decode threads (the default), worker processes (one channel through the pipe) and decoding
    in the caller's thread give the same Results, in the same order; bad files are error Results."""
    inline = list(screen.screen_paths(engine, [folder], progress=False, workers=0, batch_size=4))
    threads = list(screen.screen_paths(engine, [folder], progress=False, workers=3, batch_size=4))
    processes = list(screen.screen_paths(engine, [folder], progress=False, workers=2, batch_size=4, processes=True))
    assert len(inline) == 10
    for other in (threads, processes):
        assert [r.source for r in other] == [r.source for r in inline]
    errors = [r for r in inline if r.error]
    assert len(errors) == 1 and "broken.dcm" in errors[0].error
    for a, b, c in zip(inline, threads, processes):
        assert (a.error is None) == (b.error is None) == (c.error is None)
        if a.error:
            continue
        assert a.scores == b.scores  # same C++ tensors: bit for bit
        np.testing.assert_array_equal(a.embedding, b.embedding)
        for name, value in a.scores.items():
            assert abs(c.scores[name] - value) <= 1e-5, name
        np.testing.assert_allclose(c.embedding, a.embedding, atol=1e-5)
        assert c.metadata == a.metadata


def test_default_decode_threads_keep_warning_filters(folder, engine):
    """Reader notes in decode threads are not errors (pytest turns warnings into errors here) and
    the process's warning filters are the same after the screen as before."""
    import warnings

    before = list(warnings.filters)
    results = list(screen.screen_paths(engine, [folder], progress=False, batch_size=4))
    colour = [r for r in results if r.source.endswith("colour.png")]
    assert colour and colour[0].error is None
    assert list(warnings.filters) == before


def test_screen_paths_from_several_threads(folder, engine):
    """Engine.screen from two threads at once (each with its own decode pool) stays correct."""
    want = {r.source: r.scores for r in screen.screen_paths(engine, [folder], progress=False, workers=0)}
    got: list[dict] = []

    def work() -> None:
        got.append({r.source: r.scores for r in screen.screen_paths(engine, [folder], progress=False, workers=2)})

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [want, want]


def test_concurrent_model_batches_keep_order_and_results(folder, engine):
    """Batches run on 1, 2 or 3 model threads give the same Results in input order (batches of 2:
    five batches, the broken file's error Result in its place)."""
    runs = {
        n: list(screen.screen_paths(engine, [folder], progress=False, workers=2, batch_size=2, model_runners=n))
        for n in (1, 2, 3)
    }
    assert len(runs[1]) == 10
    for n in (2, 3):
        assert [r.source for r in runs[n]] == [r.source for r in runs[1]]
        for a, b in zip(runs[1], runs[n]):
            assert (a.error is None) == (b.error is None)
            if a.error is None:
                assert a.scores == b.scores
                np.testing.assert_array_equal(a.embedding, b.embedding)
    with pytest.raises(ValueError, match="model_runners: must be >= 1"):
        engine.screen([folder], progress=False, model_runners=0)


@pytest.mark.parametrize("runners", [1, 2])
def test_progress_counts_results_not_decoded_files(folder, engine, monkeypatch, runners):
    """The bar advances when a Result is handed out, not when a file is decoded ahead of the model
    (decoding runs up to a few batches ahead)."""
    from radz_engine.runtime import progress as progress_module
    from radz_engine.runtime.results import Result

    seen = []

    def recording(items, **kwargs):
        for item in items:
            seen.append(item)
            yield item

    monkeypatch.setattr(progress_module, "progress", recording)
    got = list(screen.screen_paths(engine, [folder], progress=True, workers=2, batch_size=2, model_runners=runners))
    assert len(got) == 10 and seen == got and all(isinstance(item, Result) for item in seen)


class _FakeEngine:
    def __init__(self, devices, threads):
        self.backends = [type("B", (), {"device": d})() for d in devices]
        self.threads = threads


@pytest.mark.parametrize(
    "cores, devices, threads, want",
    [
        (2, ["cpu"], 1, 2),  # the 2-core default of radz screen: a second batch takes the idle core
        (1, ["cpu"], 1, 1),  # nothing to overlap on one core
        (2, ["cpu"], 2, 1),  # a multi-threaded model already spans the cores
        (8, ["cpu"], None, 1),
        (2, ["cuda:0"], 1, 1),  # GPU backends queue on their device
        (4, ["cpu", "cpu"], 1, 1),
    ],
)
def test_default_model_runners_rule(monkeypatch, cores, devices, threads, want):
    monkeypatch.setattr(screen, "cores", lambda: cores)
    assert screen.default_model_runners(_FakeEngine(devices, threads)) == want


def test_normalise_equals_three_channel_tensor(folder, engine):
    """One intensity channel normalised in the parent == the C++ core's own 3-channel output."""
    args = engine.bundle.preprocess_args()
    path = str(sorted(folder.glob("*.dcm"))[0])
    three = prepare(path, args)
    one = screen.prepare_intensity(path, args)
    assert isinstance(three, Prepared) and isinstance(one, Prepared)
    assert one.tensor.shape == (1, *three.tensor.shape[1:]) and one.tensor.dtype == np.float32
    made = screen.normalise(one, args["mean"], args["std"])
    assert made.tensor.dtype == np.float32
    np.testing.assert_allclose(made.tensor, three.tensor, rtol=0, atol=2e-6)
    error = Result(source="x", error="x: bad")
    assert screen.normalise(error, args["mean"], args["std"]) is error


def test_run_chunk_passes_errors_through(folder, engine):
    """run_chunk (used by the Ray actors) keeps error Results in place and fails a batch's files,
    not the screen, when the model fails."""
    args = engine.bundle.preprocess_args()
    good = prepare(str(sorted(folder.glob("*.dcm"))[0]), args)
    bad = Result(source="b.dcm", error="b.dcm: unreadable")
    out = screen.run_chunk(engine, [good, bad])
    assert out[1] is bad and out[0].error is None and out[0].timings["queue"] == 0.0
    wrong = Prepared("w.dcm", np.zeros((3, 5, 5), np.float32))
    failed = screen.run_chunk(engine, [wrong, bad])
    assert failed[0].error.startswith("w.dcm: model failed") and failed[1] is bad


@pytest.mark.parametrize(
    "cores, model_threads, processes, want",
    [
        (2, None, False, 1),  # the model has every core: one decode thread beside it
        (2, 1, False, 1),
        (8, 2, False, 4),  # at most MAX_DECODE_THREADS threads
        (8, 6, False, 2),
        (16, None, True, 15),  # processes: cores - 1 as before
        (16, 4, True, 12),
        (1, None, True, 1),
    ],
)
def test_default_workers_rule(monkeypatch, cores, model_threads, processes, want):
    monkeypatch.setattr(screen, "cores", lambda: cores)
    assert screen.default_workers(model_threads, processes) == want


@pytest.mark.parametrize("cores, model, decode", [(1, 1, 1), (2, 1, 1), (4, 2, 2), (8, 4, 4), (16, 12, 4)])
def test_default_model_threads_leave_the_decode_threads_their_cores(monkeypatch, cores, model, decode):
    monkeypatch.setattr(screen, "cores", lambda: cores)
    assert screen.default_model_threads() == model
    assert screen.default_workers(model) == decode
    assert model + decode <= max(cores, 2)


def test_onnxruntime_session_does_not_spin_by_default(engine):
    from radz_engine.backends.onnxruntime_backend import OnnxRuntimeBackend

    options = engine.backend.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert engine.backend.describe()["spin"] is False
    spinning = OnnxRuntimeBackend(threads=1, spin=True).load(engine.bundle, "cpu")
    options = spinning.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    x = np.random.default_rng(0).standard_normal((2, *engine.input_shape)).astype(np.float32)
    np.testing.assert_array_equal(spinning.run(x), engine.backend.run(x))
    spinning.close()
