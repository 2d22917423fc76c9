"""The face region of each re-ID crop, as an attacker would see it in the released data.

:func:`load_crops` reads the crops of a split that have at least one face box (crops without one
are excluded and counted: a face-only attacker has nothing to look at there). :func:`cut_faces`
anonymizes each *whole* crop with all its boxes, exactly as the dataset exporter would release
it, and only then cuts the region of its largest box (enlarged about its centre by ``enlarge``,
the pixels of :func:`reidlab.anonymize.masks.box_regions`, i.e. the same pixel rule as the
anonymization masks), resized to ``size x size``. So the face region shows the anonymized pixels,
and with ``enlarge`` above the anonymizer's ``scale`` also the original pixels around them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from reidlab.batching import batches_by_shape
from reidlab.boxes import pad_boxes, scale_boxes


@dataclass
class Crops:
    """The boxed crops of one split, in memory: uint8 ``(H, W, 3)`` images and their boxes."""

    images: list  # RGB uint8 arrays, one per kept crop
    boxes: list  # (K_i, 4) float32 boxes per kept crop, K_i >= 1
    pids: np.ndarray
    camids: np.ndarray
    paths: list[str]
    excluded: int = 0  # crops of the split without a face box (not kept)


@dataclass
class FaceSet:
    """Face regions ``(N, 3, size, size)`` float in [0, 1] with their identities."""

    faces: object  # torch.Tensor
    pids: np.ndarray
    camids: np.ndarray
    paths: list[str]
    excluded: int = 0  # crops without a face box, or whose box region is empty
    settings: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.pids)


def load_crops(samples: Sequence, boxes: Mapping[str, np.ndarray], progress: bool = False) -> Crops:
    """Read the crops of ``samples`` (``Sample(path, pid, camid)``) that have a face box in
    ``boxes`` (``{absolute path: (K, 4+)}``, e.g. ``load_face_boxes`` or ``faces.dataset_boxes``).
    Boxes are kept as given (the fifth column, a score, is dropped)."""
    from tqdm.auto import tqdm

    from reidlab.imageio import read_rgb

    out = Crops([], [], np.zeros(0, np.int64), np.zeros(0, np.int64), [])
    pids, camids = [], []
    for s in tqdm(samples, desc="reading crops", disable=not progress, leave=False):
        b = np.asarray(boxes.get(s.path, np.zeros((0, 4))), np.float32)
        b = b.reshape(-1, b.shape[-1])[:, :4] if b.size else np.zeros((0, 4), np.float32)
        if len(b) == 0:
            out.excluded += 1
            continue
        out.images.append(read_rgb(s.path))
        out.boxes.append(b)
        pids.append(s.pid)
        camids.append(s.camid)
        out.paths.append(s.path)
    out.pids = np.asarray(pids, np.int64)
    out.camids = np.asarray(camids, np.int64)
    return out


def cut_faces(
    crops: Crops,
    anonymizer=None,
    *,
    enlarge: float = 1.0,
    size: int = 24,
    batch_size: int = 256,
    progress: bool = False,
    desc: str = "cutting faces",
) -> FaceSet:
    """Anonymize each crop whole (``anonymizer(images, boxes, valid)``, e.g.
    :class:`reidlab.anonymize.Anonymizer`; None = original), then cut its largest box enlarged by
    ``enlarge`` and resize it to ``size x size`` (bilinear with antialiasing).

    Returns:
        a :class:`FaceSet`; a crop whose enlarged box covers no pixel of the image is excluded
        and counted in ``excluded`` (added to the crops' own ``excluded``).
    """
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    from reidlab.anonymize.masks import box_regions

    if not (isinstance(size, int) and size >= 4):
        raise ValueError(f"size must be an integer >= 4, got {size!r}")
    if not (isinstance(enlarge, (int, float)) and enlarge > 0 and np.isfinite(enlarge)):
        raise ValueError(f"enlarge must be a positive number, got {enlarge!r}")
    faces, keep = [], []
    order = list(batches_by_shape(crops.images, batch_size=batch_size))
    bar = tqdm(total=len(crops.images), desc=desc, disable=not progress, leave=False)
    with torch.no_grad():
        for idx in order:
            x = torch.from_numpy(np.stack([crops.images[i] for i in idx])).permute(0, 3, 1, 2)
            x = x.float().div_(255)
            padded, valid = pad_boxes([crops.boxes[i] for i in idx], dtype=torch.float32)
            if anonymizer is not None:
                x = anonymizer(x, padded, valid)
            _, _, h, w = x.shape
            for j, i in enumerate(idx):
                b = crops.boxes[i]
                area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
                big = torch.from_numpy(scale_boxes(b[int(np.argmax(area))], float(enlarge)))
                c0, r0, c1, r1 = box_regions(big, h, w).tolist()
                if c1 <= c0 or r1 <= r0:
                    continue
                region = x[j : j + 1, :, r0:r1, c0:c1]
                if region.shape[-2:] != (size, size):
                    region = F.interpolate(
                        region,
                        size=(size, size),
                        mode="bilinear",
                        antialias=True,
                        align_corners=False,
                    )
                faces.append(region.clamp_(0, 1))
                keep.append(i)
            bar.update(len(idx))
    bar.close()
    keep_arr = np.asarray(sorted(range(len(keep)), key=lambda k: keep[k]), np.int64)
    kept = [keep[k] for k in keep_arr]
    stacked = (
        torch.cat(faces)[torch.from_numpy(keep_arr)] if faces else torch.zeros(0, 3, size, size)
    )
    settings = {"enlarge": float(enlarge), "size": int(size)}
    if anonymizer is not None and hasattr(anonymizer, "settings"):
        settings["anonymizer"] = anonymizer.settings()
    return FaceSet(
        stacked,
        crops.pids[kept],
        crops.camids[kept],
        [crops.paths[i] for i in kept],
        crops.excluded + len(crops.images) - len(kept),
        settings,
    )
