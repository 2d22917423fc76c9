"""The one image-loading path shared by evaluation, training and the explorer.

:class:`ReIDImageDataset` reads a split's images, resizes them to the model's input size and
carries each image's face boxes (scaled to the resized image) so anonymization can happen
*on the fly*, batched, on the model's device, after loading. Items are dicts::

    image  float32 (3, H, W) in [0, 1], RGB
    boxes  float32 (K, 4) x1, y1, x2, y2 in the resized image's pixels (zero rows are padding)
    valid  bool (K,) which rows of ``boxes`` are real
    pid, camid, index  ints

With ``maps=`` (per-pixel face maps, for ``mask="segmentation"``) items also carry::

    face_map  float32 (H, W) the image's face map at the item's size (zeros when it has none)
    has_map   bool, whether the image has a map (an anonymizer gets ``None`` for the others)

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

# (image uint8 HxWx3, boxes float32 Kx4 in that image's pixels) -> (image, boxes); with a face
# map (float32 hxw, any resolution covering the image) as a third argument it returns it moved
# the same way, at the output image's size, as a third value (see PairAugment)
PairTransform = Callable[..., tuple]


def fit_map(face_map, size: tuple[int, int]) -> np.ndarray:
    """A face map (``(h, w)`` probabilities covering the whole image) at ``size`` ``(H, W)``.

    Enlarging is torch's bilinear with ``align_corners=False``, the interpolation the anonymizer
    itself enlarges maps with (:func:`reidlab.anonymize.masks.segmentation_masks`), so a map fitted
    here and the raw map give the anonymizer the same mask. Shrinking (a map finer than the image)
    averages with torch's antialiased bilinear, so no thin face region is skipped.
    """
    import torch
    import torch.nn.functional as F

    m = np.asarray(face_map, dtype=np.float32)
    if m.ndim != 2:
        raise ValueError(f"face map: expected a (h, w) array, got shape {m.shape}")
    h, w = int(size[0]), int(size[1])
    if m.shape == (h, w):
        return m
    t = torch.from_numpy(np.ascontiguousarray(m))[None, None]
    shrink = m.shape[0] > h or m.shape[1] > w
    out = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False, antialias=shrink)
    return out[0, 0].numpy()


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
        maps: per-pixel face maps per absolute image path (``(h, w)`` float probabilities over
            the whole original image, any resolution:
            :func:`reidlab.faces.dataset.dataset_face_maps`); ``None`` (default): items carry no
            maps. A map follows the image through
            ``transform`` (flip, pad, crop) and is fitted to the item's size (:func:`fit_map`).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        size: tuple[int, int] | None = (256, 128),
        boxes: Mapping[str, np.ndarray] | None = None,
        max_faces: int = 4,
        transform: PairTransform | None = None,
        resize_mode: str = DEFAULT_MODE,
        maps: Mapping[str, np.ndarray] | None = None,
    ):
        self.maps = maps
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
        fm = None
        if self.maps is not None:
            got = self.maps.get(s.path)
            has_map = got is not None
            # an image without a map carries zeros (so batches stack) and has_map False
            fm = np.asarray(got, np.float32) if has_map else np.zeros(img.shape[:2], np.float32)
        if self.transform is not None:
            if fm is None:  # the call the box masks always made
                img, b = self.transform(img, b)
            else:
                img, b, fm = self.transform(img, b, fm)
            b = np.asarray(b, dtype=np.float32).reshape(-1, 4)
        if self.size is not None and img.shape[:2] != self.size:
            b = resize_boxes(b, img.shape[:2], self.size)
            img = resize_image(img, self.size, self.resize_mode)
        boxes, valid = pad_boxes([b], self.max_faces, keep="largest", dtype=np.float32)
        boxes, valid = boxes[0], valid[0]
        image = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255.0)
        item = {
            "image": image,
            "boxes": torch.from_numpy(boxes),
            "valid": torch.from_numpy(valid),
            "pid": s.pid,
            "camid": s.camid,
            "index": index,
        }
        if fm is not None:
            fm = fit_map(fm, img.shape[:2])
            item["face_map"] = torch.from_numpy(np.ascontiguousarray(fm, dtype=np.float32))
            item["has_map"] = has_map
        return item


def batch_face_maps(batch: Mapping, device=None) -> list | None:
    """The ``face_maps=`` argument of an anonymizer for a collated batch: one ``(H, W)`` map per
    image, ``None`` for an image without one (the anonymizer then uses its boxes: fail closed);
    ``None`` when the batch carries no maps."""
    if "face_map" not in batch:
        return None
    maps = batch["face_map"].to(device) if device is not None else batch["face_map"]
    return [m if bool(h) else None for m, h in zip(maps, batch["has_map"])]
