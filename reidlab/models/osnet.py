"""OSNet (Zhou et al., "Omni-Scale Feature Learning for Person Re-Identification", ICCV 2019).

timm has no OSNet, so it is written here. The module layout and parameter names follow
torchreid's ``torchreid/models/osnet.py`` exactly, so torchreid state dicts (e.g. the model zoo's
``osnet_x0_25_market1501.pth``) load with ``strict=True``.

Shapes: input ``(B, 3, H, W)`` (torchreid uses 256x128, ImageNet mean/std); the feature map after
``conv5`` is ``(B, C, H/8, W/8)``; the embedding is ``(B, 512)``.

In ``eval()`` mode :class:`OSNet` returns the 512-d embedding after ``fc`` (Linear, BN, ReLU), *not*
L2-normalised: the feature torchreid evaluates. In ``train()`` mode it returns
``{"logits": (B, num_classes), "features": (B, 512)}``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# width name -> channels of (stem, stage2, stage3, stage4); torchreid's osnet_x* factories.
OSNET_CHANNELS: dict[str, tuple[int, int, int, int]] = {
    "osnet_x1_0": (64, 256, 384, 512),
    "osnet_x0_75": (48, 192, 288, 384),
    "osnet_x0_5": (32, 128, 192, 256),
    "osnet_x0_25": (16, 64, 96, 128),
}


class ConvLayer(nn.Module):
    """conv (k x k) + BN (or affine InstanceNorm) + ReLU."""

    def __init__(
        self,
        cin: int,
        cout: int,
        k: int,
        stride: int = 1,
        padding: int = 0,
        groups: int = 1,
        IN: bool = False,
    ):
        super().__init__()
        self.conv = nn.Conv2d(
            cin, cout, k, stride=stride, padding=padding, bias=False, groups=groups
        )
        self.bn = nn.InstanceNorm2d(cout, affine=True) if IN else nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class Conv1x1(nn.Module):
    """1x1 conv + BN + ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, stride=stride, padding=0, bias=False, groups=groups)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class Conv1x1Linear(nn.Module):
    """1x1 conv + BN, no activation."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, stride=stride, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class LightConv3x3(nn.Module):
    """Lite 3x3: pointwise 1x1 conv, depthwise 3x3 conv, BN, ReLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 1, stride=1, padding=0, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False, groups=cout)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv2(self.conv1(x))))


class ChannelGate(nn.Module):
    """Unified aggregation gate: per-channel sigmoid weights from a squeeze-excite MLP."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=True, padding=0)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=True, padding=0)
        self.gate_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.gate_activation(self.fc2(self.relu(self.fc1(self.global_avgpool(x)))))
        return x * g


class OSBlock(nn.Module):
    """Omni-scale residual bottleneck: 4 streams of 1..4 lite 3x3 convs, gated and summed."""

    def __init__(self, cin: int, cout: int, IN: bool = False, bottleneck_reduction: int = 4):
        super().__init__()
        mid = cout // bottleneck_reduction
        self.conv1 = Conv1x1(cin, mid)
        self.conv2a = LightConv3x3(mid, mid)
        self.conv2b = nn.Sequential(*[LightConv3x3(mid, mid) for _ in range(2)])
        self.conv2c = nn.Sequential(*[LightConv3x3(mid, mid) for _ in range(3)])
        self.conv2d = nn.Sequential(*[LightConv3x3(mid, mid) for _ in range(4)])
        self.gate = ChannelGate(mid)
        self.conv3 = Conv1x1Linear(mid, cout)
        self.downsample = Conv1x1Linear(cin, cout) if cin != cout else None
        self.IN = nn.InstanceNorm2d(cout, affine=True) if IN else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        x1 = self.conv1(x)
        x2 = (
            self.gate(self.conv2a(x1))
            + self.gate(self.conv2b(x1))
            + self.gate(self.conv2c(x1))
            + self.gate(self.conv2d(x1))
        )
        x3 = self.conv3(x2)
        if self.downsample is not None:
            identity = self.downsample(identity)
        out = x3 + identity
        if self.IN is not None:
            out = self.IN(out)
        return F.relu(out)


class OSNet(nn.Module):
    """OSNet with torchreid's layout (``conv1 .. conv5``, ``fc``, ``classifier``).

    Args:
        num_classes: classifier outputs (training identities); 0 builds a 1-output placeholder
            (inference-only use; :func:`reidlab.models.load_checkpoint` drops a mismatched one).
        channels: (stem, stage2, stage3, stage4) widths, see ``OSNET_CHANNELS``.
        layers: OSBlocks per stage (torchreid: 2, 2, 2).
        feature_dim: embedding size after ``fc`` (512).
        IN: instance norm in the stem and stage 2 (osnet_ibn).
    """

    def __init__(
        self,
        num_classes: int,
        channels: tuple[int, int, int, int],
        layers: tuple[int, int, int] = (2, 2, 2),
        feature_dim: int = 512,
        IN: bool = False,
    ):
        super().__init__()
        c = channels
        self.conv1 = ConvLayer(3, c[0], 7, stride=2, padding=3, IN=IN)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv2 = self._make_layer(layers[0], c[0], c[1], reduce_spatial_size=True, IN=IN)
        self.conv3 = self._make_layer(layers[1], c[1], c[2], reduce_spatial_size=True)
        self.conv4 = self._make_layer(layers[2], c[2], c[3], reduce_spatial_size=False)
        self.conv5 = Conv1x1(c[3], c[3])
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(c[3], feature_dim), nn.BatchNorm1d(feature_dim), nn.ReLU(inplace=True)
        )
        self.classifier = nn.Linear(feature_dim, max(int(num_classes), 1))
        self.feature_dim = feature_dim
        self.num_classes = int(num_classes)
        self._init_params()

    @staticmethod
    def _make_layer(
        n: int, cin: int, cout: int, reduce_spatial_size: bool, IN: bool = False
    ) -> nn.Sequential:
        blocks: list[nn.Module] = [OSBlock(cin, cout, IN=IN)]
        blocks += [OSBlock(cout, cout, IN=IN) for _ in range(1, n)]
        if reduce_spatial_size:
            blocks.append(nn.Sequential(Conv1x1(cout, cout), nn.AvgPool2d(2, stride=2)))
        return nn.Sequential(*blocks)

    def _init_params(self) -> None:
        # torchreid's initialisation (kaiming for convs, N(0, 0.01) for linears)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d, nn.InstanceNorm2d)):
                if m.weight is not None:
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)

    def featuremaps(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` -> ``(B, C, H/8, W/8)``."""
        x = self.maxpool(self.conv1(x))
        return self.conv5(self.conv4(self.conv3(self.conv2(x))))

    def forward(self, x: torch.Tensor):
        v = self.global_avgpool(self.featuremaps(x)).flatten(1)
        v = self.fc(v)
        if not self.training:
            return v
        return {"logits": self.classifier(v), "features": v}


def build_osnet(name: str, num_classes: int = 0, IN: bool = False) -> OSNet:
    """OSNet of width ``name`` (a key of ``OSNET_CHANNELS``)."""
    return OSNet(num_classes, OSNET_CHANNELS[name], IN=IN)
