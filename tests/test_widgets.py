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
    controls, images = app.children
    (image,) = images.children  # no model: no ranking
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


def test_setting_labels_are_formatted():
    from reidlab.widgets import setting_label

    assert setting_label(
        {"method": "blur", "scale": 1.2000000000000002, "sigma_rel": 0.6500000000000001}
    ) == ("blur\nscale=1.2\nsigma_rel=0.65")


def test_static_figure_crops_are_readable_and_titled():
    import matplotlib

    matplotlib.use("Agg")
    from reidlab.widgets import _png, png_width, static_settings_figure

    x = torch.rand(3, 3, 128, 64, generator=torch.Generator().manual_seed(0))
    from reidlab.widgets import ExplorerData

    data = ExplorerData(x, _dets())
    long = {"method": "blur", "sigma_rel": 0.6500000000000001, "scale": 1.2000000000000002}
    widths = []
    for settings in ([{"method": "zero"}], [long]):
        fig = static_settings_figure(data, settings, threshold=0.5)
        assert fig._suptitle.get_text().startswith("Original crops (top row)")
        assert "2 of 3 crops have a face" in fig._suptitle.get_text()
        labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
        pos = fig.axes[0].get_position().width
        png = _png(fig)
        widths.append(pos * png_width(png))
    assert labels == ["original", "blur\nsigma_rel=0.65\nscale=1.2"]
    # the crop is at least 128 px wide, and a longer label does not shrink it
    assert widths[0] >= 128 and abs(widths[0] - widths[1]) < 1


def test_explorer_descriptions_in_full_and_image_at_its_size():
    pytest.importorskip("ipywidgets")
    from reidlab.widgets import explorer, png_width

    app = explorer(_data(), threshold=0.5)
    controls, images = app.children
    sliders = [c for c in controls.children if hasattr(c, "description") and c.description]
    assert "detector threshold" in [c.description for c in sliders]
    assert all(c.style.description_width == "initial" for c in sliders)
    (image,) = images.children
    assert int(image.width) == png_width(image.value) > 0
    assert image.layout.min_width == f"{image.width}px"


def test_load_explorer_data_takes_crops_with_faces_first(tmp_path, monkeypatch):
    import cv2

    from reidlab import faces
    from reidlab.datasets.base import ReIDDataset, Sample
    from reidlab.widgets import load_explorer_data

    samples = []
    for i in range(8):
        p = str(tmp_path / f"{i}.png")
        cv2.imwrite(p, np.full((16, 8, 3), 10 * i, np.uint8))
        samples.append(Sample(p, i, 0))
    ds = ReIDDataset("t", tmp_path, [], samples, [])
    with_face = {str(tmp_path / "3.png"), str(tmp_path / "6.png")}

    class Some:  # a face only in crops 3 and 6
        def detect_batch(self, arrays, paths=None):
            return [
                np.array([[1, 1, 4, 4, 0.9]] if p in with_face else [[1, 1, 4, 4, 0.1]], np.float32)
                for p in paths
            ]

    monkeypatch.setattr(faces, "build_detector", lambda name, **kw: Some())
    data = load_explorer_data(ds, n=2, detector="some", seed=1)
    assert set(data.paths) == with_face and sorted(data.pids) == [3, 6]


def test_live_ranking_matches_a_hand_computed_ap():
    from reidlab.widgets import ExplorerData, live_ranking

    class MeanColour(torch.nn.Module):  # feature: the mean of each channel
        input_size = (8, 4)
        pixel_mean = (0.0, 0.0, 0.0)
        pixel_std = (1.0, 1.0, 1.0)

        def forward(self, x):
            return x.mean(dim=(2, 3))

    def crops(values):
        return torch.stack([torch.full((3, 8, 4), v) for v in values])

    face = [np.array([[0, 0, 4, 4, 0.9]], np.float32)]
    q = ExplorerData(crops([0.2]), face, pids=[1], camids=[0])
    # gallery by distance to the query: 0.2 (id 1), 0.5 (id 2), 0.9 (id 1)
    q.gallery = ExplorerData(crops([0.9, 0.2, 0.5]), face * 3, pids=[1, 1, 2], camids=[1, 1, 1])
    res = live_ranking(q, MeanColour(), {"method": "zero"}, threshold=0.95, topk=3)
    # true matches at ranks 1 and 3: AP = (1/1 + 2/3) / 2; threshold 0.95 > every score: no face
    assert res["mAP_original"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert res["mAP"] == pytest.approx(res["mAP_original"])
    assert res["rows"][0]["match"] == [True, False, True]
    assert res["rows"][1]["marked"] == [False, False, False]
    res = live_ranking(q, MeanColour(), {"method": "zero"}, threshold=0.5, topk=3)
    assert res["rows"][1]["marked"] == [True, True, True] and res["rows"][1]["query_marked"]
    assert res["rows"][1]["label"] == "zero"


def test_explorer_with_a_model_shows_the_ranking_and_live_map():
    pytest.importorskip("ipywidgets")
    import matplotlib.pyplot as plt

    from reidlab.widgets import ExplorerData, explorer

    class MeanColour(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    data = _data()
    data.pids, data.camids = [1, 2, 3], [0, 0, 0]
    data.gallery = ExplorerData(data.images.flip(0), _dets()[::-1], pids=[3, 2, 1], camids=[1] * 3)
    controls, images = explorer(data, threshold=0.5, model=MeanColour(), topk=3).children
    _image, ranking = images.children
    before = bytes(ranking.value)
    assert len(before) > 0 and "mAP on 3 queries x 3 gallery crops" in controls.children[-1].value
    controls.children[0].value = "zero"  # the method: the ranking is drawn again
    assert bytes(ranking.value) != before
    plt.close("all")
