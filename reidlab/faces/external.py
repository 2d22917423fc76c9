"""Bring your own detector: an ONNX file or a TorchScript file following one documented contract.

The contract (so that e.g. a TinyFaces port or a newer detector plugs in without code changes):

* **Input**: one float32 tensor ``(B, 3, H, W)``, RGB, values in ``[0, 1]``. ``H, W`` are the images'
  size after ``upscale`` (every image of one call has the same size; reidlab groups images by size).
  If the model needs sizes divisible by ``pad_to``, set ``pad_to`` and images are zero-padded at the
  bottom/right.
* **Output**: one float32 tensor ``(B, N, 5)``: ``x1, y1, x2, y2, score`` in INPUT pixels (of the
  tensor given), ``N`` fixed per call; unused rows are padding with ``score <= 0`` and are dropped.
  For ONNX the first output is used; for TorchScript ``forward`` returns the tensor (or a tuple whose
  first item is it).

reidlab then divides by the scale factor, applies NMS (``nms_iou``; ``None`` to trust the model),
``threshold`` and the common filters, and clips to the image.

>>> det = build_detector("torch", path="my_detector.pt", upscale=2.0)     # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reidlab.batching import batches_by_shape
from reidlab.faces.base import EMPTY, Detector, DetectorError, nms, resize_by
from reidlab.hashing import file_hash


class _FileDetector(Detector):
    kind = "file"
    model_param = "path"

    def __init__(
        self,
        *,
        path: str | Path | None = None,
        upscale: float = 1.0,
        threshold: float = 0.5,
        nms_iou: float | None = 0.3,
        pad_to: int = 1,
        batch_size: int = 32,
        **common,
    ) -> None:
        super().__init__(upscale=upscale, threshold=threshold, **common)
        if path is None:
            raise DetectorError(
                f"{self.name}: give the detector file (path=..., on the command line --model FILE)"
            )
        path = Path(path)
        if not path.is_file():
            raise DetectorError(f"{self.name}: no detector file at {path}")
        self.path = path
        # the file's content hash is part of the cache key: a retrained file invalidates the cache
        try:
            sha = file_hash(path, "sha1")[:12]
        except OSError as e:
            raise DetectorError(f"{self.name}: cannot read detector file {path}: {e}") from e
        self.params.update(
            path=str(path),
            file_sha1=sha,
            nms_iou=None if nms_iou is None else float(nms_iou),
            pad_to=int(pad_to),
        )
        self.batch_size = int(batch_size)
        self._model = None

    def _run(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _detect(self, images: list[np.ndarray]) -> list[np.ndarray]:
        up, pad = self.params["upscale"], self.params["pad_to"]
        prepared = []
        for im in images:
            h, w = im.shape[:2]
            r = resize_by(im, up)
            nh, nw = r.shape[:2]
            ph, pw = -(-nh // pad) * pad, -(-nw // pad) * pad
            x = np.zeros((3, ph, pw), np.float32)
            x[:, :nh, :nw] = r.transpose(2, 0, 1) / 255.0
            prepared.append((x, nw / w, nh / h))
        out: list[np.ndarray] = [EMPTY] * len(images)
        for chunk in batches_by_shape(prepared, lambda x: x[0].shape, self.batch_size):
            res = np.asarray(self._run(np.stack([prepared[i][0] for i in chunk])), dtype=np.float32)
            if res.ndim != 3 or res.shape[0] != len(chunk) or res.shape[2] != 5:
                raise DetectorError(
                    f"{self.name}: {self.path} returned shape {res.shape}; the contract is (B, N, 5) "
                    f"x1, y1, x2, y2, score with B={len(chunk)} (see reidlab/faces/external.py)"
                )
            for j, i in enumerate(chunk):
                b = res[j][res[j][:, 4] > 0].copy()
                if self.params["nms_iou"] is not None:
                    b = nms(b, self.params["nms_iou"])
                _, sx, sy = prepared[i]
                b[:, [0, 2]] /= sx
                b[:, [1, 3]] /= sy
                out[i] = b
        return out


class TorchFileDetector(_FileDetector):
    """A TorchScript file (``torch.jit.save``) following the contract above; runs on CPU."""

    name = "torch"

    def _run(self, batch: np.ndarray) -> np.ndarray:
        import torch

        if self._model is None:
            try:
                self._model = torch.jit.load(str(self.path), map_location="cpu").eval()
            except Exception as e:
                raise DetectorError(f"torch: cannot load TorchScript file {self.path}: {e}") from e
        with torch.no_grad():
            y = self._model(torch.from_numpy(batch))
        if isinstance(y, (tuple, list)):
            y = y[0]
        return y.detach().cpu().numpy()


class OnnxFileDetector(_FileDetector):
    """An ONNX file following the contract above, via onnxruntime (CUDA when available)."""

    name = "onnx"

    def __init__(self, *, threads: int = 0, **kw) -> None:
        """``threads``: onnxruntime intra-op threads (0 = its default); the rest as for the base."""
        super().__init__(**kw)
        self._threads = int(threads)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if self._model is None:
            import onnxruntime as ort

            from reidlab.faces.centerface import choose_providers

            so = ort.SessionOptions()
            if self._threads:
                so.intra_op_num_threads = self._threads
            try:
                self._model = ort.InferenceSession(
                    str(self.path), sess_options=so, providers=list(choose_providers())
                )
            except Exception as e:
                raise DetectorError(f"onnx: cannot load ONNX file {self.path}: {e}") from e
        sess = self._model
        return sess.run([sess.get_outputs()[0].name], {sess.get_inputs()[0].name: batch})[0]
