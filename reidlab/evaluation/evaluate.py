"""One call from a model and a dataset to an :class:`EvalResult`.

``query features, gallery features -> distance -> (re-ranking) -> rank metrics``, recording
every setting that produced the numbers. Query and gallery take separate anonymizers: the study
measures partially anonymized data (e.g. anonymized queries against an original gallery).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, MutableMapping
from typing import Any

import numpy as np

from reidlab.evaluation.config import EvalConfig
from reidlab.evaluation.result import EvalResult

log = logging.getLogger(__name__)


def _anon_settings(anonymizer) -> dict[str, Any] | None:
    if anonymizer is None:
        return None
    if hasattr(anonymizer, "settings"):
        s = anonymizer.settings()
        return dict(s) if isinstance(s, Mapping) else {"repr": repr(s)}
    return {"repr": repr(anonymizer)}


def _boxed(
    samples,
    boxes: Mapping[str, np.ndarray] | None,
    face_maps: Mapping[str, np.ndarray] | None = None,
    seg: tuple[float, tuple[int, int]] | None = None,
) -> np.ndarray:
    """bool per sample: an anonymizer changes it. Box masks: it has at least one face box (the
    loader gives a path absent from ``boxes`` no box). Segmentation (``seg`` = ``(threshold,
    input size)``): also when its face map, fitted to the input size as the loader does, reaches
    the threshold somewhere (an image whose map is empty falls back to its boxes)."""
    boxes = boxes or {}
    out = np.array([np.size(boxes.get(s.path, ())) > 0 for s in samples], dtype=bool)
    if seg is not None and face_maps:
        from reidlab.loading import fit_map

        threshold, size = seg
        for i, s in enumerate(samples):
            m = face_maps.get(s.path)
            if not out[i] and m is not None:
                out[i] = bool((fit_map(m, size) >= threshold).any())
    return out


def _segmentation(anonymizers, face_maps) -> float | None:
    """The mask threshold the crops' anonymization uses when it is by face maps: that of the
    first anonymizer with ``mask="segmentation"``; with none given (the original condition of a
    segmentation grid) the default one; ``None`` when no maps are given or the anonymizers use
    box masks."""
    if face_maps is None:
        return None
    given = [a for a in anonymizers if a is not None]
    for a in given:
        s = _anon_settings(a) or {}
        if s.get("mask") == "segmentation":
            from reidlab.anonymize.masks import DEFAULT_MASK_THRESHOLD

            return float(s.get("mask_threshold", DEFAULT_MASK_THRESHOLD))
    if given:
        return None
    from reidlab.anonymize.masks import DEFAULT_MASK_THRESHOLD

    return float(DEFAULT_MASK_THRESHOLD)


def evaluate(
    model,
    dataset,
    config: EvalConfig | Mapping[str, Any] | None = None,
    *,
    boxes: Mapping[str, np.ndarray] | None = None,
    face_maps: Mapping[str, np.ndarray] | None = None,
    query_anonymizer=None,
    gallery_anonymizer=None,
    progress: bool = True,
    checkpoint: str | None = None,
    extra_settings: Mapping[str, Any] | None = None,
    feature_cache: MutableMapping | None = None,
    label: str = "",
    keep_topk: int | None = None,
    **overrides: Any,
) -> EvalResult:
    """Evaluate ``model`` on ``dataset``'s query/gallery split (Market-1501 protocol).

    Args:
        model: ``(B, 3, H, W) -> (B, D)`` in eval mode; its ``input_size``, ``pixel_mean``,
            ``pixel_std`` are the defaults for ``size``, ``mean``, ``std`` (else 256x128 and
            ImageNet statistics).
        dataset: anything with ``query`` and ``gallery`` lists of ``Sample`` (a ``ReIDDataset``).
        config: the evaluation settings (:class:`EvalConfig`, or a dict of its fields; default
            ``EvalConfig()``): distance, normalize, flip, AP definition, re-ranking, input size,
            batch size, device, ...
        boxes: face boxes per absolute path, for the anonymizers.
        face_maps: per-pixel face maps per absolute path, for anonymizers with
            ``mask="segmentation"`` (:func:`reidlab.faces.dataset.dataset_face_maps`); recorded
            as ``settings["face_maps"]`` when given.
        query_anonymizer, gallery_anonymizer: ``(images, boxes, valid) -> images`` applied to
            that split only (None = original images).
        progress: progress bars; checkpoint, extra_settings: recorded in ``settings`` as given.
        feature_cache: a dict the caller owns, one per model: features of a split extracted
            WITHOUT anonymization are kept in it and reused by later calls with the same split
            and settings (the original gallery of every "query only" condition is extracted once).
            Anonymized splits are always extracted anew (a seeded noise fill draws new noise).
        label: prefix of the progress bars (e.g. ``"tiny seed 0 blur (query only)"``).
        keep_topk: also keep, for the coverage cue (:mod:`reidlab.evaluation.coverage`), each
            query's ``keep_topk`` nearest gallery indices after the Market-1501 rule
            (``per_query["top_gallery"]``) and which crops have a face box, i.e. are anonymized
            when their split is (``per_query["boxed"]``, ``per_gallery["boxed"]``, with the
            gallery's ``pid`` and ``camid``). ``None``: not kept.
        **overrides: :class:`EvalConfig` fields replacing ``config``'s
            (``evaluate(model, ds, distance="cosine", flip=True)``); an unknown name is a
            ``TypeError`` listing the known ones, a bad value a ``ValueError`` naming it.

    Returns:
        :class:`EvalResult` (metrics as fractions in [0, 1]).
    """
    if keep_topk is not None and (
        isinstance(keep_topk, bool) or not isinstance(keep_topk, (int, np.integer)) or keep_topk < 1
    ):
        raise ValueError(f"keep_topk must be a positive integer or None, got {keep_topk!r}")
    if config is None:
        config = EvalConfig()
    elif isinstance(config, Mapping):
        config = EvalConfig().replace(**config)
    cfg = config.replace(**overrides)
    import torch

    from reidlab.evaluation.distance import pairwise_distance
    from reidlab.evaluation.features import extract_features
    from reidlab.evaluation.metrics import rank_metrics
    from reidlab.evaluation.rerank import re_ranking_features
    from reidlab.resize import resize_mode_for

    size = tuple(cfg.size or getattr(model, "input_size", (256, 128)))
    mean = tuple(cfg.mean or getattr(model, "pixel_mean", (0.485, 0.456, 0.406)))
    std = tuple(cfg.std or getattr(model, "pixel_std", (0.229, 0.224, 0.225)))
    query, gallery = list(dataset.query), list(dataset.gallery)
    common = {
        "size": size,
        "mean": mean,
        "std": std,
        "batch_size": cfg.batch_size,
        "flip": cfg.flip,
        "normalize": cfg.normalize,
        "boxes": boxes,
        "face_maps": face_maps,
        "device": cfg.device,
        "num_workers": cfg.num_workers,
        "amp": cfg.amp,
        "progress": progress,
        "resize_mode": resize_mode_for(model),
    }

    def features(split: str, samples, anonymizer):
        key = None
        if feature_cache is not None and anonymizer is None:
            # what changes un-anonymized features: the split and the extraction settings (boxes,
            # workers and progress bars do not)
            same = {
                k: v
                for k, v in common.items()
                if k not in ("boxes", "face_maps", "num_workers", "progress")
            }
            key = (split, len(samples), repr(sorted(same.items())))
            if key in feature_cache:
                return feature_cache[key], True
        desc = f"{label} {split}".strip()
        f = extract_features(model, samples, anonymizer=anonymizer, desc=desc, **common)
        if key is not None:
            feature_cache[key] = f
        return f, False

    t0 = time.perf_counter()
    qf, q_reused = features("query", query, query_anonymizer)
    gf, g_reused = features("gallery", gallery, gallery_anonymizer)
    t_feat = time.perf_counter() - t0
    t1 = time.perf_counter()
    if cfg.rerank:
        distmat = re_ranking_features(
            qf, gf, k1=cfg.k1, k2=cfg.k2, lambda_value=cfg.lambda_value, metric=cfg.distance
        )
    else:
        distmat = pairwise_distance(qf, gf, metric=cfg.distance)
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
        max_rank=cfg.max_rank,
        ap=cfg.ap,
        cmc_mode=cfg.cmc_mode,
        seed=cfg.seed,
    )
    t_metrics = time.perf_counter() - t2
    n_new = len(query) * (not q_reused) + len(gallery) * (not g_reused)
    metrics = dict(m.summary())
    metrics["cmc"] = m.cmc.tolist()
    settings: dict[str, Any] = {
        "dataset": getattr(dataset, "name", type(dataset).__name__),
        "dataset_root": str(getattr(dataset, "root", "")),
        "num_query": len(query),
        "num_gallery": len(gallery),
        "model": getattr(model, "name", type(model).__name__),
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "feature_layer": cfg.feature_layer or "model output (eval mode)",
        "feature_dim": int(qf.shape[1]),
        "input_size": list(size),
        "resize": common["resize_mode"],
        "mean": list(mean),
        "std": list(std),
        "distance": "squared_euclidean" if cfg.distance == "euclidean" else cfg.distance,
        "normalize": bool(cfg.normalize),
        "flip": "sum" if cfg.flip else False,
        "ap": cfg.ap,
        "cmc_mode": cfg.cmc_mode,
        "max_rank": cfg.max_rank,
        "ties": "gallery order",
        "junk": "same pid and camera; pid -1",
        "rerank": bool(cfg.rerank),
        "rerank_params": {"k1": cfg.k1, "k2": cfg.k2, "lambda": cfg.lambda_value}
        if cfg.rerank
        else None,
        "query_anonymization": _anon_settings(query_anonymizer),
        "gallery_anonymization": _anon_settings(gallery_anonymizer),
        "boxes": None if boxes is None else f"{len(boxes)} images with boxes",
        "runtime": {
            "device": str(qf.device),
            "torch_threads": torch.get_num_threads(),
            "batch_size": cfg.batch_size,
            "num_workers": cfg.num_workers,
            "feature_seconds": round(t_feat, 3),
            "images_per_second": round(n_new / t_feat, 1) if t_feat > 0 and n_new else None,
            "features_reused": [s for s, r in (("query", q_reused), ("gallery", g_reused)) if r],
            "distance_seconds": round(t_dist, 3),
            "metrics_seconds": round(t_metrics, 3),
        },
    }
    if cfg.cmc_mode == "single_gallery_shot":
        settings["sgs"] = {"repeats": m.extra.get("sgs_repeats"), "seed": cfg.seed}
    if face_maps is not None:  # only then: box-mask settings stay as they were
        settings["face_maps"] = f"{len(face_maps)} images with face maps"
    if extra_settings:
        settings.update(dict(extra_settings))
    log.info(
        "evaluated %s on %s: mAP %.2f rank-1 %.2f (%d queries, %.0f img/s)",
        settings["model"],
        settings["dataset"],
        100 * m.mAP,
        100 * m.rank1,
        len(query),
        n_new / max(t_feat, 1e-9),
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
    per_gallery: dict[str, np.ndarray] = {}
    if keep_topk is not None:
        from reidlab.evaluation.coverage import top_valid_matches

        per_query["top_gallery"] = top_valid_matches(
            distmat, q_pids, g_pids, q_cams, g_cams, int(keep_topk)
        )
        thr = _segmentation((query_anonymizer, gallery_anonymizer), face_maps)
        seg = None if thr is None else (thr, size)
        per_query["boxed"] = _boxed(query, boxes, face_maps, seg)
        per_gallery = {
            "pid": g_pids,
            "camid": g_cams,
            "boxed": _boxed(gallery, boxes, face_maps, seg),
        }
    return EvalResult(
        metrics=metrics, settings=settings, per_query=per_query, per_gallery=per_gallery
    )
