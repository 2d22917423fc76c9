"""Re-ID heads on top of a backbone feature (map): BNNeck, PCB stripes, MGN branches.

Every head returns, in ``train()`` mode, a dict with ``logits`` (a tensor, or a list of tensors
for multi-part heads: one cross-entropy term each) and ``features`` (a tensor or a list: the
metric-learning features the triplet loss sees); in ``eval()`` mode the ``(B, D)`` inference
feature (documented per head).
"""

from __future__ import annotations

import torch
from torch import nn

from reidlab.errors import ReidlabError


class ModelError(ReidlabError):
    """A model name, input size or checkpoint does not fit what the model expects."""


def _init_classifier(linear: nn.Linear, std: float = 0.001) -> None:
    nn.init.normal_(linear.weight, 0, std)
    if linear.bias is not None:
        nn.init.constant_(linear.bias, 0)


class BNNeck(nn.Module):
    """BNNeck of the strong baseline (Luo et al., "Bag of Tricks", CVPRW 2019).

    ``f (B, D)`` -> ``bn(f)`` (BN with frozen bias) -> bias-free classifier.
    Train: ``{"logits": (B, num_classes), "features": f}`` (triplet on the pre-BN feature).
    Eval: ``bn(f)`` ``(B, D)``, the feature the strong baseline evaluates.
    """

    def __init__(self, in_dim: int, num_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm1d(in_dim)
        self.bn.bias.requires_grad_(False)
        nn.init.constant_(self.bn.weight, 1)
        nn.init.constant_(self.bn.bias, 0)
        self.classifier = nn.Linear(in_dim, max(int(num_classes), 1), bias=False)
        _init_classifier(self.classifier)

    def forward(self, f: torch.Tensor):
        bnf = self.bn(f)
        if not self.training:
            return bnf
        return {"logits": self.classifier(bnf), "features": f}


def _reduce_block(cin: int, cout: int) -> nn.Sequential:
    """1x1 conv + BN + ReLU on a ``(B, cin, h, 1)`` pooled stripe."""
    block = nn.Sequential(
        nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )
    nn.init.kaiming_normal_(block[0].weight, mode="fan_out", nonlinearity="relu")
    return block


def check_stripes(height: int, parts: int, what: str) -> None:
    """Raise a ModelError unless a feature map of ``height`` rows splits into ``parts`` equal stripes."""
    if height < parts or height % parts:
        raise ModelError(
            f"{what}: feature map height {height} does not split into {parts} equal horizontal "
            f"stripes; use an input height whose feature-map height is a multiple of {parts} "
            f"(e.g. 384x128 for a stride-16 ResNet-50)"
        )


class PCBHead(nn.Module):
    """Part-based Convolutional Baseline head (Sun et al., ECCV 2018).

    ``fmap (B, C, h, w)`` -> average-pooled into ``parts`` horizontal stripes -> per stripe a 1x1
    conv reduction to ``reduce_dim`` (+BN+ReLU) and its own classifier.
    Train: ``{"logits": [parts x (B, num_classes)], "features": (B, parts*reduce_dim)}``.
    Eval: the concatenated reduced stripe features ``h`` ``(B, parts*reduce_dim)`` (PCB's
    paper also allows the unreduced ``g``; ``h`` is the smaller one).
    """

    def __init__(
        self,
        in_dim: int,
        num_classes: int,
        parts: int = 6,
        reduce_dim: int = 256,
        dropout: float = 0.5,
    ):
        super().__init__()
        self.parts = parts
        self.pool = nn.AdaptiveAvgPool2d((parts, 1))
        self.dropout = nn.Dropout(dropout)
        self.reduce = nn.ModuleList([_reduce_block(in_dim, reduce_dim) for _ in range(parts)])
        self.classifiers = nn.ModuleList(
            [nn.Linear(reduce_dim, max(int(num_classes), 1)) for _ in range(parts)]
        )
        for c in self.classifiers:
            _init_classifier(c)
        self.feature_dim = parts * reduce_dim

    def forward(self, fmap: torch.Tensor):
        check_stripes(fmap.shape[2], self.parts, "PCB")
        g = self.pool(fmap)
        if self.training:
            g = self.dropout(g)
        h = [self.reduce[i](g[:, :, i : i + 1]).flatten(1) for i in range(self.parts)]
        feats = torch.cat(h, dim=1)
        if not self.training:
            return feats
        return {"logits": [c(x) for c, x in zip(self.classifiers, h)], "features": feats}


class MGNBranchHead(nn.Module):
    """One MGN branch head (Wang et al., "Multiple Granularity Network", ACM MM 2018).

    ``fmap (B, C, h, w)`` -> global max pool plus (``parts`` > 0) max pool over ``parts``
    horizontal stripes -> each reduced by 1x1 conv to ``reduce_dim`` (+BN+ReLU) -> classifier each.
    Returns ``(global_reduced (B, reduce_dim), all_reduced [1+parts x (B, reduce_dim)],
    logits [1+parts x (B, num_classes)])``.
    """

    def __init__(self, in_dim: int, num_classes: int, parts: int = 0, reduce_dim: int = 256):
        super().__init__()
        self.parts = parts
        self.reduce = nn.ModuleList([_reduce_block(in_dim, reduce_dim) for _ in range(1 + parts)])
        self.classifiers = nn.ModuleList(
            [nn.Linear(reduce_dim, max(int(num_classes), 1)) for _ in range(1 + parts)]
        )
        for c in self.classifiers:
            _init_classifier(c)

    def forward(self, fmap: torch.Tensor):
        pooled = [torch.amax(fmap, dim=(2, 3), keepdim=True)]
        if self.parts:
            check_stripes(fmap.shape[2], self.parts, "MGN")
            p = nn.functional.adaptive_max_pool2d(fmap, (self.parts, 1))
            pooled += [p[:, :, i : i + 1] for i in range(self.parts)]
        red = [r(x).flatten(1) for r, x in zip(self.reduce, pooled)]
        logits = [c(x) for c, x in zip(self.classifiers, red)] if self.training else []
        return red[0], red, logits
