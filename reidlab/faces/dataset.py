"""Face boxes for a dataset's splits from any detector, the ground-truth oracle included, cached.

:func:`dataset_boxes` is what evaluation, training and the study use: one call, one detector
(a :class:`~reidlab.faces.base.Detector` or a name + settings), every split through
:func:`reidlab.faces.detect_split` (the content-hash cache; the oracle answers by path and is not
cached), and a small record of what was used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict

import numpy as np

from reidlab.faces.base import Detector
from reidlab.faces.cache import boxes_by_path, detect_split
from reidlab.faces.prior import HeadPrior

SPLITS = ("train", "query", "gallery")


def coverage_prior(fail_closed=None, full_coverage: bool = False) -> HeadPrior | None:
    """The head prior images without a detection get: ``fail_closed``'s
    (:meth:`HeadPrior.from_option`); with ``full_coverage`` and no ``fail_closed``, the default
    :class:`HeadPrior`; else ``None`` (such images stay without a box)."""
    prior = HeadPrior.from_option(fail_closed)
    if prior is None and full_coverage:
        prior = HeadPrior()
    return prior


def dataset_boxes(
    dataset,
    detector: Detector | str,
    splits: Sequence[str] = SPLITS,
    *,
    params: Mapping | None = None,
    cache_dir=None,
    fail_closed=None,
    full_coverage: bool = False,
    progress: bool = True,
    batch_size: int = 64,
) -> tuple[dict[str, np.ndarray], dict]:
    """Face boxes of every image in ``dataset``'s ``splits``.

    Args:
        dataset: a :class:`~reidlab.datasets.base.ReIDDataset` (``.root``, ``.split(name)``).
        detector: a detector, or a name built with ``params`` by
            :func:`reidlab.faces.options.detector_from_config` (``"oracle"`` gets the dataset's
            root: its ground-truth boxes).
        splits: which splits.
        params: settings when ``detector`` is a name (``None`` values = the backend's defaults).
        cache_dir: detection cache (``None`` = the default cache, ``False`` = none).
        fail_closed: head prior for images without a detection (see :func:`detect_split`).
        full_coverage: every image gets at least one box: its detections, else the head prior
            (``fail_closed``'s, or :class:`~reidlab.faces.prior.HeadPrior`'s defaults when
            ``fail_closed`` is not given). The study's "full coverage" condition, which removes
            the coverage cue (:mod:`reidlab.evaluation.coverage`): every crop is anonymized.
        progress: tqdm bars.
        batch_size: images per ``detect_batch`` call.

    Returns:
        ``(boxes, info)``: ``boxes`` maps each image's absolute path to ``(K, 4)`` float32 boxes
        (fail-closed prior boxes included; images without any box are absent, which loaders read
        as K=0). ``info``: ``detector`` (name), ``detector_params`` (every setting, defaults
        included), ``fail_closed`` (the prior used, or ``None``), ``full_coverage`` (whether
        every image has a box: ``full_coverage`` or ``fail_closed`` was given), and per split ``face_rate_<split>`` (share of crops with a box,
        prior boxes included) and ``detection_rate_<split>`` (share with a detected box).
    """
    if isinstance(detector, str):
        from reidlab.faces.options import detector_from_config

        detector = detector_from_config(detector, params, root=dataset.root)
    elif params:
        raise ValueError("dataset_boxes: params= only goes with a detector name")
    prior = coverage_prior(fail_closed, full_coverage)
    if fail_closed is None or isinstance(fail_closed, HeadPrior):
        recorded = None if prior is None else asdict(prior)
    else:
        recorded = fail_closed  # as given: a height or a dict
    info: dict = {
        "detector": detector.name,
        "detector_params": dict(detector.params),
        "fail_closed": recorded,
        "full_coverage": prior is not None,
    }
    boxes: dict[str, np.ndarray] = {}
    for split in splits:
        samples = dataset.split(split)
        df = detect_split(
            detector,
            samples,
            dataset.root,
            cache_dir=cache_dir,
            fail_closed=prior,
            batch_size=batch_size,
            progress=progress,
        )
        boxes.update(boxes_by_path(df, dataset.root))
        n = max(1, len(samples))
        found = df.attrs["num_with_face"]
        info[f"face_rate_{split}"] = (found + df.attrs["num_fail_closed"]) / n
        info[f"detection_rate_{split}"] = found / n
    return boxes, info


def dataset_face_maps(
    dataset,
    detector: Detector | str,
    splits: Sequence[str] = SPLITS,
    *,
    params: Mapping | None = None,
    cache_dir=None,
    progress: bool = True,
    batch_size: int = 64,
) -> dict[str, np.ndarray]:
    """Per-pixel face maps of every image in ``dataset``'s ``splits``, for ``mask="segmentation"``.

    Args:
        dataset, detector, splits, params, cache_dir, progress, batch_size: as in
            :func:`dataset_boxes`; the detector must give maps (``gives_maps``: reidface).

    Returns:
        ``{absolute path: float32 (h, w)}`` at the detector's resolution, through the detection
        cache (:func:`reidlab.faces.cache.split_face_maps`, maps.npz beside the boxes).

    Raises:
        DetectorError: "<detector> gives boxes only" for a detector without maps (before any
            image is read).
    """
    from reidlab.faces.cache import split_face_maps

    if isinstance(detector, str):
        from reidlab.faces.options import detector_from_config

        detector = detector_from_config(detector, params, root=dataset.root)
    elif params:
        raise ValueError("dataset_face_maps: params= only goes with a detector name")
    if not detector.gives_maps:
        detector.face_maps([])  # the detector's own one-line "gives boxes only" error
    maps: dict[str, np.ndarray] = {}
    for split in splits:
        maps.update(
            split_face_maps(
                detector,
                dataset.split(split),
                dataset.root,
                cache_dir=cache_dir,
                batch_size=batch_size,
                progress=progress,
            )
        )
    return maps
