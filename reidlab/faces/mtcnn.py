"""MTCNN (Zhang et al. 2016) through ``facenet-pytorch``: weights ship in its wheel (``data/*.pt``).

facenet-pytorch's ``MTCNN.detect`` already runs the P/R/O-net cascade on a batch of equal-size
images (torchvision ``batched_nms``), so this wrapper only groups images by (upscaled) size, feeds
each group as one batch and maps boxes back to original pixels. The last-stage (O-net) probability
is the score; ``threshold`` filters it (the cascade's own stage thresholds are ``stage_thresholds``).
The device follows ``device`` (default CPU); nothing moves to CUDA on its own.
"""

from __future__ import annotations

import logging

import numpy as np

from reidlab.batching import batches_by_shape
from reidlab.faces.base import EMPTY, Detector, DetectorError, resize_by

log = logging.getLogger(__name__)


class MTCNNDetector(Detector):
    """MTCNN cascade.

    Args:
        upscale: resize factor before detection (P-net's window is 12 px: tiny faces need >= 2).
        threshold: minimum O-net probability kept.
        min_face_size: smallest face searched, in upscaled pixels (>= 12).
        stage_thresholds: P/R/O-net cascade thresholds (facenet-pytorch's default 0.6, 0.7, 0.7).
        factor: image-pyramid scale step.
        batch_size: images per cascade call.
        device: torch device string for the networks (default ``"cpu"``).
        **common: ``head_region``, ``min_rel_size``, ``max_rel_size``, ``max_faces`` (see base).
    """

    name = "mtcnn"

    def __init__(
        self,
        *,
        upscale: float = 2.0,
        threshold: float = 0.7,
        min_face_size: int = 12,
        stage_thresholds=(0.6, 0.7, 0.7),
        factor: float = 0.709,
        batch_size: int = 64,
        device: str = "cpu",
        **common,
    ) -> None:
        super().__init__(upscale=upscale, threshold=threshold, **common)
        if min_face_size < 12:
            raise DetectorError(
                f"mtcnn: min_face_size must be >= 12 (P-net's window), got {min_face_size}"
            )
        self.params.update(
            min_face_size=int(min_face_size),
            stage_thresholds=[float(t) for t in stage_thresholds],
            factor=float(factor),
        )
        self.batch_size = int(batch_size)
        self.device = device
        self._net = None

    @property
    def net(self):
        if self._net is None:
            import torch

            try:
                from facenet_pytorch.models.mtcnn import MTCNN
            except ImportError as e:  # pragma: no cover - depends on the environment
                raise DetectorError(
                    f"mtcnn: facenet-pytorch is needed for the MTCNN weights ({e})"
                ) from e
            p = self.params
            self._net = MTCNN(
                keep_all=True,
                min_face_size=p["min_face_size"],
                thresholds=list(p["stage_thresholds"]),
                factor=p["factor"],
                post_process=False,
                select_largest=False,
                device=torch.device(self.device),
            )
            self._net.eval()
        return self._net

    def _detect(self, images: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        resized = [resize_by(im, self.params["upscale"]) for im in images]
        out: list[np.ndarray] = [EMPTY] * len(images)
        for chunk in batches_by_shape(resized, batch_size=self.batch_size):
            if min(resized[chunk[0]].shape[:2]) < 12:  # smaller than P-net's window: no face
                continue
            with torch.no_grad():
                boxes, probs = self.net.detect(np.stack([resized[i] for i in chunk]))
            for i, b, p in zip(chunk, boxes, probs):
                if b is None or len(b) == 0:
                    continue
                h, w = images[i].shape[:2]
                arr = np.concatenate(
                    [
                        np.asarray(b, np.float32).reshape(-1, 4),
                        np.asarray(p, np.float32).reshape(-1, 1),
                    ],
                    axis=1,
                )
                arr[:, [0, 2]] *= w / resized[i].shape[1]
                arr[:, [1, 3]] *= h / resized[i].shape[0]
                out[i] = arr
        return out
