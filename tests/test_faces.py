"""Fast tests of reidlab.faces: interface, CenterFace batching, cache, fail-closed prior, measurement."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from reidlab.errors import ImageReadError
from reidlab.faces import boxes_by_path, build_detector, detect_split, fail_closed_summary
from reidlab.faces.base import Detector, DetectorError, clip_boxes, nms
from reidlab.faces.measure import box_recall, iou_matrix, mask_coverage, match_boxes, parsing_recall
from reidlab.faces.prior import HeadPrior, head_prior_box


# --------------------------------------------------------------------------- helpers
class FakeDetector(Detector):
    """Deterministic stand-in: one box around the brightest pixel of images whose mean > 100."""

    name = "fake"

    def __init__(self, **kw):
        super().__init__(**kw)
        self.seen = 0

    def _detect(self, images):
        self.seen += len(images)
        out = []
        for im in images:
            if im.mean() <= 100:
                out.append(np.zeros((0, 5), np.float32))
                continue
            y, x = np.unravel_index(im.sum(2).argmax(), im.shape[:2])
            out.append(np.array([[x - 4, y - 4, x + 4, y + 4, 0.875]], np.float32))
        return out


def _write_images(folder, n, bright=(), size=(128, 64)):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    rng = np.random.default_rng(0)
    for i in range(n):
        img = rng.integers(0, 60, size=(*size, 3), dtype=np.uint8)
        if i in bright:
            img = img + 120
            img[20, 30] = 255
        p = folder / f"{i:04d}.png"
        cv2.imwrite(str(p), img)
        paths.append(str(p))
    return paths


# --------------------------------------------------------------------------- base utilities
def test_nms_matches_torchvision():
    tv = pytest.importorskip("torchvision")
    import torch

    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 50, (60, 2))
    wh = rng.uniform(5, 30, (60, 2))
    boxes = np.concatenate([xy, xy + wh, rng.uniform(0, 1, (60, 1))], 1).astype(np.float32)
    for iou in (0.3, 0.5):
        ours = nms(boxes, iou)
        keep = tv.ops.nms(
            torch.from_numpy(boxes[:, :4]), torch.from_numpy(boxes[:, 4]), iou
        ).numpy()
        np.testing.assert_array_equal(ours, boxes[keep])


def test_clip_boxes_hand_case():
    b = np.array(
        [[-5, -3, 10, 200, 0.875], [70, 0, 90, 10, 0.75], [10, 10, 20, 20, 0.625]], np.float32
    )
    out = clip_boxes(b, height=128, width=64)
    np.testing.assert_array_equal(
        out, [[0, 0, 10, 128, 0.875], [10, 10, 20, 20, 0.625]]
    )  # 2nd has no area


def test_postprocess_clips_filters_and_sorts():
    class Out(Detector):
        name = "out"

        def _detect(self, images):
            return [
                np.array(
                    [[-10, -10, 20, 20, 0.625], [10, 100, 30, 120, 0.875], [5, 5, 200, 30, 0.25]],
                    np.float32,
                )
            ]

    img = np.zeros((128, 64, 3), np.uint8)
    b = Out(threshold=0.5).detect_batch([img])[0]
    np.testing.assert_array_equal(b, [[10, 100, 30, 120, 0.875], [0, 0, 20, 20, 0.625]])
    b = Out(threshold=0.5, head_region=0.5).detect_batch([img])[0]  # drops the box near the feet
    np.testing.assert_array_equal(b, [[0, 0, 20, 20, 0.625]])
    assert Out(threshold=0.1, max_faces=1).detect_batch([img])[0].shape == (1, 5)


def test_unknown_detector_and_bad_params():
    with pytest.raises(DetectorError, match="known"):
        build_detector("nope")
    with pytest.raises(DetectorError, match="upscale"):
        FakeDetector(upscale=0)
    with pytest.raises(DetectorError, match="threshold"):
        FakeDetector(threshold=2)


# --------------------------------------------------------------------------- centerface
@pytest.fixture(scope="module")
def centerface():
    return build_detector("centerface", upscale=2.0, threshold=0.3, batch_size=8)


def _face_like(h=128, w=64, seed=0):
    """A smoothly shaded synthetic face (docs/architecture.md, findings) placed in the crop's top."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), rng.integers(60, 120), np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy, rx, ry = w / 2, 16.0, 7.0, 9.0
    d = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2
    skin = np.array([224, 172, 130], np.float32) * (1.05 - 0.25 * d[..., None])
    img = np.where(d[..., None] < 1, skin, img)
    for ex in (cx - 3, cx + 3):
        img -= 90 * np.exp(-(((xx - ex) / 1.3) ** 2 + ((yy - cy + 2) / 1.0) ** 2))[..., None]
    img -= 60 * np.exp(-(((xx - cx) / 2.5) ** 2 + ((yy - cy - 5) / 0.8) ** 2))[..., None]
    return cv2.GaussianBlur(np.clip(img, 0, 255).astype(np.uint8), (3, 3), 0)


def test_centerface_model_made_dynamic_and_batch_equals_single(centerface):
    sess, _, _ = centerface.session
    shape = sess.get_inputs()[0].shape
    assert shape[1] == 3 and all(isinstance(s, str) for s in (shape[0], shape[2], shape[3]))
    rng = np.random.default_rng(0)
    imgs = [_face_like(seed=i) for i in range(6)] + [
        rng.integers(0, 255, (128, 64, 3), dtype=np.uint8)
    ]
    batched = centerface.detect_batch(imgs)
    single = [centerface(im) for im in imgs]
    assert len(batched) == len(imgs)
    for a, b in zip(batched, single):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_centerface_mixed_sizes_and_clipping(centerface):
    imgs = [_face_like(), _face_like(160, 80, 1), _face_like(100, 50, 2)]
    for im, b in zip(imgs, centerface.detect_batch(imgs)):
        assert b.dtype == np.float32 and b.shape[1] == 5
        assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all()
        assert (b[:, 2] <= im.shape[1]).all() and (b[:, 3] <= im.shape[0]).all()


def test_centerface_flip_tta_is_mirror_symmetric():
    det = build_detector("centerface", upscale=2.0, threshold=0.3, flip_tta=True)
    img = _face_like(seed=3)
    a = det(img)
    b = det(np.ascontiguousarray(img[:, ::-1]))
    assert len(a) == len(b)
    if len(
        a
    ):  # the mirrored image's boxes are the mirrored boxes (TTA is symmetric by construction)
        mb = b.copy()
        mb[:, 0], mb[:, 2] = 64 - b[:, 2], 64 - b[:, 0]
        np.testing.assert_allclose(np.sort(a[:, :4], 0), np.sort(mb[:, :4], 0), atol=1.0)


def test_centerface_bad_inputs(centerface):
    gray = cv2.cvtColor(_face_like(), cv2.COLOR_RGB2GRAY)
    rgba = np.dstack([_face_like(), np.full((128, 64), 255, np.uint8)])
    tiny = np.zeros((3, 2, 3), np.uint8)  # smaller than the network's stride: padded, nothing found
    out = centerface.detect_batch([gray, rgba, tiny])
    assert out[2].shape == (0, 5)
    np.testing.assert_allclose(out[1], centerface(_face_like()), atol=1e-4)  # alpha dropped
    with pytest.raises(ImageReadError, match="empty"):
        centerface.detect_batch([np.zeros((0, 10, 3), np.uint8)])
    with pytest.raises(ImageReadError, match="None"):
        centerface.detect_batch([None])
    assert centerface.detect_batch([]) == []


def test_corrupt_file_raises_naming_it(tmp_path, centerface):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ImageReadError, match="bad.jpg"):
        detect_split(centerface, [str(bad)], tmp_path, cache_dir=False, progress=False)


# --------------------------------------------------------------------------- cache
def test_detect_split_caches_by_content_and_config(tmp_path):
    root = tmp_path / "ds"
    paths = _write_images(root / "imgs", 6, bright={1, 4})
    cache = tmp_path / "cache"
    det = FakeDetector(threshold=0.5)
    df1 = detect_split(det, paths, root, cache_dir=cache, progress=False, batch_size=4)
    assert det.calls == 2 and det.seen == 6
    assert set(df1["path"]) == {"imgs/0001.png", "imgs/0004.png"}
    assert list(df1.columns) == [
        "path",
        "sha1",
        "x1",
        "y1",
        "x2",
        "y2",
        "score",
        "detector",
        "params",
        "fail_closed",
    ]
    np.testing.assert_array_equal(df1[["x1", "y1", "x2", "y2"]].to_numpy()[0], [26, 16, 34, 24])
    assert json.loads(df1["params"].iloc[0])["threshold"] == 0.5

    # a second run does no inference at all
    det2 = FakeDetector(threshold=0.5)
    df2 = detect_split(det2, paths, root, cache_dir=cache, progress=False)
    assert det2.calls == 0 and df2.attrs["cache_hits"] == 6
    assert df2.equals(df1)

    # a changed file re-runs only itself
    img = cv2.imread(paths[2])
    cv2.imwrite(paths[2], img + 150)
    det3 = FakeDetector(threshold=0.5)
    df3 = detect_split(det3, paths, root, cache_dir=cache, progress=False)
    assert det3.seen == 1 and "imgs/0002.png" in set(df3["path"])

    # a changed parameter is another configuration: all images run again, the old cache stays
    det4 = FakeDetector(threshold=0.6)
    detect_split(det4, paths, root, cache_dir=cache, progress=False)
    assert det4.seen == 7 - 1 and len(list(cache.iterdir())) == 2
    det5 = FakeDetector(threshold=0.5)
    detect_split(det5, paths, root, cache_dir=cache, progress=False)
    assert det5.calls == 0

    # boxes_by_path: absolute paths -> (K, 4)
    bb = boxes_by_path(df3, root)
    assert set(bb) == {str(root / "imgs" / f"000{i}.png") for i in (1, 2, 4)}
    assert all(v.shape == (1, 4) and v.dtype == np.float32 for v in bb.values())


def test_fail_closed_prior(tmp_path):
    root = tmp_path / "ds"
    paths = _write_images(root, 5, bright={0})
    df = detect_split(FakeDetector(), paths, root, cache_dir=False, fail_closed=0.3, progress=False)
    assert len(df) == 5 and df["fail_closed"].sum() == 4
    prior = df[df["fail_closed"]].iloc[0]
    # 128x64 crop, height 0.3 -> y in [0, 38.4], width 0.6 centred -> x in [12.8, 51.2], score 0
    np.testing.assert_allclose(
        prior[["x1", "y1", "x2", "y2", "score"]].astype(float), [12.8, 0, 51.2, 38.4, 0], atol=1e-4
    )
    s = fail_closed_summary(df)
    assert s == {"images": 5, "with_face": 1, "fail_closed": 4, "fail_closed_rate": 0.8}
    df2 = detect_split(
        FakeDetector(),
        paths,
        root,
        cache_dir=False,
        fail_closed=HeadPrior(height=0.25, width=0.5, top=0.05),
        progress=False,
    )
    np.testing.assert_allclose(
        df2[df2["fail_closed"]].iloc[0][["x1", "y1", "x2", "y2"]].astype(float),
        [16, 6.4, 48, 38.4],
        atol=1e-4,
    )
    with pytest.raises(Exception, match="fraction"):
        HeadPrior(height=1.5)


def test_head_prior_box_hand_case():
    np.testing.assert_allclose(head_prior_box(100, 40, HeadPrior(0.2, 0.5)), [10, 0, 30, 20, 0])


# --------------------------------------------------------------------------- bring your own
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_torchscript_contract(tmp_path):
    torch = pytest.importorskip("torch")

    class Tiny(torch.nn.Module):
        """One box at the input's top-left quarter (score = mean intensity), plus a padding row."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            _, _, h, w = x.shape
            score = x.mean(dim=(1, 2, 3))
            box = torch.stack(
                [
                    torch.zeros_like(score),
                    torch.zeros_like(score),
                    torch.full_like(score, w / 2.0),
                    torch.full_like(score, h / 2.0),
                    score,
                ],
                1,
            )
            pad = torch.zeros_like(box)
            return torch.stack([box, pad], 1)

    f = tmp_path / "tiny.pt"
    torch.jit.save(torch.jit.script(Tiny()), str(f))
    det = build_detector("torch", path=f, upscale=2.0, threshold=0.1)
    img = np.full((128, 64, 3), 128, np.uint8)
    out = det.detect_batch(
        [img, np.zeros((128, 64, 3), np.uint8), np.full((50, 30, 3), 200, np.uint8)]
    )
    np.testing.assert_allclose(
        out[0], [[0, 0, 32, 64, 128 / 255]], atol=1e-5
    )  # back in original px
    assert out[1].shape == (0, 5)  # score 0 -> padding
    np.testing.assert_allclose(out[2][0, :4], [0, 0, 15, 25], atol=1e-5)
    assert det.params["file_sha1"] and det.key != build_detector("torch", path=f, upscale=1.0).key

    class Wrong(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(2, 3))

    g = tmp_path / "wrong.pt"
    torch.jit.save(torch.jit.script(Wrong()), str(g))
    with pytest.raises(DetectorError, match=r"\(B, N, 5\)"):
        build_detector("torch", path=g).detect_batch([img])
    with pytest.raises(DetectorError, match="no detector file"):
        build_detector("onnx", path=tmp_path / "missing.onnx")


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_file_backend_batches_by_shape(tmp_path):
    """Mixed sizes in small batches give the same boxes as one image per call."""
    torch = pytest.importorskip("torch")

    class Centre(torch.nn.Module):
        """One box around the brightest pixel of each input (score 0.9), so batches can mix."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b, w = x.shape[0], x.shape[3]
            idx = x.sum(1).reshape(b, -1).argmax(1)
            cy = torch.div(idx, w, rounding_mode="floor").float()
            cx = (idx % w).float()
            s = torch.full_like(cx, 0.9)
            return torch.stack([cx - 3, cy - 3, cx + 3, cy + 3, s], 1)[:, None, :]

    f = tmp_path / "centre.pt"
    torch.jit.save(torch.jit.script(Centre()), str(f))
    rng = np.random.default_rng(0)
    imgs = []
    for i, (h, w) in enumerate([(40, 20), (30, 30), (40, 20), (40, 20), (30, 30)]):
        im = rng.integers(0, 100, (h, w, 3), dtype=np.uint8)
        im[5 + i, 7 + i] = 255
        imgs.append(im)
    det = build_detector("torch", path=f, threshold=0.5, batch_size=2, nms_iou=None)
    calls = det.calls
    batched = det.detect_batch(imgs)
    assert det.calls == calls + 1
    for im, b, i in zip(imgs, batched, range(len(imgs))):
        np.testing.assert_allclose(b, det(im), atol=1e-5)
        np.testing.assert_allclose(b[0, :4], [4 + i, 2 + i, 10 + i, 8 + i], atol=1e-5)


# --------------------------------------------------------------------------- measurement
def test_iou_and_matching_hand_cases():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    np.testing.assert_allclose(iou_matrix(a, b), [[50 / 150, 0]])
    pred = np.array([[0, 0, 10, 10, 0.9], [1, 0, 11, 10, 0.8]], np.float32)
    gt = np.array([[0, 0, 10, 10]], np.float32)
    assert match_boxes(pred, gt, 0.5) == 1  # a gt box matches only once
    r = box_recall({"a": pred}, {"a": gt, "b": gt}, iou=0.5)
    assert r["recall"] == 0.5 and r["precision"] == 0.5


def test_mask_coverage_and_parsing_recall(tmp_path):
    mask = np.zeros((128, 64), bool)
    mask[10:20, 20:30] = True  # 100 face pixels
    assert mask_coverage(np.array([[20, 10, 30, 20]]), mask) == 1.0
    assert mask_coverage(np.array([[20, 10, 25, 20]]), mask) == 0.5
    assert mask_coverage(np.zeros((0, 4)), mask) == 0.0
    md = tmp_path / "masks"
    md.mkdir()
    lab = np.zeros((128, 64), np.uint8)
    lab[10:20, 20:30] = 13
    cv2.imwrite(str(md / "a.png"), lab)
    cv2.imwrite(str(md / "b.png"), np.zeros((128, 64), np.uint8))
    cv2.imwrite(str(md / "c.png"), lab)
    boxes = {"x/a.jpg": np.array([[19, 9, 31, 21]]), "x/b.jpg": np.array([[0, 0, 5, 5]])}
    r = parsing_recall(boxes, ["x/a.jpg", "x/b.jpg", "x/c.jpg", "x/d.jpg"], md)
    assert r["with_face"] == 2 and r["recall"] == 0.5
    assert r["faceless"] == 1 and r["faceless_box_rate"] == 1.0 and r["no_mask"] == 1


# --------------------------------------------------------------------------- synthetic data with ground truth
def test_synthetic_recall_oracle_and_centerface(synthetic_root, tmp_path):
    from reidlab.datasets import build_dataset
    from reidlab.datasets.synthetic import load_face_boxes

    ds = build_dataset("synthetic", synthetic_root)
    gt = load_face_boxes(synthetic_root)
    samples = ds.query + ds.gallery
    gt = {s.path: gt[s.path] for s in samples}
    oracle = build_detector("oracle", root=synthetic_root)
    df = detect_split(oracle, samples, ds.root, cache_dir=tmp_path, progress=False)
    r = box_recall(boxes_by_path(df, ds.root), gt, iou=0.5)
    assert r["recall"] == 1.0 and r["precision"] == 1.0
    det = build_detector("centerface")  # default settings
    df = detect_split(det, samples, ds.root, cache_dir=tmp_path, progress=False)
    r = box_recall(boxes_by_path(df, ds.root), gt, iou=0.3)
    assert r["recall"] >= SYNTHETIC_RECALL_BOUND, r
    assert df.attrs["cache_misses"] == len({s.path for s in samples}) and det.calls > 0
    again = build_detector("centerface")  # same configuration: served from the parquet cache
    df2 = detect_split(again, samples, ds.root, cache_dir=tmp_path, progress=False)
    assert again.calls == 0 and df2.attrs["cache_misses"] == 0 and df2.equals(df)


SYNTHETIC_RECALL_BOUND = (
    0.55  # measured 0.72 (49 of 68 faces, default settings, IoU 0.3; data/faces.md)
)


def test_gallery_figure_and_cli(synthetic_root, tmp_path, capsys, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    from reidlab.cli import main
    from reidlab.datasets import build_dataset
    from reidlab.faces.measure import gallery_figure

    ds = build_dataset("synthetic", synthetic_root)
    paths = [s.path for s in ds.query]
    fig = gallery_figure(
        paths, {paths[0]: np.array([[10, 5, 30, 25, 0.9]], np.float32)}, n=4, cols=2
    )
    assert len(fig.axes) == 4 and len(fig.axes[0].patches) + len(fig.axes[1].patches) <= 2
    out = tmp_path / "det.parquet"
    argv = ["detect", "synthetic", str(synthetic_root), "--cache-dir", str(tmp_path / "c")]
    argv += ["--no-progress", "--fail-closed", "0.3", "--out", str(out)]
    rc = main([*argv, "--detector", "oracle"])
    assert rc == 0 and out.is_file()
    text = capsys.readouterr().out
    assert "face found in" in text and "query" in text and "gallery" in text
    assert text.startswith("oracle ")

    # a pixel backend from the same flags, run twice: the second run detects nothing anew
    from reidlab.faces.cache import detect_split as real_detect_split

    runs = []

    def spy(det, *a, **kw):
        df = real_detect_split(det, *a, **kw)
        runs.append((det.calls, df.attrs["cache_misses"]))
        return df

    import reidlab.faces

    monkeypatch.setattr(reidlab.faces, "detect_split", spy)
    for _ in range(2):
        assert main([*argv, "--splits", "query", "--upscale", "1", "--no-flip-tta"]) == 0
    (first_calls, first_misses), (again_calls, again_misses) = runs
    assert first_calls > 0 and first_misses == len(ds.query)
    assert again_calls == 0 and again_misses == 0
    assert capsys.readouterr().out.startswith("centerface ")


def test_evaluate_split_row(synthetic_root, tmp_path):
    from reidlab.datasets import build_dataset
    from reidlab.datasets.synthetic import load_face_boxes
    from reidlab.faces.measure import evaluate_split

    ds = build_dataset("synthetic", synthetic_root)
    row = evaluate_split(
        build_detector("oracle", root=synthetic_root),
        ds.query,
        ds.root,
        gt=load_face_boxes(synthetic_root),
        cache_dir=tmp_path,
    )
    assert (
        row["box_recall"] == 1.0 and row["images"] == len(ds.query) and row["detector"] == "oracle"
    )
    faces = sum(
        len(v) > 0
        for k, v in load_face_boxes(synthetic_root).items()
        if k in {s.path for s in ds.query}
    )
    assert row["detection_rate"] == pytest.approx(faces / len(ds.query))


# --------------------------------------------------------------------------- face maps cache
class FakeMapDetector(FakeDetector):
    """A detector that gives maps: per image a (4, 2) map of known probabilities (the image's
    mean red value / 255 in every cell, one cell exactly 0.02 and one a value between two codes)."""

    name = "fakemap"
    gives_maps = True

    def face_maps(self, images):
        self.map_calls = getattr(self, "map_calls", 0) + len(images)
        out = []
        for im in images:
            m = np.full((4, 2), im[..., 0].mean() / 255, np.float32)
            m[0, 0], m[3, 1] = 0.02, 0.0214  # codes ceil(1310.7) = 1311, ceil(1402.45) = 1403
            out.append(m)
        return out


def test_face_maps_cache_round_trip(tmp_path):
    from reidlab.faces.cache import MAPS_FILE, decode_maps, encode_maps, split_face_maps

    # hand-computed codes: ceil(p * 65535), so decoding never goes below p
    p = np.array([0.0, 0.02, 0.0214, 0.5, 1.0])
    assert encode_maps(p).tolist() == [0, 1311, 1403, 32768, 65535]
    grid = np.linspace(0, 1, 100001).astype(np.float32)  # float32, as the network gives them
    back = decode_maps(encode_maps(grid))
    assert (
        back.dtype == np.float32
        and np.all(back >= grid)
        and np.all(back - grid <= 1 / 65535 + 1e-7)
    )
    with pytest.raises(DetectorError, match="finite probabilities"):
        encode_maps(np.array([0.5, np.nan]))

    root = tmp_path / "ds"
    paths = _write_images(root / "imgs", 5, bright={2})
    cache = tmp_path / "cache"
    det = FakeMapDetector()
    got = split_face_maps(det, paths, root, cache_dir=cache, progress=False, batch_size=2)
    assert det.map_calls == 5 and set(got) == set(paths)
    live = FakeMapDetector().face_maps([cv2.imread(p)[..., ::-1] for p in paths])
    for p, m in zip(paths, live):
        assert got[p].dtype == np.float32 and got[p].shape == (4, 2)
        assert np.all(got[p] >= m) and np.all(got[p] - m <= 1 / 65535 + 1e-7)
        assert got[p][0, 0] >= np.float32(0.02) and got[p][0, 0] == decode_maps(np.uint16(1311))
    # the file is numpy, no pickle, keyed by the images' sha1 like the boxes
    folder = cache / f"fakemap-{det.key}"
    with np.load(folder / MAPS_FILE, allow_pickle=False) as z:
        assert sorted(z.files) == ["maps_4x2", "sha1_4x2"]
        assert z["maps_4x2"].dtype == np.uint16 and len(z["sha1_4x2"]) == 5
    # a second run computes nothing and gives the same maps
    det2 = FakeMapDetector()
    again = split_face_maps(det2, paths, root, cache_dir=cache, progress=False)
    assert getattr(det2, "map_calls", 0) == 0
    assert all(np.array_equal(again[p], got[p]) for p in paths)
    # boxes and maps share the folder without disturbing each other
    detect_split(det2, paths, root, cache_dir=cache, progress=False)
    assert {f.name for f in folder.iterdir()} >= {MAPS_FILE, "boxes.parquet", "images.parquet"}
    # a detector without maps says so in one line
    with pytest.raises(DetectorError, match="fake gives boxes only"):
        split_face_maps(FakeDetector(), paths, root, cache_dir=cache, progress=False)


def test_face_maps_cache_ignores_maps_of_another_encoding(tmp_path):
    from reidlab.faces.cache import MAPS_FILE, split_face_maps

    root = tmp_path / "ds"
    paths = _write_images(root / "imgs", 2)
    det = FakeMapDetector()
    folder = tmp_path / "cache" / f"fakemap-{det.key}"
    folder.mkdir(parents=True)
    from reidlab.faces.cache import file_sha1

    shas = np.array([file_sha1(p) for p in paths], dtype="S40")
    with open(folder / MAPS_FILE, "wb") as f:  # uint8 codes: would decode 255x too small
        np.savez_compressed(f, sha1_4x2=shas, maps_4x2=np.full((2, 4, 2), 200, np.uint8))
    got = split_face_maps(det, paths, root, cache_dir=tmp_path / "cache", progress=False)
    assert det.map_calls == 2 and got[paths[0]][0, 0] >= np.float32(0.02)
