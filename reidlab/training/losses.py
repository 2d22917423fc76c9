"""Re-ID losses: label-smoothed cross-entropy, batch-hard triplet, center loss, and their sum.

Shapes: logits ``(B, C)``, features ``(B, D)``, targets ``(B,)`` int64 identity labels.
Multi-part models pass lists (one logits tensor per part / branch); terms are averaged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def cross_entropy_ls(
    logits: torch.Tensor, targets: torch.Tensor, epsilon: float = 0.1
) -> torch.Tensor:
    """Cross-entropy with label smoothing (Szegedy et al.): target ``(1-eps) one_hot + eps / C``.

    Same definition as torchreid's ``CrossEntropyLoss(label_smooth=True)``; computed by
    ``torch.nn.functional.cross_entropy(label_smoothing=eps)``.
    """
    return F.cross_entropy(logits.float(), targets, label_smoothing=float(epsilon))


def pairwise_euclidean(x: torch.Tensor) -> torch.Tensor:
    """``(B, D)`` -> ``(B, B)`` euclidean (not squared) distances, clamped at 1e-12 before sqrt."""
    x = x.float()
    sq = (x * x).sum(1, keepdim=True)
    d2 = sq + sq.t() - 2.0 * (x @ x.t())
    return d2.clamp_min(1e-12).sqrt()


def batch_hard_triplet(
    features: torch.Tensor, targets: torch.Tensor, margin: float | None = 0.3
) -> torch.Tensor:
    """Batch-hard triplet loss (Hermans et al., 2017).

    For each anchor: hardest positive ``max d(a, p)`` over same-id samples (itself included, at
    distance ~0) and hardest negative ``min d(a, n)``. Loss ``mean(relu(d_ap - d_an + margin))``,
    or the soft margin ``mean(softplus(d_ap - d_an))`` when ``margin`` is None.
    Anchors without any negative in the batch contribute nothing.
    """
    dist = pairwise_euclidean(features)
    same = targets[:, None] == targets[None, :]
    d_ap = dist.masked_fill(~same, float("-inf")).amax(1)
    d_an = dist.masked_fill(same, float("inf")).amin(1)
    ok = torch.isfinite(d_an)
    if not bool(ok.any()):
        return features.sum() * 0.0
    diff = d_ap[ok] - d_an[ok]
    if margin is None:
        return F.softplus(diff).mean()
    return F.relu(diff + float(margin)).mean()


class CenterLoss(nn.Module):
    """Center loss (Wen et al., 2016): ``mean_i ||f_i - c_{y_i}||^2`` with learnt centers ``(C, D)``."""

    def __init__(self, num_classes: int, feat_dim: int):
        super().__init__()
        self.centers = nn.Parameter(torch.randn(num_classes, feat_dim))

    def forward(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        c = self.centers[targets]
        return ((features.float() - c) ** 2).sum(1).mean()


class ReIDLoss(nn.Module):
    """``ce_weight * CE_ls + triplet_weight * triplet + center_weight * center``.

    ``outputs``: the train-mode dict of a reidlab model (``logits`` tensor or list, ``features``
    tensor or list). Returns ``(total, parts)``; ``parts`` holds detached floats for logging
    (``ce``, ``triplet``, ``center``, ``acc``).
    """

    def __init__(
        self,
        num_classes: int,
        feat_dim: int,
        label_smoothing: float = 0.1,
        triplet_weight: float = 1.0,
        triplet_margin: float | None = 0.3,
        center_weight: float = 0.0,
        ce_weight: float = 1.0,
    ):
        super().__init__()
        self.eps = label_smoothing
        self.ce_weight = ce_weight
        self.triplet_weight = triplet_weight
        self.margin = triplet_margin
        self.center_weight = center_weight
        self.center = CenterLoss(num_classes, feat_dim) if center_weight > 0 else None

    def forward(self, outputs: dict, targets: torch.Tensor) -> tuple[torch.Tensor, dict]:
        logits = outputs["logits"]
        logits = logits if isinstance(logits, (list, tuple)) else [logits]
        feats = outputs.get("features")
        feats = [] if feats is None else (feats if isinstance(feats, (list, tuple)) else [feats])
        ce = torch.stack([cross_entropy_ls(lg, targets, self.eps) for lg in logits]).mean()
        total = self.ce_weight * ce
        parts = {"ce": float(ce.detach())}
        if self.triplet_weight > 0 and feats:
            tri = torch.stack([batch_hard_triplet(f, targets, self.margin) for f in feats]).mean()
            total = total + self.triplet_weight * tri
            parts["triplet"] = float(tri.detach())
        if self.center is not None and feats:
            cen = self.center(feats[0], targets)
            total = total + self.center_weight * cen
            parts["center"] = float(cen.detach())
        with torch.no_grad():
            parts["acc"] = float((logits[0].argmax(1) == targets).float().mean())
        return total, parts
