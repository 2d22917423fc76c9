"""Face anonymization: batched differentiable ops (Kornia-based), an ``nn.Module`` for on-the-fly
use in data loading, and the dataset exporter (:mod:`reidlab.anonymize.export`, imported lazily).

>>> import torch
>>> from reidlab.anonymize import Anonymizer
>>> anon = Anonymizer("blur", mask="ellipse", scale=1.2)
>>> x = torch.rand(4, 3, 128, 64)
>>> boxes = torch.tensor([[26., 4., 38., 20.]]).expand(4, 1, 4)
>>> anon(x, boxes, torch.ones(4, 1, dtype=torch.bool)).shape
torch.Size([4, 3, 128, 64])
"""

from reidlab.anonymize.masks import box_masks, scale_boxes
from reidlab.anonymize.module import METHODS, Anonymizer
from reidlab.anonymize.ops import blur_faces, composite, fill_faces, pixelate_faces, zero_faces

__all__ = [
    "METHODS",
    "Anonymizer",
    "blur_faces",
    "box_masks",
    "composite",
    "fill_faces",
    "pixelate_faces",
    "scale_boxes",
    "zero_faces",
]
