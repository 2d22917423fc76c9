"""``reidface``: a small face localizer learned for re-ID crops (a face mask, boxes from it).

CenterFace is trained on ordinary photos and does not separate small blurry frontal faces from
backs of heads on 128x64 crops (72% recall at 5% face-less boxed, ``data/faces.md``). This network
(~123k parameters, ~15M multiply-adds per 128x64 crop, weights shipped in the package, 0.5 MB) was
trained from scratch on the Market-1501 human-parsing masks (SCHP pseudo ground truth, LIP label
13 = face) of 526 train identities. It predicts a face probability per 4x4 cell and an image-level
"has a face" probability. On 150 held-out identities: 84.2% recall at 4.5% face-less crops boxed,
99.0% of the parsed face pixels inside its soft mask (>= 0.02, dilated 2 px), 18-26x faster than
the CenterFace default on CPU. The recipe, the split, every number and what limits recall:
``research/reidface/RESULTS.md`` (issue 11; not yet the default detector).

Boxes: cells whose score (``sqrt(p * c)``: cell probability times the image-level one) is at least
``pixel_threshold`` form 8-connected components; a component whose maximum reaches ``threshold`` is
a box (its cells mapped to original pixels), scored by that maximum. Every crop is resized to the
network's 128x64 input (area when shrinking, bilinear when enlarging), so crops of any size work.
Face maps for anonymizing exactly the predicted face pixels (``mask="segmentation"``):
:meth:`ReidFaceDetector.face_maps` gives the cell probabilities ``p`` at the network's 1/4
resolution (what the detection cache stores); :meth:`ReidFaceDetector.soft_masks` the same enlarged
bilinearly to the original size.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from reidlab.faces.base import EMPTY, Detector, DetectorError, clip_boxes

INPUT_SIZE = (128, 64)  # (H, W) the network was trained on
WEIGHTS = Path(__file__).parent / "weights" / "reidface.pt"


def network_class():
    import torch
    import torch.nn.functional as F
    from torch import nn

    def cbr(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    class FaceSegNet(nn.Module):
        """RGB ``(B, 3, H, W)`` in [0, 1] -> face logits ``(B, 1, H/4, W/4)`` and a ``(B, 1)``
        image-level logit; a 3x3 conv encoder at strides 2-16 and a top-down decoder to stride 4."""

        def __init__(self, widths=(12, 24, 48, 64), cls_head: bool = True) -> None:
            super().__init__()
            c1, c2, c3, c4 = (int(c) for c in widths)
            self.cls = nn.Linear(2 * c4, 1) if cls_head else None
            self.stem = cbr(3, c1, 2)
            self.enc2 = nn.Sequential(cbr(c1, c2, 2), cbr(c2, c2))
            self.enc3 = nn.Sequential(cbr(c2, c3, 2), cbr(c3, c3))
            self.enc4 = nn.Sequential(cbr(c3, c4, 2), cbr(c4, c4))
            self.lat4 = nn.Conv2d(c4, c3, 1)
            self.dec3 = cbr(c3, c2)
            self.dec2 = cbr(c2, c2)
            self.head = nn.Conv2d(c2, 1, 1)
            mean = torch.tensor([0.45, 0.43, 0.43]).view(1, 3, 1, 1)
            self.register_buffer("mean", mean, persistent=False)
            self.register_buffer("inv_std", torch.full((1, 3, 1, 1), 4.0), persistent=False)

        def forward(self, x):
            x = (x - self.mean) * self.inv_std
            x2 = self.enc2(self.stem(x))
            x3 = self.enc3(x2)
            x4 = self.enc4(x3)
            y = F.interpolate(self.lat4(x4), scale_factor=2.0, mode="nearest") + x3
            y = F.interpolate(self.dec3(y), scale_factor=2.0, mode="nearest") + x2
            seg = self.head(self.dec2(y))
            if self.cls is None:
                return seg, None
            pooled = torch.cat([x4.mean(dim=(2, 3)), x4.amax(dim=(2, 3))], dim=1)
            return seg, self.cls(pooled)

    return FaceSegNet


def load_network(path: str):
    """The network from a weights file (``{"widths", "cls_head", "state_dict"}``, read with
    ``weights_only=True``), in eval mode; shared by detector instances while the file is
    unchanged (keyed by path, size and modification time, so a rewritten file is read again)."""
    st = Path(path).stat() if Path(path).is_file() else None
    return _load_network(str(path), st.st_size if st else -1, st.st_mtime_ns if st else -1)


@lru_cache(maxsize=4)
def _load_network(path: str, size: int, mtime_ns: int):
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        net = network_class()(ckpt["widths"], cls_head=bool(ckpt.get("cls_head", False)))
        net.load_state_dict(ckpt["state_dict"])
    except Exception as e:
        raise DetectorError(
            f"reidface: cannot load weights {path}: {' '.join(str(e).split())}"
        ) from e
    return _fuse_batchnorm(net.eval()).to(memory_format=torch.channels_last)


def _fuse_batchnorm(net):
    """Fold every BatchNorm into the convolution before it (inference only: ~1.5x faster on CPU,
    outputs equal to float rounding)."""
    import torch
    from torch import nn

    with torch.no_grad():
        for mod in net.modules():
            if (
                isinstance(mod, nn.Sequential)
                and len(mod) == 3
                and isinstance(mod[1], nn.BatchNorm2d)
            ):
                conv, bn = mod[0], mod[1]
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                fused = nn.Conv2d(
                    conv.in_channels,
                    conv.out_channels,
                    conv.kernel_size,
                    conv.stride,
                    conv.padding,
                    bias=True,
                )
                fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
                fused.bias.copy_(bn.bias - bn.running_mean * scale)
                mod[0], mod[1] = fused, nn.Identity()
    return net


def component_boxes(
    score: np.ndarray, threshold: float, pixel_threshold: float, cell
) -> np.ndarray:
    """One box per 8-connected component of ``score >= pixel_threshold`` whose maximum reaches
    ``threshold``: float32 ``(K, 5)`` in pixels (cell ``(r, c)`` spans ``[c*cw, (c+1)*cw) x
    [r*ch, (r+1)*ch)`` with ``cell = (ch, cw)``), score = the component's maximum."""
    import cv2

    if score.size == 0 or float(score.max()) < threshold:  # most crops: 0 or 1 face
        return EMPTY.copy()
    pt = min(pixel_threshold, threshold)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(
        (score >= pt).astype(np.uint8), connectivity=8
    )
    best = np.array([score[labels == k].max() for k in range(1, n)], np.float32)
    keep = np.nonzero(best >= threshold)[0]
    if len(keep) == 0:
        return EMPTY.copy()
    ch, cw = cell
    st = stats[keep + 1].astype(np.float32)
    x1, y1 = st[:, 0] * cw, st[:, 1] * ch
    x2, y2 = (st[:, 0] + st[:, 2]) * cw, (st[:, 1] + st[:, 3]) * ch
    return np.stack([x1, y1, x2, y2, best[keep]], axis=1).astype(np.float32)


class ReidFaceDetector(Detector):
    """The learned re-ID face localizer (see the module docstring).

    Args:
        threshold: box score threshold (default 0.8366: <= 5% of face-less crops boxed on the
            tuning identities).
        pixel_threshold: score above which a cell belongs to a box (its extent; default 0.1).
        flip_tta: average the mirrored pass (twice the time; +0.1 point recall measured).
        weights: another weights file (default: the one shipped in the package).
        batch_size: crops per forward pass; threads: torch threads for it (0 = leave as is).
        **common: ``box_scale`` (default 1.0), ``head_region``, ``max_faces`` ... (see base).
    """

    name = "reidface"
    model_param = "weights"
    gives_maps = True

    def __init__(
        self,
        *,
        threshold: float = 0.8366,
        pixel_threshold: float = 0.1,
        flip_tta: bool = False,
        weights: str | None = None,
        batch_size: int = 256,
        threads: int = 0,
        upscale: float = 1.0,
        **common,
    ) -> None:
        super().__init__(upscale=upscale, threshold=threshold, **common)
        if not 0.0 <= pixel_threshold <= 1.0:
            raise DetectorError(
                f"reidface: pixel_threshold must be in [0, 1], got {pixel_threshold}"
            )
        self._path = str(weights or WEIGHTS)
        if not Path(self._path).is_file():
            raise DetectorError(f"reidface: no weights file at {self._path}")
        from reidlab.hashing import file_hash

        self.params.update(
            pixel_threshold=float(pixel_threshold),
            flip_tta=bool(flip_tta),
            weights_sha1=file_hash(self._path, "sha1")[:12],
        )
        self.batch_size, self.threads = int(batch_size), int(threads)

    def _maps(self, images: list[np.ndarray]) -> list[tuple[np.ndarray, float | None]]:
        """Per image: the cell probability map ``(32, 16)`` and the image-level probability."""
        import cv2
        import torch

        from reidlab.batching import batches_by_shape

        h, w = INPUT_SIZE
        prepared = [
            im
            if im.shape[:2] == (h, w)
            else cv2.resize(
                im, (w, h), interpolation=cv2.INTER_AREA if im.shape[0] > h else cv2.INTER_LINEAR
            )
            for im in images
        ]
        net = load_network(self._path)
        out: list = [None] * len(images)
        threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                for idx in batches_by_shape(prepared, batch_size=self.batch_size):
                    x = torch.from_numpy(np.stack([prepared[i] for i in idx])).permute(0, 3, 1, 2)
                    x = x.float().div_(255.0)
                    seg, cls = net(x)
                    p, c = (
                        torch.sigmoid(seg[:, 0]),
                        None if cls is None else torch.sigmoid(cls[:, 0]),
                    )
                    if self.params["flip_tta"]:
                        seg_f, cls_f = net(x.flip(3))
                        p = (p + torch.sigmoid(seg_f[:, 0]).flip(2)) / 2
                        c = None if c is None else (c + torch.sigmoid(cls_f[:, 0])) / 2
                    p = p.contiguous().numpy()
                    for j, i in enumerate(idx):
                        out[i] = (p[j], None if c is None else float(c[j]))
        finally:
            torch.set_num_threads(threads)
        return out

    def _detect(self, images: list[np.ndarray]) -> list[np.ndarray]:
        boxes = []
        for im, (p, c) in zip(images, self._maps(images)):
            score = p if c is None else np.sqrt(p * np.float32(c))
            cell = (im.shape[0] / p.shape[0], im.shape[1] / p.shape[1])
            b = component_boxes(
                score, self.params["threshold"], self.params["pixel_threshold"], cell
            )
            boxes.append(clip_boxes(b, im.shape[0], im.shape[1]) if len(b) else b)
        return boxes

    def face_maps(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per image, the face probability of every 4x4 cell of the network's 128x64 input:
        float32 ``(32, 16)`` in [0, 1] (the cell map ``p``, without the image-level probability,
        as measured in research/reidface/RESULTS.md), whatever the image's size."""
        from reidlab.faces.base import as_rgb_image

        imgs = [as_rgb_image(im, i) for i, im in enumerate(images)]
        return [p for p, _ in self._maps(imgs)] if imgs else []

    def soft_masks(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per image, the face probability at every pixel: float32 ``(H, W)`` in [0, 1] (the cell
        map of :meth:`face_maps` enlarged bilinearly to the image size)."""
        import cv2

        from reidlab.faces.base import as_rgb_image

        imgs = [as_rgb_image(im, i) for i, im in enumerate(images)]
        return [
            cv2.resize(p, (im.shape[1], im.shape[0]), interpolation=cv2.INTER_LINEAR)
            for im, p in zip(imgs, self.face_maps(imgs))
        ]
