"""``mask="segmentation"``: anonymize exactly the pixels of a face map (thresholded, dilated).

References are independent of the code under test: scipy.ndimage.binary_dilation for the dilation,
OpenCV's bilinear resize for enlarging a small map, finite differences (gradcheck) for gradients,
and hand-counted pixels for the coverage measurement.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch.autograd import gradcheck

from reidlab.anonymize import Anonymizer, blur_faces, fill_faces, pixelate_faces, zero_faces
from reidlab.anonymize.masks import anonymization_masks, segmentation_masks

H, W = 20, 16


def disc_map(h=H, w=W, cy=9.0, cx=7.0, r=3.2, inside=0.6, outside=0.005) -> np.ndarray:
    """A float map: ``inside`` on a disc, ``outside`` elsewhere, and a few values at the 0.02
    threshold's edge (0.0199 below, 0.02 exactly on it) away from the disc."""
    yy, xx = np.mgrid[0:h, 0:w]
    m = np.where((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r, inside, outside).astype(np.float64)
    m[1, 1] = 0.0199  # just below: not face
    m[17, 13] = 0.02  # exactly the threshold: face (>=)
    return m


def reference_region(m: np.ndarray, threshold: float, dilate: int) -> np.ndarray:
    """``m >= threshold`` dilated with a (2d+1)^2 square, by scipy (border: outside = background)."""
    region = m >= threshold
    if dilate == 0:
        return region
    return ndimage.binary_dilation(region, structure=np.ones((2 * dilate + 1, 2 * dilate + 1)))


@pytest.mark.parametrize("dilate", [0, 1, 2, 4])
def test_threshold_and_dilation_match_scipy(dilate):
    m = disc_map()
    want = reference_region(m, 0.02, dilate)
    got, have = segmentation_masks(torch.from_numpy(m)[None], (H, W), 0.02, dilate)
    assert have.tolist() == [True]
    assert np.array_equal(got[0, 0].numpy() > 0, want)
    assert set(np.unique(got.numpy())) <= {0.0, 1.0}
    # hand count for the default: a disc of radius 3.2 has 37 pixels (centres within 3.2 of the
    # centre), a 5x5 dilation of the lone threshold pixel at (17, 13) covers rows 15..19 x cols
    # 11..15 (25 px), clipped by nothing; the 0.0199 pixel is not face
    if dilate == 0:
        assert int(want.sum()) == 37 + 1


def test_binary_and_listed_maps_and_missing_ones():
    disc = disc_map() >= 0.5  # a bool map: binary
    maps = [torch.from_numpy(disc), None, torch.from_numpy(disc.astype(np.uint8))]
    got, have = segmentation_masks(maps, (H, W), 0.3, 1)
    assert have.tolist() == [True, False, True]
    want = reference_region(disc.astype(float), 0.3, 1)
    assert np.array_equal(got[0, 0].numpy() > 0, want)
    assert np.array_equal(got[2, 0].numpy() > 0, want)
    assert not got[1].any()


def test_small_map_is_enlarged_bilinearly_like_opencv():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    small = (rng.random((5, 4)) ** 4).astype(np.float32)  # many values near the 0.02 threshold
    big = cv2.resize(small, (W, H), interpolation=cv2.INTER_LINEAR)
    want = reference_region(big, 0.02, 2)
    got, _ = segmentation_masks([torch.from_numpy(small)], (H, W), 0.02, 2)
    assert np.array_equal(got[0, 0].numpy() > 0, want)


def test_bad_maps_are_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="larger than the 20x16 image"):
        segmentation_masks([np.zeros((H + 1, W))], (H, W))
    bad = disc_map()
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="image 0: probabilities must be finite and in"):
        segmentation_masks([bad], (H, W))
    with pytest.raises(ValueError, match="integer map must be binary"):
        segmentation_masks([np.full((H, W), 200, np.uint8)], (H, W))
    with pytest.raises(ValueError, match="mask_threshold must be in"):
        segmentation_masks([disc_map()], (H, W), threshold=0.0)
    with pytest.raises(ValueError, match="mask_dilate must be an integer"):
        segmentation_masks([disc_map()], (H, W), dilate=1.5)
    with pytest.raises(ValueError, match="got 1 maps for 2 images"):
        fill_faces(
            torch.rand(2, 3, H, W),
            [torch.zeros(0, 4)] * 2,
            mask="segmentation",
            face_maps=[disc_map()],
        )
    with pytest.raises(ValueError, match="mask_threshold must be"):
        Anonymizer("blur", mask="segmentation", mask_threshold=1.5)


OPS = {
    "blur": lambda x, **k: blur_faces(x, sigma=1.5, **k),
    "blur_rel": lambda x, **k: blur_faces(x, sigma_rel=0.3, **k),
    "pixelate": lambda x, **k: pixelate_faces(x, blocks=3, **k),
    "fill_constant": lambda x, **k: fill_faces(x, fill="constant", color=(0.5, 0.2, 0.9), **k),
    "fill_noise": lambda x, **k: fill_faces(
        x, fill="noise", generator=torch.Generator().manual_seed(0), **k
    ),
    "zero": lambda x, **k: zero_faces(x, **k),
}


@pytest.mark.parametrize("name", list(OPS))
def test_every_method_changes_pixels_only_inside_the_dilated_map(name):
    torch.manual_seed(0)
    x = torch.rand(3, 3, H, W) * 0.8 + 0.1
    m0, m2 = disc_map(), disc_map(cy=5.0, cx=10.0, r=2.0)
    maps = torch.from_numpy(np.stack([m0, m2, np.zeros((H, W))])).float()
    # image 2's map is empty: it gets its box (fail closed); the other images' boxes are ignored
    boxes = [
        torch.tensor([[0.0, 0.0, 4.0, 4.0]]),
        torch.zeros(0, 4),
        torch.tensor([[2.0, 3.0, 7.0, 9.0]]),
    ]
    y = OPS[name](x, boxes=boxes, mask="segmentation", face_maps=maps, mask_dilate=2)
    changed = (y != x).any(dim=1).numpy()
    allowed = [reference_region(m0, 0.02, 2), reference_region(m2, 0.02, 2), np.zeros((H, W), bool)]
    allowed[2][3:9, 2:7] = True  # the box's pixels (centres inside [2, 7) x [3, 9))
    for i in range(3):
        assert not (changed[i] & ~allowed[i]).any(), f"image {i}: a pixel outside the mask changed"
        if name in ("fill_constant", "fill_noise", "zero"):  # a fill changes every mask pixel
            assert np.array_equal(changed[i], allowed[i])
        else:
            assert changed[i].any()


def test_no_map_no_box_leaves_the_image_and_the_module_passes_maps():
    x = torch.rand(2, 3, H, W)
    y = zero_faces(x, [torch.zeros(0, 4)] * 2, mask="segmentation", face_maps=None)
    assert y is x
    anon = Anonymizer("zero", mask="segmentation", mask_dilate=0)
    y = anon(x, [torch.zeros(0, 4)] * 2, face_maps=[None, torch.from_numpy(disc_map())])
    assert torch.equal(y[0], x[0])
    assert torch.equal((y[1] == 0).all(dim=0), torch.from_numpy(disc_map() >= 0.02))


def test_recorded_settings():
    s = Anonymizer("blur", mask="segmentation").settings()
    assert (s["mask"], s["mask_threshold"], s["mask_dilate"]) == ("segmentation", 0.02, 2)
    assert Anonymizer(**s).settings() == s
    box = Anonymizer("blur", mask="ellipse").settings()
    assert "mask_threshold" not in box and "mask_dilate" not in box  # unchanged for box masks


def test_measurement_uses_the_ops_mask():
    x = torch.rand(2, 3, H, W) * 0.8 + 0.1
    maps = [torch.from_numpy(disc_map()), None]
    boxes = [torch.zeros(0, 4), torch.tensor([[3.0, 2.0, 9.0, 6.0]])]
    kw = {"mask": "segmentation", "scale": 1.3, "face_maps": maps, "mask_dilate": 1}
    m = anonymization_masks(boxes, None, (H, W), **kw)
    y = zero_faces(x, boxes, **kw)
    assert torch.equal((y == 0).all(dim=1), m[:, 0] > 0)


@pytest.mark.parametrize("name", ["blur", "pixelate", "fill_constant", "zero"])
def test_gradcheck_wrt_image(name):
    torch.manual_seed(1)
    x = torch.rand(2, 3, 12, 9, dtype=torch.float64, requires_grad=True)
    m = np.zeros((2, 12, 9))
    m[0, 3:6, 2:5] = 0.7
    m[1, 7, 6] = 0.3
    maps = torch.from_numpy(m)
    boxes = [torch.zeros(0, 4)] * 2
    op = OPS[name]
    assert gradcheck(
        lambda t: op(t, boxes=boxes, mask="segmentation", face_maps=maps, mask_dilate=1),
        (x,),
        eps=1e-6,
        atol=1e-5,
        fast_mode=True,
    )
    y = op(x, boxes=boxes, mask="segmentation", face_maps=maps, mask_dilate=1)
    y.sum().backward()
    region = torch.from_numpy(np.stack([reference_region(v, 0.02, 1) for v in m]))
    # outside the region the output is the input: gradient exactly 1 there
    assert torch.equal(
        x.grad.permute(1, 0, 2, 3)[:, ~region],
        torch.ones(3, int((~region).sum()), dtype=torch.float64),
    )


def test_pixel_coverage_hand_case(tmp_path):
    cv2 = pytest.importorskip("cv2")
    from reidlab.faces.measure import coverage_counts, pixel_coverage

    assert coverage_counts(np.array([[1, 1, 0]], bool), np.array([[0, 1, 1]], bool)) == {
        "face_px": 2,
        "covered": 1,
        "anonymized_px": 2,
        "pixels": 3,
    }
    masks = tmp_path / "parsing"
    masks.mkdir()
    a = np.zeros((8, 6), np.uint8)
    a[2:4, 1:4] = 13  # 6 face pixels
    a[0:2, 1:4] = 2  # hair: not face
    cv2.imwrite(str(masks / "a.png"), a)
    cv2.imwrite(str(masks / "b.png"), np.zeros((8, 6), np.uint8))  # no face
    paths = [
        str(tmp_path / "a.jpg"),
        str(tmp_path / "b.jpg"),
        str(tmp_path / "c.jpg"),
    ]  # c: no mask
    boxes = {paths[0]: np.array([[1.0, 1.0, 3.0, 4.0, 0.9]], np.float32)}
    # box: pixel centres in [1, 3) x [1, 4) = cols 1-2, rows 1-3 (6 px), 4 of them face
    r = pixel_coverage(boxes, paths, masks, mask="box")
    assert (r["crops"], r["no_mask"], r["face_px"], r["covered"], r["anonymized_px"]) == (
        2,
        1,
        6,
        4,
        6,
    )
    assert r["face_px_covered"] == pytest.approx(4 / 6) and r["overblur"] == pytest.approx(2 / 6)
    assert r["area"] == pytest.approx(6 / 96)
    # scale 2 about the centre (2, 2.5): [0, 4) x [-0.5, 5.5) = cols 0-3, rows 0-4: 20 px, all face
    r = pixel_coverage(boxes, paths, masks, mask="box", scale=2.0)
    assert (r["covered"], r["anonymized_px"]) == (6, 20)
    # segmentation with the face itself as the map: exact, then dilated 1 px (rows 1-4, cols 0-4)
    maps = {paths[0]: (a == 13).astype(np.float32), paths[1]: np.zeros((8, 6), np.float32)}
    r = pixel_coverage(boxes, paths, masks, mask="segmentation", face_maps=maps, mask_dilate=0)
    assert (r["covered"], r["anonymized_px"], r["overblur"]) == (6, 6, 0.0)
    r = pixel_coverage(boxes, paths, masks, mask="segmentation", face_maps=maps, mask_dilate=1)
    assert (r["covered"], r["anonymized_px"]) == (6, 20)
    assert r["overblur"] == pytest.approx(14 / 20) and r["mask_dilate"] == 1
    # no map for a: its box (fail closed), as the anonymizer does
    r = pixel_coverage(boxes, paths, masks, mask="segmentation", face_maps={})
    assert (r["covered"], r["anonymized_px"]) == (4, 6)


def test_reidface_maps_and_boxes_only_detectors():
    from reidlab.faces import build_detector
    from reidlab.faces.base import DetectorError

    cv2 = pytest.importorskip("cv2")
    det = build_detector("reidface")
    rng = np.random.default_rng(0)
    imgs = [
        rng.integers(0, 256, (128, 64, 3), np.uint8),
        rng.integers(0, 256, (96, 40, 3), np.uint8),
    ]
    maps = det.face_maps(imgs)
    assert [m.shape for m in maps] == [(32, 16), (32, 16)] and det.gives_maps
    assert all(m.dtype == np.float32 and 0 <= m.min() and m.max() <= 1 for m in maps)
    soft = det.soft_masks(imgs)
    assert np.allclose(soft[1], cv2.resize(maps[1], (40, 96), interpolation=cv2.INTER_LINEAR))
    with pytest.raises(DetectorError, match="centerface gives boxes only"):
        build_detector("centerface").face_maps(imgs)
