"""Zero-shot scoring formulas (numpy: radz_engine.scoring, the one definition training and the
runtime share)."""

from __future__ import annotations

import numpy as np
import pytest

from radz_engine.scoring.scores import class_scores as score


def unit(a):
    a = np.asarray(a, dtype=np.float64)
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def test_scoring_modes_match_their_formulas():
    rng = np.random.default_rng(0)
    g = unit(rng.standard_normal((5, 8)))
    emb = {
        "softmax": unit(rng.standard_normal((3, 8))),
        "posneg": unit(rng.standard_normal((2, 3, 8))),
        "anchor": unit(rng.standard_normal((4, 8))),
    }  # 3 classes + a background anchor
    tau = 0.1
    s = score(g, emb, "softmax", tau)
    e = np.exp(g @ emb["softmax"].T / tau)
    np.testing.assert_allclose(s, e / e.sum(1, keepdims=True), rtol=1e-12)
    p = score(g, emb, "posneg", tau)
    pos, neg = np.exp(g @ emb["posneg"][0].T / tau), np.exp(g @ emb["posneg"][1].T / tau)
    np.testing.assert_allclose(p, pos / (pos + neg), rtol=1e-12)
    a = score(g, emb, "anchor", tau)
    ea = np.exp(g @ emb["anchor"].T / tau)
    assert a.shape == (5, 3)  # the background column is dropped
    np.testing.assert_allclose(a, (ea / ea.sum(1, keepdims=True))[:, :3], rtol=1e-12)
    with pytest.raises(ValueError, match="mode"):
        score(g, emb, "cosine", tau)
