"""The oracle "detector": ground-truth face boxes of a dataset that carries them (synthetic data).

It answers by path, so it declares ``needs_paths = True``: called like every backend,
``detect_batch(images, paths)``, it looks the boxes up by ``paths`` and uses ``images`` only for
their size (clipping, the common filters). It is an upper bound for every other backend: recall 1
by construction against the same ground truth. Without paths it cannot know which image it is
given and raises.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from reidlab.faces.base import EMPTY, Detector, DetectorError


class OracleDetector(Detector):
    """Ground-truth boxes from ``reidlab.datasets.synthetic.load_face_boxes(root)`` (or a given dict).

    Args:
        root: dataset root holding ground-truth boxes.
        boxes: alternatively, ``{abs_path: (K, 4)}`` boxes directly.
        **common: ``threshold`` etc. are accepted; scores are 1.0 so thresholds <= 1 keep all.
    """

    name = "oracle"
    cacheable = False  # answers from paths, not pixels; cheap anyway
    needs_paths = True

    def __init__(
        self,
        *,
        root: str | Path | None = None,
        boxes: dict | None = None,
        upscale: float = 1.0,
        threshold: float = 0.5,
        **common,
    ) -> None:
        super().__init__(upscale=upscale, threshold=threshold, **common)
        if boxes is None:
            if root is None:
                raise DetectorError(
                    "oracle: give root= (a dataset with ground-truth face boxes) or boxes="
                )
            from reidlab.datasets.synthetic import load_face_boxes

            boxes = load_face_boxes(root)
        self.params["root"] = None if root is None else str(Path(root).resolve())
        self._boxes = {
            os.path.realpath(k): np.asarray(v, np.float32).reshape(-1, 4) for k, v in boxes.items()
        }

    def _detect(self, images: list[np.ndarray], paths: Sequence[str]) -> list[np.ndarray]:
        out = []
        for p in paths:
            key = os.path.realpath(p)
            if key not in self._boxes:
                raise DetectorError(f"oracle: no ground-truth face boxes for {p}")
            b = self._boxes[key]
            out.append(
                np.concatenate([b, np.ones((len(b), 1), np.float32)], axis=1) if len(b) else EMPTY
            )
        return out
