"""Face detection for re-ID crops: backends behind one interface, a content-hash cache, measurement.

* :func:`build_detector` ``(name, **params)`` -> :class:`Detector`; every backend answers
  ``detect_batch(images, paths=None)`` (the oracle needs the paths).
* :func:`detector_from_args` / :func:`detector_from_config` build one from CLI flags
  (:func:`add_detector_arguments`) or a settings dict, leaving defaults to the backend.
* :func:`detect_split` runs a detector over a split with a parquet cache -> a DataFrame of boxes.
* :func:`boxes_by_path` turns that table into ``{abs_path: (K, 4) float32}`` for loaders.
* :func:`dataset_boxes` does both for a dataset's splits: ``(boxes_by_abs_path, info)``.
"""

from reidlab.faces.base import Detector, DetectorError, available_detectors, build_detector
from reidlab.faces.cache import boxes_by_path, detect_split, fail_closed_summary
from reidlab.faces.dataset import dataset_boxes, dataset_face_maps
from reidlab.faces.options import (
    DEFAULT_DETECTOR,
    DETECTOR_PARAMS,
    add_detector_arguments,
    detector_from_args,
    detector_from_config,
)
from reidlab.faces.prior import HeadPrior

__all__ = [
    "DEFAULT_DETECTOR",
    "DETECTOR_PARAMS",
    "Detector",
    "DetectorError",
    "HeadPrior",
    "add_detector_arguments",
    "available_detectors",
    "boxes_by_path",
    "build_detector",
    "dataset_boxes",
    "dataset_face_maps",
    "detect_split",
    "detector_from_args",
    "detector_from_config",
    "fail_closed_summary",
]
