"""Box geometry shared by face detection (numpy) and anonymization (torch).

A box is ``(x1, y1, x2, y2)`` in pixels, continuous coordinates (see :mod:`reidlab.anonymize.masks`
for how a box maps to pixels). Functions here accept numpy arrays or torch tensors of shape
``(..., >=4)`` and return the same kind; columns after the fourth (a score) pass through unchanged.
"""

from __future__ import annotations


def scale_boxes(boxes, factor):
    """Enlarge boxes about their centres by ``factor`` (a scalar, or an array/tensor broadcastable
    to ``boxes.shape[:-1]``); extra columns are kept.

    >>> import numpy as np
    >>> scale_boxes(np.array([[10., 10., 20., 30., 0.9]]), 2.0)
    array([[ 5. ,  0. , 25. , 40. ,  0.9]])
    """
    if hasattr(boxes, "detach"):  # torch
        import torch

        f = torch.as_tensor(factor, dtype=boxes.dtype, device=boxes.device)
        if f.ndim:
            f = f[..., None]
        c = (boxes[..., :2] + boxes[..., 2:4]) / 2
        half = (boxes[..., 2:4] - boxes[..., :2]) / 2 * f
        return torch.cat([c - half, c + half, boxes[..., 4:]], dim=-1)
    import numpy as np

    b = np.asarray(boxes)
    b = b if np.issubdtype(b.dtype, np.floating) else b.astype(np.float32)
    f = np.asarray(factor, dtype=b.dtype)
    if f.ndim:
        f = f[..., None]
    c = (b[..., :2] + b[..., 2:4]) / 2
    half = (b[..., 2:4] - b[..., :2]) / 2 * f
    return np.concatenate([c - half, c + half, b[..., 4:]], axis=-1)
