"""The C++ AnchorIndex (FAISS) equals the numpy references: radz_engine.scoring.class_scores for
the scores, radz_train's Calibration for probabilities and positive calls."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from radz_engine import _core
from radz_engine.scoring.calibration import Calibration
from radz_engine.scoring.scores import MODES, class_scores

pytestmark = pytest.mark.skipif(
    not getattr(_core, "HAVE_FAISS", False),
    reason="radz_engine._core was built without FAISS, so it has no AnchorIndex (install libfaiss-dev and rebuild)",
)

D = 32
TAU = 0.05


def unit(a: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=-1, keepdims=True)).astype(np.float32)


def random_embeddings(rng: np.random.Generator, c: int, background: bool) -> dict[str, np.ndarray]:
    return {
        "softmax": unit(rng.standard_normal((c, D))),
        "posneg": unit(rng.standard_normal((2, c, D))),
        "anchor": unit(rng.standard_normal((c + int(background), D))),
    }


def build(emb: dict[str, np.ndarray], names: list[str], mode: str, background: bool, tau: float = TAU):
    index = _core.AnchorIndex(emb["softmax"].shape[1], mode=mode, tau=tau)
    for i, name in enumerate(names):
        index.add_class(
            name,
            prompt=emb["softmax"][i],
            positive=emb["posneg"][0][i],
            negative=emb["posneg"][1][i],
            anchor=emb["anchor"][i],
        )
    if background:
        index.set_background(emb["anchor"][-1])
    return index


@pytest.mark.parametrize("background", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_scores_equal_class_scores(mode: str, background: bool) -> None:
    rng = np.random.default_rng(1)
    emb = random_embeddings(rng, 7, background)
    names = [f"class{i}" for i in range(7)]
    index = build(emb, names, mode, background)
    for n in (1, 5, 40):
        x = unit(rng.standard_normal((n, D)))
        out = index.score(x)
        want = class_scores(x, emb, mode, TAU)
        assert out["scores"].shape == (n, 7) and out["scores"].dtype == np.float32
        np.testing.assert_allclose(out["scores"], want, atol=1e-6, rtol=0)
        np.testing.assert_array_equal(out["probabilities"], out["scores"])  # default calibration: none
        assert out["positive"].dtype == np.bool_
        np.testing.assert_array_equal(out["positive"], out["scores"] >= 0.5)
        assert out["class_names"] == names


def test_properties_and_repr() -> None:
    index = _core.AnchorIndex(D, mode="posneg", tau=0.1)
    assert (index.dim, index.mode, index.tau, len(index), index.class_names) == (D, "posneg", 0.1, 0, [])
    assert not index.has_background
    assert "posneg" in repr(index)
    default = _core.AnchorIndex(D)
    assert (default.mode, default.tau) == ("anchor", 0.05)


def test_empty_index_scores_no_columns() -> None:
    index = _core.AnchorIndex(D, mode="softmax")
    out = index.score(unit(np.ones((3, D))))
    assert out["scores"].shape == (3, 0)
    indices, probabilities = index.top_k(unit(np.ones((3, D))), 2)
    assert indices.shape == probabilities.shape == (3, 0)


@pytest.mark.parametrize(
    "record",
    [
        {"method": "none", "params": {}, "threshold": 0.3},
        {"method": "platt", "params": {"a": 6.0, "b": -2.5}, "threshold": 0.4},
        {"method": "temperature", "params": {"temperature": 0.3}, "threshold": 0.6},
        {"method": "platt", "params": {"a": -3.0, "b": 1.0}, "threshold": None},  # never positive
    ],
)
def test_calibration_equals_calibration_py(record: dict) -> None:
    rng = np.random.default_rng(2)
    emb = random_embeddings(rng, 4, True)
    index = build(emb, ["a", "b", "c", "d"], "anchor", True)
    cal = Calibration.from_dict(record)
    index.set_calibration("b", record["method"], list(record["params"].values()), record["threshold"])
    assert index.calibration("b") == {
        "method": record["method"],
        "params": list(record["params"].values()),
        "threshold": record["threshold"],
    }
    x = unit(rng.standard_normal((200, D)))
    out = index.score(x)
    want = cal.apply(out["scores"][:, 1])
    np.testing.assert_allclose(out["probabilities"][:, 1], want, atol=1e-6, rtol=0)
    # Positive calls, away from the threshold where float32 rounding could flip them.
    clear = np.abs(want - cal.threshold) > 1e-5
    np.testing.assert_array_equal(out["positive"][clear, 1], cal.predict(out["scores"][clear, 1]))
    if record["threshold"] is None:
        assert not out["positive"][:, 1].any()
    else:
        assert 0 < out["positive"][:, 1].sum() < len(x)  # the test really exercises the threshold
    # Other classes keep the default record (none, 0.5).
    np.testing.assert_array_equal(out["probabilities"][:, [0, 2, 3]], out["scores"][:, [0, 2, 3]])


def test_threshold_is_inclusive_and_inf_means_never() -> None:
    index = _core.AnchorIndex(D, mode="anchor")
    index.add_class("only", anchor=unit(np.ones(D)))
    x = unit(np.ones((1, D)))  # single class, no background: score exactly 1
    index.set_calibration("only", "none", [], 1.0)
    assert index.score(x)["positive"][0, 0]
    index.set_calibration("only", "none", threshold=math.inf)
    assert not index.score(x)["positive"][0, 0]
    assert index.calibration("only")["threshold"] is None


def test_top_k_sorted_by_probability() -> None:
    rng = np.random.default_rng(4)
    emb = random_embeddings(rng, 6, False)
    index = build(emb, list("abcdef"), "softmax", False)
    index.set_calibration("c", "platt", [10.0, 0.0])
    x = unit(rng.standard_normal((10, D)))
    probabilities = index.score(x)["probabilities"]
    indices, top = index.top_k(x, 3)
    assert indices.shape == top.shape == (10, 3) and indices.dtype == np.int64
    np.testing.assert_array_equal(indices, np.argsort(-probabilities, axis=1, kind="stable")[:, :3])
    np.testing.assert_array_equal(top, np.take_along_axis(probabilities, indices, axis=1))
    assert index.top_k(x, 100)[0].shape == (10, 6)  # k clipped to the number of classes


def test_classes_change_at_run_time() -> None:
    rng = np.random.default_rng(5)
    emb = random_embeddings(rng, 5, True)
    index = build(emb, list("abcde"), "anchor", True)
    x = unit(rng.standard_normal((8, D)))

    def expect(rows: list[int], anchors: np.ndarray) -> None:
        full = {"softmax": emb["softmax"][rows], "anchor": np.concatenate([anchors, emb["anchor"][-1:]])}
        np.testing.assert_allclose(index.score(x)["scores"], class_scores(x, full, "anchor", TAU), atol=1e-6)

    index.remove_class("b")
    assert index.class_names == ["a", "c", "d", "e"] and len(index) == 4 and "b" not in index
    expect([0, 2, 3, 4], emb["anchor"][[0, 2, 3, 4]])

    new = unit(rng.standard_normal(D))
    index.replace_class("c", anchor=new)
    anchors = emb["anchor"][[0, 2, 3, 4]].copy()
    anchors[1] = new
    expect([0, 2, 3, 4], anchors)

    index.add_class("b", anchor=emb["anchor"][1])
    assert index.class_names == ["a", "c", "d", "e", "b"]
    expect([0, 2, 3, 4, 1], np.concatenate([anchors, emb["anchor"][1:2]]))

    index.set_background(None)
    assert not index.has_background
    want = class_scores(x, {"softmax": anchors, "anchor": np.concatenate([anchors, emb["anchor"][1:2]])}, "anchor", TAU)
    np.testing.assert_allclose(index.score(x)["scores"][:, :4], want[:, :4], atol=1e-6)


def test_vectors_are_normalised_on_entry() -> None:
    rng = np.random.default_rng(6)
    emb = random_embeddings(rng, 3, False)
    index = _core.AnchorIndex(D, mode="softmax")
    for i, scale in enumerate((0.1, 3.0, 70.0)):
        index.add_class(str(i), prompt=emb["softmax"][i] * scale)
    x = unit(rng.standard_normal((4, D)))
    np.testing.assert_allclose(index.score(x)["scores"], class_scores(x, emb, "softmax", TAU), atol=1e-6)


def test_bad_input_raises_value_error_naming_the_argument() -> None:
    v = unit(np.ones(D))
    with pytest.raises(ValueError, match=r"^mode: .*'cosine'"):
        _core.AnchorIndex(D, mode="cosine")
    with pytest.raises(ValueError, match=r"^tau: "):
        _core.AnchorIndex(D, tau=0.0)
    with pytest.raises(ValueError, match=r"^dim: "):
        _core.AnchorIndex(0)
    index = _core.AnchorIndex(D, mode="posneg")
    with pytest.raises(ValueError, match=r"^negative: is required in posneg mode"):
        index.add_class("a", positive=v)
    with pytest.raises(ValueError, match=rf"^positive: must have shape \({D},\), got \({D + 1},\)"):
        index.add_class("a", positive=np.ones(D + 1, np.float32), negative=v)
    with pytest.raises(ValueError, match=r"^prompt: must have shape"):
        index.add_class("a", positive=v, negative=v, prompt=np.ones((1, D), np.float32))
    bad = v.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match=r"^negative: element 3 is not finite"):
        index.add_class("a", positive=v, negative=bad)
    with pytest.raises(ValueError, match=r"^positive: is all zeros"):
        index.add_class("a", positive=np.zeros(D, np.float32), negative=v)
    with pytest.raises(ValueError, match=r"^anchor: must be a numeric array"):
        index.add_class("a", positive=v, negative=v, anchor="text")
    with pytest.raises(ValueError, match=r"^background: "):
        index.set_background(np.ones(3, np.float32))
    index.add_class("a", positive=v, negative=-v)
    with pytest.raises(ValueError, match=r"^name: class 'a' already exists"):
        index.add_class("a", positive=v, negative=-v)
    with pytest.raises(ValueError, match=r"^name: no class 'zz'"):
        index.replace_class("zz", positive=v, negative=-v)
    with pytest.raises(ValueError, match=r"^name: no class 'zz'"):
        index.remove_class("zz")
    with pytest.raises(ValueError, match=r"^name: no class 'zz'"):
        index.set_calibration("zz", "none")
    with pytest.raises(ValueError, match=r"^method: "):
        index.set_calibration("a", "isotonic")
    with pytest.raises(ValueError, match=r"^params: .*\[a, b\]"):
        index.set_calibration("a", "platt", [1.0])
    with pytest.raises(ValueError, match=r"^params: temperature must be > 0"):
        index.set_calibration("a", "temperature", [-1.0])
    with pytest.raises(ValueError, match=r"^threshold: "):
        index.set_calibration("a", "none", [], math.nan)
    with pytest.raises(ValueError, match=rf"^x: must have shape \[N, {D}\], got \(3,\)"):
        index.score(np.ones(3, np.float32))
    with pytest.raises(ValueError, match=rf"^x: must have shape \[N, {D}\], got \(2,{D + 1}\)"):
        index.score(np.ones((2, D + 1), np.float32))
    x = np.tile(v, (2, 1))
    x[1, 5] = np.inf
    with pytest.raises(ValueError, match=r"^x: element \[1, 5\] is not finite"):
        index.score(x)
    with pytest.raises(ValueError, match=r"^k: "):
        index.top_k(x[:1], 0)
    assert index.class_names == ["a"]  # failed edits changed nothing


def test_float64_and_strided_inputs_are_accepted() -> None:
    rng = np.random.default_rng(7)
    emb = random_embeddings(rng, 3, False)
    index = build(emb, list("abc"), "softmax", False)
    x = unit(rng.standard_normal((6, D))).astype(np.float64)
    want = index.score(x.astype(np.float32))["scores"]
    np.testing.assert_array_equal(index.score(x)["scores"], want)
    np.testing.assert_array_equal(index.score(np.asfortranarray(x))["scores"], want)


def test_readers_see_consistent_snapshots_while_a_writer_edits() -> None:
    rng = np.random.default_rng(8)
    emb = random_embeddings(rng, 4, True)
    index = build(emb, list("abcd"), "anchor", True)
    x = unit(rng.standard_normal((16, D)))
    stop = threading.Event()
    errors: list[str] = []

    def read() -> None:
        while not stop.is_set():
            out = index.score(x)
            names = out["class_names"]
            if out["scores"].shape != (16, len(names)) or names[:4] != list("abcd"):
                errors.append(f"inconsistent: {names} {out['scores'].shape}")

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        for i in range(100):
            index.add_class(f"extra{i}", anchor=unit(rng.standard_normal(D)))
            index.remove_class(f"extra{i}")
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert not errors
    assert index.class_names == list("abcd")


def test_default_bundle_index_matches_class_scores() -> None:
    from radz_engine.bundle.default import default_bundle_path
    from radz_engine.bundle.loader import load_bundle

    bundle = load_bundle(default_bundle_path())
    emb = bundle.embeddings()
    background_row = bundle.manifest["anchors"]["background_row"]
    rng = np.random.default_rng(9)
    x = unit(rng.standard_normal((12, bundle.embedding_dim)))
    for mode in MODES:
        index = _core.AnchorIndex(bundle.embedding_dim, mode=mode, tau=bundle.tau)
        for i, name in enumerate(bundle.class_names):
            index.add_class(
                name,
                prompt=bundle.prompts[0][i],
                positive=bundle.prompts[1][i],
                negative=bundle.prompts[2][i],
                anchor=bundle.anchors[i],
            )
        if background_row is not None:
            index.set_background(bundle.anchors[background_row])
        assert index.class_names == bundle.class_names
        np.testing.assert_allclose(
            index.score(x)["scores"], class_scores(x, emb, mode, bundle.tau), atol=1e-6, rtol=0, err_msg=mode
        )
