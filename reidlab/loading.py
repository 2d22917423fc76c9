"""The one image-loading path shared by evaluation, training and the explorer.

:class:`ReIDImageDataset` reads a split's images, resizes them to the model's input size and
carries each image's face boxes (scaled to the resized image) so anonymization can happen
*on the fly*, batched, on the model's device, after loading. Items are dicts::

    image  float32 (3, H, W) in [0, 1], RGB
    boxes  float32 (K, 4) x1, y1, x2, y2 in the resized image's pixels (zero rows are padding)
    valid  bool (K,) which rows of ``boxes`` are real
    pid, camid, index  ints

The default collate stacks them into ``image (B,3,H,W)``, ``boxes (B,K,4)``, ``valid (B,K)``.
Normalisation (mean/std) is NOT applied here: it happens on the device after anonymization,
because anonymization ops work on [0, 1] images. Resizing is :func:`reidlab.resize.resize_image`
in the model's mode (:func:`reidlab.resize.resize_mode_for`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from reidlab.boxes import pad_boxes
from reidlab.datasets.base import Sample
from reidlab.imageio import read_rgb
from reidlab.resize import DEFAULT_MODE, check_mode, resize_boxes, resize_image

# (image uint8 HxWx3, boxes float32 Kx4 in that image's pixels) -> (image, boxes)
PairTransform = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _torch_dataset_base():
    import torch.utils.data

    return torch.utils.data.Dataset


class ReIDImageDataset(_torch_dataset_base()):
    """A split as a torch Dataset of resized [0, 1] images plus their face boxes.

    Args:
        samples: the split, ``(path, pid, camid)`` per item.
        size: output ``(height, width)``; ``None`` keeps the original size (then batches
            need equal-sized images).
        boxes: face boxes per absolute image path, ``(K, 4)`` in original pixels (missing
            path = no face). From :func:`reidlab.faces.boxes_by_path` or the synthetic oracle.
        max_faces: K, the number of box rows per item (extra boxes: highest-area kept).
        transform: optional ``(image, boxes) -> (image, boxes)`` applied to the uint8 image
            in original resolution before resizing (training augmentation that moves boxes).
        resize_mode: ``"antialias"`` (PIL bilinear) or ``"bilinear"`` (cv2 INTER_LINEAR); the
            model's mode, :func:`reidlab.resize.resize_mode_for`. Boxes move the same either way.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        size: tuple[int, int] | None = (256, 128),
        boxes: Mapping[str, np.ndarray] | None = None,
        max_faces: int = 4,
        transform: PairTransform | None = None,
        resize_mode: str = DEFAULT_MODE,
    ):
        self.samples = list(samples)
        self.size = tuple(size) if size is not None else None
        self.boxes = boxes or {}
        self.max_faces = int(max_faces)
        self.transform = transform
        self.resize_mode = check_mode(resize_mode)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        import torch

        s = self.samples[index]
        img = read_rgb(s.path)
        b = np.asarray(self.boxes.get(s.path, np.zeros((0, 4), np.float32)), dtype=np.float32)
        b = b.reshape(-1, b.shape[-1] if b.size else 4)[:, :4]
        if self.transform is not None:
            img, b = self.transform(img, b)
            b = np.asarray(b, dtype=np.float32).reshape(-1, 4)
        if self.size is not None and img.shape[:2] != self.size:
            b = resize_boxes(b, img.shape[:2], self.size)
            img = resize_image(img, self.size, self.resize_mode)
        boxes, valid = pad_boxes([b], self.max_faces, keep="largest", dtype=np.float32)
        boxes, valid = boxes[0], valid[0]
        image = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255.0)
        return {
            "image": image,
            "boxes": torch.from_numpy(boxes),
            "valid": torch.from_numpy(valid),
            "pid": s.pid,
            "camid": s.camid,
            "index": index,
        }
