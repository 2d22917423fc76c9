"""Re-ID baselines built from timm backbones: BoT (BNNeck), PCB, MGN, an efficient model, tiny.

Shapes: input ``(B, 3, H, W)`` normalised with ``model.pixel_mean``/``pixel_std`` (ImageNet).
Eval-mode features (what :func:`reidlab.evaluation.evaluate` compares):

- BoT / efficient / tiny (``BNNeckModel``): the BNNeck output after BN, ``(B, D)``.
- PCB: the 6 concatenated reduced stripe features, ``(B, 1536)``.
- MGN: the 8 concatenated 256-d branch features (global, 2 + 1, 3 + 1), ``(B, 2048)``.
"""

from __future__ import annotations

import copy
import logging
import os
import socket
from pathlib import Path

import torch
from torch import nn

from reidlab.models.heads import BNNeck, MGNBranchHead, PCBHead

log = logging.getLogger(__name__)


def _hf_reachable(timeout: float = 2.0) -> bool:
    """Whether huggingface.co answers (a quick probe, so offline machines fail over in seconds
    instead of huggingface_hub's minute of retries)."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


def _cached_hub_file(repo_id: str | None) -> str | None:
    if not repo_id:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return None
    for fname in ("model.safetensors", "pytorch_model.bin"):
        p = try_to_load_from_cache(repo_id, fname)
        if isinstance(p, str) and Path(p).is_file():
            return p
    return None


def create_timm(name: str, pretrained: bool | str = False, **kwargs) -> tuple[nn.Module, str]:
    """``timm.create_model`` with offline-safe pretrained weights; returns ``(model, source)``.

    ``pretrained``: False -> from scratch; a file path (``.pth``/``.bin``/``.safetensors``) ->
    loaded through timm's ``pretrained_cfg_overlay=dict(file=...)``; True -> timm's own weights
    from the Hugging Face cache (or a download when the hub is reachable). When those are
    unavailable the model is built from scratch with a loud warning and ``source="scratch"``.
    """
    import timm

    if not pretrained:
        return timm.create_model(name, pretrained=False, **kwargs), "scratch"
    if isinstance(pretrained, (str, os.PathLike)) and not isinstance(pretrained, bool):
        path = Path(pretrained)
        if not path.is_file():
            from reidlab.models.heads import ModelError

            raise ModelError(
                f"pretrained weights for {name}: expected a file at {path}, found nothing"
            )
        m = timm.create_model(
            name, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **kwargs
        )
        return m, f"file:{path}"
    cfg = timm.models.get_pretrained_cfg(name)
    repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    cached = _cached_hub_file(repo)
    if cached:
        m = timm.create_model(
            name, pretrained=True, pretrained_cfg_overlay={"file": cached}, **kwargs
        )
        return m, f"timm:{repo}"
    if _hf_reachable():
        try:
            return timm.create_model(name, pretrained=True, **kwargs), f"timm:{repo}"
        except Exception as e:  # noqa: BLE001 (any hub/IO failure means: no weights)
            reason = f"{type(e).__name__}: {e}"
    else:
        reason = "huggingface.co unreachable and weights not in the local cache"
    log.warning(
        "NO IMAGENET WEIGHTS for %s (%s): building it FROM SCRATCH. Results will be far below "
        "published numbers. Pass pretrained='/path/to/weights.safetensors' on offline machines.",
        name,
        reason,
    )
    return timm.create_model(name, pretrained=False, **kwargs), "scratch"


def set_last_stride_1(resnet: nn.Module) -> None:
    """The strong baseline's last-stride trick: layer4 keeps the stride-16 resolution."""
    block = resnet.layer4[0]
    block.conv2.stride = (1, 1)
    if block.downsample is not None:
        block.downsample[0].stride = (1, 1)


class BNNeckModel(nn.Module):
    """timm backbone -> its own global pooling ``(B, D)`` -> :class:`BNNeck`.

    With ``resnet50`` and last stride 1 this is BoT, the strong baseline.
    Train: ``{"logits", "features"}``; eval: BNNeck output after BN ``(B, D)``.
    """

    def __init__(self, backbone: nn.Module, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.feature_dim = int(getattr(backbone, "head_hidden_size", None) or backbone.num_features)
        self.neck = BNNeck(self.feature_dim, num_classes)

    def forward(self, x: torch.Tensor):
        return self.neck(self.backbone(x))


class PCB(nn.Module):
    """ResNet-50 (last stride 1) feature map -> :class:`PCBHead` (6 stripes)."""

    def __init__(
        self, backbone: nn.Module, num_classes: int, parts: int = 6, reduce_dim: int = 256
    ):
        super().__init__()
        self.backbone = backbone
        self.head = PCBHead(
            int(backbone.num_features), num_classes, parts=parts, reduce_dim=reduce_dim
        )
        self.feature_dim = self.head.feature_dim

    def forward(self, x: torch.Tensor):
        return self.head(self.backbone.forward_features(x))


class MGN(nn.Module):
    """Multiple Granularity Network on a timm ResNet-50.

    Shared trunk: stem, layer1, layer2, layer3[0]. Three branches, each with its own copy of
    layer3[1:] and layer4: global (layer4 stride 2), part-2 and part-3 (layer4 stride 1).
    Train: ``logits`` = 8 classifier outputs, ``features`` = the 3 global reduced features
    (triplet terms). Eval: the 8 reduced 256-d features concatenated ``(B, 2048)``.
    """

    def __init__(self, resnet: nn.Module, num_classes: int, reduce_dim: int = 256):
        super().__init__()
        r = resnet
        self.trunk = nn.Sequential(
            r.conv1, r.bn1, r.act1, r.maxpool, r.layer1, r.layer2, r.layer3[0]
        )
        res_conv4 = nn.Sequential(*r.layer3[1:])
        layer4_s1 = copy.deepcopy(r.layer4)
        holder = nn.Module()
        holder.layer4 = layer4_s1
        set_last_stride_1(holder)
        self.p1 = nn.Sequential(copy.deepcopy(res_conv4), copy.deepcopy(r.layer4))
        self.p2 = nn.Sequential(copy.deepcopy(res_conv4), copy.deepcopy(layer4_s1))
        self.p3 = nn.Sequential(copy.deepcopy(res_conv4), copy.deepcopy(layer4_s1))
        c = int(r.num_features)
        self.head1 = MGNBranchHead(c, num_classes, parts=0, reduce_dim=reduce_dim)
        self.head2 = MGNBranchHead(c, num_classes, parts=2, reduce_dim=reduce_dim)
        self.head3 = MGNBranchHead(c, num_classes, parts=3, reduce_dim=reduce_dim)
        self.feature_dim = 8 * reduce_dim
        self.triplet_dim = reduce_dim

    def forward(self, x: torch.Tensor):
        t = self.trunk(x)
        g1, r1, l1 = self.head1(self.p1(t))
        g2, r2, l2 = self.head2(self.p2(t))
        g3, r3, l3 = self.head3(self.p3(t))
        feats = torch.cat(r1 + r2 + r3, dim=1)
        if not self.training:
            return feats
        return {"logits": l1 + l2 + l3, "features": [g1, g2, g3]}


def tiny_backbone() -> nn.Module:
    """A 4-stage ResNet with one BasicBlock per stage and widths 16..128 (timm's ResNet class),
    last stride 1: about 0.7 M parameters, trains in a minute on 2 CPU cores at 128x64."""
    from timm.models.resnet import BasicBlock, ResNet

    net = ResNet(
        BasicBlock, layers=(1, 1, 1, 1), channels=(16, 32, 64, 128), stem_width=16, num_classes=0
    )
    net.layer4[0].conv1.stride = (1, 1)  # BasicBlock strides its first conv
    if net.layer4[0].downsample is not None:
        net.layer4[0].downsample[0].stride = (1, 1)
    return net
