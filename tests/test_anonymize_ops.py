"""Anonymization ops: gradients, exactness outside masks, and OpenCV / numpy references."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from reidlab.anonymize import (
    Anonymizer,
    blur_faces,
    box_masks,
    composite,
    fill_faces,
    pixelate_faces,
    scale_boxes,
    zero_faces,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def region(box, h, w, scale=1.0):
    """Independent reference of the region convention: pixels whose centres lie in the scaled box."""
    x1, y1, x2, y2 = [float(v) for v in box]
    cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2 * scale, (y2 - y1) / 2 * scale
    x1, x2, y1, y2 = cx - hw, cx + hw, cy - hh, cy + hh
    cols = [c for c in range(w) if x1 <= c + 0.5 < x2]
    rows = [r for r in range(h) if y1 <= r + 0.5 < y2]
    return rows[0], rows[-1] + 1, cols[0], cols[-1] + 1


def crop_hwc(x, i, r0, r1, c0, c1):
    return np.ascontiguousarray(x[i].permute(1, 2, 0).detach().cpu().numpy()[r0:r1, c0:c1])


def ref_blur(crop, sigma, truncate=3.0):
    r = max(1, math.ceil(truncate * sigma))
    return cv2.GaussianBlur(crop, (2 * r + 1, 2 * r + 1), sigma, borderType=cv2.BORDER_REFLECT_101)


def ref_pixelate(crop, n):
    h, w = crop.shape[:2]
    small = cv2.resize(crop, (min(n, w), min(n, h)), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def ops_under_test():
    gen = torch.Generator().manual_seed(0)
    return {
        "blur": lambda x, b, v, **k: blur_faces(x, b, v, sigma_rel=0.2, **k),
        "blur_abs": lambda x, b, v, **k: blur_faces(x, b, v, sigma=1.5, **k),
        "pixelate": lambda x, b, v, **k: pixelate_faces(x, b, v, blocks=3, **k),
        "fill_constant": lambda x, b, v, **k: fill_faces(
            x, b, v, fill="constant", color=(0.1, 0.5, 0.9), **k
        ),
        "fill_mean": lambda x, b, v, **k: fill_faces(x, b, v, fill="mean", **k),
        "fill_noise": lambda x, b, v, **k: fill_faces(x, b, v, fill="noise", generator=gen, **k),
        "zero": lambda x, b, v, **k: zero_faces(x, b, v, **k),
    }


# ---------------------------------------------------------------- masks


def test_box_mask_hand_computed():
    m = box_masks(torch.tensor([[[1.0, 1.0, 3.0, 2.0]]]), None, (3, 4))
    assert m.shape == (1, 1, 3, 4)
    assert m[0, 0].tolist() == [[0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]]


def test_scale_boxes_about_centre():
    got = scale_boxes(torch.tensor([[10.0, 10.0, 20.0, 30.0]]), 1.5)
    assert got.tolist() == [[7.5, 5.0, 22.5, 35.0]]


def test_ellipse_mask_brute_force_and_inside_box():
    h, w = 20, 16
    box = torch.tensor([[[2.0, 3.0, 14.0, 19.0]]])
    m = box_masks(box, None, (h, w), shape="ellipse")[0, 0]
    for r in range(h):
        for c in range(w):
            inside = ((c + 0.5 - 8) / 6) ** 2 + ((r + 0.5 - 11) / 8) ** 2 < 1
            assert m[r, c].item() == float(inside)
    assert box_masks(box, None, (h, w), shape="box")[0, 0][m > 0].min() == 1


def test_feather_is_inward_linear_and_max_combined():
    box = torch.tensor([[[0.0, 0.0, 10.0, 10.0], [20.0, 0.0, 30.0, 10.0]]])
    m = box_masks(box, torch.tensor([[True, True]]), (12, 32), feather=4.0)[0, 0]
    hard = box_masks(box, None, (12, 32))[0, 0]
    assert bool(((m > 0) <= (hard > 0)).all())  # never outside the box
    # centre row 5: distance from left edge at column c is c + 0.5 -> m = (c+0.5)/4, capped at 1
    assert torch.allclose(
        m[5, :10], torch.tensor([0.125, 0.375, 0.625, 0.875, 1, 1, 0.875, 0.625, 0.375, 0.125])
    )
    assert torch.equal(m[:, 20:30], m[:, :10])
    rel = box_masks(box, None, (12, 32), feather_rel=0.4)[0, 0]  # 0.4 * 10 px = 4 px
    assert torch.allclose(rel, m)
    only_first = box_masks(box, torch.tensor([[True, False]]), (12, 32), feather=4.0)[0, 0]
    assert float(only_first[:, 20:].abs().sum()) == 0


def test_mask_clipped_at_border_and_list_input():
    boxes = [torch.tensor([[-5.0, -5.0, 4.0, 3.0]]), torch.zeros(0, 4)]
    m = box_masks(boxes, None, (6, 6))
    assert m[0, 0, :3, :4].min() == 1 and float(m[0, 0].sum()) == 12
    assert float(m[1].sum()) == 0


# ---------------------------------------------------------------- exactness outside the mask


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", ["box", "ellipse"])
@pytest.mark.parametrize("feather", [0.0, 2.5])
def test_outside_mask_bit_identical(dtype, shape, feather):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 3, 32, 24, generator=g, dtype=dtype)
    boxes = torch.tensor(
        [
            [[4.3, 2.2, 15.7, 17.9], [10.0, 10.0, 20.0, 30.0]],
            [[-3.0, 20.0, 8.0, 40.0], [0.0, 0.0, 0.0, 0.0]],
            [[5.0, 5.0, 9.0, 9.0], [30.0, 40.0, 50.0, 60.0]],
        ],
        dtype=dtype,
    )
    valid = torch.tensor([[True, True], [True, False], [True, True]])
    m = box_masks(boxes, valid, (32, 24), shape=shape, scale=1.2, feather=feather)
    outside = (m == 0).expand_as(x)
    for name, op in ops_under_test().items():
        y = op(x, boxes, valid, mask=shape, scale=1.2, feather=feather)
        assert y.dtype == dtype and y.shape == x.shape
        assert torch.equal(y[outside], x[outside]), name
        if name != "fill_mean":
            hard = (m == 1).expand_as(x)
            assert (y[hard] != x[hard]).float().mean() > 0.5, name


def test_composite_leaves_zero_mask_pixels_bit_identical():
    x = torch.rand(2, 3, 8, 8)
    m = box_masks(
        torch.tensor([[[1.0, 1.0, 5.0, 6.0]], [[2.0, 0.0, 8.0, 4.0]]]), None, (8, 8), feather=1.5
    )
    y = composite(x, torch.rand_like(x), m)
    assert torch.equal(y[(m == 0).expand_as(x)], x[(m == 0).expand_as(x)])


# ---------------------------------------------------------------- references


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_blur_matches_opencv_on_the_crop(dtype):
    g = torch.Generator().manual_seed(2)
    x = torch.rand(3, 3, 40, 30, generator=g, dtype=dtype)
    boxes = torch.tensor(
        [
            [[5.0, 3.0, 17.0, 19.0]],  # inside
            [[20.0, 30.0, 40.0, 45.0]],  # partly outside (clipped region 10x10)
            [[2.0, 2.0, 5.0, 4.0]],
        ],
        dtype=dtype,
    )  # kernel much larger than the crop
    for sigma in (0.8, 2.0, 4.5):
        y = blur_faces(x, boxes, sigma=sigma)
        for i in range(3):
            r0, r1, c0, c1 = region(boxes[i, 0], 40, 30)
            ref = ref_blur(crop_hwc(x, i, r0, r1, c0, c1), sigma)
            tol = 1e-5 if dtype == torch.float32 else 1e-10
            np.testing.assert_allclose(crop_hwc(y, i, r0, r1, c0, c1), ref, atol=tol)


def test_blur_sigma_rel_uses_each_box_height():
    x = torch.rand(2, 3, 64, 48, dtype=torch.float64)
    boxes = torch.tensor(
        [[[4.0, 4.0, 14.0, 14.0]], [[10.0, 10.0, 40.0, 50.0]]], dtype=torch.float64
    )
    y = blur_faces(x, boxes, sigma_rel=0.25)
    for i, sigma in enumerate((2.5, 10.0)):
        r0, r1, c0, c1 = region(boxes[i, 0], 64, 48)
        ref = ref_blur(crop_hwc(x, i, r0, r1, c0, c1), sigma)
        # the batch shares the radius of the largest sigma: compare with the same window
        r = math.ceil(3 * 10.0)
        ref = cv2.GaussianBlur(
            crop_hwc(x, i, r0, r1, c0, c1),
            (2 * r + 1, 2 * r + 1),
            sigma,
            borderType=cv2.BORDER_REFLECT_101,
        )
        np.testing.assert_allclose(crop_hwc(y, i, r0, r1, c0, c1), ref, atol=1e-10)


def test_blur_with_scale_blurs_the_enlarged_region():
    x = torch.rand(1, 3, 40, 40, dtype=torch.float64)
    box = torch.tensor([[[10.0, 10.0, 20.0, 24.0]]], dtype=torch.float64)
    y = blur_faces(x, box, sigma=1.0, scale=1.5)
    r0, r1, c0, c1 = region(box[0, 0], 40, 40, scale=1.5)
    assert (r0, r1, c0, c1) == (6, 27, 7, 22)  # box 7.5..22.5 x 6.5..27.5
    np.testing.assert_allclose(
        crop_hwc(y, 0, r0, r1, c0, c1), ref_blur(crop_hwc(x, 0, r0, r1, c0, c1), 1.0), atol=1e-10
    )


def test_pixelate_block_means_numpy():
    x = torch.rand(2, 3, 32, 24, dtype=torch.float64)
    boxes = torch.tensor([[[4.0, 2.0, 16.0, 18.0]], [[0.0, 8.0, 24.0, 32.0]]], dtype=torch.float64)
    y = pixelate_faces(x, boxes, blocks=4).numpy()
    xn = x.numpy()
    for i in range(2):
        x1, y1, x2, y2 = boxes[i, 0].int().tolist()
        ch, cw = (y2 - y1) // 4, (x2 - x1) // 4
        for by in range(4):
            for bx in range(4):
                sl = (
                    i,
                    slice(None),
                    slice(y1 + by * ch, y1 + (by + 1) * ch),
                    slice(x1 + bx * cw, x1 + (bx + 1) * cw),
                )
                mean = xn[sl].mean(axis=(1, 2))
                np.testing.assert_allclose(
                    y[sl], np.broadcast_to(mean[:, None, None], y[sl].shape), atol=1e-12
                )


def test_pixelate_fractional_cells_match_opencv_area_nearest():
    x = torch.rand(2, 3, 30, 30, dtype=torch.float64)
    boxes = torch.tensor(
        [[[3.0, 2.0, 16.0, 19.0]], [[25.0, 20.0, 40.0, 23.0]]], dtype=torch.float64
    )
    for n in (3, 4, 5):
        y = pixelate_faces(x, boxes, blocks=n)
        for i in range(2):
            r0, r1, c0, c1 = region(boxes[i, 0], 30, 30)
            ref = ref_pixelate(crop_hwc(x, i, r0, r1, c0, c1), n)
            np.testing.assert_allclose(crop_hwc(y, i, r0, r1, c0, c1), ref, atol=1e-6)


def test_fill_and_zero_exact():
    x = torch.rand(2, 3, 16, 16)
    boxes = torch.tensor([[[2.0, 2.0, 8.0, 8.0]], [[10.0, 4.0, 20.0, 9.0]]])
    y = fill_faces(x, boxes, fill="constant", color=(0.25, 0.5, 1.0))
    assert torch.equal(
        y[0, :, 2:8, 2:8], torch.tensor([0.25, 0.5, 1.0])[:, None, None].expand(3, 6, 6)
    )
    y = fill_faces(
        x, boxes, fill="constant", color=torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    )
    assert float(y[0, :, 2:8, 2:8].sum()) == 0 and bool((y[1, :, 4:9, 10:16] == 1).all())
    y = fill_faces(x, boxes, fill="mean")
    assert torch.equal(y[1, :, 4:9, 10:16], x[1].mean((1, 2))[:, None, None].expand(3, 5, 6))
    y = zero_faces(x, boxes)
    assert float(y[0, :, 2:8, 2:8].abs().sum()) == 0 and float(y[1, :, 4:9, 10:16].abs().sum()) == 0
    a = fill_faces(x, boxes, fill="noise", generator=torch.Generator().manual_seed(5))
    b = fill_faces(x, boxes, fill="noise", generator=torch.Generator().manual_seed(5))
    c = fill_faces(x, boxes, fill="noise", generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert 0 <= float(a.min()) and float(a.max()) < 1


# ---------------------------------------------------------------- edge cases


@pytest.mark.parametrize("name", list(ops_under_test()))
def test_empty_and_outside_boxes_return_input(name):
    op = ops_under_test()[name]
    x = torch.rand(2, 3, 16, 16)
    assert op(x, torch.zeros(2, 0, 4), torch.zeros(2, 0, dtype=torch.bool)) is x
    assert op(x, torch.rand(2, 3, 4) * 10, torch.zeros(2, 3, dtype=torch.bool)) is x
    assert op(x, [torch.zeros(0, 4), torch.zeros(0, 4)], None) is x
    assert op(x, torch.tensor([[[20.0, 20.0, 30.0, 30.0]], [[-9.0, 0.0, -1.0, 5.0]]]), None) is x


def test_list_boxes_equal_padded_boxes():
    x = torch.rand(2, 3, 20, 20)
    lst = [
        torch.tensor([[1.0, 1.0, 9.0, 9.0], [10.0, 10.0, 18.0, 19.0]]),
        torch.tensor([[3.0, 4.0, 12.0, 15.0, 0.9]]),
    ]
    pad = torch.tensor(
        [[[1.0, 1.0, 9.0, 9.0], [10.0, 10.0, 18.0, 19.0]], [[3.0, 4.0, 12.0, 15.0], [0, 0, 0, 0]]]
    )
    valid = torch.tensor([[True, True], [True, False]])
    for op in (blur_faces, pixelate_faces):
        assert torch.equal(op(x, lst), op(x, pad, valid))


def test_overlapping_boxes_anonymize_the_union():
    x = torch.rand(1, 3, 24, 24, dtype=torch.float64)
    boxes = torch.tensor([[[2.0, 2.0, 14.0, 14.0], [8.0, 8.0, 20.0, 20.0]]], dtype=torch.float64)
    m = box_masks(boxes, None, (24, 24))
    y = pixelate_faces(x, boxes, blocks=1)
    inside = (m > 0).expand_as(x)
    assert torch.equal(y[~inside], x[~inside])
    # the overlap belongs to the first box: one mean colour over all of box 0's region
    assert torch.allclose(
        y[0, :, 2:14, 2:14], x[0, :, 2:14, 2:14].mean((1, 2))[:, None, None].expand(3, 12, 12)
    )
    assert torch.allclose(
        y[0, :, 14:20, 14:20], x[0, :, 8:20, 8:20].mean((1, 2))[:, None, None].expand(3, 6, 6)
    )


def test_per_sample_parameters_equal_per_image_calls():
    x = torch.rand(3, 3, 32, 32, dtype=torch.float64)
    boxes = torch.tensor(
        [[[4.0, 4.0, 20.0, 24.0]], [[8.0, 2.0, 18.0, 14.0]], [[0.0, 10.0, 30.0, 30.0]]],
        dtype=torch.float64,
    )
    sig, blocks, scale = [1.0, 2.0, 0.7], [2, 3, 5], [1.0, 1.3, 0.8]
    f64 = {
        "dtype": torch.float64
    }  # float64 like the images: 1.3 in float32 moves a box edge off a pixel centre
    yb = blur_faces(
        x, boxes, sigma=torch.tensor(sig, **f64), scale=torch.tensor(scale, **f64), truncate=3.0
    )
    yp = pixelate_faces(x, boxes, blocks=torch.tensor(blocks), scale=torch.tensor(scale, **f64))
    for i in range(3):
        # per image with the batch's shared kernel window (radius of the largest sigma)
        r = math.ceil(3 * 2.0)
        one = blur_faces(
            x[i : i + 1], boxes[i : i + 1], sigma=sig[i], scale=scale[i], truncate=r / sig[i]
        )
        assert torch.allclose(yb[i : i + 1], one, atol=1e-12)
        assert torch.allclose(
            yp[i : i + 1],
            pixelate_faces(x[i : i + 1], boxes[i : i + 1], blocks=blocks[i], scale=scale[i]),
            atol=1e-12,
        )


def test_bad_inputs_raise_clearly():
    x8 = torch.randint(0, 255, (1, 3, 8, 8), dtype=torch.uint8)
    with pytest.raises(TypeError, match="uint8"):
        blur_faces(x8, torch.tensor([[[1.0, 1.0, 4.0, 4.0]]]))
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="shape"):
        blur_faces(x, torch.rand(2, 1, 4))
    with pytest.raises(ValueError, match="mask"):
        blur_faces(x, torch.tensor([[[1.0, 1.0, 4.0, 4.0]]]), mask="circle")
    with pytest.raises(ValueError, match="fill"):
        fill_faces(x, torch.tensor([[[1.0, 1.0, 4.0, 4.0]]]), fill="blue")
    with pytest.raises(ValueError, match="sigma"):
        blur_faces(x, torch.tensor([[[1.0, 1.0, 4.0, 4.0]]]), sigma=0.0)
    with pytest.raises(ValueError):
        Anonymizer("smudge")


# ---------------------------------------------------------------- gradients


def _grad_case():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 10, 9, generator=g, dtype=torch.float64, requires_grad=True)
    boxes = torch.tensor([[[1.0, 1.0, 7.0, 8.0]], [[3.0, 2.0, 9.0, 10.0]]], dtype=torch.float64)
    return x, boxes


@pytest.mark.parametrize(
    "name", ["blur", "blur_abs", "pixelate", "fill_constant", "fill_mean", "zero"]
)
@pytest.mark.parametrize("shape,feather", [("box", 0.0), ("ellipse", 1.5)])
def test_gradcheck_wrt_image(name, shape, feather):
    x, boxes = _grad_case()
    op = ops_under_test()[name]
    assert gradcheck(
        lambda t: op(t, boxes, None, mask=shape, feather=feather),
        (x,),
        eps=1e-6,
        atol=1e-5,
        fast_mode=True,
    )


def test_gradcheck_wrt_sigma_and_sigma_rel_and_color():
    x, boxes = _grad_case()
    sigma = torch.tensor(
        [0.9, 1.4], dtype=torch.float64, requires_grad=True
    )  # radius stays ceil(3*1.4)=5
    assert gradcheck(
        lambda t, s: blur_faces(t, boxes, sigma=s), (x, sigma), eps=1e-6, atol=1e-5, fast_mode=True
    )
    rel = torch.tensor(
        0.2, dtype=torch.float64, requires_grad=True
    )  # sigma 1.4 and 1.6 -> radius 5
    assert gradcheck(
        lambda s: blur_faces(x.detach(), boxes, sigma_rel=s, mask="ellipse", feather=1.0),
        (rel,),
        eps=1e-6,
        atol=1e-5,
        fast_mode=True,
    )
    color = torch.tensor([0.2, 0.4, 0.6], dtype=torch.float64, requires_grad=True)
    assert gradcheck(
        lambda c: fill_faces(x.detach(), boxes, color=c, feather=2.0),
        (color,),
        eps=1e-6,
        atol=1e-5,
        fast_mode=True,
    )


def test_blur_strength_gradient_sign():
    """More sigma -> less detail: the gradient of the crop's variance w.r.t. sigma is negative."""
    x = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    s = torch.tensor(1.2, dtype=torch.float64, requires_grad=True)
    y = blur_faces(x, torch.tensor([[[4.0, 4.0, 24.0, 28.0]]], dtype=torch.float64), sigma=s)
    y[..., 4:28, 4:24].var().backward()
    assert s.grad < 0


# ---------------------------------------------------------------- module, devices


def test_anonymizer_module_settings_and_methods():
    x = torch.rand(2, 3, 128, 64)
    boxes = torch.tensor([[[26.0, 4.0, 38.0, 20.0]], [[20.0, 10.0, 32.0, 26.0]]])
    valid = torch.ones(2, 1, dtype=torch.bool)
    for method in ("blur", "pixelate", "fill", "zero", "none"):
        own = {"fill": "noise", "seed": 7} if method == "fill" else {}
        a = Anonymizer(method, mask="ellipse", scale=1.2, feather=1.0, **own)
        y = a(x, boxes, valid)
        s = a.settings()
        assert json.loads(json.dumps(s)) == s and s["method"] == method
        if method == "none":
            assert y is x
        else:
            assert torch.equal(y[:, :, 40:], x[:, :, 40:]) and not torch.equal(y, x)
    a, b = Anonymizer("fill", fill="noise", seed=3), Anonymizer("fill", fill="noise", seed=3)
    assert torch.equal(a(x, boxes, valid), b(x, boxes, valid))
    assert torch.equal(Anonymizer("zero")(x, boxes, valid), zero_faces(x, boxes, valid))
    assert torch.equal(
        Anonymizer("blur", sigma_rel=0.3)(x, boxes, valid),
        blur_faces(x, boxes, valid, sigma_rel=0.3),
    )


def test_inplace_matches_copy():
    x = torch.rand(4, 3, 32, 16)
    boxes = torch.tensor([[[2.0, 2.0, 12.0, 14.0]]]).expand(4, 1, 4)
    ref = blur_faces(x, boxes)
    x2 = x.clone()
    out = blur_faces(x2, boxes, inplace=True)
    assert out is x2 and torch.equal(out, ref)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("name", list(ops_under_test()))
def test_gpu_matches_cpu_and_moves_cpu_boxes(name):
    if name == "fill_noise":
        pytest.skip("noise differs between device generators by design")
    x = torch.rand(4, 3, 64, 32)
    boxes = torch.tensor([[[4.0, 4.0, 20.0, 24.0]]]).expand(4, 1, 4)
    op = ops_under_test()[name]
    y_cpu = op(x, boxes, None, mask="ellipse", feather=1.0)
    y_gpu = op(x.cuda(), boxes, None, mask="ellipse", feather=1.0)  # CPU boxes are moved to the GPU
    assert y_gpu.device.type == "cuda"
    torch.testing.assert_close(y_gpu.cpu(), y_cpu, atol=1e-5, rtol=1e-5)


def test_full_gradcheck_blur_tiny():
    """Full (not fast-mode) Jacobian check on a tiny case, image and sigma together."""
    x = torch.rand(1, 1, 6, 5, dtype=torch.float64, requires_grad=True)
    s = torch.tensor([1.1], dtype=torch.float64, requires_grad=True)
    boxes = torch.tensor([[[0.5, 1.0, 4.5, 6.0]]], dtype=torch.float64)
    assert gradcheck(
        lambda t, q: blur_faces(t, boxes, sigma=q, mask="ellipse", feather=1.0),
        (x, s),
        eps=1e-6,
        atol=1e-5,
    )


# ---------------------------------------------------------------- fail closed (bad boxes, bad parameters)


def all_mask_users():
    """Every public function that turns boxes into anonymized pixels or masks, as f(x, boxes, valid, **kw)."""
    ops = dict(ops_under_test())
    ops["box_masks"] = lambda x, b, v, **k: box_masks(
        b,
        v,
        tuple(x.shape[-2:]),
        **{{"mask": "shape"}.get(key, key): val for key, val in k.items()},
    )
    return ops


BAD_BOXES = {
    "nan": [float("nan"), 2.0, 10.0, 12.0],
    "neg_inf": [float("-inf"), 2.0, 10.0, 12.0],
    "pos_inf": [2.0, 2.0, float("inf"), 12.0],
    "inverted_x": [10.0, 2.0, 4.0, 12.0],
    "inverted_y": [2.0, 12.0, 10.0, 3.0],
    "huge": [2.0, 2.0, 3.0e6, 12.0],
}


@pytest.mark.parametrize("bad", list(BAD_BOXES))
@pytest.mark.parametrize("name", list(all_mask_users()))
def test_invalid_valid_box_raises_naming_image_and_box(name, bad):
    """A valid row that is not a box must raise, never become an empty region (the face stays visible)."""
    op = all_mask_users()[name]
    x = torch.rand(2, 3, 16, 16)
    boxes = torch.tensor(
        [[[1.0, 1.0, 6.0, 6.0], [0.0, 0.0, 0.0, 0.0]], [[2.0, 2.0, 8.0, 8.0], BAD_BOXES[bad]]]
    )
    with pytest.raises(ValueError, match=r"image 1, box 1 .*invalid"):
        op(x, boxes, torch.tensor([[True, False], [True, True]]))
    with pytest.raises(ValueError, match=r"image 1, box 1"):  # list input, valid implied
        op(x, [boxes[0, :1], boxes[1]], None)
    with pytest.raises(ValueError, match=r"image 0, box 0"):  # the only box of the batch
        op(x[:1], boxes[1:, 1:], None)


@pytest.mark.parametrize("name", list(all_mask_users()))
def test_invalid_rows_marked_invalid_are_ignored(name):
    """Padding rows (valid=False) may hold anything: the result equals that without them."""
    op = all_mask_users()[name]
    x = torch.rand(2, 3, 16, 16)
    good = torch.tensor([[[1.0, 1.0, 6.0, 6.0]], [[2.0, 2.0, 8.0, 8.0]]])
    junk = torch.tensor([[[float("nan")] * 4], [[float("inf"), 0.0, float("-inf"), 0.0]]])
    padded = torch.cat([good, junk], dim=1)
    valid = torch.tensor([[True, False], [True, False]])
    if name == "fill_noise":  # fresh generators: the same draws for both calls
        op = lambda x, b, v: fill_faces(
            x, b, v, fill="noise", generator=torch.Generator().manual_seed(0)
        )
    assert torch.equal(op(x, padded, valid), op(x, good, None))


@pytest.mark.parametrize("name", list(all_mask_users()))
def test_bad_scale_and_feather_raise(name):
    op = all_mask_users()[name]
    x = torch.rand(2, 3, 16, 16)
    boxes = torch.tensor([[[1.0, 1.0, 6.0, 6.0]], [[2.0, 2.0, 8.0, 8.0]]])
    bad = [
        {"scale": 0.0},
        {"scale": -1.2},
        {"scale": float("nan")},
        {"scale": float("inf")},
        {"scale": torch.tensor([1.0, 0.0])},
        {"scale": torch.tensor([1.0, float("nan")])},
        {"feather": -1.0},
        {"feather": float("inf")},
        {"feather": torch.tensor([0.0, -0.5])},
        {"feather_rel": -0.1},
        {"feather_rel": float("nan")},
    ]
    for kw in bad:
        with pytest.raises(ValueError, match="scale|feather"):
            op(x, boxes, None, **kw)
    with pytest.raises(ValueError, match="scale"):  # even with nothing to anonymize
        op(x, torch.zeros(2, 0, 4), None, scale=0.0)


def test_bad_blur_strength_and_blocks_raise():
    x = torch.rand(1, 3, 16, 16)
    box = torch.tensor([[[1.0, 1.0, 9.0, 9.0]]])
    for kw in (
        {"sigma": float("nan")},
        {"sigma": float("inf")},
        {"sigma": -1.0},
        {"sigma_rel": float("nan")},
        {"sigma_rel": 0.0},
        {"sigma_rel": torch.tensor([float("inf")])},
    ):
        with pytest.raises(ValueError, match="sigma"):
            blur_faces(x, box, **kw)
    for blocks in (0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="blocks"):
            pixelate_faces(x, box, blocks=blocks)


def test_box_regions_clamp_before_integer_conversion():
    from reidlab.anonymize.masks import box_regions

    inf, nan = float("inf"), float("nan")
    got = box_regions(
        torch.tensor([[-inf, -1e30, inf, 1e30], [nan, 2.0, 5.0, nan], [3.2, 1.6, 4.4, 7.5]]), 8, 6
    )
    # (c0, r0, c1, r1): infinities and huge values reach the image edges, NaN maps to 0, and the
    # plain box keeps the pixels whose centres lie in it (hand-computed: cols 3, rows 2..6)
    assert got.tolist() == [[0, 0, 6, 8], [0, 2, 5, 0], [3, 2, 4, 7]]


@pytest.mark.parametrize(
    "dtype,box",
    [
        # bfloat16 resolves 0.5 px at 64..128 and 1 px at 128..256: 100.6 -> 100.5, 131.3 -> 131
        (torch.bfloat16, [100.6, 3.6, 120.6, 20.6]),
        (torch.bfloat16, [131.3, 2.3, 147.7, 17.7]),
        # float16 resolves 0.5 px at 1024..2048: 1030.6 -> 1030.5
        (torch.float16, [1030.6, 3.6, 1040.6, 20.6]),
    ],
)
@pytest.mark.parametrize("mask", ["box", "ellipse"])
def test_half_precision_images_get_the_float32_regions(dtype, box, mask):
    """Box geometry is float32 whatever the image dtype: the set of changed pixels of a bf16/fp16
    image equals that of the float32 computation and of an independent float64 reference."""
    h, w = 24, 1048
    x32 = torch.ones(1, 3, h, w)
    boxes = torch.tensor([[box]])
    scale = 1.1
    ref = np.zeros(
        (h, w), bool
    )  # independent reference: pixel centres inside the scaled box/ellipse
    x1, y1, x2, y2 = box
    cx, cy, a, b = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2 * scale, (y2 - y1) / 2 * scale
    for r in range(h):
        for c in range(w):
            u, v = c + 0.5, r + 0.5
            inside = cx - a <= u < cx + a and cy - b <= v < cy + b
            if mask == "ellipse":
                inside = inside and ((u - cx) / a) ** 2 + ((v - cy) / b) ** 2 < 1
            ref[r, c] = inside
    changed32 = (zero_faces(x32, boxes, mask=mask, scale=scale) != x32).any(1)[0].numpy()
    assert np.array_equal(changed32, ref)
    x = x32.to(dtype)
    for op in (zero_faces, lambda *a, **k: fill_faces(*a, color=0.25, **k)):
        changed = (op(x, boxes, mask=mask, scale=scale) != x).any(1)[0].numpy()
        assert np.array_equal(changed, ref)
    # blur with a feathered mask: nothing outside the reference changes, most pixels inside do
    xr = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0)).to(dtype)
    y = blur_faces(xr, boxes, sigma=1.0, mask=mask, scale=scale, feather=1.0)
    assert y.dtype == dtype
    changed = (y != xr).any(1)[0].numpy()
    assert not (changed & ~ref).any() and changed[ref].mean() > 0.5
