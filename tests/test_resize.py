"""reidlab.resize against independent references: PIL itself, a brute-force numpy version of PIL's
bilinear filter, torchvision, OpenCV; and the loading/feature/training paths using the model's mode.
"""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from reidlab.datasets.base import Sample
from reidlab.resize import resize_batch, resize_boxes, resize_image, resize_mode_for

OUT = (256, 128)


def pil_resize(img, size):
    h, w = size
    return np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR))


def _triangle_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of PIL's bilinear resample, written out from its definition: a
    triangle of half-width max(scale, 1) input pixels centred on each output pixel's centre,
    truncated at the image border and renormalised."""
    scale = n_in / n_out
    fs = max(scale, 1.0)
    w = np.zeros((n_out, n_in))
    for x in range(n_out):
        center = (x + 0.5) * scale
        lo, hi = max(int(center - fs + 0.5), 0), min(int(center + fs + 0.5), n_in)
        for j in range(lo, hi):
            w[x, j] = max(0.0, 1.0 - abs((j + 0.5 - center) / fs))
        w[x] /= w[x].sum()
    return w


def brute_force_antialias(img, size):
    """Horizontal pass, rounded to uint8 as PIL's intermediate image is, then vertical pass."""
    h, w = size
    x = img.astype(np.float64)
    x = np.einsum("ow,hwc->hoc", _triangle_weights(img.shape[1], w), x)
    x = np.clip(np.floor(x + 0.5), 0, 255)
    x = np.einsum("oh,hwc->owc", _triangle_weights(img.shape[0], h), x)
    return np.clip(np.floor(x + 0.5), 0, 255).astype(np.uint8)


def crops(shape, seed=0):
    """A noise crop (the worst case for aliasing) and a smooth one (a photo-like crop)."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, shape, dtype=np.uint8)
    small = rng.integers(0, 256, (shape[0] // 16 + 2, shape[1] // 16 + 2, 3), dtype=np.uint8)
    smooth = cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    return [noise, smooth]


def absdiff(a, b):
    d = np.abs(a.astype(int) - b.astype(int))
    return d.max(), d.mean()


@pytest.mark.parametrize("shape", [(400, 180, 3), (300, 150, 3), (128, 64, 3), (256, 100, 3)])
def test_antialias_matches_pil(shape):
    for k, img in enumerate(crops(shape)):
        out = resize_image(img, OUT, "antialias")
        assert out.shape == (*OUT, 3) and out.dtype == np.uint8
        # Pillow does the work, so it is the reference exactly (a swapped (h, w), channel order
        # or a copy of the wrong array would show here)
        assert np.array_equal(out, pil_resize(img, OUT))
        # the filter written out independently: within 1 level (PIL's fixed-point weights and
        # when it rounds its intermediate image; measured mean 0 to 0.22 levels on these crops)
        mx, mean = absdiff(out, brute_force_antialias(img, OUT))
        assert mx <= 1 and mean < 0.3, (mx, mean)
        # and plain 2x2-tap bilinear is not that filter when shrinking noise
        if shape[0] > OUT[0] and k == 0:
            plain = resize_image(img, OUT, "bilinear")
            assert absdiff(plain, brute_force_antialias(img, OUT))[1] > 5


@pytest.mark.parametrize("shape", [(400, 180, 3), (300, 150, 3), (128, 64, 3)])
def test_antialias_close_to_torchvision_and_far_from_plain_bilinear_when_shrinking(shape):
    import torchvision.transforms.v2.functional as TF

    for img in crops(shape, seed=1):
        out = resize_image(img, OUT, "antialias")
        tv = TF.resize(torch.from_numpy(img).permute(2, 0, 1), list(OUT), antialias=True)
        # torchvision's uint8 antialias path follows PIL up to rounding (measured: max 1 level,
        # mean 0 to 0.22 levels on these crops)
        mx, mean = absdiff(out, tv.permute(1, 2, 0).numpy())
        assert mx <= 1 and mean < 0.3, (mx, mean)
        # the float tensor path (FeatureExtractor on tensors) is the same filter in float
        x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
        y = resize_batch(x, OUT, "antialias")[0].permute(1, 2, 0).mul(255).round().byte()
        mx, mean = absdiff(out, y.numpy())  # measured: max 1, mean 0.17 to 0.25
        assert mx <= 1 and mean < 0.3, (mx, mean)
    noise = crops(shape, seed=2)[0]
    mx, mean = absdiff(resize_image(noise, OUT, "antialias"), resize_image(noise, OUT, "bilinear"))
    if shape[0] > OUT[0]:  # shrinking noise: 2x2 taps alias, the triangle filter averages
        assert mean > 5, mean  # measured 8.4 (300x150) and 18 (400x180)
    else:  # growing: both interpolate the same two neighbours, differing only by rounding
        assert mx <= 1, mx


@pytest.mark.parametrize("shape", [(400, 180, 3), (128, 64, 3), (97, 33, 3)])
def test_bilinear_is_cv2_inter_linear_exactly(shape):
    for img in crops(shape, seed=3):
        ref = cv2.resize(img, (OUT[1], OUT[0]), interpolation=cv2.INTER_LINEAR)
        assert np.array_equal(resize_image(img, OUT, "bilinear"), ref)
        # the tensor path uses the same taps (half-pixel centres), in float
        x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
        y = resize_batch(x, OUT, "bilinear")[0].permute(1, 2, 0).mul(255).round().byte()
        assert absdiff(y.numpy(), ref)[0] <= 1


def test_same_size_is_unchanged_and_bad_input_is_one_clear_error():
    img = crops((256, 128, 3))[0]
    for mode in ("antialias", "bilinear"):
        assert resize_image(img, OUT, mode) is img
    with pytest.raises(ValueError, match="resize_mode must be one of antialias, bilinear"):
        resize_image(img, (128, 64), "bicubic")
    with pytest.raises(ValueError, match="RGB uint8"):
        resize_image(img.astype(np.float32), (128, 64))
    with pytest.raises(ValueError, match="RGB uint8"):
        resize_image(img[..., 0], (128, 64))
    with pytest.raises(ValueError, match="size must be positive"):
        resize_image(img, (0, 64))
    with pytest.raises(ValueError, match="size must be"):
        resize_image(img, "big")


def test_boxes_scale_by_the_size_ratio():
    # 300x150 -> 256x128: x * 128/150, y * 256/300 (hand-computed)
    b = resize_boxes(np.array([[15.0, 30.0, 75.0, 150.0, 0.9]]), (300, 150), (256, 128))
    assert np.allclose(b, [[12.8, 25.6, 64.0, 128.0, 0.9]], atol=1e-5)
    assert b.dtype == np.float32
    assert resize_boxes(np.zeros((0, 4)), (300, 150), OUT).shape == (0, 4)
    # the box still frames the same content in both modes: a 60x30 white block in a black
    # 300x150 image at x 30..60, y 60..120 (2x shrink to 150x75 makes it x 15..30, y 30..60)
    img = np.zeros((300, 150, 3), np.uint8)
    img[60:120, 30:60] = 255
    x1, y1, x2, y2 = resize_boxes(np.array([[30, 60, 60, 120]]), (300, 150), (150, 75))[0]
    assert (x1, y1, x2, y2) == (15, 30, 30, 60)
    for mode in ("antialias", "bilinear"):
        out = resize_image(img, (150, 75), mode)[..., 0]
        assert out[31:59, 16:29].min() == 255 and out[30:60, 15:30].mean() > 240
        assert out[:, :14].max() == 0 and out[:29].max() == 0
        assert out[:, 31:].max() == 0 and out[61:].max() == 0


class LinearNet(nn.Module):
    """A linear map of the whole image: any change of input pixels changes the features."""

    def __init__(self, size=(32, 16), resize_mode=None, name="linear"):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(3 * size[0] * size[1], 4)
        self.input_size = size
        self.pixel_mean, self.pixel_std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
        self.name = name
        if resize_mode is not None:
            self.resize_mode = resize_mode

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_resize_mode_follows_the_model():
    assert resize_mode_for(LinearNet(resize_mode="bilinear")) == "bilinear"
    assert resize_mode_for(LinearNet(resize_mode="antialias", name="tiny")) == "antialias"
    for name in ("osnet_x0_25", "osnet_ibn_x1_0", "bot_r50", "tiny", "something_else"):
        assert resize_mode_for(LinearNet(name=name)) == "antialias"
    assert resize_mode_for(object()) == "antialias"  # a foreign model without attributes
    with pytest.raises(ValueError, match="resize_mode must be one of"):
        resize_mode_for(LinearNet(resize_mode="nearest"))


@pytest.fixture
def big_crops(tmp_path):
    """Lossless 80x40 crops (larger than LinearNet's 32x16 input), two identities."""
    out = []
    for i, img in enumerate(crops((80, 40, 3), seed=4) + crops((80, 40, 3), seed=5)):
        p = tmp_path / f"c{i}.png"
        cv2.imwrite(str(p), img[..., ::-1])  # RGB -> BGR for OpenCV
        out.append((Sample(str(p), i % 2, i % 2), img))
    return out


def _reference_features(model, imgs, resize):
    x = torch.from_numpy(np.stack([resize(i) for i in imgs])).permute(0, 3, 1, 2).float() / 255
    mean = torch.tensor(model.pixel_mean).view(1, 3, 1, 1)
    std = torch.tensor(model.pixel_std).view(1, 3, 1, 1)
    with torch.no_grad():
        return model((x - mean) / std)


def test_dataset_resizes_in_the_given_mode_and_moves_boxes(big_crops):
    from reidlab.loading import ReIDImageDataset

    (s, img), size = big_crops[0], (32, 16)
    boxes = {s.path: np.array([[10.0, 20.0, 30.0, 40.0]], np.float32)}
    for mode, ref in (
        ("antialias", pil_resize(img, size)),
        ("bilinear", cv2.resize(img, (16, 32), interpolation=cv2.INTER_LINEAR)),
    ):
        item = ReIDImageDataset([s], size=size, boxes=boxes, resize_mode=mode)[0]
        got = item["image"].mul(255).round().byte().permute(1, 2, 0).numpy()
        assert np.array_equal(got, ref), mode
        # 80x40 -> 32x16: x * 0.4, y * 0.4
        assert np.allclose(item["boxes"][0].numpy(), [4.0, 8.0, 12.0, 16.0])
    with pytest.raises(ValueError, match="resize_mode"):
        ReIDImageDataset([s], resize_mode="area")


def test_features_use_the_models_mode(big_crops):
    from reidlab.evaluation import FeatureExtractor, extract_features

    samples, imgs = [s for s, _ in big_crops], [i for _, i in big_crops]
    kw = {"size": (32, 16), "mean": (0.5,) * 3, "std": (0.25,) * 3, "progress": False}
    pil_like = LinearNet(resize_mode="antialias")
    ref_pil = _reference_features(pil_like, imgs, lambda i: pil_resize(i, (32, 16)))
    ref_cv2 = _reference_features(
        pil_like, imgs, lambda i: cv2.resize(i, (16, 32), interpolation=cv2.INTER_LINEAR)
    )
    assert (ref_pil - ref_cv2).abs().max() > 0.1  # the two modes give different features
    f = extract_features(pil_like, samples, **kw)
    torch.testing.assert_close(f, ref_pil, rtol=1e-4, atol=1e-4)
    f = extract_features(LinearNet(resize_mode="bilinear"), samples, **kw)
    torch.testing.assert_close(f, ref_cv2, rtol=1e-4, atol=1e-4)
    # an explicit argument overrides the model's attribute
    f = extract_features(pil_like, samples, resize_mode="bilinear", **kw)
    torch.testing.assert_close(f, ref_cv2, rtol=1e-4, atol=1e-4)

    ex = FeatureExtractor(pil_like)
    torch.testing.assert_close(ex(imgs), ref_pil, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ex([s.path for s in samples]), ref_pil, rtol=1e-4, atol=1e-4)
    # tensors: the same filter in float, within a rounding level of PIL's uint8 output
    t = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 255
    t_in = resize_batch(t, (32, 16), "antialias")
    p_in = torch.from_numpy(np.stack([pil_resize(i, (32, 16)) for i in imgs]))
    assert (t_in.permute(0, 2, 3, 1) * 255 - p_in.float()).abs().max() <= 1.0
    torch.testing.assert_close(ex(t), ref_pil, rtol=0, atol=0.1)
    ex_cv = FeatureExtractor(pil_like, resize_mode="bilinear")
    torch.testing.assert_close(ex_cv(imgs), ref_cv2, rtol=1e-4, atol=1e-4)


def test_evaluate_records_the_mode(big_crops):
    from reidlab.evaluation import evaluate

    samples = [s for s, _ in big_crops]
    ds = SimpleNamespace(name="toy", root="", query=samples[:2], gallery=samples)
    for mode in ("antialias", "bilinear"):
        res = evaluate(LinearNet(resize_mode=mode), ds, progress=False)
        assert res.settings["resize"] == mode
        assert res.to_row()["resize"] == mode
    # a cached split is not reused across modes
    cache: dict = {}
    evaluate(LinearNet(resize_mode="antialias"), ds, progress=False, feature_cache=cache)
    res = evaluate(LinearNet(resize_mode="bilinear"), ds, progress=False, feature_cache=cache)
    assert res.settings["runtime"]["features_reused"] == []


def test_training_augmentation_resizes_like_evaluation():
    from reidlab.training.transforms import PairAugment

    img = crops((300, 150, 3), seed=6)[1]
    box = np.array([[15.0, 30.0, 75.0, 150.0]], np.float32)
    for mode, ref in (
        ("antialias", pil_resize(img, OUT)),
        ("bilinear", cv2.resize(img, (OUT[1], OUT[0]), interpolation=cv2.INTER_LINEAR)),
    ):
        aug = PairAugment(OUT, flip_p=0.0, pad=0, resize_mode=mode)
        out, b = aug(img, box)
        assert np.array_equal(out, ref), mode
        assert np.allclose(b, [[12.8, 25.6, 64.0, 128.0]], atol=1e-4)
        assert aug.settings["resize"] == mode
        flipped, fb = PairAugment(OUT, flip_p=1.0, pad=0, resize_mode=mode)(img, box)
        assert np.array_equal(flipped, ref[:, ::-1])
        assert np.allclose(fb, [[128 - 64.0, 25.6, 128 - 12.8, 128.0]], atol=1e-4)
    # the default is the default of every reidlab-trained family, so training and evaluation agree
    assert PairAugment(OUT).resize_mode == resize_mode_for(SimpleNamespace(name="bot_r50"))
