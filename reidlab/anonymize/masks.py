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
* Masks of the ``K`` boxes of one image are combined with ``max``; rows marked invalid
  (``valid=False``, padding) contribute 0.

Fail closed: a box is privacy-relevant input, so a *valid* row that is not a usable box (NaN or
infinite coordinates, ``x2 < x1`` or ``y2 < y1``, a coordinate beyond :data:`MAX_COORD`) raises
``ValueError`` naming the image and the box (:func:`as_padded_boxes`, the single entry point of the
ops and :func:`box_masks`) instead of becoming an empty region that leaves the face visible. Likewise
``scale`` must be finite and > 0 and ``feather`` / ``feather_rel`` finite and >= 0
(:func:`check_mask_params`).

Segmentation masks (``mask="segmentation"``, :func:`segmentation_masks`): the mask of an image is a
given per-pixel face map (probabilities in ``[0, 1]``, or a binary map), thresholded at
``mask_threshold`` (``map >= threshold``) and dilated by ``mask_dilate`` pixels with a square
``(2d+1) x (2d+1)`` kernel (every pixel within ``d`` px in x and in y of a thresholded pixel; max
pooling, batched on the images' device). The result is binary; ``scale`` and the feathers do not
apply to it. A map smaller than the image (the detector's own resolution, e.g. reidface's 1/4) is
resized *bilinearly* (``align_corners=False``, what ``cv2.INTER_LINEAR`` does when enlarging, as
:meth:`reidlab.faces.reidface.ReidFaceDetector.soft_masks`) before the threshold; a map larger than
the image in either dimension is refused (shrinking would average thin face regions away).
Fail closed (:func:`anonymization_masks`): an image without a map (``None``), or whose map leaves
nothing above the threshold, gets the box mask of its boxes (``shape="box"``, with ``scale`` and
the feathers), e.g. the exporter's head-prior box, never silently nothing.

Box geometry (scaling, regions, mask values) is computed in float32, or float64 when the images or
the boxes are float64 (:func:`geometry_dtype`), whatever the image dtype: in bfloat16 a coordinate
like 100.4 would round to 100.5 and move the region edge by a pixel. Masks are cast to the image
dtype only where pixels are combined.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from reidlab.boxes import pad_boxes, scale_boxes

__all__ = [
    "DEFAULT_MASK_DILATE",
    "DEFAULT_MASK_THRESHOLD",
    "MASK_KINDS",
    "MASK_SHAPES",
    "MAX_COORD",
    "MAX_DILATE",
    "anonymization_masks",
    "as_padded_boxes",
    "box_masks",
    "box_regions",
    "check_boxes",
    "check_mask_params",
    "check_segmentation_params",
    "geometry_dtype",
    "mask_values",
    "scale_boxes",
    "segmentation_masks",
]

MASK_SHAPES = ("box", "ellipse")  # masks drawn from boxes
MASK_KINDS = (*MASK_SHAPES, "segmentation")  # every ``mask=`` the ops take

#: Defaults of ``mask="segmentation"``: on held-out Market-1501 identities, reidface's soft mask
#: thresholded at 0.02 and dilated 2 px holds 99.0% of the parsed face pixels (chosen on the tune
#: identities as the lowest over-blur with >= 98.5% coverage; research/reidface/RESULTS.md).
DEFAULT_MASK_THRESHOLD = 0.02
DEFAULT_MASK_DILATE = 2
MAX_DILATE = 64  # px; a larger dilation is a unit mistake on re-ID crops, not a face margin

#: Largest accepted ``|coordinate|`` of a valid box, in pixels. Real images are at most a few
#: 10^4 px on a side, so a coordinate beyond 10^6 is a detector or unit bug (normalised vs pixel
#: coordinates, an overflow), not a face. The bound also keeps the geometry exact enough: float32
#: resolves 1/16 px at 10^6 (so the ``x + 0.5`` pixel-centre tests stay right), and scaled boxes
#: stay far from the ``int64`` range of :func:`box_regions`.
MAX_COORD = 1e6


def geometry_dtype(*dtypes) -> torch.dtype:
    """The dtype box geometry is computed in: float64 if any of ``dtypes`` (torch or numpy dtypes,
    or ``None``) is float64, else float32 (never the half-precision dtype of the images)."""
    return (
        torch.float64
        if any(d is not None and str(d).endswith("float64") for d in dtypes)
        else torch.float32
    )


def _boxes_dtype(boxes) -> object:
    """A float64 dtype if ``boxes`` (tensor, array, or list of them) holds float64 values, else None."""
    if isinstance(boxes, (list, tuple)):
        return next(
            (d for d in (getattr(b, "dtype", None) for b in boxes) if str(d).endswith("float64")),
            None,
        )
    return getattr(boxes, "dtype", None)


def check_boxes(boxes: Tensor, ok: Tensor) -> None:
    """Raise ``ValueError`` if a valid row (``ok``) of ``boxes (B, K, 4)`` is not a usable box.

    Usable: every coordinate finite with ``|c| <= MAX_COORD``, ``x2 >= x1`` and ``y2 >= y1``
    (an empty box is allowed: it anonymizes nothing, like a box outside the image). Rows with
    ``ok == False`` (padding) are ignored. One fused check and a single host sync.
    """
    if boxes.numel() == 0:
        return
    # fast path, one sync: amax/amin propagate NaN, and NaN compares False
    g = boxes.detach().masked_fill(~ok[..., None], 0)
    if bool((g.abs().amax() <= MAX_COORD) & ((g[..., 2:4] - g[..., :2]).amin() >= 0)):
        return
    good = (boxes.abs() <= MAX_COORD).all(dim=-1)  # NaN compares False, +-inf > MAX_COORD
    good &= (boxes[..., 2] >= boxes[..., 0]) & (boxes[..., 3] >= boxes[..., 1])
    bad = ok & ~good
    if not bool(bad.any()):  # (cannot happen: the fast path is the same test)
        return
    i, k = (int(v) for v in bad.nonzero()[0])
    row = boxes[i, k].detach().cpu().double().tolist()
    if not all(math.isfinite(v) for v in row):
        why = "a coordinate is not finite"
    elif any(abs(v) > MAX_COORD for v in row):
        why = f"a coordinate lies beyond +-{MAX_COORD:g} px"
    else:
        why = "x2 < x1 or y2 < y1 (inverted box)"
    raise ValueError(
        f"boxes: image {i}, box {k} = {row} (x1, y1, x2, y2) is invalid: {why} "
        f"({int(bad.sum())} invalid box(es) in the batch); refusing to skip a face: "
        "fix the boxes or mark the row invalid"
    )


def _check_param(value, name: str, positive: bool) -> None:
    what = "> 0" if positive else ">= 0"
    if isinstance(value, (int, float)):
        if not (math.isfinite(value) and (value > 0 if positive else value >= 0)):
            raise ValueError(f"{name} must be finite and {what}, got {value}")
        return
    t = torch.as_tensor(value).detach()
    if not t.is_floating_point():
        t = t.double()
    if not bool((torch.isfinite(t) & ((t > 0) if positive else (t >= 0))).all()):
        raise ValueError(
            f"{name} must be finite and {what} (every element of a per-sample tensor), "
            f"got {t.tolist() if t.numel() <= 16 else t}"
        )


def check_mask_params(scale, feather, feather_rel) -> None:
    """Raise ``ValueError`` unless ``scale`` is finite and > 0 and ``feather``, ``feather_rel`` are
    finite and >= 0 (scalars, or every element of per-sample tensors): a zero or NaN scale, or an
    infinite feather, would silently anonymize nothing."""
    _check_param(scale, "scale", positive=True)
    _check_param(feather, "feather", positive=False)
    _check_param(feather_rel, "feather_rel", positive=False)


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
        device, dtype: where the result lives and its dtype, the geometry dtype (float32 or
            float64, see :func:`geometry_dtype`; never the images' half precision). Boxes on another
            device are *moved* to the image's device (they are small metadata; a DataLoader gives CPU
            boxes with GPU images).

    Raises:
        ValueError: wrong shapes, a batch size that differs from the images', or a valid row that
            is not a usable box (:func:`check_boxes`: non-finite, inverted, beyond ``MAX_COORD``).
    """
    if isinstance(boxes, (list, tuple)):
        if len(boxes) != batch_size:
            raise ValueError(f"boxes: got a list of {len(boxes)} box sets for {batch_size} images")
        out, ok = pad_boxes(
            [b if isinstance(b, Tensor) else torch.as_tensor(b) for b in boxes], dtype=dtype
        )
        out, ok = out.to(device), ok.to(device)
        check_boxes(out, ok)
        return out, ok
    if not isinstance(boxes, Tensor):
        raise TypeError(
            f"boxes: expected a (B, K, 4) tensor or a list of (K, 4) tensors, got {type(boxes)}"
        )
    if boxes.ndim != 3 or boxes.shape[-1] < 4 or boxes.shape[0] != batch_size:
        raise ValueError(f"boxes: expected shape ({batch_size}, K, 4), got {tuple(boxes.shape)}")
    b = boxes[..., :4].to(device=device, dtype=dtype)
    if valid is None:
        ok = torch.ones(b.shape[:2], device=device, dtype=torch.bool)
    else:
        if valid.shape != b.shape[:2]:
            raise ValueError(
                f"valid: expected shape {tuple(b.shape[:2])}, got {tuple(valid.shape)}"
            )
        ok = valid.to(device=device, dtype=torch.bool)
    check_boxes(b, ok)
    return b, ok


def box_regions(boxes: Tensor, height: int, width: int) -> Tensor:
    """Integer pixel regions ``(..., 4)`` = ``(c0, r0, c1, r1)`` (end-exclusive) of boxes ``(..., 4)``.

    A pixel is in the region when its centre lies in ``[x1, x2) x [y1, y2)``; regions are clipped
    to the ``height x width`` image (an empty region has ``c1 <= c0`` or ``r1 <= r0``).
    Coordinates are clamped to the image *before* the integer conversion, so huge or infinite
    values cannot overflow ``int64`` (``+inf`` reaches the far edge, ``-inf`` the near one); NaN,
    which :func:`as_padded_boxes` never lets through for a valid box, maps to 0.
    """
    lo = torch.ceil(boxes[..., :2].detach() - 0.5)
    hi = torch.ceil(boxes[..., 2:4].detach() - 0.5)
    lim = torch.tensor([width, height], device=boxes.device, dtype=boxes.dtype)
    lo = torch.minimum(torch.nan_to_num(lo, nan=0.0).clamp(min=0), lim)
    hi = torch.minimum(torch.nan_to_num(hi, nan=0.0).clamp(min=0), lim)
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
        raise ValueError(
            f"per-sample parameter: expected a scalar or shape ({b},), got {tuple(t.shape)}"
        )
    return t[:, None].expand(b, k)


def feather_px(
    boxes_scaled: Tensor, feather: float | Tensor, feather_rel: float | Tensor
) -> Tensor:
    """Feather width in pixels per box ``(B, K)``: ``feather + feather_rel * shorter side``."""
    b, k = boxes_scaled.shape[:2]
    side = torch.minimum(
        boxes_scaled[..., 2] - boxes_scaled[..., 0], boxes_scaled[..., 3] - boxes_scaled[..., 1]
    )
    return _per_box(feather, b, k, boxes_scaled) + _per_box(
        feather_rel, b, k, boxes_scaled
    ) * side.clamp(min=0)


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
        :math:`(B, 1, H, W)` float in ``[0, 1]`` (dtype of float ``boxes``, else float32; computed in
        float32 or float64, see :func:`geometry_dtype`), zero outside every box region.

    Raises:
        ValueError: unknown ``shape``, wrong tensor shapes, an invalid valid box
            (:func:`check_boxes`), ``scale <= 0``, negative ``feather`` or non-finite parameters.

    Example:
        >>> m = box_masks(torch.tensor([[[1., 1., 3., 2.]]]), None, (3, 4))
        >>> m[0, 0]
        tensor([[0., 0., 0., 0.],
                [0., 1., 1., 0.],
                [0., 0., 0., 0.]])
    """
    if shape not in MASK_SHAPES:
        raise ValueError(f"mask shape: expected one of {MASK_SHAPES}, got {shape!r}")
    check_mask_params(scale, feather, feather_rel)
    h, w = size
    ref = (
        boxes
        if isinstance(boxes, Tensor)
        else torch.as_tensor(boxes[0])
        if len(boxes)
        else torch.zeros(0)
    )
    dtype = ref.dtype if ref.is_floating_point() else torch.float32
    n = boxes.shape[0] if isinstance(boxes, Tensor) else len(boxes)
    bx, ok = as_padded_boxes(boxes, valid, n, ref.device, geometry_dtype(_boxes_dtype(boxes)))
    if bx.shape[1] == 0:
        return torch.zeros(n, 1, h, w, device=bx.device, dtype=dtype)
    k = bx.shape[1]
    sb = scale_boxes(bx, _per_box(scale, n, k, bx))
    f = feather_px(sb, feather, feather_rel)
    ys = torch.arange(h, device=bx.device)[None, None, :, None]
    xs = torch.arange(w, device=bx.device)[None, None, None, :]
    m = mask_values(xs, ys, sb[:, :, None, None, :], shape, f[:, :, None, None])
    m = torch.where(ok[:, :, None, None], m, torch.zeros_like(m))
    return m.amax(dim=1, keepdim=True).to(dtype)


def _one_map(m, i: int, device, dtype) -> Tensor:
    """Image ``i``'s face map as a float ``(h, w)`` tensor in [0, 1] (bool/integer maps: binary)."""
    t = m if isinstance(m, Tensor) else torch.as_tensor(np.asarray(m))
    t = t.detach().to(device)
    if t.ndim == 3 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 2 or t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(
            f"face_maps: image {i}: expected an (h, w) map, got shape {tuple(t.shape)}"
        )
    if t.dtype == torch.bool:
        return t.to(dtype)
    if not t.is_floating_point():
        if bool(((t != 0) & (t != 1)).any()):
            raise ValueError(
                f"face_maps: image {i}: an integer map must be binary (0/1), got values up to "
                f"{int(t.max())}; give probabilities as floats in [0, 1] (cached uint8 maps are "
                "decoded by reidlab.faces.cache)"
            )
        return t.to(dtype)
    t = t.to(dtype)
    if not bool(((t >= 0) & (t <= 1)).all()):  # NaN compares False
        raise ValueError(
            f"face_maps: image {i}: probabilities must be finite and in [0, 1] "
            f"(min {float(t.min())}, max {float(t.max())}); refusing to guess which pixels are face"
        )
    return t


def _fit(t: Tensor, size: tuple[int, int], i: int) -> Tensor:
    """``t (h, w)`` at the image size: bilinear upsampling, or the map itself (see module doc)."""
    h, w = size
    if tuple(t.shape) == (h, w):
        return t
    if t.shape[0] > h or t.shape[1] > w:
        raise ValueError(
            f"face_maps: image {i}: map of {tuple(t.shape)} is larger than the {h}x{w} image; "
            "give it at the image size or smaller (it is enlarged bilinearly, never shrunk)"
        )
    import torch.nn.functional as F

    return F.interpolate(t[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]


def segmentation_masks(
    face_maps,
    size: tuple[int, int],
    threshold: float = DEFAULT_MASK_THRESHOLD,
    dilate: int = DEFAULT_MASK_DILATE,
    *,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    r"""Binary masks from per-pixel face maps: ``map >= threshold``, dilated by ``dilate`` px.

    Args:
        face_maps: :math:`(B, h, w)` or :math:`(B, 1, h, w)` tensor/array, or a sequence of ``B``
            maps :math:`(h_i, w_i)` (tensors or arrays; ``None`` = no map for that image). Floats
            are probabilities in ``[0, 1]``; bool or 0/1 integer maps are binary. A map smaller
            than ``size`` is enlarged bilinearly; a larger one is refused (module docstring).
        size: ``(H, W)`` of the images.
        threshold: a pixel is face when its (resized) map value is ``>= threshold``, in (0, 1].
        dilate: square dilation radius in pixels (0 = none), at most :data:`MAX_DILATE`.
        batch_size: ``B`` (required only when ``face_maps`` is ``None``).
        device, dtype: of the result.

    Returns:
        ``(masks, have)``: :math:`(B, 1, H, W)` in ``{0, 1}`` (zero for images without a map) and
        :math:`(B,)` bool, whether the image had a map.

    Raises:
        ValueError: a bad threshold or dilation, a map of the wrong shape or larger than the image,
            non-finite or out-of-range probabilities, a non-binary integer map, a wrong count.

    Example:
        >>> m = torch.zeros(1, 5, 5); m[0, 2, 2] = 0.5
        >>> segmentation_masks(m, (5, 5), threshold=0.1, dilate=1)[0][0, 0].int()
        tensor([[0, 0, 0, 0, 0],
                [0, 1, 1, 1, 0],
                [0, 1, 1, 1, 0],
                [0, 1, 1, 1, 0],
                [0, 0, 0, 0, 0]], dtype=torch.int32)
    """
    check_segmentation_params(threshold, dilate)
    h, w = size
    if face_maps is None:
        if batch_size is None:
            raise ValueError("segmentation_masks: face_maps is None and batch_size not given")
        dev = torch.device(device) if device is not None else torch.device("cpu")
        return torch.zeros(batch_size, 1, h, w, device=dev, dtype=dtype), torch.zeros(
            batch_size, dtype=torch.bool, device=dev
        )
    if isinstance(face_maps, (Tensor, np.ndarray)):
        fm = face_maps
        if fm.ndim == 4:
            if fm.shape[1] != 1:
                raise ValueError(
                    f"face_maps: expected (B, 1, h, w) or (B, h, w), got {tuple(fm.shape)}"
                )
            fm = fm[:, 0]
        if fm.ndim != 3:
            raise ValueError(
                f"face_maps: expected (B, 1, h, w) or (B, h, w), got {tuple(fm.shape)}"
            )
        face_maps = list(fm)
    if batch_size is not None and len(face_maps) != batch_size:
        raise ValueError(f"face_maps: got {len(face_maps)} maps for {batch_size} images")
    if device is None:
        device = next((m.device for m in face_maps if isinstance(m, Tensor)), torch.device("cpu"))
    n = len(face_maps)
    out = torch.zeros(n, 1, h, w, device=device, dtype=dtype)
    have = torch.zeros(n, dtype=torch.bool, device=device)
    for i, m in enumerate(face_maps):  # per map: maps of one batch may come at different sizes
        if m is None:
            continue
        out[i, 0] = _fit(_one_map(m, i, device, dtype), size, i)
        have[i] = True
    out = (out >= threshold).to(dtype)
    if dilate > 0:
        import torch.nn.functional as F

        # binary dilation with a square kernel = max pooling (stride 1, the implicit -inf padding
        # keeps the border exact); batched on the maps' device, where kornia.morphology.dilation
        # would build the same max over an explicit structuring element
        d = int(dilate)
        out = F.max_pool2d(out, 2 * d + 1, stride=1, padding=d)
    return out * have[:, None, None, None].to(dtype), have


def check_segmentation_params(threshold, dilate) -> None:
    """Raise ``ValueError`` unless ``threshold`` is in (0, 1] and ``dilate`` an int in
    ``[0, MAX_DILATE]`` (a threshold of 0 would anonymize the whole image, one above 1 nothing)."""
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"mask_threshold must be a number in (0, 1], got {threshold!r}")
    if not (0 < float(threshold) <= 1):
        raise ValueError(f"mask_threshold must be in (0, 1], got {threshold}")
    if (
        isinstance(dilate, bool)
        or not isinstance(dilate, numbers.Real)
        or not math.isfinite(dilate)
        or int(dilate) != dilate
        or not 0 <= dilate <= MAX_DILATE
    ):
        raise ValueError(f"mask_dilate must be an integer in [0, {MAX_DILATE}] px, got {dilate!r}")


def anonymization_masks(
    boxes: Tensor | Sequence[Tensor],
    valid: Tensor | None,
    size: tuple[int, int],
    mask: str = "box",
    scale: float | Tensor = 1.0,
    feather: float | Tensor = 0.0,
    feather_rel: float | Tensor = 0.0,
    face_maps=None,
    mask_threshold: float = DEFAULT_MASK_THRESHOLD,
    mask_dilate: int = DEFAULT_MASK_DILATE,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    r"""The mask every op anonymizes through, for any ``mask`` kind: :math:`(B, 1, H, W)` in
    ``[0, 1]``; pixels with mask 0 are left bit-identical by the ops.

    ``"box"`` / ``"ellipse"``: :func:`box_masks`. ``"segmentation"``: :func:`segmentation_masks`
    of ``face_maps``; an image without a map, or whose map has nothing above the threshold, gets
    the ``"box"`` mask of its boxes (fail closed). The ops' engine and the pixel measurement
    (:mod:`reidlab.faces.measure`) both call this function.
    """
    if mask not in MASK_KINDS:
        raise ValueError(f"mask: expected one of {MASK_KINDS}, got {mask!r}")
    geo = box_masks(
        boxes, valid, size, "box" if mask == "segmentation" else mask, scale, feather, feather_rel
    )
    if device is not None:
        geo = geo.to(device)
    if dtype is not None:
        geo = geo.to(dtype)
    if mask != "segmentation":
        return geo
    seg, have = segmentation_masks(
        face_maps,
        size,
        mask_threshold,
        mask_dilate,
        batch_size=geo.shape[0],
        device=geo.device,
        dtype=geo.dtype,
    )
    use = have & (seg.flatten(1) > 0).any(dim=1)
    return torch.where(use[:, None, None, None], seg, geo)
