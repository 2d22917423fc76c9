"""A small learned face localizer for person re-ID crops: a per-pixel face mask, boxes from it.

Why a learned model: CenterFace (the default detector, ``reidlab/faces/centerface.py``) is trained on
ordinary photos and does not separate small blurry frontal faces from backs of heads on 128x64 crops
(72% recall at 5% face-less boxed, ``data/faces.md``). Here a tiny fully convolutional encoder-decoder
is trained from scratch on the Market-1501 human-parsing masks (SCHP pseudo ground truth, LIP label
13 = face) to predict a face probability at 1/4 of the input resolution (32x16 for a 128x64 crop).

What it returns (see :class:`ReidFaceLocalizer`):

* **boxes**: connected components of the thresholded probability map (:func:`mask_to_boxes`); a box is
  the component's bounding box (grid cells mapped back to original pixels), enlarged by ``box_scale``
  about its centre and clipped; its score is the component's maximum probability. Same contract as
  every ``reidlab.faces`` detector: float32 ``(K, 5)`` ``x1, y1, x2, y2, score`` in ORIGINAL pixels,
  sorted by descending score.
* **scores**: by default (``score_mode="geo"``) boxes are found on ``sqrt(p * c)``, the geometric mean
  of the per-cell face probability ``p`` and an image-level "has a face" probability ``c`` predicted
  by the same network from its deepest features; ``"seg"`` uses ``p`` alone.
* **the soft mask**: the probability map upsampled (bilinear) to the original image size, float32
  ``(H, W)`` in ``[0, 1]``; :func:`anonymize_region` turns it into the region to blur (threshold, then
  dilate by a fixed number of pixels).

Network (:class:`FaceSegNet`, ~123k parameters, ~0.5 MB float32, ~15M multiply-adds per 128x64 crop):
plain 3x3 conv + BN + ReLU blocks, encoder at strides 2/4/8/16, a light top-down decoder (nearest
upsampling + addition of the encoder features) back to stride 4, a 1x1 head; optionally a linear
image-level head on the mean- and max-pooled stride-16 features. Plain 3x3 convolutions
in channels-last layout were the fastest per multiply-add on CPU (depthwise-separable blocks had 4x
fewer multiply-adds but ran slower in PyTorch on CPU). BatchNorm is folded into the convolutions for
inference (:meth:`FaceSegNet.fuse`).

>>> loc = ReidFaceLocalizer("weights.pt")                       # doctest: +SKIP
>>> boxes, masks = loc.predict([crop_rgb_uint8])                 # doctest: +SKIP
>>> loc.detect_batch([crop_rgb_uint8])[0]        # (K, 5) float32 # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

INPUT_SIZE = (128, 64)  # (H, W) the network is trained on: the Market-1501 crop size
OUT_STRIDE = 4  # the probability map is 1/4 of the input in each dimension
EMPTY = np.zeros((0, 5), dtype=np.float32)

# Recommended defaults, chosen on the "tune" identities (RESULTS.md); report numbers are on "test" ids.
DEFAULT_THRESHOLD = 0.8366  # box score threshold: <= 5% of face-less tune crops boxed
DEFAULT_PIXEL_THRESHOLD = 0.1  # score above which a cell belongs to a component (box extent)
DEFAULT_BOX_SCALE = 1.0  # component boxes at pixel threshold 0.1 are already wide enough
DEFAULT_MASK_THRESHOLD = 0.02  # soft-mask threshold of the anonymized region
DEFAULT_DILATE = 2  # pixels (original resolution) the thresholded mask is dilated by
DEFAULT_SCORE_MODE = "geo"  # needs weights with the image-level head (train.py default)


# ---------------------------------------------------------------------------------------------
# The network
def _cbr(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """3x3 conv (no bias) + BatchNorm + ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class FaceSegNet(nn.Module):
    """Tiny encoder-decoder: RGB ``(B, 3, H, W)`` in ``[0, 1]`` -> face logits ``(B, 1, H/4, W/4)``.

    ``H`` and ``W`` must be multiples of 16 (the deepest stride). ``widths`` are the channels at
    strides 2, 4, 8, 16.
    """

    def __init__(self, widths: Sequence[int] = (12, 24, 48, 64), cls_head: bool = False) -> None:
        super().__init__()
        c1, c2, c3, c4 = (int(c) for c in widths)
        self.widths = (c1, c2, c3, c4)
        # optional image-level "has a face" logit from the stride-16 features (mean + max pooled)
        self.cls = nn.Linear(2 * c4, 1) if cls_head else None
        self.stem = _cbr(3, c1, 2)                                # stride 2
        self.enc2 = nn.Sequential(_cbr(c1, c2, 2), _cbr(c2, c2))  # stride 4
        self.enc3 = nn.Sequential(_cbr(c2, c3, 2), _cbr(c3, c3))  # stride 8
        self.enc4 = nn.Sequential(_cbr(c3, c4, 2), _cbr(c4, c4))  # stride 16: head/body context
        self.lat4 = nn.Conv2d(c4, c3, 1)                          # top-down: 16 -> 8
        self.dec3 = _cbr(c3, c2)                                  # 8 -> 4
        self.dec2 = _cbr(c2, c2)
        self.head = nn.Conv2d(c2, 1, 1)
        # fixed input normalisation: [0, 1] -> about [-2, 2] (kept outside the first conv so that its
        # zero padding stays "mid grey")
        self.register_buffer("mean", torch.tensor([0.45, 0.43, 0.43]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("inv_std", torch.tensor([4.0, 4.0, 4.0]).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) * self.inv_std
        x2 = self.enc2(self.stem(x))
        x3 = self.enc3(x2)
        x4 = self.enc4(x3)
        y = F.interpolate(self.lat4(x4), scale_factor=2.0, mode="nearest") + x3
        y = F.interpolate(self.dec3(y), scale_factor=2.0, mode="nearest") + x2
        seg = self.head(self.dec2(y))
        if self.cls is None:
            return seg
        pooled = torch.cat([x4.mean(dim=(2, 3)), x4.amax(dim=(2, 3))], dim=1)
        return seg, self.cls(pooled)

    @torch.no_grad()
    def fuse(self) -> FaceSegNet:
        """Fold every BatchNorm into its convolution (inference only; call after ``eval()``)."""
        for mod in self.modules():
            if isinstance(mod, nn.Sequential) and len(mod) == 3 and isinstance(mod[1], nn.BatchNorm2d):
                conv, bn = mod[0], mod[1]
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                                  conv.padding, bias=True)
                fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
                fused.bias.copy_(bn.bias - bn.running_mean * scale)
                mod[0], mod[1] = fused, nn.Identity()
        return self


def load_net(path: str | Path) -> FaceSegNet:
    """Load a checkpoint saved by ``train.py`` (``{"widths": [...], "state_dict": {...}}``).

    ``weights_only=True``: the file holds tensors and plain Python values only.
    """
    ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    net = FaceSegNet(ckpt["widths"], cls_head=bool(ckpt.get("cls_head", False)))
    net.load_state_dict(ckpt["state_dict"])
    return net.eval()


# ---------------------------------------------------------------------------------------------
# Post-processing (pure numpy / OpenCV; no torch)
def scale_boxes(boxes: np.ndarray, factor: float) -> np.ndarray:
    """Enlarge ``(K, >=4)`` boxes about their centres by ``factor`` (as ``reidlab.faces.base``)."""
    boxes = np.asarray(boxes, dtype=np.float32).copy()
    c = (boxes[:, 0:2] + boxes[:, 2:4]) / 2
    half = (boxes[:, 2:4] - boxes[:, 0:2]) * (factor / 2)
    boxes[:, 0:2], boxes[:, 2:4] = c - half, c + half
    return boxes


def clip_boxes(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Clip to ``[0, width] x [0, height]``, drop boxes left without area (as ``reidlab.faces.base``)."""
    boxes = np.asarray(boxes, dtype=np.float32).copy()
    if boxes.size == 0:
        return EMPTY.copy()
    boxes[:, 0:4:2] = boxes[:, 0:4:2].clip(0, width)
    boxes[:, 1:4:2] = boxes[:, 1:4:2].clip(0, height)
    return boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]


def mask_to_boxes(prob: np.ndarray, threshold: float, *, pixel_threshold: float | None = None,
                  box_scale: float = 1.0, cell: tuple[float, float] = (1.0, 1.0),
                  size: tuple[int, int] | None = None) -> np.ndarray:
    """Face boxes from a probability map: one box per connected component.

    Cells with ``prob >= pixel_threshold`` are grouped into 8-connected components; a component
    becomes a box when its maximum probability (its score) is ``>= threshold``. The box is the
    component's bounding box in grid cells, mapped to image pixels with ``cell`` = ``(cell height, cell
    width)`` in pixels (cell ``(r, c)`` spans ``[c*cw, (c+1)*cw) x [r*ch, (r+1)*ch)``), enlarged about
    its centre by ``box_scale`` and, when ``size = (H, W)`` is given, clipped to the image.

    Two thresholds because they do different jobs: ``threshold`` decides WHETHER a face is there (it
    trades recall against boxes on face-less crops); ``pixel_threshold`` (default: ``threshold``)
    decides how far the box extends (lower = larger boxes that cover more of the face).

    Args:
        prob: ``(h, w)`` float probabilities.
    Returns:
        float32 ``(K, 5)`` ``x1, y1, x2, y2, score``, sorted by descending score.
    """
    import cv2

    prob = np.asarray(prob, dtype=np.float32)
    pt = threshold if pixel_threshold is None else min(pixel_threshold, threshold)
    if prob.size == 0 or float(prob.max()) < threshold:  # fast path: most crops have 0 or 1 face
        return EMPTY.copy()
    n, labels, stats, _ = cv2.connectedComponentsWithStats((prob >= pt).astype(np.uint8), connectivity=8)
    if n <= 1:
        return EMPTY.copy()
    # per-component maximum probability (label 0 is the background); components are few (1-3)
    score = np.array([prob[labels == k].max() for k in range(1, n)], np.float32)
    keep = np.nonzero(score >= threshold)[0]
    if len(keep) == 0:
        return EMPTY.copy()
    ch, cw = cell
    st = stats[keep + 1].astype(np.float32)  # x, y, w, h, area
    boxes = np.stack([st[:, 0] * cw, st[:, 1] * ch, (st[:, 0] + st[:, 2]) * cw, (st[:, 1] + st[:, 3]) * ch,
                      score[keep]], axis=1).astype(np.float32)
    if box_scale != 1.0:
        boxes = scale_boxes(boxes, box_scale)
    # clip only when a box can leave the image: enlarged boxes, or a grid larger than the image
    # (zero-padded input); unscaled cell boxes on a grid covering the image are inside it already
    if size is not None and (box_scale > 1.0 or prob.shape[0] * ch > size[0] + 1e-3
                             or prob.shape[1] * cw > size[1] + 1e-3):
        boxes = clip_boxes(boxes, size[0], size[1])
    return boxes[np.argsort(-boxes[:, 4], kind="stable")]


def anonymize_region(mask: np.ndarray, threshold: float = DEFAULT_MASK_THRESHOLD,
                     dilate: int = DEFAULT_DILATE) -> np.ndarray:
    """Bool ``(H, W)`` region to anonymize: ``mask >= threshold``, dilated by ``dilate`` pixels.

    The dilation uses a square ``(2*dilate+1)`` kernel (Chebyshev distance): every pixel within
    ``dilate`` pixels of a thresholded pixel, in x and y, is included.
    """
    import cv2

    region = (np.asarray(mask) >= threshold).astype(np.uint8)
    if dilate > 0 and region.any():
        region = cv2.dilate(region, np.ones((2 * dilate + 1, 2 * dilate + 1), np.uint8))
    return region.astype(bool)


# ---------------------------------------------------------------------------------------------
# The wrapper
class ReidFaceLocalizer:
    """Batched face boxes and soft face masks for re-ID crops (any size; resized to the net input).

    Args:
        weights: checkpoint written by ``train.py``.
        threshold: box score threshold, see :func:`mask_to_boxes`.
        pixel_threshold: component extent threshold (capped at ``threshold``).
        box_scale: enlarge boxes about their centres (then clipped).
        score_mode: ``"seg"``: a box's score is its component's maximum face probability;
            ``"geo"`` (only for weights trained with ``--cls-head``): boxes are found on
            ``sqrt(p * c)``, the geometric mean of the per-cell probability ``p`` and the network's
            image-level "has a face" probability ``c``. The soft mask is ``p`` in both modes.
        flip_tta: average the probabilities of the image and its mirror (twice the network time).
        input_size: ``(H, W)`` every image is resized to (bilinear when enlarging, area when
            shrinking); ``None`` runs each image at its own size zero-padded to a multiple of 16 (not
            what it was trained for when crops are much smaller or larger than 128x64).
        batch_size: images per forward pass.
        threads: ``torch.set_num_threads`` for the forward passes (``None``/0 = leave as is).
    """

    name = "reidface"

    def __init__(self, weights: str | Path, *, threshold: float = DEFAULT_THRESHOLD,
                 pixel_threshold: float = DEFAULT_PIXEL_THRESHOLD, box_scale: float = DEFAULT_BOX_SCALE,
                 score_mode: str = DEFAULT_SCORE_MODE, flip_tta: bool = False,
                 input_size: tuple[int, int] | None = INPUT_SIZE, batch_size: int = 256,
                 threads: int | None = None) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"{self.name}: threshold must be in [0, 1], got {threshold}")
        if box_scale <= 0:
            raise ValueError(f"{self.name}: box_scale must be > 0, got {box_scale}")
        if score_mode not in ("seg", "geo"):
            raise ValueError(f"{self.name}: score_mode must be 'seg' or 'geo', got {score_mode!r}")
        if input_size is not None and (input_size[0] % 16 or input_size[1] % 16):
            raise ValueError(f"{self.name}: input_size must be multiples of 16, got {input_size}")
        if threads:
            torch.set_num_threads(int(threads))
        self.net = load_net(weights).fuse().to(memory_format=torch.channels_last)
        if score_mode == "geo" and self.net.cls is None:
            raise ValueError(f"{self.name}: score_mode='geo' needs weights trained with an image-level head")
        self.params = {"threshold": float(threshold), "pixel_threshold": float(pixel_threshold),
                       "box_scale": float(box_scale), "score_mode": score_mode, "flip_tta": bool(flip_tta),
                       "input_size": None if input_size is None else [int(input_size[0]), int(input_size[1])],
                       "weights": str(weights)}
        self.batch_size = int(batch_size)

    # --- batched network pass ---------------------------------------------------------------
    def _prepare(self, img: np.ndarray) -> np.ndarray:
        """Resize (or zero-pad) one RGB uint8 image to the network input; uint8 ``(Hn, Wn, 3)``."""
        import cv2

        h, w = img.shape[:2]
        size = self.params["input_size"]
        if size is None:
            ph, pw = -(-h // 16) * 16, -(-w // 16) * 16
            if (ph, pw) == (h, w):
                return img
            out = np.zeros((ph, pw, 3), np.uint8)
            out[:h, :w] = img
            return out
        if (h, w) == tuple(size):
            return img
        interp = cv2.INTER_AREA if h > size[0] and w > size[1] else cv2.INTER_LINEAR
        return cv2.resize(img, (size[1], size[0]), interpolation=interp)

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-cell probabilities ``(B, h, w)`` and image-level probabilities ``(B,)`` (or None)."""
        y = self.net(x)
        seg, cls = (y if isinstance(y, tuple) else (y, None))
        p = torch.sigmoid(seg[:, 0])
        c = None if cls is None else torch.sigmoid(cls[:, 0])
        return p, c

    @torch.inference_mode()
    def probabilities(self, images: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[float | None]]:
        """Face probability maps at the output grid (float32 ``(Hn/4, Wn/4)``) and image-level face
        probabilities (None without an image-level head), per image."""
        prepared = [self._prepare(_as_rgb(im, i)) for i, im in enumerate(images)]
        groups: dict[tuple, list[int]] = {}
        for i, x in enumerate(prepared):
            groups.setdefault(x.shape, []).append(i)
        maps: list[np.ndarray] = [None] * len(prepared)  # type: ignore[list-item]
        cls: list[float | None] = [None] * len(prepared)
        for idx in groups.values():
            for s in range(0, len(idx), self.batch_size):
                chunk = idx[s:s + self.batch_size]
                # (B, H, W, 3) uint8 -> (B, 3, H, W) float, already in channels-last memory order
                x = torch.from_numpy(np.stack([prepared[i] for i in chunk])).permute(0, 3, 1, 2)
                x = x.float().div_(255.0)
                p, c = self._forward(x)
                if self.params["flip_tta"]:
                    pf, cf = self._forward(x.flip(3))
                    p = (p + pf.flip(2)) / 2
                    c = None if c is None else (c + cf) / 2
                p = p.contiguous().numpy()
                for j, i in enumerate(chunk):
                    maps[i] = p[j]
                    cls[i] = None if c is None else float(c[j])
        return maps, cls

    # --- public API ---------------------------------------------------------------------------
    def score_map(self, prob: np.ndarray, image_prob: float | None) -> np.ndarray:
        """The map boxes are found on: ``prob`` (``"seg"``) or ``sqrt(prob * image_prob)`` (``"geo"``)."""
        if self.params["score_mode"] == "geo" and image_prob is not None:
            return np.sqrt(prob * np.float32(image_prob))
        return prob

    def boxes_from_prob(self, prob: np.ndarray, height: int, width: int, image_prob: float | None = None,
                        threshold: float | None = None) -> np.ndarray:
        """Boxes in original pixels of an ``height x width`` image from its probability map."""
        p = self.params
        if p["input_size"] is None:  # native size, padded: one cell = OUT_STRIDE px
            cell = (float(OUT_STRIDE), float(OUT_STRIDE))
        else:
            cell = (height / prob.shape[0], width / prob.shape[1])
        t = p["threshold"] if threshold is None else threshold
        return mask_to_boxes(self.score_map(prob, image_prob), t, pixel_threshold=p["pixel_threshold"],
                             box_scale=p["box_scale"], cell=cell, size=(height, width))

    def soft_mask(self, prob: np.ndarray, height: int, width: int) -> np.ndarray:
        """The probability map upsampled (bilinear, cell centres aligned) to ``height x width``."""
        import cv2

        if self.params["input_size"] is None:  # crop the padding away first
            ph, pw = prob.shape[0] * OUT_STRIDE, prob.shape[1] * OUT_STRIDE
            full = cv2.resize(prob, (pw, ph), interpolation=cv2.INTER_LINEAR)
            return np.ascontiguousarray(full[:height, :width])
        return cv2.resize(prob, (width, height), interpolation=cv2.INTER_LINEAR)

    def predict(self, images: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Boxes (float32 ``(K, 5)``, original pixels) and soft masks (float32 ``(H, W)``) per image."""
        maps, cls = self.probabilities(images)
        boxes, masks = [], []
        for im, pr, c in zip(images, maps, cls):
            h, w = np.asarray(im).shape[:2]
            boxes.append(self.boxes_from_prob(pr, h, w, c))
            masks.append(self.soft_mask(pr, h, w))
        return boxes, masks

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Boxes only (the ``reidlab.faces`` detector contract)."""
        maps, cls = self.probabilities(images)
        return [self.boxes_from_prob(pr, np.asarray(im).shape[0], np.asarray(im).shape[1], c)
                for im, pr, c in zip(images, maps, cls)]

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.detect_batch([image])[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params.items())})"


def _as_rgb(img, index: int) -> np.ndarray:
    """Validate one RGB uint8 ``(H, W, 3)`` image (gray is expanded, RGBA drops alpha)."""
    arr = np.asarray(img)
    if arr.size == 0 or arr.ndim < 2:
        raise ValueError(f"image #{index}: empty or not an image, shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"image #{index}: expected uint8, got {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    elif arr.shape[2] == 4:
        arr = arr[..., :3]
    elif arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr)
