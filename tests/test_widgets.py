"""The explorer (controls from the method registry, padded boxes) and the one box-padding function
shared by the explorer, the data loader and the anonymization ops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reidlab.boxes import pad_boxes


def _dets():
    return [
        np.array([[1, 1, 5, 5, 0.9], [2, 2, 3, 3, 0.3], [0, 0, 8, 8, 0.8]], np.float32),
        np.zeros((0, 5), np.float32),
        np.array([[4, 4, 6, 9, 0.6]], np.float32),
    ]


# ---------------------------------------------------------------- pad_boxes


def test_pad_boxes_threshold_and_first_k():
    b, v = pad_boxes(_dets(), 1, min_score=0.5)
    assert b.dtype == np.float32 and b.shape == (3, 1, 4)
    assert v.tolist() == [[True], [False], [True]]
    assert b[0, 0].tolist() == [1, 1, 5, 5] and b[1, 0].tolist() == [0, 0, 0, 0]


def test_pad_boxes_largest_k_and_default_k():
    b, v = pad_boxes(_dets(), 2, keep="largest")
    assert b[0].tolist() == [[0, 0, 8, 8], [1, 1, 5, 5]] and v[0].tolist() == [True, True]
    b, v = pad_boxes(_dets())  # K = the most boxes of any image
    assert b.shape == (3, 3, 4) and v.sum(axis=1).tolist() == [3, 0, 1]
    b, v = pad_boxes([np.zeros((0, 4))], 4)
    assert b.shape == (1, 4, 4) and not v.any()


def test_pad_boxes_torch_in_torch_out():
    b, v = pad_boxes([torch.tensor([[1.0, 2.0, 3.0, 4.0]], dtype=torch.float64), torch.zeros(0, 4)])
    assert (
        isinstance(b, torch.Tensor) and b.dtype == torch.float64 and v.tolist() == [[True], [False]]
    )
    b, v = pad_boxes([np.ones((1, 4))], dtype=torch.float32)
    assert isinstance(b, torch.Tensor) and b.dtype == torch.float32
    with pytest.raises(ValueError, match=r"boxes\[0\]: expected shape \(K, 4\)"):
        pad_boxes([np.zeros((2, 3))])


# ---------------------------------------------------------------- the explorer


def _data():
    from reidlab.widgets import ExplorerData

    x = torch.rand(3, 3, 16, 12, generator=torch.Generator().manual_seed(0))
    return ExplorerData(x, _dets())


def test_explorer_boxes_filter_by_threshold():
    boxes, valid = _data().boxes(0.5, max_faces=4)
    assert boxes.shape == (3, 4, 4) and valid.sum(dim=1).tolist() == [2, 0, 1]
    assert boxes[0, :2].tolist() == [[1, 1, 5, 5], [0, 0, 8, 8]]


def test_explorer_controls_match_the_registry():
    pytest.importorskip("ipywidgets")
    from reidlab.anonymize.methods import METHODS
    from reidlab.widgets import ExplorerControls

    c = ExplorerControls.build()
    assert c.settings() == {
        "method": "blur",
        "mask": "box",
        "scale": 1.2,
        "feather": 0.0,
        "sigma_rel": 0.25,
    }
    assert set(c.common) == {"mask", "scale", "feather"}
    assert {m: set(ctl) for m, ctl in c.per_method.items()} == {
        "blur": {"sigma_rel"},
        "pixelate": {"blocks"},
        "fill": {"fill"},
        "zero": set(),
        "none": set(),
    }
    for name in METHODS:
        c.method.value = name
        s = c.settings()
        for m, controls in c.per_method.items():
            for ctl in controls.values():
                assert (ctl.layout.display == "") == (m == name)
        assert s["method"] == name
    c.method.value = "pixelate"
    assert c.settings()["blocks"] == 4
    c.method.value = "fill"
    assert c.settings()["fill"] == "mean"


def test_static_figure_rows_come_from_the_registry():
    from reidlab.widgets import default_settings

    assert default_settings() == [
        {"method": "blur", "sigma_rel": 0.25},
        {"method": "pixelate", "blocks": 4},
        {"method": "fill", "fill": "mean"},
        {"method": "zero"},
    ]


def test_explorer_and_static_figure_render():
    pytest.importorskip("ipywidgets")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from reidlab.widgets import anonymize_with, explorer, static_settings_figure

    data = _data()
    y = anonymize_with(data, 0.5, method="pixelate", blocks=2, scale=1.2)
    assert y.shape == data.images.shape and torch.equal(y[1], data.images[1])  # no face in 1
    fig = static_settings_figure(data, threshold=0.5, max_images=3)
    plt.close(fig)
    app = explorer(data, threshold=0.5)
    controls, image = app.children
    assert len(image.value) > 0  # rendered once on creation
    method = controls.children[0]
    method.value = "zero"  # re-renders with the zero method's settings
    assert len(image.value) > 0
    plt.close("all")


def test_loader_keeps_the_largest_boxes_scaled_to_the_resized_image(tmp_path):
    import cv2

    from reidlab.datasets.base import Sample
    from reidlab.loading import ReIDImageDataset

    path = str(tmp_path / "a.png")
    cv2.imwrite(path, np.zeros((32, 16, 3), np.uint8))
    boxes = {path: np.array([[0, 0, 2, 2], [0, 0, 8, 8], [1, 1, 5, 5]], np.float32)}
    item = ReIDImageDataset([Sample(path, 1, 0)], size=(64, 32), boxes=boxes, max_faces=2)[0]
    assert item["image"].shape == (3, 64, 32)
    assert item["boxes"].tolist() == [[0, 0, 16, 16], [2, 2, 10, 10]]  # x2: the resize
    assert item["valid"].tolist() == [True, True]
    item = ReIDImageDataset([Sample(path, 1, 0)], size=None, boxes={}, max_faces=3)[0]
    assert item["boxes"].shape == (3, 4) and item["valid"].tolist() == [False] * 3
    assert item["boxes"].dtype == torch.float32
