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


def pad_boxes(boxes, k: int | None = None, *, keep: str = "first", min_score=None, dtype=None):
    """Pad per-image boxes to one ``(B, K, 4)`` array plus a ``(B, K)`` bool validity mask.

    Args:
        boxes: a sequence of ``B`` arrays or tensors of shape ``(K_i, >=4)`` (a ``(4,)`` row or an
            empty array is fine); a fifth column is the score.
        k: ``K``, the number of rows per image; ``None`` = the most boxes any image has.
        keep: which boxes an image with more than ``k`` keeps: ``"first"`` (in the given order) or
            ``"largest"`` (by area; ties keep the given order).
        min_score: drop rows whose score (fifth column) is below it first (rows without a score
            are kept).
        dtype: the boxes' dtype; default float32, or float64 when any input is float64. A torch
            dtype gives torch results even for numpy (or no) inputs.

    Returns:
        ``(padded, valid)``: torch tensors (on the CPU) if any input is a tensor, else numpy
        arrays; padding rows are zeros with ``valid`` False. Only the first four columns are kept.

    >>> import numpy as np
    >>> b, v = pad_boxes([np.array([[0, 0, 2, 2, 0.9], [0, 0, 9, 9, 0.2]]), np.zeros((0, 5))],
    ...                  min_score=0.5)
    >>> b.shape, v.tolist()
    ((2, 1, 4), [[True], [False]])
    """
    import numpy as np

    if keep not in ("first", "largest"):
        raise ValueError(f"keep: expected 'first' or 'largest', got {keep!r}")
    use_torch = any(hasattr(b, "detach") for b in boxes) or "torch" in str(dtype)
    if use_torch:
        import torch

        rows = [torch.as_tensor(b).cpu() for b in boxes]
    else:
        rows = [np.asarray(b) for b in boxes]
    if dtype is None:
        f64 = any(str(r.dtype).endswith("float64") for r in rows)
        dtype = (
            (torch.float64 if f64 else torch.float32)
            if use_torch
            else (np.float64 if f64 else np.float32)
        )
    kept = []
    for i, r in enumerate(rows):
        numel = r.numel() if use_torch else r.size
        r = r.reshape(-1, r.shape[-1] if numel else 4)
        if r.shape[-1] < 4:
            raise ValueError(f"boxes[{i}]: expected shape (K, 4), got {tuple(r.shape)}")
        if min_score is not None and r.shape[-1] > 4:
            r = r[r[:, 4] >= min_score]
        if k is not None and len(r) > k:
            if keep == "largest":
                g = r.detach() if use_torch else r
                area = np.asarray((g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1]), dtype=np.float64)
                order = np.argsort(-area, kind="stable")[:k]
                r = r[torch.from_numpy(order)] if use_torch else r[order]
            else:
                r = r[:k]
        kept.append(r[:, :4])
    counts = np.array([len(r) for r in kept], dtype=np.int64)
    n = len(kept)
    kk = int(counts.max(initial=0)) if k is None else int(k)
    # one scatter for the whole batch instead of a small copy per image
    bi = np.repeat(np.arange(n), counts)
    ki = np.arange(len(bi)) - np.repeat(np.cumsum(counts) - counts, counts)
    if use_torch:
        out = torch.zeros(n, kk, 4, dtype=dtype)
        ok = torch.zeros(n, kk, dtype=torch.bool)
        if len(bi):
            bt, kt = torch.from_numpy(bi), torch.from_numpy(ki)
            out[bt, kt] = torch.cat([r.to(dtype) for r in kept])
            ok[bt, kt] = True
        return out, ok
    out = np.zeros((n, kk, 4), dtype=dtype)
    ok = np.zeros((n, kk), dtype=bool)
    if len(bi):
        out[bi, ki] = np.concatenate([r.astype(dtype, copy=False) for r in kept])
        ok[bi, ki] = True
    return out, ok
