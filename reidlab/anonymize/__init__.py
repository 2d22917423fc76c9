"""Face anonymization: batched differentiable ops (Kornia-based), an ``nn.Module`` for on-the-fly
use in data loading, the method registry every front end derives from
(:mod:`reidlab.anonymize.methods`), and the dataset exporter (:mod:`reidlab.anonymize.export`,
imported lazily).

>>> import torch
>>> from reidlab.anonymize import Anonymizer
>>> anon = Anonymizer("blur", mask="ellipse", scale=1.2)
>>> x = torch.rand(4, 3, 128, 64)
>>> boxes = torch.tensor([[26., 4., 38., 20.]]).expand(4, 1, 4)
>>> anon(x, boxes, torch.ones(4, 1, dtype=torch.bool)).shape
torch.Size([4, 3, 128, 64])
"""

from reidlab.anonymize.masks import (
    anonymization_masks,
    box_masks,
    scale_boxes,
    segmentation_masks,
)
from reidlab.anonymize.methods import (
    COMMON_PARAMS,
    METHODS,
    Method,
    available_methods,
    get_method,
    register_method,
    unregister_method,
)
from reidlab.anonymize.module import Anonymizer
from reidlab.anonymize.ops import (
    blur_faces,
    composite,
    fill_faces,
    map_faces,
    pixelate_faces,
    zero_faces,
)

__all__ = [
    "COMMON_PARAMS",
    "METHODS",
    "Anonymizer",
    "Method",
    "anonymization_masks",
    "available_methods",
    "blur_faces",
    "box_masks",
    "composite",
    "fill_faces",
    "get_method",
    "map_faces",
    "pixelate_faces",
    "register_method",
    "scale_boxes",
    "segmentation_masks",
    "unregister_method",
    "zero_faces",
]
