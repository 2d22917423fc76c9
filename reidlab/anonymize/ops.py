r"""Batched, differentiable face anonymization ops on ``(B, C, H, W)`` float images in ``[0, 1]``.

Every op takes per-sample face boxes ``(B, K, 4)`` (``x1, y1, x2, y2`` in pixels of that image)
with a validity mask ``(B, K)`` (or a list of ``(K_i, 4)`` tensors), anonymizes the region of
each (scaled) box, and composites through the box's mask (:mod:`reidlab.anonymize.masks`):
``out = img * (1 - m) + anon * m`` where ``m > 0``, and *the input pixel itself* elsewhere, so
pixels outside the masks are bit-identical to the input.

How the ops work (windows around the boxes only, per-box operator matrices, no per-box Python
loop) and why they are fast: :mod:`reidlab.anonymize.engine`. The operator matrices of blur and
pixelation: :mod:`reidlab.anonymize.operators`. Which ops the :class:`~reidlab.anonymize.Anonymizer`
offers, with their settings: :mod:`reidlab.anonymize.methods`.

``mask="segmentation"`` anonymizes exactly the pixels of a per-pixel face map (thresholded and
dilated, :func:`reidlab.anonymize.masks.segmentation_masks`) through the same windows and blend:
each image's window is the bounding box of its mask.

Input policy (same for every op):
    * ``images`` must be floating point; ``uint8`` is *rejected* (TypeError) rather than silently
      converted, because the [0, 1] scale is part of the contract (``images.float() / 255``).
    * boxes on another device than the images are *moved* to the images' device.
    * scalar parameters may be per-sample tensors of shape ``(B,)``.
    * overlapping boxes of one image: the region pixel is written once, from the lowest-index box
      whose region contains it, composited with the max of all masks of the image.
    * nothing to anonymize (``K = 0``, all boxes marked invalid or outside the image): the input
      tensor itself is returned.
    * fail closed: a box marked valid that is not a usable box (NaN/inf coordinates, ``x2 < x1``,
      beyond ``masks.MAX_COORD``), ``scale <= 0``, a negative feather, or a non-finite parameter
      raises ``ValueError`` instead of silently anonymizing nothing.
    * box geometry is computed in float32 (float64 for float64 images or boxes) whatever the image
      dtype, so bfloat16/float16 images get exactly the regions float32 images get; masks are cast
      to the image dtype only for the blend.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from reidlab.anonymize.engine import (
    Boxes,
    _apply_linear,
    _cached,
    _gather,
    _per_patch,
    _scatter,
    _shared_operator,
)
from reidlab.anonymize.masks import DEFAULT_MASK_DILATE, DEFAULT_MASK_THRESHOLD, _check_param
from reidlab.anonymize.operators import _blur_matrices, _pixelate_matrices

__all__ = [
    "FILL_MODES",
    "blur_faces",
    "composite",
    "fill_faces",
    "map_faces",
    "pixelate_faces",
    "zero_faces",
]

FILL_MODES = ("constant", "mean", "noise", "zero")


def composite(images: Tensor, anon: Tensor, mask: Tensor) -> Tensor:
    r"""Blend ``anon`` into ``images`` through ``mask``, leaving ``mask == 0`` pixels bit-identical.

    Args:
        images: :math:`(B, C, H, W)`.
        anon: :math:`(B, C, H, W)` the anonymized version.
        mask: :math:`(B, 1, H, W)` in ``[0, 1]``.

    Returns:
        :math:`(B, C, H, W)`: ``images * (1 - mask) + anon * mask`` where ``mask > 0``, else ``images``.

    Example:
        >>> x = torch.rand(1, 3, 4, 4); m = torch.zeros(1, 1, 4, 4); m[..., 1:3, 1:3] = 1
        >>> y = composite(x, torch.zeros_like(x), m)
        >>> bool((y[..., 0, :] == x[..., 0, :]).all()), float(y[..., 1:3, 1:3].abs().sum())
        (True, 0.0)
    """
    return torch.where(mask > 0, images * (1 - mask) + anon * mask, images)


def blur_faces(
    images: Tensor,
    boxes: Boxes,
    valid: Tensor | None = None,
    sigma_rel: float | Tensor = 0.2,
    sigma: float | Tensor | None = None,
    mask: str = "box",
    scale: float | Tensor = 1.0,
    feather: float | Tensor = 0.0,
    feather_rel: float | Tensor = 0.0,
    truncate: float = 3.0,
    inplace: bool = False,
    face_maps=None,
    mask_threshold: float = DEFAULT_MASK_THRESHOLD,
    mask_dilate: int = DEFAULT_MASK_DILATE,
) -> Tensor:
    r"""Gaussian-blur the face boxes, with a blur strength relative to each face's size.

    Each (scaled, clipped) box region is blurred as an independent image with reflect-101 borders
    (OpenCV's default; no background mixes into the face) by a Gaussian of standard deviation
    ``sigma_rel * box height`` (the height of the box *as given*, before ``scale``), so a 10 px
    Market1501 face and a 40 px face elsewhere are blurred alike; or by the absolute ``sigma``
    when given. Kernel radius ``ceil(truncate * max sigma)`` (shared; per-box kernels are Kornia's
    normalised Gaussians over that window).

    Args:
        images: :math:`(B, C, H, W)` float in ``[0, 1]``, any device.
        boxes: :math:`(B, K, 4)` ``x1, y1, x2, y2`` in pixels, or a list of :math:`(K_i, 4)`.
        valid: :math:`(B, K)` bool, ``None`` = all valid.
        sigma_rel: blur std relative to the box height, scalar or :math:`(B,)`; differentiable.
        sigma: absolute blur std in pixels (overrides ``sigma_rel``), scalar or :math:`(B,)`.
        mask: ``"box"``, ``"ellipse"``, or ``"segmentation"`` (the pixels of ``face_maps``; see
            :mod:`reidlab.anonymize.masks`).
        scale: box enlargement about its centre, scalar or :math:`(B,)`.
        feather: soft mask edge in pixels (inwards), scalar or :math:`(B,)`.
        feather_rel: soft edge relative to the scaled box's shorter side.
        truncate: kernel radius in sigmas.
        inplace: write into ``images`` instead of a copy (for data loading without autograd).
        face_maps: for ``mask="segmentation"``: per-pixel face maps, :math:`(B, h, w)` or a list
            of ``B`` maps (``None`` = none for that image), probabilities in ``[0, 1]`` or binary;
            enlarged bilinearly to the image size when smaller. An image without a map, or whose
            map has nothing above ``mask_threshold``, gets its boxes' mask (fail closed).
        mask_threshold: a map pixel is face when ``>= mask_threshold`` (segmentation only).
        mask_dilate: dilate the thresholded map by this many pixels, square kernel (segmentation
            only). In segmentation mode each image's region is the bounding box of its mask, and
            ``sigma_rel`` is relative to that region's height.

    Returns:
        :math:`(B, C, H, W)`, same dtype and device; pixels outside the masks bit-identical.

    Raises:
        TypeError: ``images`` is not a floating-point tensor (uint8 is rejected).
        ValueError: wrong shapes, unknown ``mask``, non-positive or non-finite sigma / sigma_rel,
            an invalid box marked valid, ``scale <= 0``, negative ``feather``.

    Example:
        >>> x = torch.rand(2, 3, 128, 64)
        >>> b = torch.tensor([[[26., 4., 38., 20.]], [[20., 10., 32., 26.]]])
        >>> y = blur_faces(x, b, torch.ones(2, 1, dtype=torch.bool), sigma_rel=0.2)
        >>> y.shape, bool((y[:, :, 30:] == x[:, :, 30:]).all())
        (torch.Size([2, 3, 128, 64]), True)
    """
    _check_param(
        sigma if sigma is not None else sigma_rel,
        "sigma" if sigma is not None else "sigma_rel",
        True,
    )
    p = _gather(
        images,
        boxes,
        valid,
        mask,
        scale,
        feather,
        feather_rel,
        inplace,
        face_maps,
        mask_threshold,
        mask_dilate,
    )
    if p is None:
        return images
    if sigma is not None:
        s = _per_patch(sigma, p, images, "sigma")
    else:  # heights from the float32/64 geometry, then the image dtype (the operators' dtype)
        s = (_per_patch(sigma_rel, p, images, "sigma_rel") * (p.boxes[:, 3] - p.boxes[:, 1])).to(
            images.dtype
        )
    sd = s.detach()
    if bool(((sd <= 0) | ~torch.isfinite(sd)).any()):
        raise ValueError(
            "blur sigma must be finite and > 0 (check sigma / sigma_rel and the box heights)"
        )
    s = s.clamp(min=1e-2)
    radius = max(1, math.ceil(truncate * float(s.detach().max())))
    _, hp, _, wp = p.shape
    if _shared_operator(p, s):  # one pair of matrices for every box (no autograd through them)
        s0 = s.detach()[:1]
        one = torch.zeros(1, dtype=torch.long, device=s.device)
        rmat, cmat = _cached(
            ("blur", hp, wp, radius, float(s0), s.dtype, s.device),
            lambda: (
                _blur_matrices(one + hp, one, s0, hp, radius)[0],
                _blur_matrices(one + wp, one, s0, wp, radius)[0],
            ),
        )
        anon = _apply_linear(p, rmat, cmat)
    else:
        anon = _apply_linear(
            p,
            _blur_matrices(p.heights, p.oy, s, hp, radius),
            _blur_matrices(p.widths, p.ox, s, wp, radius),
        )
    return _scatter(p, anon)


def pixelate_faces(
    images: Tensor,
    boxes: Boxes,
    valid: Tensor | None = None,
    blocks: int | Tensor = 4,
    mask: str = "box",
    scale: float | Tensor = 1.0,
    feather: float | Tensor = 0.0,
    feather_rel: float | Tensor = 0.0,
    inplace: bool = False,
    face_maps=None,
    mask_threshold: float = DEFAULT_MASK_THRESHOLD,
    mask_dilate: int = DEFAULT_MASK_DILATE,
) -> Tensor:
    r"""Pixelate (mosaic) the face boxes into ``blocks x blocks`` cells.

    Each (scaled, clipped) box region is divided into ``blocks`` rows and columns of cells
    (cell size ``region / blocks``, fractional in general); each cell takes the AREA AVERAGE of
    the pixels it covers (fractional pixels weighted by overlap, like ``cv2.resize(...,
    INTER_AREA)``), then is upsampled back by nearest neighbour (pixel ``i`` shows cell
    ``floor(i * blocks / size)``, like ``cv2.INTER_NEAREST``). deface instead copies one pixel per
    cell; averaging keeps no single face pixel intact. A region smaller than ``blocks`` pixels in a
    dimension uses one cell per pixel there. Linear in the image, hence differentiable w.r.t. it.

    Args:
        images: :math:`(B, C, H, W)` float in ``[0, 1]``.
        boxes, valid, mask, scale, feather, feather_rel, inplace: as in :func:`blur_faces`.
        blocks: cells per side, int or :math:`(B,)` int tensor.

    Returns:
        :math:`(B, C, H, W)`; pixels outside the masks bit-identical.

    Raises:
        TypeError: non-float ``images``. ValueError: ``blocks < 1`` or non-finite, bad shapes, and
        the box / ``scale`` / ``feather`` checks of :func:`blur_faces`.

    Example:
        >>> x = torch.rand(1, 3, 8, 8)
        >>> y = pixelate_faces(x, torch.tensor([[[0., 0., 4., 4.]]]), blocks=2)
        >>> torch.allclose(y[0, :, 0, 0], x[0, :, :2, :2].mean((1, 2)))
        True
    """
    _check_param(blocks, "blocks", True)
    p = _gather(
        images,
        boxes,
        valid,
        mask,
        scale,
        feather,
        feather_rel,
        inplace,
        face_maps,
        mask_threshold,
        mask_dilate,
    )
    if p is None:
        return images
    n = torch.as_tensor(blocks, device=images.device)
    if n.is_floating_point():
        n = n.round()
    n = n.long()
    if bool((n < 1).any()):
        raise ValueError(f"blocks must be >= 1, got {blocks}")
    nb = n.expand(len(p.bidx)) if n.ndim == 0 else n[p.bidx]
    _, hp, _, wp = p.shape
    if _shared_operator(p, nb):
        n0 = nb[:1]
        one = torch.zeros(1, dtype=torch.long, device=nb.device)
        rmat, cmat = _cached(
            ("pixelate", hp, wp, int(n0), images.dtype, nb.device),
            lambda: (
                _pixelate_matrices(one + hp, one, n0, hp, images.dtype)[0],
                _pixelate_matrices(one + wp, one, n0, wp, images.dtype)[0],
            ),
        )
        anon = _apply_linear(p, rmat, cmat)
    else:
        anon = _apply_linear(
            p,
            _pixelate_matrices(p.heights, p.oy, nb, hp, images.dtype),
            _pixelate_matrices(p.widths, p.ox, nb, wp, images.dtype),
        )
    return _scatter(p, anon)


def fill_faces(
    images: Tensor,
    boxes: Boxes,
    valid: Tensor | None = None,
    fill: str = "constant",
    color: float | Sequence[float] | Tensor = (0.5, 0.5, 0.5),
    generator: torch.Generator | None = None,
    mask: str = "box",
    scale: float | Tensor = 1.0,
    feather: float | Tensor = 0.0,
    feather_rel: float | Tensor = 0.0,
    inplace: bool = False,
    face_maps=None,
    mask_threshold: float = DEFAULT_MASK_THRESHOLD,
    mask_dilate: int = DEFAULT_MASK_DILATE,
) -> Tensor:
    r"""Fill the face boxes with a constant colour, the image's mean colour, noise, or black.

    Args:
        images: :math:`(B, C, H, W)` float in ``[0, 1]``.
        fill: ``"constant"`` (``color``), ``"mean"`` (per-image, per-channel mean of the whole
            image), ``"noise"`` (uniform ``[0, 1)`` per pixel and channel, drawn from ``generator``,
            which must live on the images' device; ``None`` = torch's global RNG), or ``"zero"``.
        color: scalar, :math:`(C,)` or per-sample :math:`(B, C)` in ``[0, 1]``.
        boxes, valid, mask, scale, feather, feather_rel, inplace: as in :func:`blur_faces`.

    Returns:
        :math:`(B, C, H, W)`; pixels outside the masks bit-identical. Differentiable w.r.t. the
        image (outside the hard part of the mask) and ``color``.

    Raises:
        TypeError: non-float ``images``. ValueError: unknown ``fill``, bad ``color`` shape, and the
        box / ``scale`` / ``feather`` checks of :func:`blur_faces`.

    Example:
        >>> x = torch.rand(1, 3, 8, 8)
        >>> y = fill_faces(x, torch.tensor([[[2., 2., 6., 6.]]]), fill="zero")
        >>> float(y[..., 2:6, 2:6].abs().sum()), bool((y[..., :2, :] == x[..., :2, :]).all())
        (0.0, True)
    """
    if fill not in FILL_MODES:
        raise ValueError(f"fill: expected one of {FILL_MODES}, got {fill!r}")
    p = _gather(
        images,
        boxes,
        valid,
        mask,
        scale,
        feather,
        feather_rel,
        inplace,
        face_maps,
        mask_threshold,
        mask_dilate,
    )
    if p is None:
        return images
    shape = p.shape
    c = shape[2]
    if fill == "zero":
        anon = images.new_zeros(()).expand(shape)
    elif fill == "mean":
        anon = images.mean(dim=(2, 3))[p.bidx][:, None, :, None].expand(shape)
    elif fill == "noise":
        anon = torch.rand(shape, generator=generator, device=images.device, dtype=images.dtype)
    else:
        col = torch.as_tensor(color, device=images.device, dtype=images.dtype)
        if col.ndim == 0:
            col = col.expand(c)
        if col.ndim == 1 and col.shape[0] == c:
            anon = col[None, None, :, None].expand(shape)
        elif col.ndim == 2 and col.shape == (images.shape[0], c):
            anon = col[p.bidx][:, None, :, None].expand(shape)
        else:
            raise ValueError(
                f"color: expected a scalar, ({c},) or ({images.shape[0]}, {c}), got {tuple(col.shape)}"
            )
    return _scatter(p, anon)


def zero_faces(images: Tensor, boxes: Boxes, valid: Tensor | None = None, **kwargs) -> Tensor:
    """Black out the face boxes: :func:`fill_faces` with ``fill="zero"`` (same arguments)."""
    return fill_faces(images, boxes, valid, fill="zero", **kwargs)


def map_faces(
    images: Tensor,
    boxes: Boxes,
    valid: Tensor | None = None,
    fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    mask: str = "box",
    scale: float | Tensor = 1.0,
    feather: float | Tensor = 0.0,
    feather_rel: float | Tensor = 0.0,
    inplace: bool = False,
    face_maps=None,
    mask_threshold: float = DEFAULT_MASK_THRESHOLD,
    mask_dilate: int = DEFAULT_MASK_DILATE,
) -> Tensor:
    r"""Anonymize the face boxes with any function of the face windows: the quick way to write a
    new method (the engine does the boxes, masks, compositing and input checks).

    ``fn(windows, image_index) -> anonymized`` gets the ``N`` valid boxes' windows
    :math:`(N, C, h, w)` (one size for all: the largest region, each window inside its image and
    containing its box's region) and the image each came from :math:`(N,)`, and returns the
    windows anonymized, same shape. Only each box's region is written back, through its mask, so
    ``fn`` may be anything for a pointwise change; a neighbourhood op sees the pixels around a
    smaller region too.

    Args:
        images, boxes, valid, mask, scale, feather, feather_rel, inplace: as in :func:`blur_faces`.
        fn: the window function (required).

    Returns:
        :math:`(B, C, H, W)`; pixels outside the masks bit-identical.

    Example:
        >>> x = torch.rand(1, 3, 8, 8)
        >>> y = map_faces(x, torch.tensor([[[2., 2., 6., 6.]]]), fn=lambda w, i: 1 - w)
        >>> torch.equal(y[..., 2:6, 2:6], 1 - x[..., 2:6, 2:6]), torch.equal(y[..., :2, :], x[..., :2, :])
        (True, True)
    """
    if fn is None:
        raise ValueError("map_faces: fn (the window function) is required")
    p = _gather(
        images,
        boxes,
        valid,
        mask,
        scale,
        feather,
        feather_rel,
        inplace,
        face_maps,
        mask_threshold,
        mask_dilate,
    )
    if p is None:
        return images
    windows = p.pixels.permute(0, 2, 1, 3)  # (N, hp, C, wp) -> (N, C, hp, wp)
    anon = fn(windows, p.bidx)
    if not isinstance(anon, Tensor) or anon.shape != windows.shape:
        raise ValueError(
            f"map_faces: fn must return a tensor of shape {tuple(windows.shape)}, "
            f"got {getattr(anon, 'shape', type(anon))}"
        )
    return _scatter(p, anon.permute(0, 2, 1, 3))
