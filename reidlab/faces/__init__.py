"""Face detection for re-ID crops: backends behind one interface, a content-hash cache, measurement.

* :func:`build_detector` ``(name, **params)`` -> :class:`Detector` with ``detect_batch(images)``.
* :func:`detect_split` runs a detector over a split with a parquet cache -> a DataFrame of boxes.
* :func:`boxes_by_path` turns that table into ``{abs_path: (K, 4) float32}`` for loaders.
"""

from reidlab.faces.base import Detector, DetectorError, available_detectors, build_detector
from reidlab.faces.cache import boxes_by_path, detect_split, fail_closed_summary
from reidlab.faces.prior import HeadPrior

__all__ = [
    "Detector",
    "DetectorError",
    "HeadPrior",
    "available_detectors",
    "boxes_by_path",
    "build_detector",
    "detect_split",
    "fail_closed_summary",
]
