"""Real-data checks of the face detectors (skip without ../shared).

Photos: ``../shared/faces`` (two portraits, a multi-face photo, a street scene). Re-ID crops:
Market-1501 train crops with human-parsing masks (label 13 = face) as pseudo ground truth.
"""

from __future__ import annotations

import random
from functools import cache

import numpy as np
import pytest
from conftest import require_shared

from reidlab.faces import build_detector, detector_from_config
from reidlab.faces.measure import iou_matrix, parsing_recall
from reidlab.imageio import read_rgb

# Big photos are shrunk before detection (upscale < 1): CenterFace misses a face filling a
# 2048 px portrait at 1x (its largest anchors are smaller), and MTCNN's pyramid is slow there.
PHOTO_SCALE = {
    "portrait_a.jpg": 0.25,
    "portrait_b.jpg": 0.25,
    "multiface.jpg": 0.5,
    "city.jpg": 1.0,
}
MIN_FACES = {"portrait_a.jpg": 1, "portrait_b.jpg": 1, "multiface.jpg": 4, "city.jpg": 3}


@cache
def _detect(name: str, photo: str) -> tuple[np.ndarray, np.ndarray]:
    """(image, boxes) of one backend on one photo, computed once per test session."""
    img = read_rgb(require_shared("faces", photo))
    params = {"upscale": PHOTO_SCALE[photo], "threshold": 0.5}
    if name == "mtcnn":
        params.update(threshold=0.9, min_face_size=20)
    return img, build_detector(name, **params)(img)


@pytest.mark.parametrize("name", ["centerface", pytest.param("mtcnn", marks=pytest.mark.slow)])
@pytest.mark.parametrize("photo", sorted(PHOTO_SCALE))
def test_backends_find_faces_in_photos(name, photo):
    img, boxes = _detect(name, photo)
    h, w = img.shape[:2]
    assert len(boxes) >= MIN_FACES[photo], boxes
    assert (boxes[:, :4] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
    if photo.startswith("portrait"):
        top = boxes[0]
        cx, cy = (top[0] + top[2]) / 2 / w, (top[1] + top[3]) / 2 / h
        # the face of a portrait: central horizontally, upper two thirds, a sizeable box
        assert 0.2 < cx < 0.8 and cy < 0.67, top
        assert (top[2] - top[0]) * (top[3] - top[1]) > 0.02 * h * w, top


@pytest.mark.slow
@pytest.mark.parametrize("photo", sorted(PHOTO_SCALE))
def test_backends_agree_on_photos(photo):
    """Two independent detectors (different architectures and training) find the same faces."""
    _, a = _detect("centerface", photo)
    _, b = _detect("mtcnn", photo)
    iou = iou_matrix(a, b)
    matched = (iou.max(1) >= 0.4).sum() if iou.size else 0
    assert matched >= MIN_FACES[photo], (a, b)


@pytest.mark.slow
def test_parsing_recall_on_market_crops():
    """Default CenterFace vs parsing masks on 200 seeded train crops; loose bounds around data/faces.md."""
    masks = sorted(require_shared("market1501", "bounding_box_train_parsing_pgt").glob("*.png"))
    random.Random(1).shuffle(masks)
    train = require_shared("market1501", "bounding_box_train")
    paths = [str(train / (m.stem + ".jpg")) for m in masks[:200]]
    det = detector_from_config(None, {})  # the default detector with its default settings
    assert det.name == "centerface" and det.params == build_detector("centerface").params
    boxes = dict(zip(paths, det.detect_batch([read_rgb(p) for p in paths], paths)))
    r = parsing_recall(boxes, paths, masks[0].parent)
    assert r["with_face"] > 120 and r["faceless"] > 15
    assert r["recall"] >= 0.6, r
    assert r["faceless_box_rate"] <= 0.2, r
