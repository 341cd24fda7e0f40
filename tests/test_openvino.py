"""The OpenVINO backend against ONNX Runtime: fp32 embeddings within 1e-4 on fresh random and
phantom inputs; bf16 accepted only after the int8 checks (`radz bench check-bf16`) on a CPU with
native bf16, refused with the reason elsewhere; `radz bench --backend openvino` side by side
(needs the `openvino` extra; skipped where it is not installed)."""

from __future__ import annotations

import json
import os
import shutil
import threading

import numpy as np
import pytest

pytest.importorskip("openvino")

from radz_engine import Engine  # noqa: E402
from radz_engine.backends import BackendUnavailable, create_backend  # noqa: E402
from radz_engine.backends.openvino_backend import OpenVINOBackend  # noqa: E402

TOL = 1e-4


def _native_bf16() -> bool:
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


NATIVE_BF16 = _native_bf16()


@pytest.fixture
def bundle_copy(tmp_path):
    """A writable copy of the shipped default bundle (the checks record into its manifest)."""
    from radz_engine.bundle.default import default_bundle_path

    out = tmp_path / "bundle"
    shutil.copytree(default_bundle_path(), out)
    return out


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


def test_precision_arguments_are_checked():
    with pytest.raises(ValueError, match="precision"):
        OpenVINOBackend(precision="fp16")
    with pytest.raises(ValueError, match="int8"):
        OpenVINOBackend(int8=True, precision="bf16")


@pytest.mark.skipif(NATIVE_BF16, reason="this CPU has native bf16")
def test_bf16_refused_on_a_cpu_without_bf16(bundle_copy, capsys):
    """Without AMX / AVX-512 bf16 OpenVINO ignores the bf16 hint and runs f32: refused, not
    passed off as bf16, by the backend and by the check (which records nothing)."""
    from radz_bench.cli import main

    with pytest.raises(BackendUnavailable, match="no native bf16"):
        Engine(bundle_copy, backend="openvino", threads=1, backend_options={"precision": "bf16"})
    before = (bundle_copy / "manifest.json").read_bytes()
    assert main(["check-bf16", str(bundle_copy), "--auc-phantoms", "8"]) == 1
    assert "no native bf16" in capsys.readouterr().err
    assert (bundle_copy / "manifest.json").read_bytes() == before


def test_variant_check_records_a_pass_and_removes_it_on_a_failure(bundle_copy):
    """The check behind `radz bench check-bf16`, run here on OpenVINO fp32 (the variant this CPU
    can run): a pass is recorded in the manifest, a failed cosine or AUC check removes it."""
    from radz_bench.bf16_check import VariantCheckError, check_variant
    from radz_engine.bundle.loader import load_bundle

    backend = create_backend("openvino", load_bundle(bundle_copy), "cpu", threads=1)
    report = check_variant(bundle_copy, backend.run, "openvino_test", "ov", auc_phantoms=40, extra={"cpu": "x"})
    assert report["passed"] and report["min_cosine"] >= 0.9999 and report["cpu"] == "x"
    assert set(report["macro_auc"]) == {"anchor", "softmax", "posneg"}
    assert load_bundle(bundle_copy).manifest["parity"]["openvino_test"] == report
    with pytest.raises(VariantCheckError, match="cosine"):
        check_variant(bundle_copy, backend.run, "openvino_test", "ov", auc_phantoms=0, min_cosine=1.5)
    assert "openvino_test" not in load_bundle(bundle_copy).manifest["parity"]
    check_variant(bundle_copy, backend.run, "openvino_test", "ov", auc_phantoms=0)
    with pytest.raises(VariantCheckError, match="macro AUC"):
        check_variant(bundle_copy, backend.run, "openvino_test", "ov", auc_phantoms=40, max_auc_drop=-1.0)
    assert "openvino_test" not in load_bundle(bundle_copy).manifest["parity"]


@pytest.mark.skipif(not NATIVE_BF16, reason="this CPU has no native bf16 (AMX or AVX-512 bf16)")
def test_bf16_loads_only_after_a_passed_check_on_this_cpu(bundle_copy):
    from radz_bench.bf16_check import check_openvino_bf16

    with pytest.raises(BackendUnavailable, match="no passed OpenVINO bf16 check"):
        Engine(bundle_copy, backend="openvino", backend_options={"precision": "bf16"})
    report = check_openvino_bf16(bundle_copy, auc_phantoms=60)
    assert report["passed"] and report["min_cosine"] >= 0.99
    with (
        Engine(bundle_copy, backend="onnxruntime", threads=1) as ort,
        Engine(bundle_copy, backend="openvino", backend_options={"precision": "bf16"}) as ov,
    ):
        assert ov.backend.name == "openvino-cpu-bf16" and ov.backend.describe()["probe_cosine"] >= 0.99
        x = np.random.default_rng(5).standard_normal((8, *ort.input_shape)).astype(np.float32)
        a, b = ort.backend.run(x), ov.backend.run(x)
        assert ((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min() >= 0.99
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    manifest["parity"]["openvino_bf16"]["cpu"] = "another CPU"
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BackendUnavailable, match="another CPU"):
        Engine(bundle_copy, backend="openvino", backend_options={"precision": "bf16"})


def test_bench_openvino_beside_onnxruntime(tmp_path):
    """`radz bench --backend onnxruntime,openvino --precision fp32,bf16`: both measured in one run
    at fp32; openvino bf16 measured on a CPU with bf16 and a passed check, else skipped with why."""
    pytest.importorskip("torch")
    from radz_bench.cli import main

    out = tmp_path / "bench"
    args = ["--backend", "onnxruntime,openvino", "--precision", "fp32,bf16", "--batch", "1,2", "--reference", "none"]
    args += ["--repeats", "3", "--rounds", "1", "--warmup", "1", "--threads", "1", "--peak-size", "128", "--quiet"]
    assert main([*args, "--out", str(out)]) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    sides = {(r["phase"], r["precision"], r["side"]) for r in report["rows"]}
    assert {("model", "fp32", "onnxruntime-cpu"), ("model", "fp32", "openvino-cpu")} <= sides
    assert ("e2e", "fp32", "openvino-cpu") in sides
    reasons = {s["what"]: s["reason"] for s in report["skipped"]}
    assert "no bf16 graph" in reasons["onnxruntime bf16"]
    assert "bf16" in reasons["openvino bf16"]  # no native bf16, or no passed check in the shipped bundle
