"""Losses against hand computations on tiny tensors."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from radz_train.losses import DFATLoss, DKAMLoss, RadzLoss, info_nce  # noqa: E402
from radz_train.model.modeling import Features  # noqa: E402


def unit(*rows):
    t = torch.tensor(rows, dtype=torch.float64)
    return t / t.norm(dim=1, keepdim=True)


def hand_ce(row_logits, target_index):
    m = max(row_logits)
    lse = m + math.log(sum(math.exp(v - m) for v in row_logits))
    return lse - row_logits[target_index]


def test_info_nce_matches_hand_computation():
    a = unit([1.0, 0.0], [0.6, 0.8])
    b = unit([0.8, 0.6], [0.0, 1.0])
    tau = 0.5
    s = (a @ b.t() / tau).tolist()
    rows = (hand_ce(s[0], 0) + hand_ce(s[1], 1)) / 2
    cols = (hand_ce([s[0][0], s[1][0]], 0) + hand_ce([s[0][1], s[1][1]], 1)) / 2
    assert info_nce(a, b, tau).item() == pytest.approx(0.5 * (rows + cols), rel=1e-12)


def test_info_nce_extra_positives_split_the_target():
    a = unit([1.0, 0.0], [1.0, 0.1], [0.0, 1.0])
    b = a.clone()
    tau = 0.1
    positives = torch.tensor([[0, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=torch.bool)
    s = (a @ b.t() / tau).tolist()

    def lse(v):
        m = max(v)
        return m + math.log(sum(math.exp(x - m) for x in v))

    # rows 0 and 1 have two positives each (weight 1/2), row 2 only itself; symmetric matrix.
    row = [lse(s[0]) - 0.5 * (s[0][0] + s[0][1]), lse(s[1]) - 0.5 * (s[1][0] + s[1][1]), lse(s[2]) - s[2][2]]
    want = sum(row) / 3  # logits symmetric, so both directions agree
    assert info_nce(a, b, tau, positives).item() == pytest.approx(want, rel=1e-12)


def test_info_nce_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="info_nce"):
        info_nce(torch.zeros(2, 3), torch.zeros(3, 3), 0.1)


def test_dfat_crossed_and_uncrossed():
    ig, il = unit([1.0, 0.0], [0.0, 1.0]), unit([1.0, 1.0], [1.0, -1.0])
    tg, tl = unit([0.9, 0.1], [0.2, 0.8]), unit([0.5, 0.5], [0.3, -0.7])
    tau = 0.05
    crossed = DFATLoss(tau, crossed=True)(ig, il, tg, tl)
    assert crossed.item() == pytest.approx(0.5 * (info_nce(ig, tl, tau) + info_nce(il, tg, tau)).item(), rel=1e-12)
    uncrossed = DFATLoss(tau, crossed=False)(ig, il, tg, tl)
    assert uncrossed.item() == pytest.approx(0.5 * (info_nce(ig, tg, tau) + info_nce(il, tl, tau)).item(), rel=1e-12)


def test_dkam_multi_positive_hand_computation():
    anchors = unit([1.0, 0.0], [0.0, 1.0], [0.7, 0.7])
    feats = unit([0.9, 0.3])
    labels = torch.tensor([[1.0, 0.0, 1.0]])  # two positives: target 1/2, 0, 1/2
    tau = 0.2
    s = (feats @ anchors.t() / tau)[0].tolist()
    m = max(s)
    lse = m + math.log(sum(math.exp(v - m) for v in s))
    want = -(0.5 * (s[0] - lse) + 0.5 * (s[2] - lse))
    loss = DKAMLoss(tau).one_side(feats, anchors, labels)
    assert loss.item() == pytest.approx(want, rel=1e-12)


def test_dkam_ignores_unknown_labels_and_empty_rows():
    anchors = unit([1.0, 0.0], [0.0, 1.0], [0.7, 0.7])
    feats = unit([0.9, 0.3], [0.1, 1.0])
    tau = 0.2
    labels = torch.tensor([[1.0, float("nan"), 0.0], [0.0, 0.0, 0.0]])
    s = (feats[:1] @ anchors.t() / tau)[0].tolist()
    kept = [s[0], s[2]]  # class 1 unknown: out of the softmax; row 2 has no positive: skipped
    m = max(kept)
    want = (m + math.log(sum(math.exp(v - m) for v in kept))) - s[0]
    assert DKAMLoss(tau).one_side(feats, anchors, labels).item() == pytest.approx(want, rel=1e-12)


def test_dkam_bce_hand_computation():
    anchors = unit([1.0, 0.0], [0.0, 1.0])
    feats = unit([0.6, 0.8])
    labels = torch.tensor([[1.0, -1.0]])  # -1 = uncertain: ignored
    tau = 0.5
    logit = (feats @ anchors.t() / tau)[0, 0].item()
    want = math.log1p(math.exp(-logit))
    assert DKAMLoss(tau, mode="bce").one_side(feats, anchors, labels).item() == pytest.approx(want, rel=1e-12)


def test_total_loss_mixes_with_lambda():
    torch.manual_seed(0)
    img = Features(*(torch.nn.functional.normalize(torch.randn(4, 8, dtype=torch.float64), dim=1) for _ in range(2)))
    txt = Features(*(torch.nn.functional.normalize(torch.randn(4, 8, dtype=torch.float64), dim=1) for _ in range(2)))
    anchors = torch.nn.functional.normalize(torch.randn(3, 8, dtype=torch.float64), dim=1)
    labels = torch.tensor([[1, 0, 0], [0, 1, 1], [0, 0, 1], [1, 1, 0]], dtype=torch.float64)
    out = RadzLoss(0.05, lam=0.3)(img, txt, anchors, labels)
    assert out["loss"].item() == pytest.approx(0.3 * out["l_ca"].item() + 0.7 * out["l_cg"].item(), rel=1e-12)
    assert RadzLoss(0.05, lam=1.0)(img, txt)["loss"].item() == pytest.approx(out["l_ca"].item())
    with pytest.raises(ValueError, match="anchors and labels"):
        RadzLoss(0.05, lam=0.5)(img, txt)
    with pytest.raises(ValueError, match="lambda"):
        RadzLoss(lam=1.5)
