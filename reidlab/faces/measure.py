"""How good are the face boxes? Recall/precision vs ground truth, parsing-mask recall, rates, sizes.

Definitions (used in ``data/faces.md`` and the notebooks):

* **Box recall / precision at IoU t** (:func:`box_recall`): per image, predicted boxes are matched to
  ground-truth boxes greedily in descending score order, a match needing IoU >= t and each box
  matching at most once; recall = matched gt / all gt, precision = matched predictions / all
  predictions (images pooled).
* **Covers** (:func:`mask_coverage`): a box covers a face when it contains at least ``cover`` (default
  50%) of the face's pixels (pixel centres inside the box). A parsing mask's face = label 13 (LIP).
* **Parsing recall** (:func:`parsing_recall`): among crops with >= ``min_face_px`` face pixels, the
  share where some single box covers the face; **face-less box rate**: among crops with 0 face pixels,
  the share that get any box.
* **Detection rate** (:func:`detection_rate`): share of images with >= 1 (non-prior) box.
* **Pixel coverage** (:func:`pixel_coverage`): the anonymized region of each crop is where the
  anonymizer's own mask (:func:`reidlab.anonymize.masks.anonymization_masks`: box, ellipse or
  segmentation, with its scale / threshold / dilation) is > 0. Pooled over all crops with a parsing
  mask: **face px covered** = face pixels inside the region / all face pixels; **over-blur** =
  anonymized pixels that are not face / all anonymized pixels (its cost); **area** = anonymized
  pixels / all pixels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

FACE_LABEL = 13  # LIP: 13 = face


def _as_boxes(b) -> np.ndarray:
    """``(K, >=4)`` float32 from None / a list / an array (K may be 0)."""
    if b is None or np.size(b) == 0:
        return np.zeros((0, 4), np.float32)
    b = np.asarray(b, dtype=np.float32)
    return b.reshape(1, -1) if b.ndim == 1 else b


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between ``(N, >=4)`` and ``(M, >=4)`` boxes ``x1, y1, x2, y2`` -> ``(N, M)``."""
    a = _as_boxes(a)[:, :4].astype(np.float64)
    b = _as_boxes(b)[:, :4].astype(np.float64)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clip(0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(-1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def match_boxes(pred: np.ndarray, gt: np.ndarray, iou: float = 0.5) -> int:
    """Number of greedy matches (predictions in descending score order; column 4 = score if present)."""
    pred, gt = _as_boxes(pred), _as_boxes(gt)[:, :4]
    if len(pred) == 0 or len(gt) == 0:
        return 0
    if pred.shape[1] >= 5:
        pred = pred[np.argsort(-pred[:, 4], kind="stable")]
    m = iou_matrix(pred, gt)
    used = np.zeros(len(gt), dtype=bool)
    n = 0
    for row in m:
        row = np.where(used, -1.0, row)
        j = int(row.argmax())
        if row[j] >= iou:
            used[j] = True
            n += 1
    return n


def box_recall(
    pred: Mapping[str, np.ndarray], gt: Mapping[str, np.ndarray], iou: float = 0.5
) -> dict:
    """Recall and precision of ``pred`` against ``gt`` (both ``{path: boxes}``), pooled over ``gt``'s keys.

    Images missing from ``pred`` count as having no prediction.
    """
    n_gt = n_pred = n_match = 0
    for path, g in gt.items():
        p = pred.get(path, np.zeros((0, 4), np.float32))
        n_gt += len(g)
        n_pred += len(p)
        n_match += match_boxes(p, g, iou)
    return {
        "images": len(gt),
        "gt_boxes": n_gt,
        "pred_boxes": n_pred,
        "matched": n_match,
        "iou": iou,
        "recall": n_match / n_gt if n_gt else float("nan"),
        "precision": n_match / n_pred if n_pred else float("nan"),
    }


def read_face_mask(path: str | Path, label: int = FACE_LABEL) -> np.ndarray:
    """Bool ``(H, W)`` face mask from a parsing PNG (mode L, LIP labels)."""
    import cv2

    from reidlab.errors import ImageReadError

    m = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if m is None:
        raise ImageReadError(f"cannot read parsing mask {path} (expected a single-channel PNG)")
    if m.ndim == 3:
        m = m[..., 0]
    return m == label


def mask_coverage(boxes: np.ndarray, mask: np.ndarray) -> float:
    """Largest fraction of ``mask``'s pixels (centres) inside any single box; 0 when no box or no mask."""
    total = int(mask.sum())
    boxes = _as_boxes(boxes)
    if total == 0 or len(boxes) == 0:
        return 0.0
    ys, xs = np.nonzero(mask)
    cx, cy = xs + 0.5, ys + 0.5
    best = 0
    for b in boxes:
        inside = (cx >= b[0]) & (cx <= b[2]) & (cy >= b[1]) & (cy <= b[3])
        best = max(best, int(inside.sum()))
    return best / total


def mask_path_for(image_path: str | Path, mask_dir: str | Path) -> Path:
    """The parsing mask of an image: same stem, ``.png``, in ``mask_dir``."""
    return Path(mask_dir) / (Path(image_path).stem + ".png")


def parsing_recall(
    boxes: Mapping[str, np.ndarray],
    image_paths: Sequence[str],
    mask_dir: str | Path,
    min_face_px: int = 20,
    cover: float = 0.5,
) -> dict:
    """Face recall against parsing masks and the box rate on face-less crops (see module docstring).

    Args:
        boxes: ``{image path: (K, >=4) boxes}`` (missing = no box), keys as in ``image_paths``.
        image_paths: images to measure; those without a mask in ``mask_dir`` are skipped (counted).
    """
    n_face = n_hit = n_faceless = n_faceless_box = n_between = n_nomask = 0
    for p in image_paths:
        mp = mask_path_for(p, mask_dir)
        if not mp.is_file():
            n_nomask += 1
            continue
        mask = read_face_mask(mp)
        npx = int(mask.sum())
        b = boxes.get(str(p), np.zeros((0, 4), np.float32))
        if npx >= min_face_px:
            n_face += 1
            n_hit += int(mask_coverage(b, mask) >= cover)
        elif npx == 0:
            n_faceless += 1
            n_faceless_box += int(len(b) > 0)
        else:
            n_between += 1
    return {
        "with_face": n_face,
        "recalled": n_hit,
        "faceless": n_faceless,
        "faceless_boxed": n_faceless_box,
        "small_face_skipped": n_between,
        "no_mask": n_nomask,
        "recall": n_hit / n_face if n_face else float("nan"),
        "faceless_box_rate": n_faceless_box / n_faceless if n_faceless else float("nan"),
        "min_face_px": min_face_px,
        "cover": cover,
    }


def coverage_counts(region: np.ndarray, face: np.ndarray) -> dict:
    """Pixel counts of one crop (or a stack): ``face_px``, ``covered`` (face pixels in the region),
    ``anonymized_px`` (region pixels) and ``pixels`` (all)."""
    region, face = np.asarray(region, bool), np.asarray(face, bool)
    if region.shape != face.shape:
        raise ValueError(f"region {region.shape} and face mask {face.shape} differ in shape")
    return {
        "face_px": int(face.sum()),
        "covered": int((region & face).sum()),
        "anonymized_px": int(region.sum()),
        "pixels": int(region.size),
    }


def coverage_shares(counts: dict) -> dict:
    """``face_px_covered``, ``overblur`` and ``area`` shares from pooled :func:`coverage_counts`
    (NaN where undefined: no face pixel / nothing anonymized)."""
    f, c, a, n = counts["face_px"], counts["covered"], counts["anonymized_px"], counts["pixels"]
    return {
        "face_px_covered": c / f if f else float("nan"),
        "overblur": (a - c) / a if a else float("nan"),
        "area": a / n if n else float("nan"),
    }


def pixel_coverage(
    boxes: Mapping[str, np.ndarray],
    image_paths: Sequence[str],
    mask_dir: str | Path,
    *,
    mask: str = "box",
    scale: float = 1.0,
    face_maps: Mapping[str, np.ndarray] | None = None,
    mask_threshold: float | None = None,
    mask_dilate: int | None = None,
    batch_size: int = 256,
    progress: bool = False,
) -> dict:
    """Pooled pixel coverage and over-blur of the anonymizer's mask against parsing masks.

    Args:
        boxes: ``{image path: (K, >=4)}`` the boxes the anonymizer gets (missing = none).
        image_paths: crops to measure; those without a mask in ``mask_dir`` are skipped (counted).
        mask, scale: the anonymizer's ``mask`` kind and box ``scale``.
        face_maps: ``{image path: (h, w) map}`` for ``mask="segmentation"`` (missing = the boxes).
        mask_threshold, mask_dilate: segmentation settings (``None``: the anonymizer's defaults).

    Returns:
        one flat dict: ``crops``, ``no_mask``, the pooled :func:`coverage_counts` and
        :func:`coverage_shares`, and the settings.
    """
    import torch
    from tqdm.auto import tqdm

    from reidlab.anonymize.masks import (
        DEFAULT_MASK_DILATE,
        DEFAULT_MASK_THRESHOLD,
        anonymization_masks,
    )
    from reidlab.batching import batches_by_shape

    thr = DEFAULT_MASK_THRESHOLD if mask_threshold is None else mask_threshold
    dil = DEFAULT_MASK_DILATE if mask_dilate is None else mask_dilate
    faces, paths, n_nomask = [], [], 0
    for p in tqdm(image_paths, desc="parsing masks", disable=not progress, leave=False):
        mp = mask_path_for(p, mask_dir)
        if not mp.is_file():
            n_nomask += 1
            continue
        faces.append(read_face_mask(mp))
        paths.append(str(p))
    total = {"face_px": 0, "covered": 0, "anonymized_px": 0, "pixels": 0}
    empty = np.zeros((0, 4), np.float32)
    for idx in batches_by_shape(faces, batch_size=batch_size):
        bx = [torch.from_numpy(_as_boxes(boxes.get(paths[i], empty))[:, :4].copy()) for i in idx]
        fm = None
        if mask == "segmentation" and face_maps is not None:
            fm = [
                None if face_maps.get(paths[i]) is None else torch.from_numpy(face_maps[paths[i]])
                for i in idx
            ]
        region = (
            anonymization_masks(
                bx,
                None,
                faces[idx[0]].shape,
                mask,
                scale,
                face_maps=fm,
                mask_threshold=thr,
                mask_dilate=dil,
            )[:, 0].numpy()
            > 0
        )
        for k, v in coverage_counts(region, np.stack([faces[i] for i in idx])).items():
            total[k] += v
    settings = {"mask": mask, "scale": scale}
    if mask == "segmentation":
        settings.update(mask_threshold=thr, mask_dilate=dil)
    return {"crops": len(paths), "no_mask": n_nomask, **total, **coverage_shares(total), **settings}


def detection_rate(df, num_images: int | None = None) -> float:
    """Share of images with at least one detected (not fail-closed) box in a detect_split table."""
    n = num_images if num_images is not None else df.attrs.get("num_images", df["path"].nunique())
    if not n:
        return float("nan")
    det = df.loc[~df["fail_closed"].astype(bool), "path"].nunique() if len(df) else 0
    return det / n


def box_size_stats(df) -> dict:
    """Box height/width statistics (px) of detected (not fail-closed) boxes."""
    d = df.loc[~df["fail_closed"].astype(bool)] if len(df) else df
    if len(d) == 0:
        return {"boxes": 0, "median_height": float("nan"), "median_width": float("nan")}
    h = (d["y2"] - d["y1"]).to_numpy()
    w = (d["x2"] - d["x1"]).to_numpy()
    return {
        "boxes": len(d),
        "median_height": float(np.median(h)),
        "median_width": float(np.median(w)),
        "p10_height": float(np.percentile(h, 10)),
        "p90_height": float(np.percentile(h, 90)),
    }


def split_summary(df) -> dict:
    """Detection rate, fail-closed count and box sizes of one detect_split table (one flat dict)."""
    from reidlab.faces.cache import fail_closed_summary

    return {"detection_rate": detection_rate(df), **fail_closed_summary(df), **box_size_stats(df)}


def gallery_figure(
    paths: Sequence[str],
    boxes: Mapping[str, np.ndarray],
    n: int = 24,
    seed: int = 0,
    cols: int = 8,
    title: str | None = None,
):
    """A matplotlib Figure of ``n`` random crops (seeded) with their boxes drawn, for a person to judge."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from reidlab.imageio import read_rgb

    rng = np.random.default_rng(seed)
    pick = rng.choice(len(paths), size=min(n, len(paths)), replace=False) if len(paths) else []
    rows = max(1, -(-len(pick) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.2, rows * 2.2), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), pick):
        p = str(paths[i])
        ax.imshow(read_rgb(p))
        for b in _as_boxes(boxes.get(p)):
            ax.add_patch(
                Rectangle((b[0], b[1]), b[2] - b[0], b[3] - b[1], fill=False, color="lime", lw=1)
            )
        ax.set_title(Path(p).stem[:12], fontsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def evaluate_split(
    detector,
    samples: Sequence,
    root: str | Path,
    *,
    gt: Mapping[str, np.ndarray] | None = None,
    mask_dir: str | Path | None = None,
    iou: float = 0.5,
    cache_dir=None,
    progress: bool = False,
) -> dict:
    """One flat row for a per-dataset recall table (the reference study's Table-style summary).

    Runs :func:`reidlab.faces.detect_split` (cached) and adds: detection rate and box sizes always;
    box recall/precision at ``iou`` when ``gt`` (``{abs_path: (K, 4)}``) is given; parsing-mask
    recall and face-less box rate when ``mask_dir`` is given.

    >>> rows = [{"dataset": n, **evaluate_split(det, d.query + d.gallery, d.root)} for n, d in dsets.items()]
    ... # doctest: +SKIP
    >>> pandas.DataFrame(rows)                                                      # doctest: +SKIP
    """
    from reidlab.faces.cache import boxes_by_path, detect_split

    df = detect_split(detector, samples, root, cache_dir=cache_dir, progress=progress)
    row = {"detector": detector.name, "params": detector.params_json(), **split_summary(df)}
    boxes = boxes_by_path(df, root)
    paths = [str(getattr(s, "path", s)) for s in samples]
    if gt is not None:
        r = box_recall(boxes, {p: gt[p] for p in paths if p in gt}, iou=iou)
        row.update({f"box_{k}": v for k, v in r.items()})
    if mask_dir is not None:
        r = parsing_recall(boxes, paths, mask_dir)
        row.update({f"parsing_{k}": v for k, v in r.items()})
    return row
