"""Training augmentation that moves face boxes with the image, and batch random erasing.

:class:`PairAugment` is the ``(image, boxes) -> (image, boxes)`` transform
:class:`reidlab.loading.ReIDImageDataset` accepts: resize to the model's input, horizontal
flip, zero pad + random crop (the strong baseline's recipe), through albumentations with
``BboxParams(format="pascal_voc")`` so face boxes follow (boxes pushed off the image are
clipped, or dropped when nothing is left).

:func:`build_random_erasing` erases on the *batch*, after on-the-fly anonymization and
normalisation, so it never hides or imitates the anonymization being studied.
"""

from __future__ import annotations

import numpy as np


class PairAugment:
    """Resize -> flip -> pad + random crop on a uint8 RGB image and its ``(K, 4)`` pascal_voc boxes.

    Args:
        size: output ``(H, W)``.
        flip_p: horizontal-flip probability.
        pad: zero padding in pixels (at the output size) before the random crop back to ``size``.
        seed: albumentations' seed (record it with the run).
    """

    def __init__(
        self, size: tuple[int, int], flip_p: float = 0.5, pad: int = 10, seed: int | None = 0
    ):
        import albumentations as A
        import cv2

        h, w = int(size[0]), int(size[1])
        ops = [A.Resize(h, w, interpolation=cv2.INTER_LINEAR)]
        if flip_p > 0:
            ops.append(A.HorizontalFlip(p=flip_p))
        if pad > 0:
            ops += [
                A.PadIfNeeded(h + 2 * pad, w + 2 * pad, border_mode=cv2.BORDER_CONSTANT, fill=0),
                A.RandomCrop(h, w),
            ]
        self.size = (h, w)
        self.settings = {"size": [h, w], "flip_p": flip_p, "pad": pad, "seed": seed}
        self.compose = A.Compose(
            ops,
            bbox_params=A.BboxParams(
                format="pascal_voc", label_fields=["labels"], clip=True, min_area=1.0
            ),
            seed=seed,
        )

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hh, ww = image.shape[:2]
        b = np.asarray(boxes, np.float32).reshape(-1, 4).copy()
        if len(b):
            b[:, [0, 2]] = b[:, [0, 2]].clip(0, ww)
            b[:, [1, 3]] = b[:, [1, 3]].clip(0, hh)
            b = b[(b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])]
        out = self.compose(image=image, bboxes=b, labels=np.arange(len(b)))
        nb = np.asarray(out["bboxes"], np.float32).reshape(-1, 4)
        return out["image"], nb

    def __repr__(self) -> str:
        return f"PairAugment({self.settings})"


def build_random_erasing(
    p: float = 0.5,
    scale: tuple[float, float] = (0.02, 0.4),
    ratio: tuple[float, float] = (0.3, 3.3),
):
    """Per-sample random erasing on a normalised ``(B, C, H, W)`` batch (kornia), filled with 0,
    i.e. the ImageNet mean colour after normalisation (the strong baseline's mean fill).
    Uses torch's global RNG (seeded by the training loop). ``p == 0`` returns None."""
    if p <= 0:
        return None
    import kornia.augmentation as K

    return K.RandomErasing(scale=scale, ratio=ratio, value=0.0, p=p)
