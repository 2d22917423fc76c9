"""Feature extraction against a manual computation; evaluate() end to end on synthetic data."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from reidlab.datasets.base import Sample
from reidlab.evaluation import (
    EvalConfig,
    EvalResult,
    FeatureExtractor,
    evaluate,
    extract_features,
)
from reidlab.evaluation.distance import pairwise_distance
from reidlab.evaluation.metrics import rank_metrics
from reidlab.imageio import read_rgb

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
SIZE = (16, 8)


class TinyNet(nn.Module):
    """Linear map of the whole image: not flip-invariant, so flip averaging is visible."""

    def __init__(self, size=SIZE, dim=5):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(3 * size[0] * size[1], dim)
        self.input_size, self.pixel_mean, self.pixel_std = size, MEAN, STD
        self.name = "tinynet"
        self.resize_mode = "bilinear"  # the references below resize with cv2 INTER_LINEAR

    def forward(self, x):
        return self.fc(x.flatten(1))


@pytest.fixture
def samples(tmp_path):
    rng = np.random.default_rng(0)
    out = []
    for i in range(5):
        p = tmp_path / f"img{i}.png"
        cv2.imwrite(str(p), rng.integers(0, 256, (20, 10, 3), dtype=np.uint8))
        out.append(Sample(str(p), i % 2, i % 3))
    return out


def manual_input(path, anon=None):
    img = cv2.resize(read_rgb(path), (SIZE[1], SIZE[0]), interpolation=cv2.INTER_LINEAR)
    x = torch.from_numpy(img).permute(2, 0, 1).float()[None] / 255.0
    if anon is not None:
        x = anon(x)
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def test_features_flip_and_normalize_match_manual(samples):
    model = TinyNet()
    with torch.no_grad():
        xs = torch.cat([manual_input(s.path) for s in samples])
        plain = model(xs)
        flipped = plain + model(xs.flip(3))
    kw = {"size": SIZE, "mean": MEAN, "std": STD, "progress": False}
    f = extract_features(model, samples, batch_size=2, **kw)
    assert f.shape == (5, 5) and f.dtype == torch.float32
    torch.testing.assert_close(f, plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        extract_features(model, samples, flip=True, batch_size=3, **kw),
        flipped,
        atol=1e-5,
        rtol=1e-5,
    )
    fn = extract_features(model, samples, flip=True, normalize=True, **kw)
    torch.testing.assert_close(
        fn, torch.nn.functional.normalize(flipped, dim=1), atol=1e-5, rtol=1e-5
    )
    torch.testing.assert_close(fn.norm(dim=1), torch.ones(5))
    assert not model.training


def test_anonymizer_applied_to_unit_range_images_before_normalisation(samples):
    model = TinyNet()
    seen = {}

    def anonymizer(images, boxes, valid):
        seen["range"] = (float(images.min()), float(images.max()))
        seen["boxes"], seen["valid"] = boxes.clone(), valid.clone()
        out = images.clone()
        for b in range(len(images)):
            for k in torch.nonzero(valid[b]).flatten().tolist():
                x1, y1, x2, y2 = boxes[b, k].round().int().tolist()
                out[b, :, y1:y2, x1:x2] = 0.5
        return out

    # one face box per image for the first two images, in original pixels (20x10 images)
    boxes = {
        samples[0].path: np.array([[0, 0, 5, 10]], np.float32),
        samples[1].path: np.array([[5, 10, 10, 20]], np.float32),
    }
    f = extract_features(
        model,
        samples,
        size=SIZE,
        mean=MEAN,
        std=STD,
        boxes=boxes,
        anonymizer=anonymizer,
        batch_size=8,
        progress=False,
    )
    lo, hi = seen["range"]
    assert 0.0 <= lo and hi <= 1.0  # the anonymizer got [0, 1] images, not normalised ones
    torch.testing.assert_close(
        seen["boxes"][0, 0], torch.tensor([0.0, 0.0, 4.0, 8.0])
    )  # x0.8 resize
    assert seen["valid"][:, 0].tolist() == [True, True, False, False, False]

    def fill(box):
        def apply(x):
            x = x.clone()
            x[:, :, box[1] : box[3], box[0] : box[2]] = 0.5
            return x

        return apply

    anon = [fill((0, 0, 4, 8)), fill((4, 8, 8, 16)), None, None, None]
    with torch.no_grad():
        ref = model(torch.cat([manual_input(s.path, a) for s, a in zip(samples, anon)]))
    torch.testing.assert_close(f, ref, atol=1e-5, rtol=1e-5)


def test_feature_extractor_inputs(samples):
    model = TinyNet()
    ref = extract_features(model, samples, size=SIZE, mean=MEAN, std=STD, progress=False)
    ex = FeatureExtractor(model)
    torch.testing.assert_close(ex([s.path for s in samples]), ref, atol=1e-5, rtol=1e-5)
    arrays = [read_rgb(s.path) for s in samples]
    torch.testing.assert_close(ex(arrays), ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ex(samples[0].path), ref[:1], atol=1e-5, rtol=1e-5)
    resized = [cv2.resize(a, (8, 16), interpolation=cv2.INTER_LINEAR) for a in arrays]
    t = torch.from_numpy(np.stack(resized)).permute(0, 3, 1, 2).float() / 255
    torch.testing.assert_close(ex(t), ref, atol=1e-5, rtol=1e-5)


def test_dict_output_and_empty_split(samples):
    class DictNet(TinyNet):
        def forward(self, x):
            return {"features": super().forward(x), "logits": None}

    f = extract_features(DictNet(), samples[:2], size=SIZE, mean=MEAN, std=STD, progress=False)
    assert f.shape == (2, 5)
    with pytest.raises(ValueError, match="empty"):
        extract_features(TinyNet(), [], size=SIZE, mean=MEAN, std=STD, progress=False)


def test_evaluate_on_synthetic(synthetic_root, tmp_path):
    from reidlab.datasets import build_dataset

    ds = build_dataset("synthetic", synthetic_root)
    model = TinyNet(size=(32, 16))

    def invert(x, b, v):  # a stand-in "anonymizer" for the queries only
        return 1.0 - x

    res = evaluate(model, ds, progress=False, checkpoint="none.pth", query_anonymizer=invert)
    # the same numbers from the parts
    kw = {"size": (32, 16), "mean": MEAN, "std": STD, "progress": False}
    qf = extract_features(model, ds.query, anonymizer=invert, **kw)
    gf = extract_features(model, ds.gallery, **kw)
    d = pairwise_distance(qf, gf)
    m = rank_metrics(
        d,
        [s.pid for s in ds.query],
        [s.pid for s in ds.gallery],
        [s.camid for s in ds.query],
        [s.camid for s in ds.gallery],
    )
    assert res.metrics["mAP"] == pytest.approx(m.mAP, abs=1e-6)
    assert res.metrics["rank1"] == pytest.approx(m.rank1, abs=1e-6)
    np.testing.assert_allclose(res.per_query["ap"], m.ap, atol=1e-6)
    assert res.settings["input_size"] == [32, 16] and res.settings["checkpoint"] == "none.pth"
    assert res.settings["query_anonymization"] is not None
    assert res.settings["gallery_anonymization"] is None
    assert res.settings["distance"] == "squared_euclidean" and res.settings["model"] == "tinynet"
    assert len(res.per_query["path"]) == len(ds.query)
    # JSON round trip and a flat row
    path = tmp_path / "r.json"
    res.to_json(path)
    back = EvalResult.from_json(path)
    assert back.metrics["mAP"] == pytest.approx(res.metrics["mAP"])
    np.testing.assert_allclose(back.per_query["ap"], res.per_query["ap"], equal_nan=True)
    np.testing.assert_array_equal(back.per_query["first_hit_rank"], res.per_query["first_hit_rank"])
    assert back.per_query["path"].tolist() == res.per_query["path"].tolist()
    row = res.to_row()
    assert all(not isinstance(v, (dict, list, np.ndarray)) for v in row.values())
    assert row["mAP"] == res.metrics["mAP"] and row["runtime.batch_size"] == 64
    json.loads(row["input_size"])
    # re-ranking, cosine, flip, trapezoid AP: runs and records its settings
    rr = evaluate(
        model,
        ds,
        progress=False,
        rerank=True,
        distance="cosine",
        flip=True,
        normalize=True,
        ap="trapezoid",
        k1=5,
        k2=2,
    )
    assert rr.settings["rerank_params"] == {"k1": 5, "k2": 2, "lambda": 0.3}
    assert rr.settings["flip"] == "sum" and rr.settings["ap"] == "trapezoid"
    assert 0.0 <= rr.metrics["mAP"] <= 1.0


def test_evaluate_takes_a_config_and_keyword_overrides(synthetic_root):
    from reidlab.datasets import build_dataset

    ds = build_dataset("synthetic", synthetic_root)
    model = TinyNet(size=(32, 16))
    cosine = EvalConfig(distance="cosine", normalize=True)
    ref = evaluate(model, ds, cosine, progress=False)
    assert ref.settings["distance"] == "cosine" and ref.settings["normalize"] is True
    for same in (
        evaluate(model, ds, progress=False, distance="cosine", normalize=True),
        evaluate(model, ds, {"distance": "cosine", "normalize": True}, progress=False),
        evaluate(model, ds, EvalConfig(), progress=False, distance="cosine", normalize=True),
    ):
        np.testing.assert_array_equal(same.per_query["ap"], ref.per_query["ap"])
        assert same.settings["distance"] == "cosine"
    assert cosine == EvalConfig(distance="cosine", normalize=True)  # overrides copy, not edit
    # a misspelt setting or a bad value: one clear error before any work
    with pytest.raises(TypeError, match="unknown EvalConfig setting.*distanse.*known: amp"):
        evaluate(model, ds, distanse="cosine")
    with pytest.raises(ValueError, match="distance must be one of euclidean, cosine"):
        evaluate(model, ds, distance="manhattan")
    with pytest.raises(ValueError, match="batch_size must be > 0"):
        evaluate(model, ds, batch_size=0)
    assert EvalConfig(amp=False).amp == "off" and EvalConfig(amp=True).amp == "auto"


def test_channels_last_fallback_for_models_that_need_nchw(samples):
    class ViewNet(TinyNet):
        def forward(self, x):  # .view fails on a channels_last tensor
            return self.fc(x.view(x.shape[0], -1))

    ref = extract_features(
        TinyNet(), samples, size=SIZE, mean=MEAN, std=STD, progress=False, channels_last=False
    )
    out = extract_features(ViewNet(), samples, size=SIZE, mean=MEAN, std=STD, progress=False)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    with pytest.raises(RuntimeError):  # asked for explicitly: no silent fallback
        extract_features(
            ViewNet(), samples, size=SIZE, mean=MEAN, std=STD, progress=False, channels_last=True
        )
