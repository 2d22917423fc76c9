"""The learned re-ID face localizer (``reidface``): shipped weights, the detector contract, and the
recorded held-out recall reproduced with reidlab's own measurement (research/reidface/RESULTS.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import require_shared

from reidlab.faces import build_detector

REPO = Path(__file__).resolve().parents[1]


def test_shipped_weights_load_with_weights_only_and_follow_the_contract():
    import torch

    from reidlab.faces.reidface import WEIGHTS

    ckpt = torch.load(WEIGHTS, map_location="cpu", weights_only=True)
    assert ckpt["widths"] == [12, 24, 48, 64] and WEIGHTS.stat().st_size < 1_000_000
    det = build_detector("reidface")
    rng = np.random.default_rng(0)
    imgs = [
        rng.integers(0, 256, (128, 64, 3), np.uint8),
        rng.integers(0, 256, (256, 128, 3), np.uint8),
        np.zeros((40, 20, 3), np.uint8),
    ]
    out = det.detect_batch(imgs)
    for b, im in zip(out, imgs):
        assert b.dtype == np.float32 and b.shape[1] == 5
        assert (
            (b[:, 0] >= 0).all()
            and (b[:, 2] <= im.shape[1]).all()
            and (b[:, 3] <= im.shape[0]).all()
        )
        assert (b[:, 4] >= det.params["threshold"]).all()
    masks = det.soft_masks(imgs)
    assert [m.shape for m in masks] == [im.shape[:2] for im in imgs]
    assert all(m.dtype == np.float32 and 0 <= m.min() and m.max() <= 1 for m in masks)


def test_a_bad_weights_file_is_one_clear_error(tmp_path):
    from reidlab.faces import DetectorError

    bad = tmp_path / "w.pt"
    bad.write_bytes(b"not weights")
    with pytest.raises(DetectorError, match="reidface: cannot load weights"):
        build_detector("reidface", weights=str(bad)).detect_batch(
            [np.zeros((128, 64, 3), np.uint8)]
        )


@pytest.mark.shared
def test_shipped_weights_reach_the_recorded_recall_on_a_fixed_test_sample():
    """The first 300 crops (by name) of the held-out test identities that have a parsing mask:
    recall at the default threshold equals the value research/reidface's own code measured with
    the shipped file, within 1 point. Reference (research/reidface/model.py ReidFaceLocalizer at
    its defaults + measure.box_metrics, 1 torch thread): ``recall 0.8034 (188 of 234 crops with
    >= 20 face px), face-less boxed 0 of 50`` (script: load the 300 crops and masks with cv2,
    ``box_metrics(ReidFaceLocalizer(WEIGHTS).detect_batch(crops), faces)``)."""
    from reidlab.faces.measure import parsing_recall
    from reidlab.imageio import read_rgb

    root = require_shared("market1501")
    masks = require_shared("market1501", "bounding_box_train_parsing_pgt")
    test_ids = set(json.loads((REPO / "research" / "reidface" / "split.json").read_text())["test"])
    paths = sorted(
        p
        for p in (root / "bounding_box_train").glob("*.jpg")
        if p.name[:4] in test_ids and (masks / f"{p.stem}.png").is_file()
    )[:300]
    assert (paths[0].stem, paths[-1].stem) == ("0010_c1s6_027271_05", "0132_c6s1_041001_01")
    boxes = build_detector("reidface").detect_batch([read_rgb(p) for p in paths])
    r = parsing_recall({str(p): b for p, b in zip(paths, boxes)}, [str(p) for p in paths], masks)
    assert (r["with_face"], r["faceless"]) == (234, 50)
    assert r["recall"] == pytest.approx(188 / 234, abs=0.01)
    assert r["faceless_boxed"] <= 1


@pytest.mark.slow
@pytest.mark.shared
def test_recorded_held_out_recall_reproduces():
    """On the 150 held-out identities (never trained or tuned on): 84.2% recall at 4.5% face-less
    crops boxed (RESULTS.md); measured here with reidlab.faces.measure, within 1 point."""
    from reidlab.datasets import build_dataset
    from reidlab.faces import boxes_by_path, detect_split
    from reidlab.faces.measure import parsing_recall

    root = require_shared("market1501")
    masks = require_shared("market1501", "bounding_box_train_parsing_pgt")
    test_ids = {
        int(p)
        for p in json.loads((REPO / "research" / "reidface" / "split.json").read_text())["test"]
    }
    ds = build_dataset("market1501", root)
    samples = [s for s in ds.train if s.pid in test_ids]
    df = detect_split(build_detector("reidface"), samples, ds.root, cache_dir=False, progress=False)
    r = parsing_recall(boxes_by_path(df, ds.root), [s.path for s in samples], masks)
    assert (r["with_face"], r["faceless"]) == (1897, 397)
    assert r["recall"] == pytest.approx(0.842, abs=0.01)
    assert r["faceless_box_rate"] == pytest.approx(0.045, abs=0.01)
