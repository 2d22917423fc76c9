"""Batches of equal-shaped items: the one "group by shape, then batch" used by every batched
backend (face detectors, the dataset exporter), so mixed-size inputs never need resizing to batch."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence


def batches_by_shape(
    items: Sequence,
    shape_of: Callable[[object], Hashable] = lambda x: x.shape,
    batch_size: int | None = None,
) -> Iterator[list[int]]:
    """Yield lists of indices into ``items``: each list holds items of one shape (``shape_of(item)``),
    at most ``batch_size`` of them (``None`` = no limit), in order of first appearance; every index
    appears exactly once.

    >>> import numpy as np
    >>> xs = [np.zeros((2, 2)), np.zeros((3, 3)), np.zeros((2, 2)), np.zeros((2, 2))]
    >>> list(batches_by_shape(xs, batch_size=2))
    [[0, 2], [3], [1]]
    """
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 or None, got {batch_size}")
    groups: dict[Hashable, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(shape_of(item), []).append(i)
    for idx in groups.values():
        step = batch_size or len(idx)
        for s in range(0, len(idx), step):
            yield idx[s : s + step]
