"""Training losses of LLaVA-RadZ, as nn.Modules (each unit-tested against a hand computation).

- DFAT (decoding-side feature alignment): crossed global/local symmetric InfoNCE,
  L_CA = 1/2 (InfoNCE(img_global, txt_local) + InfoNCE(img_local, txt_global)); the uncrossed
  variant aligns global with global and local with local.
- DKAM (domain knowledge anchoring): image-global and text-global features against the class
  anchors (encoded knowledge descriptions), with the true labels. Chest findings are multi-label:
  the default target spreads the probability mass evenly over every positive class of a sample
  (multi-positive cross-entropy); "bce" treats each class as its own binary problem. The
  paper's public code used a placeholder target here; this does not.
- L_total = lambda * L_CA + (1 - lambda) * L_CG.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -sum_j target_ij log softmax(logits)_ij; target rows sum to 1."""
    return -(target * F.log_softmax(logits, dim=-1)).sum(-1).mean()


def info_nce(a: torch.Tensor, b: torch.Tensor, tau: float, positives: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE between row-aligned, L2-normalised a [B, D] and b [B, D].

    `positives` [B, B] (bool) marks extra positive pairs, e.g. samples with identical reports,
    which would otherwise be pushed apart as false negatives; the diagonal is always positive.
    """
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"info_nce: need two [B, D] tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    logits = a @ b.t() / tau
    eye = torch.eye(a.shape[0], dtype=torch.bool, device=a.device)
    mask = eye if positives is None else (positives.to(torch.bool) | eye)
    weights = mask.to(logits.dtype)
    target = weights / weights.sum(1, keepdim=True)
    target_t = weights.t() / weights.t().sum(1, keepdim=True)
    return 0.5 * (soft_cross_entropy(logits, target) + soft_cross_entropy(logits.t(), target_t))


class DFATLoss(nn.Module):
    """L_CA: crossed (default) or uncrossed global/local symmetric InfoNCE."""

    def __init__(self, tau: float = 0.05, crossed: bool = True) -> None:
        super().__init__()
        if not tau > 0:
            raise ValueError(f"tau: must be > 0, got {tau}")
        self.tau = tau
        self.crossed = crossed

    def forward(self, img_global, img_local, txt_global, txt_local, positives=None) -> torch.Tensor:
        if self.crossed:
            pairs = ((img_global, txt_local), (img_local, txt_global))
        else:
            pairs = ((img_global, txt_global), (img_local, txt_local))
        return 0.5 * sum(info_nce(a, b, self.tau, positives) for a, b in pairs)


class DKAMLoss(nn.Module):
    """L_CG: image-global and text-global features against class anchors, multi-label correct.

    labels [B, C] in {0, 1} (NaN or -1 = unknown, ignored). Rows with no positive class are
    skipped by the multi-positive target (a "no finding" class avoids them).
    """

    MODES = ("multi_positive", "bce")

    def __init__(self, tau: float = 0.05, mode: str = "multi_positive") -> None:
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"mode: must be one of {self.MODES}, got {mode!r}")
        self.tau = tau
        self.mode = mode

    def one_side(self, features: torch.Tensor, anchors: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = features @ anchors.t() / self.tau
        known = torch.isfinite(labels) & (labels >= 0)
        positive = (labels == 1) & known
        if self.mode == "bce":
            loss = F.binary_cross_entropy_with_logits(logits, positive.to(logits.dtype), reduction="none")
            return (loss * known).sum() / known.sum().clamp_min(1)
        rows = positive.any(1)
        if not bool(rows.any()):
            return logits.sum() * 0.0
        # Unknown classes are taken out of the softmax so they count neither way.
        masked = logits[rows].masked_fill(~known[rows], float("-inf"))
        target = positive[rows].to(logits.dtype)
        target = target / target.sum(1, keepdim=True)
        log_probs = F.log_softmax(masked, dim=-1).masked_fill(~known[rows], 0.0)
        return -(target * log_probs).sum(-1).mean()

    def forward(self, img_global, txt_global, anchors, labels) -> torch.Tensor:
        return 0.5 * (self.one_side(img_global, anchors, labels) + self.one_side(txt_global, anchors, labels))


class RadzLoss(nn.Module):
    """L_total = lambda * L_CA + (1 - lambda) * L_CG; lambda = 1 gives DFAT alone."""

    def __init__(
        self, tau: float = 0.05, lam: float = 0.5, crossed: bool = True, dkam_mode: str = "multi_positive"
    ) -> None:
        super().__init__()
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"lambda: must be in [0, 1], got {lam}")
        self.lam = lam
        self.dfat = DFATLoss(tau, crossed)
        self.dkam = DKAMLoss(tau, dkam_mode)

    def forward(self, img, txt, anchors=None, labels=None, positives=None) -> dict[str, torch.Tensor]:
        l_ca = self.dfat(img.global_, img.local, txt.global_, txt.local, positives)
        out = {"l_ca": l_ca}
        if self.lam < 1.0:
            if anchors is None or labels is None:
                raise ValueError("anchors and labels: needed when lambda < 1 (DKAM)")
            out["l_cg"] = self.dkam(img.global_, txt.global_, anchors, labels)
            out["loss"] = self.lam * l_ca + (1.0 - self.lam) * out["l_cg"]
        else:
            out["loss"] = l_ca
        return out
