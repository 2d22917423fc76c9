"""``mask="segmentation"`` through the study's data path: loader, augmentation, evaluation, grid.

References are independent of the code under test: numpy flips, pads and slices for the
augmentation, OpenCV's bilinear resize and a hand-computed case for fitting a map to an image, and
a direct :class:`~reidlab.anonymize.Anonymizer` call (with the detector's raw, unfitted maps) for
the pixels the grid anonymized.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reidlab.datasets.base import Sample
from reidlab.errors import ReidlabError
from reidlab.loading import ReIDImageDataset, batch_face_maps, fit_map
from reidlab.training.transforms import PairAugment

H, W = 24, 16


def blob_map(h=H, w=W) -> np.ndarray:
    """An asymmetric blob (an L shape near the top left) and a faint value far from it."""
    m = np.zeros((h, w), np.float32)
    m[3:9, 2:4] = 0.9
    m[7:9, 4:7] = 0.6
    m[h - 3, w - 2] = 0.05
    return m


@pytest.fixture
def crop(tmp_path):
    """One random RGB crop on disk (random pixels: any shift or flip of it is recognisable)."""
    from PIL import Image

    img = np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)
    p = tmp_path / "a.png"
    Image.fromarray(img).save(p)
    q = tmp_path / "b.png"
    Image.fromarray(img[:, ::-1].copy()).save(q)
    return img, [Sample(str(p), 1, 0), Sample(str(q), 2, 1)]


def _item_arrays(item):
    img = (item["image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return img, item["face_map"].numpy()


def test_flip_mirrors_the_map(crop):
    img, samples = crop
    m = blob_map()
    aug = PairAugment((H, W), flip_p=1.0, pad=0, seed=0)
    ds = ReIDImageDataset(samples[:1], size=(H, W), maps={samples[0].path: m}, transform=aug)
    out_img, out_map = _item_arrays(ds[0])
    np.testing.assert_array_equal(out_img, img[:, ::-1])
    np.testing.assert_array_equal(out_map, m[:, ::-1])
    assert ds[0]["has_map"] is True


@pytest.mark.parametrize("flip_p", [0.0, 1.0])
@pytest.mark.parametrize("seed", [0, 3, 7])
def test_pad_and_crop_move_the_map_with_the_image(crop, flip_p, seed):
    img, samples = crop
    m = blob_map()
    pad = 4
    aug = PairAugment((H, W), flip_p=flip_p, pad=pad, seed=seed)
    ds = ReIDImageDataset(samples[:1], size=(H, W), maps={samples[0].path: m}, transform=aug)
    out_img, out_map = _item_arrays(ds[0])
    ref_img, ref_map = (img[:, ::-1], m[:, ::-1]) if flip_p else (img, m)
    padded_img = np.pad(ref_img, ((pad, pad), (pad, pad), (0, 0)))
    padded_map = np.pad(ref_map, pad)
    # the crop's offset, found from the image alone (random pixels: exactly one offset fits)
    offsets = [
        (dy, dx)
        for dy in range(2 * pad + 1)
        for dx in range(2 * pad + 1)
        if np.array_equal(padded_img[dy : dy + H, dx : dx + W], out_img)
    ]
    assert len(offsets) == 1
    dy, dx = offsets[0]
    np.testing.assert_array_equal(out_map, padded_map[dy : dy + H, dx : dx + W])


def test_a_map_leaves_the_augmentation_draws_and_boxes_unchanged(crop):
    img, _ = crop
    boxes = np.array([[2, 3, 7, 9]], np.float32)
    for seed in range(5):
        a = PairAugment((H, W), flip_p=0.5, pad=4, seed=seed)(img, boxes)
        b = PairAugment((H, W), flip_p=0.5, pad=4, seed=seed)(img, boxes, blob_map())
        assert len(a) == 2 and len(b) == 3
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_items_without_a_map_and_without_maps(crop):
    _, samples = crop
    ds = ReIDImageDataset(samples, size=(H, W), maps={samples[0].path: blob_map()})
    a, b = ds[0], ds[1]
    assert a["has_map"] is True and b["has_map"] is False
    np.testing.assert_array_equal(b["face_map"].numpy(), np.zeros((H, W), np.float32))
    batch = torch.utils.data.default_collate([a, b])
    maps = batch_face_maps(batch)
    assert maps[1] is None and torch.equal(maps[0], torch.from_numpy(blob_map()))
    plain = ReIDImageDataset(samples, size=(H, W))[0]  # no maps: the items of the box masks
    assert "face_map" not in plain and "has_map" not in plain
    assert batch_face_maps(torch.utils.data.default_collate([plain])) is None


def test_fit_map_enlarges_like_opencv_and_a_hand_computed_case():
    import cv2

    # two rows 0 and 1 -> four rows: centres at -0.25, 0.25, 0.75, 1.25 in the old rows
    np.testing.assert_allclose(fit_map(np.array([[0.0], [1.0]]), (4, 1))[:, 0], [0, 0.25, 0.75, 1])
    small = np.random.default_rng(0).random((8, 4)).astype(np.float32)
    ref = cv2.resize(small, (16, 32), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(fit_map(small, (32, 16)), ref, atol=1e-6)
    with pytest.raises(ValueError, match="face map"):
        fit_map(np.zeros((2, 2, 2)), (4, 4))


def test_a_small_map_in_the_loader_anonymizes_as_the_raw_map(crop):
    """The loader fits a 6x4 map to the item's 24x16 size; the anonymizer given the raw map
    enlarges it itself: same pixels."""
    from reidlab.anonymize import Anonymizer

    _, samples = crop
    small = np.zeros((6, 4), np.float32)
    small[1, 1] = 0.5
    ds = ReIDImageDataset(samples[:1], size=(H, W), maps={samples[0].path: small})
    batch = torch.utils.data.default_collate([ds[0]])
    anon = Anonymizer(method="zero", mask="segmentation")
    x, b, v = batch["image"], batch["boxes"], batch["valid"]
    via_loader = anon(x.clone(), b, v, face_maps=batch_face_maps(batch))
    direct = anon(x.clone(), b, v, face_maps=[torch.from_numpy(small)])
    assert torch.equal(via_loader, direct) and not torch.equal(direct, x)


def test_coverage_flags_count_map_pixels():
    from reidlab.evaluation.evaluate import _boxed

    s = [Sample(f"/x/{i}.png", i, 0) for i in range(4)]
    boxes = {s[0].path: np.array([[1, 1, 3, 3]], np.float32)}
    faint, face = np.full((4, 2), 0.01, np.float32), np.zeros((4, 2), np.float32)
    face[2, 1] = 0.5
    maps = {s[1].path: face, s[2].path: faint}
    assert _boxed(s, boxes).tolist() == [True, False, False, False]
    assert _boxed(s, boxes, maps, (0.02, (8, 4))).tolist() == [True, True, False, False]
    assert _boxed(s, boxes, maps, (0.01, (8, 4))).tolist() == [True, True, True, False]


# ------------------------------------------------------------------ the grid
def test_boxes_only_detector_is_one_clear_error_before_training(synthetic_root, tmp_path):
    from reidlab.experiment import ExperimentConfig
    from reidlab.faces.base import DetectorError
    from reidlab.faces.dataset import dataset_face_maps

    with pytest.raises(ReidlabError, match="'oracle' gives boxes only") as e:
        ExperimentConfig(root=str(synthetic_root), mask="segmentation", detector="oracle")
    assert "\n" not in str(e.value)
    from reidlab.datasets import build_dataset

    ds = build_dataset("synthetic", str(synthetic_root))
    with pytest.raises(DetectorError, match="gives boxes only"):
        dataset_face_maps(ds, "oracle", splits=("query",), cache_dir=tmp_path, progress=False)


@pytest.fixture(scope="module")
def seg_grid(synthetic_root, tmp_path_factory):
    """A segmentation grid (reidface maps, zero fill, retrained on it) with every anonymizer call
    recorded: inputs before, output after, and the face maps it got."""
    from reidlab.anonymize import Anonymizer
    from reidlab.experiment import ExperimentConfig, run_experiment

    calls = []
    forward = Anonymizer.forward

    def spy(self, images, boxes, valid=None, inplace=False, face_maps=None):
        before = images.detach().clone()
        out = forward(self, images, boxes, valid, inplace=inplace, face_maps=face_maps)
        calls.append(
            {
                "settings": self.settings(),
                "x": before,
                "boxes": boxes.clone(),
                "valid": valid.clone(),
                "maps": face_maps,
                "out": out.detach().clone(),
                # train_step anonymizes under no_grad, evaluation under inference_mode
                "training": not torch.is_inference_mode_enabled(),
            }
        )
        return out

    out = tmp_path_factory.mktemp("seg_grid")
    cfg = ExperimentConfig(
        root=str(synthetic_root),
        mask="segmentation",
        detector="reidface",
        methods=("zero",),
        query_only=False,
        retrain=("zero",),
        seeds=(0,),
        epochs=1,
        train_options={"batch_p": 4, "iters_per_epoch": 2},
        out_dir=str(out),
        cache_dir=str(out / "cache"),
    )
    mp = pytest.MonkeyPatch()
    mp.setattr(Anonymizer, "forward", spy)
    try:
        results, _ = run_experiment(cfg, progress=False)
    finally:
        mp.undo()
    return cfg, results, calls


def test_segmentation_grid_rows(seg_grid):
    _, results, calls = seg_grid
    assert list(results["condition"]) == ["original", "zero", "zero (retrained)"]
    assert (results["status"] == "ok").all(), results["error"].tolist()
    assert (results["mask"] == "segmentation").all()
    assert (results["mask_threshold"] == 0.02).all() and (results["mask_dilate"] == 2).all()
    anon = results[results["condition"] != "original"]
    assert (anon["query_anonymization.mask"] == "segmentation").all()
    assert (anon["query_anonymization.mask_threshold"] == 0.02).all()
    # every anonymizer call, in training and in evaluation, got one map (or None) per image
    assert calls and all(c["settings"]["mask"] == "segmentation" for c in calls)
    for c in calls:
        assert isinstance(c["maps"], list) and len(c["maps"]) == c["x"].shape[0]
    assert any(c["training"] for c in calls), "retraining never anonymized a batch"


def test_evaluated_batch_equals_a_direct_anonymizer_call(seg_grid, synthetic_root, tmp_path):
    from reidlab.anonymize import Anonymizer
    from reidlab.datasets import build_dataset
    from reidlab.faces.dataset import dataset_face_maps

    cfg, _, calls = seg_grid
    evaluated = [c for c in calls if not c["training"]]
    first = evaluated[0]  # the first query batch of the "zero" cell
    ds = build_dataset("synthetic", str(synthetic_root))
    n = first["x"].shape[0]
    raw = dataset_face_maps(ds, "reidface", splits=("query",), cache_dir=tmp_path, progress=False)
    maps = [torch.from_numpy(raw[s.path]) for s in ds.query[:n]]  # unfitted (32, 16) maps
    assert all(tuple(m.shape) == (32, 16) for m in maps)
    anon = Anonymizer(method="zero", mask="segmentation", scale=cfg.scale)
    direct = anon(first["x"].clone(), first["boxes"], first["valid"], face_maps=maps)
    assert torch.equal(first["out"], direct)
    # the maps mattered: the same batch with box masks differs
    boxes_only = Anonymizer(method="zero", mask="box", scale=cfg.scale)
    by_boxes = boxes_only(first["x"].clone(), first["boxes"], first["valid"])
    assert not torch.equal(first["out"], by_boxes)
    assert not torch.equal(first["out"], first["x"])
