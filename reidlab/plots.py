"""Figures a re-ID reader looks at first. All functions return a matplotlib Figure and never show it.

- :func:`crop_grid`: crops with face boxes drawn (detector output or ground truth).
- :func:`ranked_results`: the torchreid-style picture: a query, then its top-k gallery matches
  framed green (same identity) or red (different).
- :func:`side_by_side`: original vs anonymized crops, one row per setting.
- :func:`delta_plot`: mAP/rank-1 change per anonymization method with confidence intervals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def _plt():
    import matplotlib.pyplot as plt

    return plt


def _as_hwc(img) -> np.ndarray:
    """Accept an RGB uint8 HxWx3 array or a float (3,H,W) tensor in [0,1]."""
    if hasattr(img, "detach"):
        img = img.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()
    return np.asarray(img)


def draw_boxes(ax, boxes, color="lime", lw=1.2, scores=None) -> None:
    from matplotlib.patches import Rectangle

    boxes = np.asarray(boxes, dtype=float).reshape(
        -1, np.asarray(boxes).shape[-1] if np.size(boxes) else 4
    )
    for i, b in enumerate(boxes):
        ax.add_patch(Rectangle((b[0], b[1]), b[2] - b[0], b[3] - b[1], fill=False, ec=color, lw=lw))
        if scores is not None:
            ax.text(b[0], b[1] - 1, f"{scores[i]:.2f}", color=color, fontsize=6, va="bottom")


def crop_grid(
    images: Sequence,
    boxes: Sequence | None = None,
    titles: Sequence[str] | None = None,
    ncols: int = 8,
    scale: float = 1.2,
    box_color="lime",
):
    """A grid of crops, with boxes ``(K, 4|5)`` per image drawn when given."""
    plt = _plt()
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    h, w = _as_hwc(images[0]).shape[:2] if n else (128, 64)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(ncols * scale * w / h * 1.0 + 0.2, nrows * scale * 1.05 + 0.2),
        squeeze=False,
    )
    for ax in axes.ravel():
        ax.axis("off")
    for i, img in enumerate(images):
        ax = axes.ravel()[i]
        ax.imshow(_as_hwc(img))
        if boxes is not None and len(boxes[i]):
            b = np.asarray(boxes[i])
            draw_boxes(ax, b[:, :4], color=box_color, scores=b[:, 4] if b.shape[1] > 4 else None)
        if titles is not None:
            ax.set_title(titles[i], fontsize=7)
    fig.tight_layout(pad=0.3)
    return fig


def side_by_side(original, variants: Mapping[str, object], max_images: int = 6, scale: float = 1.2):
    """Rows: ``original`` then each named variant; columns: the first ``max_images`` crops.

    ``original`` and each variant are ``(B, 3, H, W)`` tensors in [0, 1] (or lists of arrays).
    """
    plt = _plt()
    rows = {"original": original, **dict(variants)}
    n = min(max_images, len(original))
    fig, axes = plt.subplots(
        len(rows), n, figsize=(n * scale * 0.55 + 1.2, len(rows) * scale + 0.2), squeeze=False
    )
    for r, (name, imgs) in enumerate(rows.items()):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(_as_hwc(imgs[c]))
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=7, rotation=0, ha="right", va="center")
    fig.tight_layout(pad=0.3)
    return fig


def ranked_results(
    query_images: Sequence,
    gallery_images: Sequence,
    distmat,
    q_pids,
    g_pids,
    q_camids=None,
    g_camids=None,
    topk: int = 8,
    query_indices: Sequence[int] | None = None,
    scale: float = 1.2,
):
    """The query, then its top-k gallery matches (green frame: same pid, red: different).

    Gallery items with the query's pid AND camera are excluded (the Market1501 rule), so the
    picture shows what the metric ranks. Ties are broken by gallery order (stable sort).
    """
    plt = _plt()
    distmat = np.asarray(distmat.detach().cpu() if hasattr(distmat, "detach") else distmat)
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    qi = list(query_indices) if query_indices is not None else list(range(min(4, len(q_pids))))
    fig, axes = plt.subplots(
        len(qi),
        topk + 1,
        figsize=((topk + 1) * scale * 0.55 + 0.4, len(qi) * scale + 0.3),
        squeeze=False,
    )
    for r, q in enumerate(qi):
        order = np.argsort(distmat[q], kind="stable")
        if q_camids is not None and g_camids is not None:
            keep = ~(
                (g_pids[order] == q_pids[q])
                & (np.asarray(g_camids)[order] == np.asarray(q_camids)[q])
            )
            order = order[keep]
        ax = axes[r, 0]
        ax.imshow(_as_hwc(query_images[q]))
        ax.set_title(f"query {q_pids[q]}", fontsize=7)
        for c, g in enumerate(order[:topk], start=1):
            ax = axes[r, c]
            ax.imshow(_as_hwc(gallery_images[g]))
            color = "#1a9850" if g_pids[g] == q_pids[q] else "#d73027"
            for s in ax.spines.values():
                s.set_edgecolor(color)
                s.set_linewidth(3)
            ax.set_title(f"{c}", fontsize=7, color=color)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].figure.tight_layout(pad=0.3)
    return fig


def delta_plot(
    comparison,
    x: str = "condition",
    y: str = "delta",
    hue: str | None = None,
    ylabel: str = "change in mAP (points)",
):
    """Bar plot of paired differences with their bootstrap CI (columns ``ci_low``/``ci_high``)."""
    plt = _plt()
    import pandas as pd

    df = pd.DataFrame(comparison)
    fig, ax = plt.subplots(figsize=(max(3.5, 0.8 * len(df)), 3))
    groups = [None] if hue is None else list(dict.fromkeys(df[hue]))
    xs = list(dict.fromkeys(df[x]))
    width = 0.8 / len(groups)
    for j, g in enumerate(groups):
        sub = df if g is None else df[df[hue] == g]
        pos = [xs.index(v) + (j - (len(groups) - 1) / 2) * width for v in sub[x]]
        yerr = None
        if {"ci_low", "ci_high"} <= set(sub.columns):
            yerr = np.vstack([sub[y] - sub["ci_low"], sub["ci_high"] - sub[y]])
        ax.bar(pos, sub[y], width=width, yerr=yerr, capsize=3, label=None if g is None else str(g))
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(xs)))
    ax.set_xticklabels(xs, rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    if hue is not None:
        ax.legend(fontsize=7, title=hue)
    fig.tight_layout()
    return fig
