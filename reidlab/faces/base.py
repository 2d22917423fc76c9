"""The face-detector interface every backend implements, and the registry ``build_detector``.

One entry point: ``detector.detect_batch(images, paths=None)`` maps a list of RGB uint8 images
``(H, W, 3)`` (sizes may differ) to one float32 array ``(K, 5)`` per image: ``x1, y1, x2, y2, score``
in the ORIGINAL image's pixels, clipped to the image, sorted by descending score. ``K`` may be 0.
``paths`` (the images' files) are passed along by callers that have them; pixel backends ignore
them, a backend that answers by file (the ground-truth oracle) declares ``needs_paths = True`` and
raises when they are missing. Building a detector from command-line flags or a configuration dict:
:mod:`reidlab.faces.options`.

Shared post-processing (done here, once, for every backend) is controlled by keyword parameters that
every backend accepts and that are part of the detector's cache key:

* ``threshold``: minimum score kept;
* ``head_region``: if set (a fraction of the crop height, e.g. ``0.45``), drop boxes whose centre lies
  below that fraction of the image: in a pedestrian crop the face is in the upper part, so a box near
  the feet is a false positive. ``None`` keeps all boxes (the right choice for ordinary photos);
* ``min_rel_size`` / ``max_rel_size``: drop boxes whose height is outside these fractions of the image
  height (``None`` = no bound);
* ``max_faces``: keep at most this many boxes (highest scores) per image;
* ``box_scale``: enlarge every box about its centre by this factor (before clipping). Detectors draw
  tight boxes; on 128x64 re-ID crops (faces 8-20 px) a 1.3x box covers the parsed face pixels far
  more often (see data/faces.md). ``1.0`` keeps the detector's own box.

>>> from reidlab.faces import build_detector
>>> det = build_detector("centerface", upscale=2.0, threshold=0.5)     # doctest: +SKIP
>>> det.detect_batch([img])[0]            # (K, 5) float32              # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
from collections.abc import Sequence

import numpy as np

from reidlab.boxes import scale_boxes
from reidlab.errors import ImageReadError, ReidlabError
from reidlab.hashing import json_hash

log = logging.getLogger(__name__)

# name -> "module:class"; imported lazily so ``import reidlab.faces`` stays light.
_REGISTRY: dict[str, str] = {
    "centerface": "reidlab.faces.centerface:CenterFaceDetector",
    "mtcnn": "reidlab.faces.mtcnn:MTCNNDetector",
    "oracle": "reidlab.faces.oracle:OracleDetector",
    "onnx": "reidlab.faces.external:OnnxFileDetector",
    "torch": "reidlab.faces.external:TorchFileDetector",
    "reidface": "reidlab.faces.reidface:ReidFaceDetector",
}

EMPTY = np.zeros((0, 5), dtype=np.float32)


class DetectorError(ReidlabError):
    """A detector was misconfigured or its model file does not follow the documented contract."""


def available_detectors() -> list[str]:
    return sorted(_REGISTRY)


def detector_class(name: str) -> type[Detector]:
    """The backend class registered as ``name`` (imported on first use).

    Raises:
        DetectorError: unknown name (the message lists the known ones).
    """
    key = str(name).lower()
    if key not in _REGISTRY:
        raise DetectorError(
            f"unknown face detector {name!r}; known: {', '.join(available_detectors())}"
        )
    mod, cls = _REGISTRY[key].split(":")
    return getattr(importlib.import_module(mod), cls)


def accepted_params(cls: type) -> dict[str, inspect.Parameter]:
    """Keyword parameters a detector class's constructor takes, its own and (through ``**common``)
    its bases': ``{name: inspect.Parameter}`` (the first definition of a name wins)."""
    out: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is object:
            continue
        sig = inspect.signature(klass.__init__)
        more = False
        for p in list(sig.parameters.values())[1:]:
            if p.kind is p.VAR_KEYWORD:
                more = True
            elif p.kind is not p.VAR_POSITIONAL:
                out.setdefault(p.name, p)
        if not more:
            break
    return out


def build_detector(name: str, **params) -> Detector:
    """Build detector ``name`` (centerface, mtcnn, oracle, onnx, torch) with keyword ``params``.

    Parameters not given take the backend's own defaults (the class signature: the one place they
    are written). Command-line flags and configuration dicts go through
    :func:`reidlab.faces.options.detector_from_config`, which also checks the values.

    Raises:
        DetectorError: unknown name (the message lists the known ones), or a parameter the
            backend does not take (the message lists those it takes).
    """
    cls = detector_class(name)
    known = accepted_params(cls)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise DetectorError(
            f"{cls.name}: unknown parameter(s) {', '.join(unknown)}; "
            f"it takes {', '.join(sorted(known))}"
        )
    return cls(**params)


def as_rgb_image(img, index: int = 0) -> np.ndarray:
    """Validate/convert one input image to RGB uint8 ``(H, W, 3)`` (gray and RGBA are converted).

    Raises:
        ImageReadError: ``None``, an empty array, or an array that is not an image.
    """
    from reidlab.imageio import to_rgb_uint8

    if img is None:
        raise ImageReadError(f"image #{index}: got None instead of an RGB uint8 array")
    arr = np.asarray(img)
    if arr.size == 0 or arr.ndim < 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageReadError(f"image #{index}: empty image of shape {arr.shape}")
    return to_rgb_uint8(arr, name=f"image #{index}")


def resize_by(img: np.ndarray, factor: float) -> np.ndarray:
    """Resize an ``(H, W, C)`` image by ``factor`` (bilinear when enlarging, area when shrinking)."""
    import cv2

    h, w = img.shape[:2]
    nh, nw = max(1, round(h * factor)), max(1, round(w * factor))
    if (nh, nw) == (h, w):
        return img
    return cv2.resize(
        img, (nw, nh), interpolation=cv2.INTER_LINEAR if factor >= 1 else cv2.INTER_AREA
    )


def clip_boxes(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Clip ``(K, >=4)`` boxes to ``[0, width] x [0, height]`` and drop those left with no area."""
    boxes = np.asarray(boxes, dtype=np.float32).copy()
    if boxes.size == 0:
        return EMPTY.copy()
    boxes[:, 0:4:2] = boxes[:, 0:4:2].clip(0, width)
    boxes[:, 1:4:2] = boxes[:, 1:4:2].clip(0, height)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes[keep]


def nms(boxes: np.ndarray, iou: float) -> np.ndarray:
    """Greedy non-maximum suppression of ``(K, 5)`` boxes; returns the kept rows sorted by score.

    Written in numpy (10 lines) rather than calling ``torchvision.ops.nms`` so that the ONNX backends
    never import torch; the result is the same greedy algorithm (tests compare against torchvision).
    """
    boxes = np.asarray(boxes, dtype=np.float32)
    if len(boxes) == 0:
        return EMPTY.copy()
    order = np.argsort(-boxes[:, 4], kind="stable")
    boxes = boxes[order]
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = (x2 - x1) * (y2 - y1)
    keep = np.ones(len(boxes), dtype=bool)
    for i in range(len(boxes)):
        if not keep[i]:
            continue
        w = (np.minimum(x2[i], x2[i + 1 :]) - np.maximum(x1[i], x1[i + 1 :])).clip(0)
        h = (np.minimum(y2[i], y2[i + 1 :]) - np.maximum(y1[i], y1[i + 1 :])).clip(0)
        inter = w * h
        ovr = inter / np.maximum(area[i] + area[i + 1 :] - inter, 1e-12)
        keep[i + 1 :] &= ovr < iou
    return boxes[keep]


class Detector:
    """Base class: subclasses implement :meth:`_detect` on validated RGB uint8 images.

    Attributes:
        name: the backend name (``"centerface"``, ...), used in caches and result tables.
        params: every parameter that changes the output (JSON-serialisable); the cache key.
        cacheable: whether :func:`reidlab.faces.detect_split` may cache results by image content.
        needs_paths: the backend answers by image file, not by pixels (the ground-truth oracle):
            :meth:`detect_batch` then requires ``paths`` and ``_detect(images, paths)`` gets them.
        model_param: the constructor keyword naming the backend's model file (``--model``), if any.
        gives_maps: the backend also gives per-pixel face maps (:meth:`face_maps`), for
            ``mask="segmentation"``; the others give boxes only.
    """

    name = "base"
    cacheable = True
    needs_paths = False
    model_param: str | None = None
    gives_maps = False

    def __init__(
        self,
        *,
        upscale: float = 1.0,
        threshold: float = 0.5,
        head_region: float | None = None,
        min_rel_size: float | None = None,
        max_rel_size: float | None = None,
        max_faces: int | None = None,
        box_scale: float = 1.0,
    ) -> None:
        if upscale <= 0:
            raise DetectorError(f"{self.name}: upscale must be > 0, got {upscale}")
        if not 0.0 <= threshold <= 1.0:
            raise DetectorError(f"{self.name}: threshold must be in [0, 1], got {threshold}")
        if head_region is not None and not 0.0 < head_region <= 1.0:
            raise DetectorError(
                f"{self.name}: head_region must be in (0, 1] or None, got {head_region}"
            )
        if box_scale <= 0:
            raise DetectorError(f"{self.name}: box_scale must be > 0, got {box_scale}")
        self.params: dict = {
            "upscale": float(upscale),
            "threshold": float(threshold),
            "head_region": None if head_region is None else float(head_region),
            "min_rel_size": None if min_rel_size is None else float(min_rel_size),
            "max_rel_size": None if max_rel_size is None else float(max_rel_size),
            "max_faces": None if max_faces is None else int(max_faces),
            "box_scale": float(box_scale),
        }
        self.calls = 0  # number of detect_batch calls (tests use it to prove caching)

    # --- public API -------------------------------------------------------------------------
    def detect_batch(
        self, images: Sequence[np.ndarray], paths: Sequence | None = None
    ) -> list[np.ndarray]:
        """Detect faces in each image: the one entry point of every backend.

        Args:
            images: RGB uint8 ``(H, W, 3)`` arrays (gray / RGBA / other dtypes are converted).
            paths: the images' files, one per image, when the caller has them. Pixel backends
                ignore them; backends with ``needs_paths`` (the oracle) require them.

        Returns:
            one float32 ``(K, 5)`` array ``x1, y1, x2, y2, score`` per image (original pixels).
        """
        self.calls += 1
        if paths is not None:
            paths = [str(p) for p in paths]
            if len(paths) != len(images):
                raise DetectorError(f"{self.name}: got {len(images)} images but {len(paths)} paths")
        elif self.needs_paths:
            raise DetectorError(
                f"{self.name}: answers by image file; call detect_batch(images, paths)"
            )
        imgs = [as_rgb_image(im, i) for i, im in enumerate(images)]
        if not imgs:
            return []
        raw = self._detect(imgs, paths) if self.needs_paths else self._detect(imgs)
        return [self.postprocess(b, im.shape[0], im.shape[1]) for b, im in zip(raw, imgs)]

    def detect_paths(self, paths: Sequence[str]) -> list[np.ndarray]:
        """Detect faces in image files: ``detect_batch`` on the decoded files, paths passed along.

        A thin convenience; :meth:`detect_batch` is the entry point.
        """
        from reidlab.imageio import read_rgb

        paths = [str(p) for p in paths]
        return self.detect_batch([read_rgb(p) for p in paths], paths)

    def face_maps(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per image, a float32 ``(h, w)`` map of face probabilities in [0, 1] at the backend's own
        resolution (e.g. 1/4 of its input); consumers enlarge it bilinearly to the image size
        (:func:`reidlab.anonymize.masks.segmentation_masks`). Only backends with
        :attr:`gives_maps`; the others raise :class:`DetectorError`."""
        raise DetectorError(
            f"{self.name} gives boxes only, no per-pixel face maps; use a detector that gives "
            "them (reidface) for --mask segmentation"
        )

    def __call__(self, image: np.ndarray, path: str | None = None) -> np.ndarray:
        return self.detect_batch([image], None if path is None else [path])[0]

    @property
    def key(self) -> str:
        """Short hash of name + params: the cache folder of this configuration."""
        return json_hash({"name": self.name, "params": self.params})

    def params_json(self) -> str:
        return json.dumps(self.params, sort_keys=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params.items())})"

    # --- for subclasses ---------------------------------------------------------------------
    def _detect(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Raw ``(K, 5)`` boxes per image in original pixels (before :meth:`postprocess`).

        Backends with ``needs_paths = True`` implement ``_detect(images, paths)`` instead.
        """
        raise NotImplementedError

    def postprocess(self, boxes: np.ndarray, height: int, width: int) -> np.ndarray:
        """Threshold, box_scale, clip, head-region / size filters, max_faces; sorted by score."""
        p = self.params
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 5)
        boxes = boxes[boxes[:, 4] >= p["threshold"]]
        if p["box_scale"] != 1.0 and len(boxes):
            boxes = scale_boxes(boxes, p["box_scale"])
        boxes = clip_boxes(boxes, height, width)
        if len(boxes) == 0:
            return EMPTY.copy()
        bh = boxes[:, 3] - boxes[:, 1]
        keep = np.ones(len(boxes), dtype=bool)
        if p["head_region"] is not None:
            keep &= (boxes[:, 1] + boxes[:, 3]) / 2 <= p["head_region"] * height
        if p["min_rel_size"] is not None:
            keep &= bh >= p["min_rel_size"] * height
        if p["max_rel_size"] is not None:
            keep &= bh <= p["max_rel_size"] * height
        boxes = boxes[keep]
        boxes = boxes[np.argsort(-boxes[:, 4], kind="stable")]
        if p["max_faces"] is not None:
            boxes = boxes[: p["max_faces"]]
        return np.ascontiguousarray(boxes, dtype=np.float32)
