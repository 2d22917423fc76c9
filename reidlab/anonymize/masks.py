"""Face masks from boxes: box or ellipse, enlarged about the centre, optionally feathered.

Conventions shared by every op in :mod:`reidlab.anonymize`:

* A box is ``(x1, y1, x2, y2)`` in pixels of its image, continuous coordinates: pixel
  ``(row y, col x)`` covers ``[x, x+1) x [y, y+1)`` and has its centre at ``(x+0.5, y+0.5)``.
* ``scale`` enlarges the box about its centre (``1.2`` = 20% wider and taller).
* The *region* of a (scaled) box is the rectangle of pixels whose centres lie in
  ``[x1, x2) x [y1, y2)``, clipped to the image. Every mask is zero outside the region of its box,
  so an anonymization never changes a pixel outside the regions.
* ``feather`` (pixels) softens the edge *inwards*: the mask rises linearly from 0 at the region
  edge to 1 at ``feather`` pixels inside it, so the soft edge never spills out of the box.
  ``feather_rel`` adds a feather relative to the shorter side of the scaled box.
* Masks of the ``K`` boxes of one image are combined with ``max``; invalid boxes contribute 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "MASK_SHAPES",
    "as_padded_boxes",
    "box_masks",
    "box_regions",
    "mask_values",
    "scale_boxes",
]

MASK_SHAPES = ("box", "ellipse")


def as_padded_boxes(
    boxes: Tensor | Sequence[Tensor],
    valid: Tensor | None,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[Tensor, Tensor]:
    """Normalise boxes to a padded ``(B, K, 4)`` tensor plus a ``(B, K)`` bool validity mask.

    Args:
        boxes: ``(B, K, 4)`` tensor, or a list of ``B`` tensors/arrays of shape ``(K_i, 4)``
            (extra columns, e.g. a score, are ignored).
        valid: ``(B, K)`` bool, or ``None`` (all rows valid; ignored for a list).
        batch_size: ``B``, the number of images.
        device, dtype: where the result lives. Boxes on another device are *moved* to the
            image's device (they are small metadata; a DataLoader gives CPU boxes with GPU images).

    Raises:
        ValueError: wrong shapes or a batch size that differs from the images'.
    """
    if isinstance(boxes, (list, tuple)):
        if len(boxes) != batch_size:
            raise ValueError(f"boxes: got a list of {len(boxes)} box sets for {batch_size} images")
        rows = []
        for i, b in enumerate(boxes):
            t = torch.as_tensor(b)
            t = t.reshape(-1, t.shape[-1] if t.numel() else 4)
            if t.shape[-1] < 4:
                raise ValueError(f"boxes[{i}]: expected shape (K, 4), got {tuple(t.shape)}")
            rows.append(t[:, :4].to(dtype=dtype))
        counts = torch.tensor([len(t) for t in rows])
        k = int(counts.max()) if len(rows) else 0
        out = torch.zeros(batch_size, k, 4, dtype=dtype)
        ok = torch.zeros(batch_size, k, dtype=torch.bool)
        if k:
            # one scatter for the whole batch instead of a small copy per image
            bi = torch.repeat_interleave(torch.arange(batch_size), counts)
            ki = torch.arange(len(bi)) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
            out[bi, ki] = torch.cat([t.cpu() for t in rows])
            ok[bi, ki] = True
        out, ok = out.to(device), ok.to(device)
        return out, ok
    if not isinstance(boxes, Tensor):
        raise TypeError(f"boxes: expected a (B, K, 4) tensor or a list of (K, 4) tensors, got {type(boxes)}")
    if boxes.ndim != 3 or boxes.shape[-1] < 4 or boxes.shape[0] != batch_size:
        raise ValueError(f"boxes: expected shape ({batch_size}, K, 4), got {tuple(boxes.shape)}")
    b = boxes[..., :4].to(device=device, dtype=dtype)
    if valid is None:
        ok = torch.ones(b.shape[:2], device=device, dtype=torch.bool)
    else:
        if valid.shape != b.shape[:2]:
            raise ValueError(f"valid: expected shape {tuple(b.shape[:2])}, got {tuple(valid.shape)}")
        ok = valid.to(device=device, dtype=torch.bool)
    return b, ok


def scale_boxes(boxes: Tensor, scale: float | Tensor = 1.0) -> Tensor:
    """Enlarge boxes ``(..., 4)`` about their centres by ``scale`` (scalar or broadcastable to ``(...)``).

    Example:
        >>> scale_boxes(torch.tensor([[10., 10., 20., 30.]]), 2.0)
        tensor([[ 5.,  0., 25., 40.]])
    """
    s = torch.as_tensor(scale, dtype=boxes.dtype, device=boxes.device)
    if s.ndim:
        s = s[..., None]
    c = (boxes[..., :2] + boxes[..., 2:4]) / 2
    half = (boxes[..., 2:4] - boxes[..., :2]) / 2 * s
    return torch.cat([c - half, c + half], dim=-1)


def box_regions(boxes: Tensor, height: int, width: int) -> Tensor:
    """Integer pixel regions ``(..., 4)`` = ``(c0, r0, c1, r1)`` (end-exclusive) of boxes ``(..., 4)``.

    A pixel is in the region when its centre lies in ``[x1, x2) x [y1, y2)``; regions are clipped
    to the ``height x width`` image (an empty region has ``c1 <= c0`` or ``r1 <= r0``).
    """
    lo = torch.ceil(boxes[..., :2].detach() - 0.5)
    hi = torch.ceil(boxes[..., 2:4].detach() - 0.5)
    lim = torch.tensor([width, height], device=boxes.device, dtype=boxes.dtype)
    lo = torch.minimum(lo.clamp(min=0), lim)
    hi = torch.minimum(hi.clamp(min=0), lim)
    return torch.cat([lo, hi], dim=-1).long()


def mask_values(
    x: Tensor,
    y: Tensor,
    boxes: Tensor,
    shape: str = "box",
    feather: Tensor | float = 0.0,
) -> Tensor:
    """Mask value of pixel columns ``x`` and rows ``y`` (integer pixel indices, broadcastable)
    for already-scaled ``boxes`` ``(..., 4)`` broadcast against them; ``feather`` in pixels.

    This is the one place the mask formula lives; :func:`box_masks` and the patch-wise ops both
    call it, so full-image masks and the ops' compositing agree exactly.
    """
    if shape not in MASK_SHAPES:
        raise ValueError(f"mask shape: expected one of {MASK_SHAPES}, got {shape!r}")
    cx = x.to(boxes.dtype) + 0.5
    cy = y.to(boxes.dtype) + 0.5
    x1, y1, x2, y2 = boxes.unbind(-1)
    inside = (cx >= x1) & (cx < x2) & (cy >= y1) & (cy < y2)
    if shape == "box":
        dist = torch.minimum(torch.minimum(cx - x1, x2 - cx), torch.minimum(cy - y1, y2 - cy))
    else:
        a = ((x2 - x1) / 2).clamp(min=1e-6)
        b = ((y2 - y1) / 2).clamp(min=1e-6)
        r = torch.sqrt(((cx - (x1 + x2) / 2) / a) ** 2 + ((cy - (y1 + y2) / 2) / b) ** 2)
        inside = inside & (r < 1)
        # distance to the ellipse edge, approximated along the shorter semi-axis
        dist = (1 - r) * torch.minimum(a, b)
    f = torch.as_tensor(feather, dtype=boxes.dtype, device=boxes.device)
    soft = (dist / f.clamp(min=1e-12)).clamp(0, 1)
    m = torch.where(f > 0, soft, torch.ones_like(soft))
    return torch.where(inside, m, torch.zeros_like(m))


def _per_box(value, b: int, k: int, ref: Tensor) -> Tensor:
    """A scalar or per-sample ``(B,)`` parameter as a ``(B, K)`` tensor."""
    t = torch.as_tensor(value, dtype=ref.dtype, device=ref.device)
    if t.ndim == 0:
        return t.expand(b, k)
    if t.shape != (b,):
        raise ValueError(f"per-sample parameter: expected a scalar or shape ({b},), got {tuple(t.shape)}")
    return t[:, None].expand(b, k)


def feather_px(boxes_scaled: Tensor, feather: float | Tensor, feather_rel: float | Tensor) -> Tensor:
    """Feather width in pixels per box ``(B, K)``: ``feather + feather_rel * shorter side``."""
    b, k = boxes_scaled.shape[:2]
    side = torch.minimum(boxes_scaled[..., 2] - boxes_scaled[..., 0], boxes_scaled[..., 3] - boxes_scaled[..., 1])
    return _per_box(feather, b, k, boxes_scaled) + _per_box(feather_rel, b, k, boxes_scaled) * side.clamp(min=0)


def box_masks(
    boxes: Tensor | Sequence[Tensor],
    valid: Tensor | None,
    size: tuple[int, int],
    shape: str = "box",
    scale: float | Tensor = 1.0,
    feather: float | Tensor = 0.0,
    feather_rel: float | Tensor = 0.0,
) -> Tensor:
    r"""Soft masks of face boxes, combined over the boxes of each image with ``max``.

    Args:
        boxes: :math:`(B, K, 4)` ``x1, y1, x2, y2`` in pixels, or a list of :math:`(K_i, 4)`.
        valid: :math:`(B, K)` bool, or ``None`` for all valid.
        size: ``(H, W)`` of the images.
        shape: ``"box"`` or ``"ellipse"`` (inscribed in the scaled box).
        scale: enlargement about the box centre, scalar or :math:`(B,)`.
        feather: soft-edge width in pixels (inwards), scalar or :math:`(B,)`; 0 = hard edge.
        feather_rel: extra soft-edge width relative to the scaled box's shorter side.

    Returns:
        :math:`(B, 1, H, W)` float in ``[0, 1]`` (dtype of float ``boxes``, else float32), zero
        outside every box region.

    Raises:
        ValueError: unknown ``shape`` or wrong tensor shapes.

    Example:
        >>> m = box_masks(torch.tensor([[[1., 1., 3., 2.]]]), None, (3, 4))
        >>> m[0, 0]
        tensor([[0., 0., 0., 0.],
                [0., 1., 1., 0.],
                [0., 0., 0., 0.]])
    """
    h, w = size
    ref = boxes if isinstance(boxes, Tensor) else torch.as_tensor(boxes[0]) if len(boxes) else torch.zeros(0)
    dtype = ref.dtype if ref.is_floating_point() else torch.float32
    n = boxes.shape[0] if isinstance(boxes, Tensor) else len(boxes)
    bx, ok = as_padded_boxes(boxes, valid, n, ref.device, dtype)
    if bx.shape[1] == 0:
        return torch.zeros(n, 1, h, w, device=bx.device, dtype=dtype)
    k = bx.shape[1]
    sb = scale_boxes(bx, _per_box(scale, n, k, bx))
    f = feather_px(sb, feather, feather_rel)
    ys = torch.arange(h, device=bx.device)[None, None, :, None]
    xs = torch.arange(w, device=bx.device)[None, None, None, :]
    m = mask_values(xs, ys, sb[:, :, None, None, :], shape, f[:, :, None, None])
    m = torch.where(ok[:, :, None, None], m, torch.zeros_like(m))
    return m.amax(dim=1, keepdim=True)
