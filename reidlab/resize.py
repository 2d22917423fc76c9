"""Resizing crops to a model's input the way that model was trained.

Two modes (:data:`RESIZE_MODE`):

``"antialias"``
    PIL's ``Image.resize(..., Image.BILINEAR)``: a triangle filter whose support widens with the
    downscale factor, so a 400x180 crop shrunk to 256x128 is low-pass filtered instead of
    aliased. torchreid (OSNet), the Open Model Zoo re-ID models and timm's ImageNet weights were
    trained on images resized this way. Done by Pillow itself, not re-implemented: Pillow *is*
    the reference, so the result is exact. (torchvision's uint8 ``resize(antialias=True)`` was
    2-5x faster here but differs from PIL by 1 level in ~7.5% of pixels when downscaling, and
    ``torch.nn.functional.interpolate(antialias=True)`` by 1 level in 16-26%; measured on 50
    Market-1501 crops at 128x64 and 30 crops at 400x180 / 300x150, see tests/test_resize.py.)
``"bilinear"``
    OpenCV ``cv2.resize(..., INTER_LINEAR)``: 2x2 taps whatever the scale (aliases when
    downscaling). What reidlab did before the mode existed; kept for models trained that way and
    to reproduce old runs exactly.

When upscaling (Market-1501's 128x64 crops to 256x128) both modes interpolate the same two
neighbours and differ only by rounding: at most 1 level, in ~30% of the pixels.

Which mode a model gets: its ``resize_mode`` attribute if it has one (exported ONNX/OpenVINO
models set it), else its family's default (:func:`resize_mode_for`, table :data:`FAMILY_MODES`).
Face boxes move the same way in both modes (:func:`resize_boxes`): both put pixel ``i`` over
``[i, i + 1)``, so a continuous coordinate scales by ``new / old``.
"""

from __future__ import annotations

import numpy as np

from reidlab.params import Param

RESIZE_MODES = ("antialias", "bilinear")

RESIZE_MODE = Param(
    "resize_mode",
    str,
    "antialias",
    "how crops are resized to the model's input: antialias (PIL bilinear, as torchreid and most "
    "published re-ID models were trained) or bilinear (OpenCV INTER_LINEAR, reidlab before 2026-11)",
    choices=RESIZE_MODES,
)

# Default mode per model family (registry name prefix), for models without a ``resize_mode``.
# - osnet*: torchreid trains and evaluates on PIL-resized crops (published weights).
# - bot_r50, pcb_r50, mgn_r50, mobilenetv3_l, tiny: trained by reidlab, whose training
#   (reidlab.training.transforms.PairAugment, reidlab.loading.ReIDImageDataset) resizes with
#   the same default, so training and evaluation agree; antialias because their timm ImageNet
#   weights were pretrained on PIL-resized images, because it does not alias on crops larger than
#   the input (MSMT17, DukeMTMC, CUHK03), and because every family then sees the same pixels.
#   Checkpoints trained before this table existed used "bilinear": on Market-1501 (upscaled)
#   that is within 1 level; for ones trained on larger crops set model.resize_mode = "bilinear".
# - anything else (foreign or published models): "antialias", how most published re-ID code
#   resizes (torchreid, OMZ); a model trained otherwise says so with its resize_mode attribute.
FAMILY_MODES: dict[str, str] = {
    "osnet": "antialias",
    "bot_": "antialias",
    "pcb_": "antialias",
    "mgn_": "antialias",
    "mobilenetv3": "antialias",
    "tiny": "antialias",
}
DEFAULT_MODE = "antialias"


def check_mode(mode) -> str:
    """``mode`` if it is one of :data:`RESIZE_MODES`, else ``ValueError`` naming it."""
    return RESIZE_MODE.check(mode)


def resize_mode_for(model) -> str:
    """The resize mode ``model`` expects: its ``resize_mode`` attribute, else its family's
    default from :data:`FAMILY_MODES` (by ``model.name``), else :data:`DEFAULT_MODE`."""
    mode = getattr(model, "resize_mode", None)
    if mode is not None:
        return check_mode(mode)
    name = str(getattr(model, "name", "") or "").lower()
    for prefix, m in FAMILY_MODES.items():
        if name.startswith(prefix):
            return m
    return DEFAULT_MODE


def _check_size(size) -> tuple[int, int]:
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (height, width), got {size!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive (height, width), got {size!r}")
    return h, w


def resize_image(img: np.ndarray, size: tuple[int, int], mode: str = DEFAULT_MODE) -> np.ndarray:
    """Resize an RGB uint8 ``(H, W, 3)`` image to ``size = (height, width)``.

    ``mode``: ``"antialias"`` (PIL bilinear, exact) or ``"bilinear"`` (cv2 INTER_LINEAR, exact).
    An image already at ``size`` is returned as it is, in both modes.
    """
    mode = check_mode(mode)
    h, w = _check_size(size)
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(
            f"resize_image expects an RGB uint8 (H, W, 3) image, got {img.dtype} {img.shape}"
        )
    if img.shape[:2] == (h, w):
        return img
    if mode == "bilinear":
        import cv2

        return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
    from PIL import Image

    out = Image.fromarray(np.ascontiguousarray(img), "RGB").resize((w, h), Image.BILINEAR)
    return np.array(out)  # a writable copy (np.asarray of a PIL image is read-only)


def resize_boxes(boxes, old_size: tuple[int, int], new_size: tuple[int, int]) -> np.ndarray:
    """``(K, >=4)`` boxes ``x1, y1, x2, y2`` in an ``old_size = (H, W)`` image's pixels, moved to
    a ``new_size`` resize of it (extra columns unchanged). The same in both resize modes.

    >>> resize_boxes(np.array([[10., 20., 30., 60.]]), (200, 100), (300, 50))
    array([[ 5., 30., 15., 90.]], dtype=float32)
    """
    (h0, w0), (h, w) = _check_size(old_size), _check_size(new_size)
    b = np.array(boxes, dtype=np.float32, copy=True).reshape(-1, np.shape(boxes)[-1] or 4)
    b[:, [0, 2]] *= np.float32(w / w0)
    b[:, [1, 3]] *= np.float32(h / h0)
    return b


def resize_batch(images, size: tuple[int, int], mode: str = DEFAULT_MODE):
    """Resize a float ``(B, C, H, W)`` tensor of [0, 1] images to ``size`` on its device.

    For inputs that are already tensors (no uint8 image to hand to PIL):
    ``"antialias"`` uses ``interpolate(..., antialias=True)``, PIL's filter in float (within
    1 level of PIL after rounding to uint8); ``"bilinear"`` plain ``interpolate`` bilinear with
    half-pixel centres, the same taps as cv2 INTER_LINEAR.
    """
    import torch

    mode = check_mode(mode)
    h, w = _check_size(size)
    if tuple(images.shape[-2:]) == (h, w):
        return images
    return torch.nn.functional.interpolate(
        images, size=(h, w), mode="bilinear", align_corners=False, antialias=mode == "antialias"
    )
