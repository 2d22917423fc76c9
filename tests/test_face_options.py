"""One entry point, one builder, one default, one dataset function for face boxes; cache robustness.

* the oracle through ``detect_batch(images, paths)`` like every backend;
* :mod:`reidlab.faces.options`: defaults come from the backend class, bad values are one line;
* :func:`reidlab.faces.dataset_boxes` with the oracle and with a cached detector;
* the detection cache: saved every N images (an interrupted run keeps them), two processes
  writing one cache folder end with the union.
"""

from __future__ import annotations

import argparse
import inspect
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

from reidlab.datasets import build_dataset
from reidlab.datasets.synthetic import generate, load_face_boxes
from reidlab.faces import (
    add_detector_arguments,
    build_detector,
    dataset_boxes,
    detect_split,
    detector_from_args,
    detector_from_config,
)
from reidlab.faces.base import Detector, DetectorError
from reidlab.faces.options import backend_defaults


class FakeDetector(Detector):
    """One fixed box per image with mean > 100 (deterministic, no model)."""

    name = "fake"

    def __init__(self, **kw):
        super().__init__(**kw)
        self.seen = 0

    def _detect(self, images):
        self.seen += len(images)
        return [
            np.array([[4, 4, 20, 24, 0.875]], np.float32)
            if im.mean() > 100
            else np.zeros((0, 5), np.float32)
            for im in images
        ]


def _write_images(folder, n, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        img = rng.integers(0, 255, size=(32, 16, 3), dtype=np.uint8)  # distinct contents
        p = folder / f"{i:04d}.png"
        cv2.imwrite(str(p), img)
        paths.append(str(p))
    return paths


@pytest.fixture(scope="module")
def small_synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn6")
    generate(root, num_ids=6, seed=0)
    return root


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_detector_arguments(parser)
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- one entry point
def test_oracle_through_the_common_entry_point(small_synthetic):
    from reidlab.imageio import read_rgb

    ds = build_dataset("synthetic", small_synthetic)
    gt = load_face_boxes(small_synthetic)
    paths = [s.path for s in ds.query + ds.gallery[:6]]
    images = [read_rgb(p) for p in paths]
    oracle = detector_from_config("oracle", {}, root=small_synthetic)
    assert oracle.needs_paths and not FakeDetector.needs_paths
    out = oracle.detect_batch(images, paths)
    assert len(out) == len(paths) and oracle.calls == 1
    for p, b in zip(paths, out):
        assert b.dtype == np.float32 and b.shape == (len(gt[p]), 5)
        np.testing.assert_allclose(b[:, :4], gt[p], atol=1e-4)
        assert (b[:, 4] == 1).all()
    assert any(len(b) for b in out) and any(not len(b) for b in out)  # fronts and backs
    # the same answer one image at a time and through the file convenience
    np.testing.assert_array_equal(oracle(images[0], paths[0]), out[0])
    for a, b in zip(oracle.detect_paths(paths), out):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(DetectorError, match="paths"):
        oracle.detect_batch(images)  # cannot know which image it is given
    with pytest.raises(DetectorError, match="2 images but 1 paths"):
        oracle.detect_batch(images[:2], paths[:1])
    # a pixel backend takes (and ignores) the paths
    fake = FakeDetector(threshold=0.5)
    bright = [np.full((32, 16, 3), 200, np.uint8), np.zeros((32, 16, 3), np.uint8)]
    with_paths = fake.detect_batch(bright, ["a.png", "b.png"])
    for a, b in zip(with_paths, fake.detect_batch(bright)):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- one builder
def test_defaults_come_from_the_backend_class():
    from reidlab.faces.centerface import CenterFaceDetector

    sig = inspect.signature(CenterFaceDetector.__init__).parameters
    det = detector_from_args(_parse([]))  # no flags: every value is the class's own default
    assert det.name == "centerface"
    for k in ("upscale", "threshold", "flip_tta", "box_scale", "head_region"):
        assert det.params[k] == (sig[k].default if k in sig else None), k
    assert det.params["threshold"] == 0.45 and det.params["upscale"] == 2.0
    assert det.params["flip_tta"] is True and det.params["box_scale"] == 1.3
    assert det.params == build_detector("centerface").params
    assert backend_defaults("centerface")["threshold"] == 0.45
    assert backend_defaults("mtcnn")["threshold"] == sig_default("mtcnn", "threshold")

    given = detector_from_args(
        _parse(["--threshold", "0.3", "--no-flip-tta", "--box-scale", "1", "--threads", "1"])
    )
    assert given.params["threshold"] == 0.3 and given.params["flip_tta"] is False
    assert given.params["box_scale"] == 1.0 and given.params["upscale"] == 2.0
    assert given._threads == 1 and "threads" not in given.params  # not part of the cache key
    # extra keywords, and a config dict with None = "the backend's default"
    assert detector_from_args(_parse([]), batch_size=4).batch_size == 4
    cfg = detector_from_config("centerface", {"threshold": None, "upscale": 1.5})
    assert cfg.params["threshold"] == 0.45 and cfg.params["upscale"] == 1.5


def sig_default(name, param):
    from reidlab.faces.base import detector_class

    return inspect.signature(detector_class(name).__init__).parameters[param].default


def test_builder_refuses_what_the_backend_does_not_take(tmp_path):
    with pytest.raises(DetectorError, match="threshold must be in"):
        detector_from_config("centerface", {"threshold": 2})
    with pytest.raises(DetectorError, match=r"mtcnn: unknown parameter\(s\) flip_tta"):
        detector_from_config("mtcnn", {"flip_tta": False})
    with pytest.raises(DetectorError, match="threads"):
        detector_from_config("mtcnn", {"threads": 1})
    with pytest.raises(DetectorError, match="no model file"):
        detector_from_config("mtcnn", {"model": "x.pt"})
    with pytest.raises(DetectorError, match="--model FILE"):
        detector_from_config("torch", {})
    with pytest.raises(DetectorError, match="no detector file"):
        detector_from_config("onnx", {"model": str(tmp_path / "missing.onnx")})
    with pytest.raises(DetectorError, match="known"):
        detector_from_config("nope", {})
    with pytest.raises(DetectorError, match="root"):
        detector_from_config("oracle", {})  # no root given
    with pytest.raises(DetectorError, match="fail_closed"):
        detector_from_config("centerface", {"fail_closed": 0.3})
    with pytest.raises(DetectorError, match="unknown parameter"):
        build_detector("centerface", treshold=0.5)  # a typo is named, not a TypeError


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_model_flag_reaches_the_backends_file_keyword(tmp_path):
    torch = pytest.importorskip("torch")

    class One(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros(x.shape[0], 1, 5)

    f = tmp_path / "one.pt"
    torch.jit.save(torch.jit.script(One()), str(f))
    det = detector_from_args(_parse(["--detector", "torch", "--model", str(f)]))
    assert det.name == "torch" and det.params["path"] == str(f)
    assert det.params["threshold"] == sig_default("torch", "threshold")


BAD_FLAGS = [
    ("--threshold 2", "must be in [0, 1]"),
    ("--threshold nan", "finite"),
    ("--upscale 0", "must be > 0"),
    ("--box-scale -1", "must be > 0"),
    ("--head-region 0", "must be in (0, 1]"),
    ("--fail-closed 1.5", "must be in (0, 1]"),
    ("--threads -1", "must be >= 0"),
    ("--threads 1.5", "must be an integer"),
    ("--detector bogus", "invalid choice"),
]


@pytest.mark.parametrize("flags,phrase", BAD_FLAGS)
def test_bad_detector_flags_are_one_line(flags, phrase, small_synthetic, capsys):
    from reidlab.cli import main

    with pytest.raises(SystemExit) as e:
        main(["detect", "synthetic", str(small_synthetic), *flags.split()])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert phrase in err[-1] and "Traceback" not in "\n".join(err)


def test_flag_the_backend_does_not_take_is_one_line(small_synthetic, tmp_path, capsys):
    from reidlab.cli import main

    rc = main(
        [
            "detect",
            "synthetic",
            str(small_synthetic),
            "--detector",
            "mtcnn",
            "--flip-tta",
            "--cache-dir",
            str(tmp_path),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "flip_tta" in err[0], err


def test_detect_masks_prints_counts(small_synthetic, tmp_path, capsys):
    """--masks: recall and the face-less rate each with the counts behind them."""
    from reidlab.cli import main

    ds = build_dataset("synthetic", small_synthetic)
    gt = load_face_boxes(small_synthetic)
    masks = tmp_path / "masks"
    masks.mkdir()
    faces = faceless = 0
    for s in ds.query:
        lab = np.zeros((128, 64), np.uint8)
        b = gt[s.path]
        if len(b):
            x1, y1, x2, y2 = np.round(b[0]).astype(int)
            lab[y1 + 1 : y2 - 1, x1 + 1 : x2 - 1] = 13  # inside the true box
            faces += int((lab == 13).sum() >= 20)
        else:
            faceless += 1
        cv2.imwrite(str(masks / (s.path.rsplit("/", 1)[-1].rsplit(".", 1)[0] + ".png")), lab)
    assert faces and faceless
    rc = main(
        [
            "detect",
            "synthetic",
            str(small_synthetic),
            "--detector",
            "oracle",
            "--splits",
            "query",
            "--masks",
            str(masks),
            "--no-progress",
            "--cache-dir",
            str(tmp_path / "c"),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert f"recall 100.0% ({faces} of {faces})" in out, out
    assert f"face-less boxed 0.0% (0 of {faceless})" in out, out


# --------------------------------------------------------------------------- dataset_boxes
def test_dataset_boxes_with_the_oracle(small_synthetic):
    ds = build_dataset("synthetic", small_synthetic)
    gt = load_face_boxes(small_synthetic)
    boxes, info = dataset_boxes(ds, "oracle", progress=False)
    assert info["detector"] == "oracle" and info["fail_closed"] is None
    assert info["detector_params"]["root"] == str(small_synthetic.resolve())
    for split in ("train", "query", "gallery"):
        samples = ds.split(split)
        with_face = [s for s in samples if len(gt[s.path])]
        assert info[f"face_rate_{split}"] == pytest.approx(len(with_face) / len(samples))
        assert info[f"detection_rate_{split}"] == info[f"face_rate_{split}"]
        for s in samples:
            got = boxes.get(s.path, np.zeros((0, 4), np.float32))
            np.testing.assert_allclose(got, gt[s.path], atol=1e-4)
    # the same from a built detector, one split, with the fail-closed prior
    oracle = detector_from_config("oracle", {}, root=ds.root)
    qb, qi = dataset_boxes(ds, oracle, splits=("query",), fail_closed=0.3, progress=False)
    assert set(qb) == {s.path for s in ds.query} and qi["face_rate_query"] == 1.0
    assert qi["detection_rate_query"] == info["detection_rate_query"] < 1
    assert qi["fail_closed"] == 0.3 and "face_rate_train" not in qi
    with pytest.raises(ValueError, match="params"):
        dataset_boxes(ds, oracle, params={"threshold": 0.5})


def test_dataset_boxes_second_call_skips_detection(small_synthetic, tmp_path, monkeypatch):
    ds = build_dataset("synthetic", small_synthetic)
    n = sum(len(ds.split(s)) for s in ("train", "query", "gallery"))
    first = FakeDetector(threshold=0.5)
    boxes, info = dataset_boxes(ds, first, cache_dir=tmp_path, progress=False)
    assert first.seen == n and first.calls > 0
    again = FakeDetector(threshold=0.5)  # same configuration: everything from the cache
    boxes2, info2 = dataset_boxes(ds, again, cache_dir=tmp_path, progress=False)
    assert again.calls == 0 and again.seen == 0
    assert info2 == info and boxes2.keys() == boxes.keys()
    for k in boxes:
        np.testing.assert_array_equal(boxes2[k], boxes[k])


# --------------------------------------------------------------------------- cache robustness
class Interrupted(FakeDetector):
    """Fails on its ``fail_at``-th call, like a run killed midway."""

    def __init__(self, fail_at, **kw):
        super().__init__(**kw)
        self.fail_at = fail_at

    def _detect(self, images):
        if self.calls == self.fail_at:
            raise KeyboardInterrupt
        return super()._detect(images)


def test_interrupted_run_keeps_what_was_saved(tmp_path):
    root = tmp_path / "ds"
    paths = _write_images(root, 10)
    cache = tmp_path / "cache"
    det = Interrupted(fail_at=3)
    with pytest.raises(KeyboardInterrupt):
        detect_split(det, paths, root, cache_dir=cache, batch_size=2, save_every=4, progress=False)
    assert det.seen == 4  # two batches done, saved after the second; the third failed
    again = FakeDetector()
    df = detect_split(again, paths, root, cache_dir=cache, batch_size=2, progress=False)
    assert df.attrs["cache_hits"] == 4 and df.attrs["cache_misses"] == 6 and again.seen == 6
    third = FakeDetector()
    detect_split(third, paths, root, cache_dir=cache, progress=False)
    assert third.calls == 0


WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from reidlab.faces import detect_split
    from reidlab.faces.base import Detector

    class Slow(Detector):
        name = "slow"

        def _detect(self, images):
            time.sleep(0.01)
            return [np.array([[1, 1, 5, 5, 0.875]], np.float32) for _ in images]

    root, cache, *paths = sys.argv[1:]
    detect_split(Slow(), paths, root, cache_dir=cache, batch_size=1, save_every=1, progress=False)
    """
)


def test_two_processes_sharing_a_cache_end_with_the_union(tmp_path):
    import pandas as pd

    root = tmp_path / "ds"
    paths = _write_images(root, 40)
    cache = tmp_path / "cache"
    halves = (paths[:24], paths[16:])  # overlapping: 8 images detected by both
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(root), str(cache), *half],
            stderr=subprocess.PIPE,
            text=True,
        )
        for half in halves
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    (folder,) = [d for d in cache.iterdir() if d.is_dir()]
    images = pd.read_parquet(folder / "images.parquet")
    boxes = pd.read_parquet(folder / "boxes.parquet")
    assert len(images) == 40 and images["sha1"].is_unique
    assert len(boxes) == 40 and set(boxes["sha1"]) == set(images["sha1"])

    class Slow(Detector):  # the same configuration as the writers': served from the cache
        name = "slow"

        def _detect(self, images):
            raise AssertionError("should have come from the cache")

    det = Slow()
    df = detect_split(det, paths, root, cache_dir=cache, progress=False)
    assert det.calls == 0 and df.attrs["cache_misses"] == 0 and len(df) == 40


# --------------------------------------------------------------------------- full coverage
def test_full_coverage_flag_sets_the_head_prior(small_synthetic, tmp_path, capsys):
    """--full-coverage: every crop gets a box (detections, else the head prior), through the
    fail_closed every command with detector flags already passes on."""
    import os

    import pandas as pd

    from reidlab.cli import main
    from reidlab.faces.prior import HeadPrior, head_prior_box

    plain = _parse([])
    assert plain.full_coverage is False and plain.fail_closed is None
    on = _parse(["--full-coverage"])
    assert on.full_coverage is True and on.fail_closed == HeadPrior().height
    for argv in (
        ["--full-coverage", "--fail-closed", "0.2"],
        ["--fail-closed", "0.2", "--full-coverage"],
    ):
        args = _parse(argv)
        assert args.full_coverage and args.fail_closed == 0.2, argv  # its own height wins
    no_prior = argparse.ArgumentParser()
    add_detector_arguments(no_prior, exclude={"fail_closed"})
    with pytest.raises(SystemExit):
        no_prior.parse_args(["--full-coverage"])  # no fail-closed, no full coverage

    ds = build_dataset("synthetic", small_synthetic)
    gt = load_face_boxes(small_synthetic)
    out = tmp_path / "det.parquet"
    argv = ["detect", "synthetic", str(small_synthetic), "--detector", "oracle", "--no-progress"]
    assert main([*argv, "--full-coverage", "--out", str(out)]) == 0
    capsys.readouterr()
    df = pd.read_parquet(out)
    crops = ds.query + ds.gallery
    rel = {os.path.relpath(s.path, ds.root): s for s in crops}
    assert set(df["path"]) == set(rel)  # every query and gallery crop has a box
    prior_rows = df[df["fail_closed"]]
    assert set(prior_rows["path"]) == {r for r, s in rel.items() if not len(gt[s.path])}
    np.testing.assert_allclose(
        prior_rows[["x1", "y1", "x2", "y2"]].to_numpy(),
        np.repeat(head_prior_box(128, 64, HeadPrior())[None, :4], len(prior_rows), 0),
    )
