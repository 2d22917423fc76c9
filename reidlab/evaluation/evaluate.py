"""One call from a model and a dataset to an :class:`EvalResult`.

``query features, gallery features -> distance -> (re-ranking) -> rank metrics``, recording
every setting that produced the numbers. Query and gallery take separate anonymizers: the study
measures partially anonymized data (e.g. anonymized queries against an original gallery).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from reidlab.evaluation.result import EvalResult

log = logging.getLogger(__name__)


def _anon_settings(anonymizer) -> dict[str, Any] | None:
    if anonymizer is None:
        return None
    if hasattr(anonymizer, "settings"):
        s = anonymizer.settings()
        return dict(s) if isinstance(s, Mapping) else {"repr": repr(s)}
    return {"repr": repr(anonymizer)}


def evaluate(
    model,
    dataset,
    *,
    distance: str = "euclidean",
    normalize: bool = False,
    flip: bool = False,
    ap: str = "standard",
    rerank: bool = False,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    size: tuple[int, int] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    batch_size: int = 64,
    boxes: Mapping[str, np.ndarray] | None = None,
    query_anonymizer=None,
    gallery_anonymizer=None,
    device=None,
    num_workers: int = 0,
    amp="auto",
    progress: bool = True,
    checkpoint: str | None = None,
    max_rank: int = 50,
    cmc_mode: str = "market",
    seed: int = 0,
    feature_layer: str | None = None,
    extra_settings: Mapping[str, Any] | None = None,
) -> EvalResult:
    """Evaluate ``model`` on ``dataset``'s query/gallery split (Market-1501 protocol).

    Args:
        model: ``(B, 3, H, W) -> (B, D)`` in eval mode; its ``input_size``, ``pixel_mean``,
            ``pixel_std`` are the defaults for ``size``, ``mean``, ``std`` (else 256x128 and
            ImageNet statistics).
        dataset: anything with ``query`` and ``gallery`` lists of ``Sample`` (a ``ReIDDataset``).
        distance: ``"euclidean"`` (squared) or ``"cosine"``; normalize: L2-normalise features;
        flip: add horizontally flipped images' features (see :mod:`.features`).
        ap: ``"standard"`` or ``"trapezoid"`` (see :mod:`.metrics`).
        rerank: k-reciprocal re-ranking with ``k1``, ``k2``, ``lambda_value``.
        boxes: face boxes per absolute path, for the anonymizers.
        query_anonymizer, gallery_anonymizer: ``(images, boxes, valid) -> images`` applied to
            that split only (None = original images).
        device: compute device (default: the model's); amp: autocast on CUDA.
        checkpoint, feature_layer, extra_settings: recorded in ``settings`` as given.
        max_rank, cmc_mode, seed: CMC length, ``"market"``/``"single_gallery_shot"``, its seed.

    Returns:
        :class:`EvalResult` (metrics as fractions in [0, 1]).
    """
    import torch

    from reidlab.evaluation.distance import pairwise_distance
    from reidlab.evaluation.features import extract_features
    from reidlab.evaluation.metrics import rank_metrics
    from reidlab.evaluation.rerank import re_ranking_features

    size = tuple(size or getattr(model, "input_size", (256, 128)))
    mean = tuple(mean or getattr(model, "pixel_mean", (0.485, 0.456, 0.406)))
    std = tuple(std or getattr(model, "pixel_std", (0.229, 0.224, 0.225)))
    query, gallery = list(dataset.query), list(dataset.gallery)
    common = {
        "size": size,
        "mean": mean,
        "std": std,
        "batch_size": batch_size,
        "flip": flip,
        "normalize": normalize,
        "boxes": boxes,
        "device": device,
        "num_workers": num_workers,
        "amp": amp,
        "progress": progress,
    }
    t0 = time.perf_counter()
    qf = extract_features(model, query, anonymizer=query_anonymizer, desc="query", **common)
    gf = extract_features(model, gallery, anonymizer=gallery_anonymizer, desc="gallery", **common)
    t_feat = time.perf_counter() - t0
    t1 = time.perf_counter()
    if rerank:
        distmat = re_ranking_features(
            qf, gf, k1=k1, k2=k2, lambda_value=lambda_value, metric=distance
        )
    else:
        distmat = pairwise_distance(qf, gf, metric=distance)
    t_dist = time.perf_counter() - t1
    q_pids = np.array([s.pid for s in query], np.int64)
    q_cams = np.array([s.camid for s in query], np.int64)
    g_pids = np.array([s.pid for s in gallery], np.int64)
    g_cams = np.array([s.camid for s in gallery], np.int64)
    t2 = time.perf_counter()
    m = rank_metrics(
        distmat,
        q_pids,
        g_pids,
        q_cams,
        g_cams,
        max_rank=max_rank,
        ap=ap,
        cmc_mode=cmc_mode,
        seed=seed,
    )
    t_metrics = time.perf_counter() - t2
    n_img = len(query) + len(gallery)
    metrics = dict(m.summary())
    metrics["cmc"] = m.cmc.tolist()
    settings: dict[str, Any] = {
        "dataset": getattr(dataset, "name", type(dataset).__name__),
        "dataset_root": str(getattr(dataset, "root", "")),
        "num_query": len(query),
        "num_gallery": len(gallery),
        "model": getattr(model, "name", type(model).__name__),
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "feature_layer": feature_layer or "model output (eval mode)",
        "feature_dim": int(qf.shape[1]),
        "input_size": list(size),
        "mean": list(mean),
        "std": list(std),
        "distance": "squared_euclidean" if distance == "euclidean" else distance,
        "normalize": bool(normalize),
        "flip": "sum" if flip else False,
        "ap": ap,
        "cmc_mode": cmc_mode,
        "max_rank": max_rank,
        "ties": "gallery order",
        "junk": "same pid and camera; pid -1",
        "rerank": bool(rerank),
        "rerank_params": {"k1": k1, "k2": k2, "lambda": lambda_value} if rerank else None,
        "query_anonymization": _anon_settings(query_anonymizer),
        "gallery_anonymization": _anon_settings(gallery_anonymizer),
        "boxes": None if boxes is None else f"{len(boxes)} images with boxes",
        "runtime": {
            "device": str(qf.device),
            "torch_threads": torch.get_num_threads(),
            "batch_size": batch_size,
            "num_workers": num_workers,
            "feature_seconds": round(t_feat, 3),
            "images_per_second": round(n_img / t_feat, 1) if t_feat > 0 else None,
            "distance_seconds": round(t_dist, 3),
            "metrics_seconds": round(t_metrics, 3),
        },
    }
    if cmc_mode == "single_gallery_shot":
        settings["sgs"] = {"repeats": m.extra.get("sgs_repeats"), "seed": seed}
    if extra_settings:
        settings.update(dict(extra_settings))
    log.info(
        "evaluated %s on %s: mAP %.2f rank-1 %.2f (%d queries, %.0f img/s)",
        settings["model"],
        settings["dataset"],
        100 * m.mAP,
        100 * m.rank1,
        len(query),
        n_img / max(t_feat, 1e-9),
    )
    per_query = {
        "ap": m.ap,
        "inp": m.inp,
        "first_hit_rank": m.first_hit_rank,
        "num_positives": m.num_positives,
        "valid": m.valid,
        "pid": q_pids,
        "camid": q_cams,
        "path": np.array([s.path for s in query], dtype=object),
    }
    return EvalResult(metrics=metrics, settings=settings, per_query=per_query)
