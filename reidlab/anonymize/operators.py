"""Operator matrices of the linear ops (internal): each builds, per box, the ``(nmax, nmax)``
1-D operator over the box's region inside its window, border handling included, so that the
engine applies an op as ``Y = R @ X @ C^T`` (:func:`reidlab.anonymize.engine._apply_linear`)."""

from __future__ import annotations

import torch
from torch import Tensor


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
