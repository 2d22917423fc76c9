"""The privacy attackers (issue 12): face cutting, chance levels, the train/test identity split,
and the face-only attacker and the privacy-utility curve on a small synthetic set where identity
lives only in the head (everyone in shared uniforms)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from reidlab.anonymize import Anonymizer
from reidlab.privacy.attacker import (
    SplitError,
    chance_levels,
    check_split,
    evaluate_attacker,
    train_attacker,
)
from reidlab.privacy.curve import privacy_utility_curve, recommend, summary_table
from reidlab.privacy.faces import Crops, FaceSet, cut_faces, load_crops


def _hand_image():
    """40x30 grey crop; a 8x8 face at x 10..18, y 8..16 whose pixel (r, c) is (8r + c) * 3."""
    img = np.full((40, 30, 3), 51, np.uint8)
    pattern = (np.arange(64).reshape(8, 8) * 3).astype(np.uint8)
    img[8:16, 10:18] = pattern[..., None]
    return img


def _crops(images, boxes, pids=None):
    n = len(images)
    return Crops(
        list(images),
        [np.asarray(b, np.float32) for b in boxes],
        np.asarray(pids if pids is not None else range(1, n + 1)),
        np.zeros(n, np.int64),
        [f"img{i}.png" for i in range(n)],
    )


def test_cut_faces_takes_the_box_pixels_of_a_hand_made_image():
    img = _hand_image()
    small = np.array([[0, 0, 2, 2]], np.float32)
    crops = _crops([img], [np.concatenate([small, [[10, 8, 18, 16]]])])  # the larger box wins
    f = cut_faces(crops, None, enlarge=1.0, size=8)
    want = torch.from_numpy(img[8:16, 10:18]).permute(2, 0, 1).float() / 255
    assert f.faces.shape == (1, 3, 8, 8) and torch.equal(f.faces[0], want)
    # enlarged 2x about the centre (14, 12): x 6..22, y 4..20
    f2 = cut_faces(crops, None, enlarge=2.0, size=16)
    want2 = torch.from_numpy(img[4:20, 6:22]).permute(2, 0, 1).float() / 255
    assert torch.equal(f2.faces[0], want2)


def test_cut_faces_shows_the_anonymized_pixels_and_the_original_around_them():
    img = _hand_image()
    crops = _crops([img], [[[10, 8, 18, 16]]])
    red = Anonymizer("fill", color=(1.0, 0.0, 0.0))
    f = cut_faces(crops, red, enlarge=2.0, size=16)
    face = f.faces[0]
    assert torch.equal(
        face[:, 4:12, 4:12], torch.tensor([1.0, 0, 0])[:, None, None].expand(3, 8, 8)
    )
    ring = torch.ones(16, 16, dtype=torch.bool)
    ring[4:12, 4:12] = False
    assert torch.allclose(face[:, ring], torch.full((3, int(ring.sum())), 51 / 255))
    assert f.settings["anonymizer"]["method"] == "fill"


def test_crops_without_a_box_are_excluded_and_counted(tmp_path):
    import cv2

    from reidlab.datasets.base import Sample

    paths = []
    for i in range(3):
        p = tmp_path / f"{i}.png"
        cv2.imwrite(str(p), _hand_image()[..., ::-1])
        paths.append(str(p))
    samples = [Sample(p, pid, 0) for p, pid in zip(paths, (5, 6, 7))]
    boxes = {paths[0]: np.array([[10, 8, 18, 16]], np.float32), paths[1]: np.zeros((0, 4))}
    crops = load_crops(samples, boxes)
    assert crops.excluded == 2 and crops.pids.tolist() == [5]
    assert np.array_equal(crops.images[0], _hand_image())
    # a box entirely outside the image covers no pixel: excluded too
    crops.images.append(_hand_image())
    crops.boxes.append(np.array([[100, 100, 120, 120]], np.float32))
    crops.pids = np.array([5, 9])
    crops.camids = np.array([0, 0])
    crops.paths.append("outside.png")
    f = cut_faces(crops, size=8)
    assert len(f) == 1 and f.pids.tolist() == [5] and f.excluded == 3


def test_chance_levels_match_the_hand_computed_values():
    # one query, 4 gallery images of 4 identities in another camera: a random order puts the one
    # match at rank r uniform in 1..4, so E[AP] = E[1/r] = (1 + 1/2 + 1/3 + 1/4) / 4 = 25/48
    c = chance_levels([1], [1, 2, 3, 4], [0], [1, 1, 1, 1], repeats=3000, seed=0)
    assert c["rank1"] == 0.25 and c["gallery_ids"] == 4
    assert c["mAP"] == pytest.approx(25 / 48, abs=0.02)
    assert c["random_rank1"] == pytest.approx(0.25, abs=0.025)
    # distractors (pid 0) and junk (-1) are not identities
    assert chance_levels([1], [1, 2, 0, -1], [0], [1, 1, 1, 1], repeats=2)["rank1"] == 0.5
    # seeded: same seed, same number
    assert chance_levels([1], [1, 2, 3], [0], [1, 1, 1], repeats=5, seed=3) == chance_levels(
        [1], [1, 2, 3], [0], [1, 1, 1], repeats=5, seed=3
    )


def _faces(pids, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = len(pids)
    return FaceSet(
        torch.rand(n, 3, 16, 16, generator=g), np.asarray(pids), np.arange(n) % 2, [""] * n
    )


def test_the_attacker_refuses_test_identities_it_trained_on():
    with pytest.raises(SplitError, match="1 test identities were seen"):
        check_split([1, 2, 3], [4, 5], [3, 0, -1])
    check_split([1, 2], [0, -1, 3], [4])  # distractors and junk are nobody
    attacker = train_attacker(_faces([1, 1, 2, 2, 3, 3]), epochs=1, batch_size=3)
    assert sorted(attacker.train_pids.tolist()) == [1, 1, 2, 2, 3, 3]
    with pytest.raises(SplitError):
        evaluate_attacker(attacker, _faces([2, 4]), _faces([4, 5]))
    r = evaluate_attacker(attacker, _faces([4, 5]), _faces([4, 5, 6]))
    assert r["chance_rank1"] == pytest.approx(1 / 3) and r["n_query"] == 2


def test_attacker_training_is_seeded():
    faces = _faces([1, 1, 2, 2, 3, 3])
    a = train_attacker(faces, epochs=2, batch_size=3, seed=1)
    b = train_attacker(faces, epochs=2, batch_size=3, seed=1)
    assert torch.equal(a.features(faces.faces), b.features(faces.faces))


def _table():
    rows = [
        ("none", None, None, 0.5, 0.5, 0.8),
        ("blur", "sigma_rel", 0.1, 0.3, 0.2, 0.75),
        ("blur", "sigma_rel", 0.2, 0.11, 0.05, 0.7),
        ("blur", "sigma_rel", 0.4, 0.05, 0.1, 0.6),
        ("pixelate", "blocks", 8, 0.4, 0.3, 0.78),
        ("pixelate", "blocks", 4, 0.2, 0.1, 0.76),
        ("zero", None, None, 0.1, 0.1, 0.5),
    ]
    df = pd.DataFrame(
        rows, columns=["method", "param", "value", "adaptive_rank1", "naive_rank1", "body_mAP"]
    )
    df["chance_rank1"] = 0.1
    df["setting"] = [
        m if p is None else f"{m} {p}={v}" for m, p, v in zip(df.method, df.param, df.value)
    ]
    return df


def test_recommendation_is_the_weakest_setting_within_two_points_of_chance():
    rec = recommend(_table()).set_index("method")
    # blur 0.1 is 20 points above chance, 0.2 is 1 point above: the weakest within 2 points
    assert rec.loc["blur", "value"] == 0.2
    assert rec.loc["blur", "utility_cost_points"] == pytest.approx(10.0)
    assert rec.loc["blur", "utility_kept_pct"] == pytest.approx(87.5)
    assert pd.isna(rec.loc["pixelate", "setting"])  # 10 points above chance at best
    assert rec.loc["zero", "utility_cost_points"] == pytest.approx(30.0)


def test_summary_table_is_at_the_registry_defaults():
    s = summary_table(_table()).set_index("method")
    # registry defaults: blur sigma_rel 0.2, pixelate blocks 4
    assert s.loc["blur", "utility_kept_pct"] == pytest.approx(100 * 0.7 / 0.8)
    assert s.loc["blur", "adaptive_left_pct"] == pytest.approx(22.0)
    assert s.loc["blur", "naive_left_pct"] == pytest.approx(10.0)
    assert s.loc["pixelate", "utility_kept_pct"] == pytest.approx(95.0)
    assert s.loc["zero", "adaptive_left_pct"] == pytest.approx(20.0)


@pytest.fixture(scope="module")
def uniform_world(tmp_path_factory):
    """20 identities, all in 3 shared uniforms: only the head tells people apart."""
    from reidlab.datasets.synthetic import generate, load, load_face_boxes

    root = tmp_path_factory.mktemp("uniforms")
    generate(
        root,
        num_ids=20,
        seed=0,
        uniform_fraction=1.0,
        back_fraction=0.1,
        images_per_id_per_camera=(3, 5),
    )
    return load(root), load_face_boxes(root)


def test_curve_on_faces_that_carry_identity(uniform_world):
    ds, boxes = uniform_world
    seen = []

    def utility(anonymizer):  # stands for the body model: records what it was asked to score
        seen.append(None if anonymizer is None else anonymizer.settings())
        return 0.5

    curve = privacy_utility_curve(
        ds, boxes, utility, methods=("blur",), strengths={"blur": ("sigma_rel", (0.4,))}, seed=0
    )
    orig = curve.iloc[0]
    blur = curve.iloc[1]
    # on original faces the face-only attacker is well above chance
    assert orig["method"] == "none" and orig["chance_rank1"] == 0.1  # 10 test identities
    assert orig["adaptive_rank1"] >= orig["chance_rank1"] + 0.2, curve
    # the strongest blur hides faces: both attackers fall
    assert blur["adaptive_rank1"] < orig["adaptive_rank1"]
    assert blur["naive_rank1"] < orig["naive_rank1"]
    # the body model scored the same anonymization as the attackers saw
    assert seen[0] is None and seen[1]["sigma_rel"] == 0.4 and seen[1]["method"] == "blur"
    # the split, from the faces the attackers actually used: train identities only for training
    split = curve.attrs["split"]
    train_ids = {s.pid for s in ds.train if len(boxes[s.path])}
    test_ids = {s.pid for s in ds.query + ds.gallery if len(boxes[s.path])}
    assert set(split["train"]) == train_ids and len(train_ids) == 10
    assert set(split["query"]) | set(split["gallery"]) == test_ids
    assert not set(split["train"]) & (set(split["query"]) | set(split["gallery"]))
    # crops without a face (back views) are excluded and counted
    no_face = sum(len(boxes[s.path]) == 0 for s in ds.train + ds.query + ds.gallery)
    assert (curve["excluded_crops"] == no_face).all() and no_face > 0
