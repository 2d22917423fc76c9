"""The built-in synthetic dataset: determinism, Market layout, face boxes, caching, speed."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from reidlab.datasets import build_dataset
from reidlab.datasets import synthetic_render as R
from reidlab.datasets.parsing import parse_market_style
from reidlab.datasets.synthetic import (
    CONFIG,
    FACE_BOXES,
    SPLIT_FOLDERS,
    ensure_synthetic,
    generate,
    load,
    load_face_boxes,
    read_face_records,
)
from reidlab.errors import DatasetError
from reidlab.imageio import read_rgb

TINY = {"num_ids": 4, "images_per_id_per_camera": (1, 2), "num_cameras": 3}


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_different_seed_differs(tmp_path):
    t0 = time.perf_counter()
    generate(tmp_path / "a", num_ids=12, seed=3)
    took = time.perf_counter() - t0
    generate(tmp_path / "b", num_ids=12, seed=3)
    a, b = _digests(tmp_path / "a"), _digests(tmp_path / "b")
    assert len(a) > 100 and a == b
    generate(tmp_path / "c", num_ids=12, seed=4)
    c = _digests(tmp_path / "c")
    shared = set(a) & set(c)
    assert sum(a[k] != c[k] for k in shared) >= 0.95 * len(shared) and set(a) != set(c)
    # 12 ids (about 170 images) on a shared CPU: a few seconds at most
    assert took < 8.0, f"generating 12 ids took {took:.1f} s"


def test_loader_counts_and_market_protocol(synthetic_root):
    ds = build_dataset("synthetic", synthetic_root)
    records = read_face_records(synthetic_root)
    for split, folder in SPLIT_FOLDERS.items():
        n = sum(1 for r in records if r["path"].startswith(folder + "/"))
        assert len(ds.split(split)) == n > 0
    train_ids = {s.pid for s in ds.train}
    test_ids = {s.pid for s in ds.query} | {s.pid for s in ds.gallery if s.pid != 0}
    assert len(train_ids) == 6 and len(test_ids) == 6 and not train_ids & test_ids
    assert {s.pid for s in ds.query} == test_ids
    # one query per (id, camera), from at most query_per_id cameras, each with a cross-camera match
    qkeys = [(s.pid, s.camid) for s in ds.query]
    assert len(qkeys) == len(set(qkeys))
    per_id = {}
    for pid, cam in qkeys:
        per_id.setdefault(pid, set()).add(cam)
    assert all(1 <= len(c) <= 2 for c in per_id.values())
    assert ds.info["queries_without_match"] == 0
    assert {s.camid for s in ds.train + ds.query + ds.gallery} <= set(range(6))
    for s in ds.train + ds.query + ds.gallery:
        assert parse_market_style(Path(s.path).name, 6) == (s.pid, s.camid)
        assert Path(s.path).is_absolute() and Path(s.path).is_file()
    assert Path(ds.info["face_boxes"]).is_file() and ds.info["config"]["num_ids"] == 12
    img = read_rgb(ds.train[0].path)
    assert img.shape == (128, 64, 3) and img.dtype == np.uint8


def test_face_boxes_agree_with_views(synthetic_root):
    ds = load(synthetic_root)
    boxes = load_face_boxes(synthetic_root)
    records = {
        str(Path(synthetic_root).resolve() / r["path"]): r
        for r in read_face_records(synthetic_root)
    }
    samples = ds.train + ds.query + ds.gallery
    assert set(boxes) == {s.path for s in samples} == set(records)
    views = {r["view"] for r in records.values()}
    assert views == {"front", "side", "back"}
    for path, b in boxes.items():
        r = records[path]
        assert b.dtype == np.float32 and b.ndim == 2 and b.shape[1] == 4
        if r["view"] == "back":
            assert b.shape == (0, 4)
            continue
        assert b.shape == (1, 4)
        x1, y1, x2, y2 = b[0]
        assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 128
        # the visible skin is at most the face ellipse (+ 1 px of edge), at least a third of it
        assert r["face_height"] / 3 <= y2 - y1 <= r["face_height"] + 1
        assert y2 < 128 / 2, "faces sit in the upper half of a pedestrian crop"


def test_face_boxes_cover_something_else_than_background(synthetic_root):
    """Inside the box the pixels differ from the strips left and right of it (background/hair)."""
    records = [r for r in read_face_records(synthetic_root) if r["view"] == "front"]
    assert len(records) >= 20
    differs = 0
    for r in records:
        img = read_rgb(Path(synthetic_root) / r["path"]).astype(np.float32)
        x1, y1, x2, y2 = (round(v) for v in r["box"])
        inner = np.median(img[y1 + 1 : y2 - 1, x1 + 1 : x2 - 1].reshape(-1, 3), axis=0)
        w = max(2, (x2 - x1) // 2)
        ring = np.concatenate(
            [
                img[y1:y2, max(x1 - w - 2, 0) : max(x1 - 2, 1)].reshape(-1, 3),
                img[y1:y2, x2 + 2 : x2 + w + 2].reshape(-1, 3),
            ]
        )
        outer = np.median(ring, axis=0)
        differs += float(np.linalg.norm(inner - outer)) > 20
    assert differs >= 0.85 * len(records)


def _head_on_flat(
    view: str, face_h: float, skin=(200.0, 140.0, 105.0), ss: int = 4, facing: int = 1
):
    """A head on a flat green background (dark hair, given skin), shrunk from ``ss``x."""
    face = R.sample_face(np.random.default_rng(7))
    face = dataclasses.replace(face, skin=skin, hair=(35.0, 25.0, 20.0))
    bg = (40.0, 160.0, 60.0)
    h, w = 64, 48
    canvas = np.empty((h * ss, w * ss, 3), np.float32)
    canvas[:] = bg
    box = R.render_head(canvas, face, view, facing, 24.3, 30.6, face_h, ss)
    img = cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA)
    return img, box, face


@pytest.mark.parametrize(("view", "facing"), [("front", 1), ("side", 1), ("side", -1)])
@pytest.mark.parametrize("face_h", [10.0, 16.5, 24.0])
def test_face_box_matches_changed_pixels(view, facing, face_h):
    """Render twice with two skin tones: the pixels that change are the visible face skin."""
    light, dark = (230.0, 190.0, 160.0), (90.0, 60.0, 40.0)
    a, box, _ = _head_on_flat(view, face_h, skin=light, facing=facing)
    b, box_b, _ = _head_on_flat(view, face_h, skin=dark, facing=facing)
    assert box is not None and box == box_b
    changed = np.abs(a - b).max(axis=2) > 0.3 * 140  # more than ~a third of a skin pixel
    rows, cols = np.flatnonzero(changed.any(1)), np.flatnonzero(changed.any(0))
    ref = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    np.testing.assert_allclose(box, ref, atol=1.0)
    assert face_h * 0.5 <= box[3] - box[1] <= face_h + 0.5
    if view == "side":  # the visible skin lies on the facing side of the head centre
        assert facing * ((box[0] + box[2]) / 2 - 24.3) > 0


def test_skin_concentrates_inside_the_box():
    img, box, face = _head_on_flat("front", 20.0)
    skin = np.array(face.skin, np.float32)
    near_skin = np.linalg.norm(img - skin, axis=2) < 25
    x1, y1, x2, y2 = (round(v) for v in box)
    inside = near_skin[y1:y2, x1:x2].sum()
    assert near_skin.sum() > 20 and inside >= 0.95 * near_skin.sum()


def test_back_view_draws_no_face():
    img, box, face = _head_on_flat("back", 20.0)
    assert box is None
    assert np.linalg.norm(img - np.array(face.skin, np.float32), axis=2).min() > 10


def test_uniform_fraction_makes_clothes_shared(tmp_path):
    """One camera, one uniform: at fraction 1 every torso looks alike, at 0 they vary."""
    spreads = {}
    for frac in (0.0, 1.0):
        root = generate(
            tmp_path / str(frac),
            num_ids=12,
            num_cameras=1,
            cameras_per_id=(1, 1),
            images_per_id_per_camera=(2, 2),
            query_per_id=1,
            uniform_fraction=frac,
            num_uniforms=1,
            side_fraction=0.0,
            back_fraction=0.0,
            seed=5,
        )
        recs = read_face_records(root)
        assert all((r["uniform"] == 0) == (frac == 1.0) for r in recs)
        torsos = []
        for r in recs:
            img = read_rgb(root / r["path"]).astype(np.float32)
            y = int(r["box"][3]) + 10  # just below the chin: the top's upper part
            torsos.append(np.median(img[y : y + 8, 26:38].reshape(-1, 3), axis=0))
        spreads[frac] = float(np.std(np.array(torsos), axis=0).mean())
    assert spreads[1.0] < 0.5 * spreads[0.0], spreads


def test_ensure_synthetic_caches_and_regenerates(tmp_path, monkeypatch):
    import reidlab.datasets.synthetic as S

    root = tmp_path / "cache" / "tiny"
    calls = []
    real = S.generate
    monkeypatch.setattr(S, "generate", lambda *a, **k: calls.append(k) or real(*a, **k))
    assert ensure_synthetic(root, **TINY) == root
    first = (root / CONFIG).read_text()
    assert len(calls) == 1 and json.loads(first)["num_ids"] == 4
    assert ensure_synthetic(root, **TINY) == root and len(calls) == 1  # cached
    ensure_synthetic(root, **{**TINY, "seed": 1})  # config changed
    assert len(calls) == 2 and json.loads((root / CONFIG).read_text())["seed"] == 1
    assert sorted(p.name for p in root.parent.iterdir()) == ["tiny"]  # no temp leftovers
    # default root: $REIDLAB_DATA/synthetic/<hash>, stable for the same config
    monkeypatch.setenv("REIDLAB_DATA", str(tmp_path / "data"))
    d = ensure_synthetic(**TINY)
    assert d.parent == tmp_path / "data" / "synthetic" and (d / FACE_BOXES).is_file()
    assert ensure_synthetic(**TINY) == d and len(calls) == 3


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    import reidlab.datasets.synthetic_render as RR

    n = {"k": 0}
    real = RR.finish

    def flaky(*a, **k):
        n["k"] += 1
        if n["k"] > 5:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(RR, "finish", flaky)
    root = tmp_path / "x"
    with pytest.raises(KeyboardInterrupt):
        ensure_synthetic(root, **TINY)
    assert not root.exists() and list(tmp_path.iterdir()) == []


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(DatasetError, match="config.json"):
        load(tmp_path)
    (tmp_path / "note.txt").write_text("x")
    with pytest.raises(DatasetError, match="not empty"):
        generate(tmp_path, **TINY)
    with pytest.raises(DatasetError, match="refusing"):
        ensure_synthetic(tmp_path, **TINY)
    with pytest.raises(DatasetError, match="uniform_fraction"):
        generate(tmp_path / "y", num_ids=4, uniform_fraction=1.5)
    with pytest.raises(DatasetError, match="unknown setting"):
        generate(tmp_path / "y", num_ids=4, colour="red")


def test_cli_generates_and_prints(tmp_path, capsys):
    from reidlab.cli import main

    root = tmp_path / "cli"
    assert (
        main(
            [
                "synthetic",
                str(root),
                "--num-ids",
                "4",
                "--num-cameras",
                "2",
                "--images-per-camera",
                "1",
                "2",
                "--uniform-fraction",
                "1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "train" in out and "query" in out and "uniform_fraction 1.0" in out
    assert json.loads((root / CONFIG).read_text())["uniform_fraction"] == 1.0


def test_ensure_synthetic_tolerates_a_concurrent_writer(tmp_path, monkeypatch):
    """Another process finishing the same folder first: its copy is kept, ours discarded."""
    import reidlab.datasets.synthetic as S

    root = tmp_path / "shared"
    real = S.generate

    def racing(out, **k):
        real(out, **k)
        if not root.exists():  # the other writer renames its copy into place meanwhile
            real(tmp_path / "other", **k)
            (tmp_path / "other").rename(root)
        return out

    monkeypatch.setattr(S, "generate", racing)
    assert ensure_synthetic(root, **TINY) == root
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared"]
    assert load(root).info["config"]["num_ids"] == 4
