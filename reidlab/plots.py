"""Figures a re-ID reader looks at first. All functions return a matplotlib Figure and never show it.

- :func:`crop_grid`: crops with face boxes drawn (detector output or ground truth).
- :func:`ranked_results`: the torchreid-style picture: a query, then its top-k gallery matches
  framed green (same identity) or red (different).
- :func:`side_by_side`: original vs anonymized crops, one row per setting.
- :func:`ranked_rows`: several ranked lists (e.g. one query, original vs anonymized).
- :func:`delta_plot`: mAP/rank-1 change per anonymization method with confidence intervals.
- :func:`condition_order`: the one order of experiment conditions every table and figure uses.
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


# ------------------------------------------------------------------ condition names and order

TRUE_MATCH, WRONG_MATCH, ANONYMIZED = "#1a9850", "#d73027", "#ffd92f"
CI_CAPTION = "whiskers: bootstrap 95% CI of the mean over queries"


def method_of(condition: str) -> str:
    """The method of an experiment condition: ``"blur (query only)"`` -> ``"blur"``."""
    return str(condition).split(" (")[0]


def condition_kind(condition: str) -> str:
    """``original``, ``query+gallery``, ``query only`` or ``retrained``, from a condition name as
    :func:`reidlab.experiment.run_experiment` writes it."""
    c = str(condition)
    if c == "original":
        return "original"
    if c.endswith("(query only)"):
        return "query only"
    if c.endswith("(retrained)"):
        return "retrained"
    return "query+gallery"


_KIND_RANK = {"original": 0, "query+gallery": 1, "query only": 2, "retrained": 3}


def condition_order(conditions) -> list[str]:
    """The distinct conditions in reading order: ``original`` first, then each method (in the
    order its un-retrained conditions first appear) with anonymized query+gallery then query only, retrained last.
    Every table and figure orders conditions with this one function."""
    uniq = list(dict.fromkeys(str(c) for c in conditions))
    by_first_seen = sorted(uniq, key=lambda c: condition_kind(c) == "retrained")
    methods = list(dict.fromkeys(method_of(c) for c in by_first_seen))

    def key(c):
        kind = condition_kind(c)
        return (
            kind == "retrained",
            kind != "original",
            methods.index(method_of(c)),
            _KIND_RANK[kind],
        )

    return sorted(uniq, key=key)


def fmt_value(v) -> str:
    """A setting's value for a label: floats to 3 significant digits (``1.2000000000000002`` ->
    ``1.2``), the rest as ``str``."""
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.3g}"
    return str(v)


# ------------------------------------------------------------------ figures


def _bare(ax) -> None:
    """No ticks, no frame, but the y label stays visible (``axis('off')`` would hide it)."""
    ax.axis("on")
    ax.set_xticks([])
    ax.set_yticks([])
    for sp in ax.spines.values():
        sp.set_visible(False)


def crop_grid(
    images: Sequence,
    boxes: Sequence | None = None,
    titles: Sequence[str] | None = None,
    ncols: int = 8,
    scale: float = 1.2,
    box_color="lime",
    title: str | None = None,
    row_labels: Sequence[str] | None = None,
    box_label: str | None = None,
):
    """A grid of crops, with boxes ``(K, 4|5)`` per image drawn when given.

    ``title``: the figure's title; ``row_labels``: one label per row (left of it, e.g. "query");
    ``box_label``: what the boxes are, shown in a legend (e.g. "face box (ground truth)").
    """
    from matplotlib.patches import Patch

    plt = _plt()
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    h, w = _as_hwc(images[0]).shape[:2] if n else (128, 64)
    left = 0.9 if row_labels is not None else 0.1
    top = 0.15 + 0.3 * bool(title) + 0.25 * bool(box_label)
    cw, ch = scale * w / h, scale * 1.15  # one crop's cell, inches
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(ncols * cw + left + 0.1, nrows * ch + top + 0.1), squeeze=False
    )
    fig.subplots_adjust(
        left=left / fig.get_figwidth(),
        right=1 - 0.1 / fig.get_figwidth(),
        top=1 - top / fig.get_figheight(),
        bottom=0.1 / fig.get_figheight(),
        wspace=0.08,
        hspace=0.25,
    )
    for ax in axes.ravel():
        ax.axis("off")
    for i, img in enumerate(images):
        ax = axes.ravel()[i]
        _bare(ax)
        ax.imshow(_as_hwc(img))
        if boxes is not None and len(boxes[i]):
            b = np.asarray(boxes[i])
            draw_boxes(ax, b[:, :4], color=box_color, scores=b[:, 4] if b.shape[1] > 4 else None)
        if titles is not None:
            ax.set_title(titles[i], fontsize=7)
    for r, label in enumerate(row_labels or []):
        axes[r, 0].set_ylabel(label, fontsize=9, rotation=0, ha="right", va="center")
    _header(
        fig, title, [Patch(fill=False, edgecolor=box_color, label=box_label)] if box_label else None
    )
    return fig


def side_by_side(
    original,
    variants: Mapping[str, object],
    max_images: int = 6,
    scale: float = 1.2,
    title: str | None = None,
    label_width: float = 1.4,
    legend: Sequence | None = None,
):
    """Rows: ``original`` then each named variant; columns: the first ``max_images`` crops.

    ``original`` and each variant are ``(B, 3, H, W)`` tensors in [0, 1] (or lists of arrays).
    Each crop gets ``scale`` inches of height whatever the labels: the labels sit in a fixed
    left margin of ``label_width`` inches (write a long label over several lines). ``legend``:
    matplotlib handles (e.g. a ``Patch`` per kind of box drawn), shown under the title.
    """
    plt = _plt()
    rows = {"original": original, **dict(variants)}
    n = min(max_images, len(original))
    h, w = _as_hwc(original[0]).shape[:2]
    cw, ch = scale * w / h, scale
    top = 0.15 + 0.3 * bool(title) + 0.25 * bool(legend)
    fig, axes = plt.subplots(
        len(rows),
        n,
        figsize=(n * cw * 1.05 + label_width + 0.1, len(rows) * ch * 1.05 + top + 0.1),
        squeeze=False,
    )
    W, H = fig.get_figwidth(), fig.get_figheight()
    fig.subplots_adjust(
        left=label_width / W, right=1 - 0.1 / W, top=1 - top / H, bottom=0.1 / H, wspace=0.05
    )
    for r, (name, imgs) in enumerate(rows.items()):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(_as_hwc(imgs[c]))
            _bare(ax)
            if c == 0:
                ax.set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center")
    _header(fig, title, legend)
    return fig


def _header(fig, title: str | None, handles: Sequence | None, fontsize: int = 9) -> None:
    """The title on the first line and the legend on the next, both left-aligned at the top
    (in the margin the figure reserved: 0.3 in for a title, 0.25 in for a legend)."""
    H = fig.get_figheight()
    if title:
        fig.suptitle(title, fontsize=fontsize, x=0.01, y=1 - 0.05 / H, ha="left", va="top")
    if handles:
        fig.legend(
            handles=list(handles),
            loc="upper left",
            bbox_to_anchor=(0.005, 1 - (0.35 if title else 0.05) / H),
            ncol=len(handles),
            fontsize=7,
            frameon=False,
        )


def ranked_rows(rows: Sequence[Mapping], topk: int = 10, title: str = "", scale: float = 1.2):
    """Ranked lists, one per row: the row's label and query, then its top-k gallery crops framed
    green (same identity: a true match) or red (another identity); a crop whose face was
    anonymized carries a yellow corner mark.

    Each row is a mapping with ``label``, ``query_image``, ``gallery`` (the top-k images in rank
    order), ``match`` (bool per shown item) and optionally ``query_pid``, ``query_marked`` and
    ``marked`` (bool per item: the crop was anonymized).
    """
    from matplotlib.patches import Patch, Rectangle

    plt = _plt()
    label_w, top = 1.3, 0.85
    h, w = _as_hwc(rows[0]["query_image"]).shape[:2]
    cw, ch = scale * w / h, scale
    fig, axes = plt.subplots(
        len(rows),
        topk + 1,
        figsize=((topk + 1) * cw * 1.12 + label_w + 0.1, len(rows) * (ch + 0.3) + top + 0.1),
        squeeze=False,
    )
    W, H = fig.get_figwidth(), fig.get_figheight()
    fig.subplots_adjust(
        left=label_w / W, right=1 - 0.1 / W, top=1 - top / H, bottom=0.1 / H, wspace=0.12
    )

    def mark(ax, img):
        hh, ww = img.shape[:2]
        ax.add_patch(Rectangle((0, 0), ww * 0.3, hh * 0.12, color=ANONYMIZED, lw=0))

    for r, row in enumerate(rows):
        ax = axes[r, 0]
        q = _as_hwc(row["query_image"])
        ax.imshow(q)
        if row.get("query_marked"):
            mark(ax, q)
        pid = row.get("query_pid")
        ax.set_title("query" + (f" (id {pid})" if pid is not None else ""), fontsize=7)
        ax.set_ylabel(row["label"], fontsize=8, rotation=0, ha="right", va="center")
        marked = row.get("marked") or [False] * len(row["gallery"])
        for c in range(1, topk + 1):
            ax = axes[r, c]
            if c > len(row["gallery"]):
                ax.axis("off")
                continue
            img = _as_hwc(row["gallery"][c - 1])
            ax.imshow(img)
            color = TRUE_MATCH if row["match"][c - 1] else WRONG_MATCH
            for s in ax.spines.values():
                s.set_edgecolor(color)
                s.set_linewidth(3)
            if marked[c - 1]:
                mark(ax, img)
            ax.set_title(f"rank {c}", fontsize=7, color=color)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [
        Patch(facecolor="none", edgecolor=TRUE_MATCH, lw=2, label="same identity (true match)"),
        Patch(facecolor="none", edgecolor=WRONG_MATCH, lw=2, label="other identity"),
    ]
    if any(row.get("query_marked") or any(row.get("marked") or []) for row in rows):
        handles.append(Patch(facecolor=ANONYMIZED, label="face anonymized"))
    _header(fig, title or f"Ranked gallery: top {topk} per query", handles)
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
    title: str = "",
    label: str = "",
):
    """The query, then its top-k gallery matches (green frame: same pid, red: different), one row
    per query in ``query_indices`` (default: the first four); drawn by :func:`ranked_rows`.

    With cameras given, gallery items with the query's pid AND camera (and junk, pid -1) are
    excluded (the Market-1501 rule, as the metrics rank:
    :func:`reidlab.evaluation.coverage.top_valid_matches`), so the picture shows what the metric
    ranks. Ties are broken by gallery order (stable sort).
    """
    distmat = np.asarray(distmat.detach().cpu() if hasattr(distmat, "detach") else distmat)
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    qi = list(query_indices) if query_indices is not None else list(range(min(4, len(q_pids))))
    rows = []
    for q in qi:
        if q_camids is not None and g_camids is not None:
            from reidlab.evaluation.coverage import top_valid_matches

            top = top_valid_matches(
                distmat[q : q + 1],
                q_pids[q : q + 1],
                g_pids,
                np.asarray(q_camids)[q : q + 1],
                g_camids,
                k=topk,
            )[0]
            top = top[top >= 0]
        else:
            top = np.argsort(distmat[q], kind="stable")[:topk]
        rows.append(
            {
                "label": f"{label}\nquery {q}".strip(),
                "query_image": query_images[q],
                "query_pid": q_pids[q],
                "gallery": [gallery_images[g] for g in top],
                "match": (g_pids[top] == q_pids[q]).tolist(),
            }
        )
    return ranked_rows(rows, topk=topk, title=title, scale=scale)


def delta_plot(
    comparison,
    x: str = "condition",
    y: str = "delta",
    hue: str | None = None,
    ylabel: str = "change in mAP vs original (points)",
    title: str = "Cost of face anonymization",
):
    """Bar plot of paired differences with their bootstrap CI (columns ``ci_low``/``ci_high``).

    Bars: the mean paired difference; whiskers: its 95% bootstrap CI (said in the title).
    Conditions (``x="condition"``) are in :func:`condition_order`: original first, each method's
    query+gallery then query only, retrained last.
    """
    plt = _plt()
    import pandas as pd

    df = pd.DataFrame(comparison)
    groups = [None] if hue is None else list(dict.fromkeys(df[hue]))
    xs = condition_order(df[x]) if x == "condition" else list(dict.fromkeys(df[x]))
    fig, ax = plt.subplots(figsize=(max(4.5, 0.9 * len(xs) + 1.5), 3.4))
    width = 0.8 / len(groups)
    for j, g in enumerate(groups):
        sub = df if g is None else df[df[hue] == g]
        sub = sub.iloc[np.argsort([xs.index(str(v)) for v in sub[x]], kind="stable")]
        pos = [xs.index(str(v)) + (j - (len(groups) - 1) / 2) * width for v in sub[x]]
        yerr = None
        if {"ci_low", "ci_high"} <= set(sub.columns):
            yerr = np.vstack([sub[y] - sub["ci_low"], sub["ci_high"] - sub[y]])
        ax.bar(pos, sub[y], width=width, yerr=yerr, capsize=3, label=None if g is None else str(g))
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(xs)))
    ax.set_xticklabels(xs, rotation=20, ha="right")
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title}\n(bars: mean paired change; {CI_CAPTION})", fontsize=9)
    if hue is not None:
        ax.legend(fontsize=7, title=hue)
    fig.tight_layout()
    return fig
