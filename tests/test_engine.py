"""radz_engine.Engine: scores equal the PyTorch model's, concurrent submit() gets each caller its
own result, every input kind works, bad inputs become Results with `error`, zero-shot classes
are added without torch, deadlines / cancel / close behave."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from blocked_imports import run_blocked

pytest.importorskip("onnxruntime")

from radz_engine.errors import EngineClosed  # noqa: E402
from radz_engine.preprocessing.pixel_spec import PixelSpec  # noqa: E402
from radz_engine.runtime.engine import Engine  # noqa: E402

IDENTITY = PixelSpec(window_center=0.5, window_width=1.0, voi_function="LINEAR_EXACT")  # intensities 0..1 as is


def _phantoms(n: int, size: int, seed: int = 5) -> list[np.ndarray]:
    from radz_train.data.phantom import generate_cases

    return [c.image.astype(np.float32) for c in generate_cases(n, seed=seed, size=size)]


@pytest.fixture(scope="module")
def default_engine():
    with Engine(threads=1, max_batch_size=8, max_delay_ms=2) as engine:
        yield engine


@pytest.fixture(scope="module")
def tiny_model_and_bundle(tmp_path_factory):
    """A tiny random RadzModel and its bundle (written without parity checks: this test is one)."""
    pytest.importorskip("torch")
    from export_fixtures import tiny_model
    from radz_export import write_bundle

    model = tiny_model()
    out = tmp_path_factory.mktemp("engine_bundle") / "tiny"
    write_bundle(model, out, parity_checks=False, auc_phantoms=0)
    return model, out


# -- parity with PyTorch ------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["anchor", "softmax", "posneg"])
def test_engine_scores_equal_pytorch(tiny_model_and_bundle, mode):
    import torch

    from radz_engine.scoring.scores import class_scores as score
    from radz_train.zero_shot import class_embeddings

    model, bundle = tiny_model_and_bundle
    images = _phantoms(7, size=48)  # not the model's 32: the engine resizes
    with Engine(bundle, threads=1, max_batch_size=4, mode=mode) as engine:  # 4: two chunks
        results = engine.classify([(img, IDENTITY) for img in images])
        from radz_engine.io.inputs import decode

        x = engine.preprocess([decode((img, IDENTITY)) for img in images])
    with torch.no_grad():
        feats = model.encode_image(torch.from_numpy(x)).global_.numpy()
    expected = score(feats.astype(np.float64), class_embeddings(model, engine.class_names), mode, model.config.tau)
    got = np.array([[r.scores[c] for c in engine.class_names] for r in results])
    assert all(r.ok for r in results)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    np.testing.assert_allclose(np.stack([r.embedding for r in results]), feats, atol=1e-4, rtol=0)


def test_torch_backend_matches_onnxruntime(tiny_model_and_bundle):
    model, bundle = tiny_model_and_bundle
    images = [(img, IDENTITY) for img in _phantoms(3, size=32)]
    with (
        Engine(bundle, threads=1) as ort_engine,
        Engine(bundle, backend="torch", threads=1, backend_options={"checkpoint": model}) as torch_engine,
    ):
        assert torch_engine.backend.name == "torch" and ort_engine.backend.name == "onnxruntime-cpu"
        a = ort_engine.classify(images)
        b = torch_engine.classify(images)
    for ra, rb in zip(a, b):
        np.testing.assert_allclose(list(ra.scores.values()), list(rb.scores.values()), atol=1e-4)


def test_torch_backend_bfloat16_and_replicas_leave_the_model_alone(tiny_model_and_bundle):
    import torch

    model, bundle = tiny_model_and_bundle
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = [(img, IDENTITY) for img in _phantoms(4, size=32, seed=3)]
    with Engine(bundle, threads=1) as ort_engine:
        want = np.stack([r.embedding for r in ort_engine.classify(images)])
    options = {"checkpoint": model, "dtype": "bfloat16"}
    with Engine(bundle, backend="torch", device=["cpu", "cpu"], threads=1, backend_options=options) as engine:
        assert len(engine.backends) == 2 and engine.backends[0].model is not engine.backends[1].model
        assert engine.backends[0].name == "torch-bfloat16"
        got = np.stack([r.embedding for r in engine.classify(images)])
        futures = [engine.submit(im) for im in images]  # both replicas' runners share the queue
        via_queue = np.stack([f.result(60).embedding for f in futures])
    cosine = (got * want).sum(1)
    assert cosine.min() > 0.99, cosine  # bfloat16 keeps ~3 significant digits
    np.testing.assert_allclose(via_queue, got, atol=2e-2)
    after = model.state_dict()
    assert all(after[k].dtype == v.dtype and torch.equal(after[k], v) for k, v in before.items())


def test_backend_auto_says_which(default_engine):
    assert default_engine.backend.name == "onnxruntime-cpu"
    assert default_engine.backend.device == "cpu"
    assert default_engine.stats()["backend"]["providers"] == ["CPUExecutionProvider"]


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="max_batch_size"):
        Engine(max_batch_size=0)
    with pytest.raises(ValueError, match="backend: must be one of"):
        Engine(backend="nope", threads=1)
    with pytest.raises(ValueError, match="device"):
        Engine(device="tpu", threads=1)
    with pytest.raises(ValueError, match="checkpoint"):
        Engine(backend="torch", threads=1)


# -- inputs -------------------------------------------------------------------------------------
def test_classify_paths_datasets_arrays(default_engine, tmp_path):
    import pydicom
    from PIL import Image

    from radz_train.data.dicom_out import write_case
    from radz_train.data.phantom import generate_case

    case = generate_case(3, seed=9, size=128)
    dcm = write_case(case, tmp_path / "case.dcm")
    png = tmp_path / "case.png"
    Image.fromarray(np.round(case.image * 255).astype(np.uint8)).save(png)
    ds = pydicom.dcmread(dcm)
    results = default_engine.classify(
        [dcm, ds, str(png), case.image.astype(np.float32), (case.image.astype(np.float32), IDENTITY)]
    )
    assert [r.ok for r in results] == [True] * 5, [r.error for r in results]
    assert results[0].source == dcm and results[1].source == "<Dataset 1>" and results[3].source == "<array 3>"
    assert results[0].metadata["SOPInstanceUID"] == ds.SOPInstanceUID
    np.testing.assert_allclose(list(results[0].scores.values()), list(results[1].scores.values()), atol=1e-6)
    for r in results:
        assert set(r.scores) == set(default_engine.class_names)
        assert r.embedding.shape == (default_engine.bundle.embedding_dim,)
        assert set(r.positives) <= set(r.scores)
        assert {"decode", "preprocess", "model", "score"} <= set(r.timings)
    # a single image (not in a list) and a [N, H, W] stack
    assert len(default_engine.classify(dcm)) == 1
    assert len(default_engine.classify(np.stack([case.image.astype(np.float32)] * 2))) == 2


def test_bad_inputs_become_error_results(default_engine, tmp_path):
    (tmp_path / "junk.dcm").write_bytes(b"not an image at all")
    good = _phantoms(1, size=64)[0]
    results = default_engine.classify(
        [
            str(tmp_path / "missing.dcm"),
            str(tmp_path / "junk.dcm"),
            good,
            np.zeros(5, np.float32),
            np.zeros((4, 4), np.complex64),
            {"a": 1},
        ]
    )
    assert [r.ok for r in results] == [False, False, True, False, False, False]
    assert "missing.dcm" in results[0].error and "cannot open" in results[0].error
    assert "junk.dcm" in results[1].error and "unrecognised content" in results[1].error
    assert (
        "2-D" in results[3].error and "complex64" in results[4].error and "unsupported input type" in results[5].error
    )
    assert results[0].scores == {} and results[0].embedding is None
    bad = default_engine.submit(str(tmp_path / "junk.dcm")).result(5)
    assert not bad.ok and "junk.dcm" in bad.error


# -- submit -------------------------------------------------------------------------------------
@pytest.fixture(params=[True, False], ids=["adaptive-delay", "fixed-delay"])
def batcher_engine(request):
    engine = Engine(threads=1, max_batch_size=8, max_delay_ms=2, runners=2, adaptive_delay=request.param)
    yield engine
    engine.close()


def test_sixteen_threads_get_their_own_results(batcher_engine):
    images = _phantoms(16, size=96, seed=21)
    expected = batcher_engine.classify(images)
    out: list = [None] * 16
    barrier = threading.Barrier(16)

    def client(i: int) -> None:
        barrier.wait()
        out[i] = batcher_engine.submit(images[i], priority="stat" if i % 3 == 0 else "routine").result(timeout=60)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for i in range(16):
        assert out[i] is not None and out[i].ok
        np.testing.assert_allclose(out[i].embedding, expected[i].embedding, atol=1e-5)
        assert out[i].scores == pytest.approx(expected[i].scores, abs=1e-5)
        assert out[i].timings["queue"] >= 0 and out[i].timings["model"] > 0
    stats = batcher_engine.stats()
    assert stats["latency_ms"]["p50"] is not None and stats["queue_depth"] == 0
    assert stats["batcher_metrics"]["completed"] == 16


def test_deadline_cancel_and_close(batcher_engine):
    image = _phantoms(1, size=64)[0]
    expired = batcher_engine.submit(image, deadline_ms=0)
    with pytest.raises(TimeoutError, match="deadline"):
        expired.result(timeout=10)
    assert batcher_engine.submit(image).result(timeout=30).ok
    with pytest.raises(ValueError, match="priority"):
        batcher_engine.submit(image, priority="urgent")
    futures = [batcher_engine.submit(image) for _ in range(5)]
    batcher_engine.close()  # drains: queued requests still run
    assert all(f.result(timeout=30).ok for f in futures)
    with pytest.raises(EngineClosed):
        batcher_engine.submit(image)


# -- zero-shot classes --------------------------------------------------------------------------
def test_add_classes_replace_and_remove(tmp_path):
    with Engine(threads=1) as engine:
        before = engine.class_names
        names = engine.add_classes({"pneumomediastinum": "air outlining the mediastinum and the heart border"})
        assert names == before + ["pneumomediastinum"]
        result = engine.classify(_phantoms(1, size=64))[0]
        assert "pneumomediastinum" in result.scores
        assert sum(result.scores.values()) <= 1.0 + 1e-9  # anchor mode: one softmax (+ background)
        engine.add_classes({"pneumomediastinum": "free air in the mediastinum"})  # replaced, not duplicated
        assert engine.class_names.count("pneumomediastinum") == 1
        engine.remove_class("pneumomediastinum")
        assert engine.class_names == before
        with pytest.raises(ValueError, match="classes"):
            engine.add_classes({"x": ""})


def test_engine_works_without_torch():
    result = run_blocked(
        """
        import numpy as np
        import radz_engine.runtime.engine, radz_engine.runtime.screen, radz_engine.cli.screen, radz_engine.backends
        from radz_engine.runtime.engine import Engine
        with Engine(threads=1) as engine:
            engine.add_classes({"pneumomediastinum": "air outlining the mediastinum"})
            r = engine.classify(np.random.default_rng(0).random((64, 64)).astype(np.float32))[0]
            assert r.ok and "pneumomediastinum" in r.scores
            assert engine.submit(np.ones((32, 32), np.float32)).result(30).ok
        assert "torch" not in sys.modules and "transformers" not in sys.modules
        print("ok")
        """,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")


def test_stats_is_a_documented_dataclass_and_load_bundle_defaults(default_engine):
    """Engine.stats() -> rz.Stats (dict-style access kept, raw latency histogram); rz.load_bundle()
    with no argument loads the bundle Engine() loads; Results name their model."""
    import pydoc

    import radz_engine as rz

    images = _phantoms(3, size=64)
    results = [default_engine.submit(image).result(timeout=60) for image in images]
    assert all(r.ok and r.model == default_engine.model_info for r in results)
    assert set(results[0].thresholds) == set(default_engine.class_names)
    stats = default_engine.stats()
    assert isinstance(stats, rz.Stats)
    assert stats["latency_ms"] is stats.latency_ms and stats.latency_ms["p50"] > 0
    assert "queue_depth" in stats and stats.get("nothing", 7) == 7 and "_latencies" not in stats.keys()
    counts, edges = stats.latency_histogram(bins=4)
    assert counts.sum() == len(stats.latencies_ms()) >= 3 and len(edges) == 5
    assert "_latencies" not in stats.to_dict() and stats.to_dict()["classes"] == len(default_engine.class_names)
    with pytest.raises(KeyError):
        stats["nothing"]
    bundle = rz.load_bundle()
    assert bundle.path == default_engine.bundle.path and bundle.identity() == default_engine.model_info
    assert "latency_histogram" in pydoc.render_doc(rz.Stats) and "classify" in pydoc.render_doc(rz.Engine)
    error = default_engine.classify(["/does/not/exist.dcm"])[0]
    assert not error.ok and error.model == default_engine.model_info and error.thresholds
