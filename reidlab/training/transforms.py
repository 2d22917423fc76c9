"""Training augmentation that moves face boxes with the image, and batch random erasing.

:class:`PairAugment` is the ``(image, boxes) -> (image, boxes)`` transform
:class:`reidlab.loading.ReIDImageDataset` accepts: resize to the model's input
(:func:`reidlab.resize.resize_image` in the model's mode, the same resize evaluation uses), then
horizontal flip and zero pad + random crop (the strong baseline's recipe) through albumentations
with ``BboxParams(format="pascal_voc")`` so face boxes follow (boxes pushed off the image are
clipped, or dropped when nothing is left). A face map given as a third argument (for
``mask="segmentation"``) is fitted to the output size and goes through the same flip, pad and crop
as albumentations' ``mask`` target, so anonymizing after augmentation stays aligned.

:func:`build_random_erasing` erases on the *batch*, after on-the-fly anonymization and
normalisation, so it never hides or imitates the anonymization being studied.
"""

from __future__ import annotations

import numpy as np

from reidlab.resize import DEFAULT_MODE, check_mode, resize_boxes, resize_image


class PairAugment:
    """Resize -> flip -> pad + random crop on a uint8 RGB image and its ``(K, 4)`` pascal_voc boxes.

    Args:
        size: output ``(H, W)``.
        flip_p: horizontal-flip probability.
        pad: zero padding in pixels (at the output size) before the random crop back to ``size``.
        seed: albumentations' seed (record it with the run).
        resize_mode: ``"antialias"`` or ``"bilinear"`` (:mod:`reidlab.resize`); the trained
            model's mode (:func:`reidlab.resize.resize_mode_for`), so that evaluation resizes as
            training did. Not albumentations' ``A.Resize``: it has no PIL-like antialiasing.
    """

    def __init__(
        self,
        size: tuple[int, int],
        flip_p: float = 0.5,
        pad: int = 10,
        seed: int | None = 0,
        resize_mode: str = DEFAULT_MODE,
    ):
        import albumentations as A
        import cv2

        h, w = int(size[0]), int(size[1])
        self.resize_mode = check_mode(resize_mode)
        ops = []
        if flip_p > 0:
            ops.append(A.HorizontalFlip(p=flip_p))
        if pad > 0:
            ops += [
                A.PadIfNeeded(h + 2 * pad, w + 2 * pad, border_mode=cv2.BORDER_CONSTANT, fill=0),
                A.RandomCrop(h, w),
            ]
        self.size = (h, w)
        self.settings = {
            "size": [h, w],
            "resize": self.resize_mode,
            "flip_p": flip_p,
            "pad": pad,
            "seed": seed,
        }
        self.compose = A.Compose(
            ops or [A.NoOp()],  # boxes are still clipped and filtered (min_area) with no op
            bbox_params=A.BboxParams(
                format="pascal_voc", label_fields=["labels"], clip=True, min_area=1.0
            ),
            seed=seed,
        )

    def __call__(self, image: np.ndarray, boxes: np.ndarray, face_map: np.ndarray | None = None):
        """``(image, boxes)``, or ``(image, boxes, face_map)`` when ``face_map`` (``(h, w)``
        float probabilities over the whole image, any resolution) is given: the map at the output
        size (:func:`reidlab.loading.fit_map`), flipped, padded with zeros and cropped as the
        image."""
        hh, ww = image.shape[:2]
        b = np.asarray(boxes, np.float32).reshape(-1, 4).copy()
        if len(b):
            b[:, [0, 2]] = b[:, [0, 2]].clip(0, ww)
            b[:, [1, 3]] = b[:, [1, 3]].clip(0, hh)
            b = b[(b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])]
        if (hh, ww) != self.size:
            b = resize_boxes(b, (hh, ww), self.size)
            image = resize_image(image, self.size, self.resize_mode)
        targets = {"image": image, "bboxes": b, "labels": np.arange(len(b))}
        if face_map is not None:
            from reidlab.loading import fit_map

            targets["mask"] = fit_map(face_map, self.size)
        out = self.compose(**targets)
        nb = np.asarray(out["bboxes"], np.float32).reshape(-1, 4)
        if face_map is None:
            return out["image"], nb
        return out["image"], nb, np.asarray(out["mask"], np.float32)

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
