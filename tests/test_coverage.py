"""The coverage cue (reidlab.evaluation.coverage): hand-computed tiny cases, a brute-force
reference for the top-k ranking, the figures carried by evaluate(keep_topk=...), and full
coverage (every crop boxed, shares 1.0) through dataset_boxes and the experiment's boxes."""

from __future__ import annotations

import numpy as np
import pytest

from reidlab.evaluation.coverage import coverage_cue, cue_columns, top_valid_matches

# Two queries, seven gallery crops (hand-made; the expected figures below are worked by hand).
Q_PIDS, Q_CAMS = [1, 2], [0, 1]
G_PIDS = [1, 1, 3, 4, -1, 5, 2]
G_CAMS = [0, 1, 0, 1, 0, 1, 1]
G_ANON = np.array([True, False, True, True, True, False, False])
# q0: g0 (pid 1, cam 0) and g4 (pid -1) are removed -> ranking g2, g1, g3, g5, g6
# q1: g6 (pid 2, cam 1) and g4 are removed -> ranking g3, g5 (tie at 0.1: lower index first),
#     g1, g0, g2
DIST = np.array(
    [
        [0.0, 0.3, 0.2, 0.4, 0.1, 0.5, 0.6],
        [0.3, 0.2, 0.4, 0.1, 0.0, 0.1, 0.0],
    ]
)


def cue(q_anon, k, **kw):
    return coverage_cue(Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, np.array(q_anon), G_ANON, k=k, **kw)


def test_top_valid_matches_by_hand():
    top = top_valid_matches(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, k=6)
    np.testing.assert_array_equal(top, [[2, 1, 3, 5, 6, -1], [3, 5, 1, 0, 2, -1]])


def test_one_anonymized_query_by_hand():
    # q0 alone. Its possible wrong matches (valid, pid != 1): g2 g3 g5 g6, anonymized g2 g3
    # -> chance 2/4 whatever k.
    c = cue([True, False], k=2, distmat=DIST)  # top 2: g2 (wrong, anon), g1 (positive)
    assert c == {
        "anon_share_query": 0.5,
        "anon_share_gallery": pytest.approx(4 / 7),
        "wrong_top2_anon_share": 1.0,
        "wrong_top2_anon_share_chance": 0.5,
        "wrong_top2_count": 1,
        "anon_queries": 1,
    }
    assert tuple(c) == cue_columns(2)  # the columns the results table documents
    c = cue([True, False], k=3, distmat=DIST)  # g2, g1, g3: wrong g2 g3, both anonymized
    assert c["wrong_top3_anon_share"] == 1.0 and c["wrong_top3_count"] == 2
    c = cue([True, False], k=10, distmat=DIST)  # wrong g2 g3 g5 g6: 2 of 4
    assert c["wrong_top10_anon_share"] == 0.5 and c["wrong_top10_anon_share_chance"] == 0.5
    assert c["wrong_top10_count"] == 4


def test_pooled_over_queries_by_hand():
    # q1's possible wrong matches (valid, pid != 2): g0 g1 g2 g3 g5, anonymized g0 g2 g3 -> 3/5
    c = cue([True, True], k=2, distmat=DIST)
    # q0: g2 (anon) [g1 is a positive]; q1: g3 (anon), g5 -> 2 of 3 anonymized
    assert c["wrong_top2_anon_share"] == pytest.approx(2 / 3)
    assert c["wrong_top2_anon_share_chance"] == pytest.approx((1 * 0.5 + 2 * 0.6) / 3)
    assert c["wrong_top2_count"] == 3 and c["anon_queries"] == 2
    c = cue([True, True], k=1, distmat=DIST)  # the tie goes to g3 (lower index): anonymized
    assert c["wrong_top1_anon_share"] == 1.0
    assert c["wrong_top1_anon_share_chance"] == pytest.approx((0.5 + 0.6) / 2)
    # only q1 anonymized: g3, g5 -> 1 of 2 against 3/5
    c = cue([False, True], k=2, distmat=DIST)
    assert c["wrong_top2_anon_share"] == 0.5
    assert c["wrong_top2_anon_share_chance"] == pytest.approx(0.6)


def test_no_anonymized_query_gives_nan_not_zero():
    c = cue([False, False], k=10, distmat=DIST)
    assert c["anon_share_query"] == 0.0 and c["anon_queries"] == 0
    assert np.isnan(c["wrong_top10_anon_share"]) and np.isnan(c["wrong_top10_anon_share_chance"])
    assert c["wrong_top10_count"] == 0


def test_ranked_input_skips_removed_items():
    """A plain stable argsort (junk included) gives what the distances give."""
    full = np.argsort(DIST, axis=1, kind="stable")
    for k in (1, 2, 3, 10):
        assert cue([True, True], k, ranked=full) == cue([True, True], k, distmat=DIST)


def brute_top(d, q_pids, g_pids, q_cams, g_cams, k):
    out = []
    for i, row in enumerate(d):
        kept = [
            (row[j], j)
            for j in range(len(g_pids))
            if g_pids[j] != -1 and not (g_pids[j] == q_pids[i] and g_cams[j] == q_cams[i])
        ]
        top = [j for _, j in sorted(kept)][:k]
        out.append(top + [-1] * (k - len(top)))
    return np.array(out, np.int64).reshape(len(d), k)


def brute_cue(d, q_pids, g_pids, q_cams, g_cams, qa, ga, k):
    top = brute_top(d, q_pids, g_pids, q_cams, g_cams, k)
    wrong = anon = 0
    expected = 0.0
    for i in range(len(d)):
        if not qa[i]:
            continue
        w = [j for j in top[i] if j >= 0 and g_pids[j] != q_pids[i]]
        cands = [j for j in range(len(g_pids)) if g_pids[j] not in (-1, q_pids[i])]
        wrong += len(w)
        anon += sum(bool(ga[j]) for j in w)
        expected += len(w) * sum(bool(ga[j]) for j in cands) / len(cands)
    return (anon / wrong, expected / wrong) if wrong else (np.nan, np.nan)


@pytest.mark.parametrize("seed", range(6))
def test_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    nq, ng, k = int(rng.integers(1, 30)), int(rng.integers(5, 300)), int(rng.integers(1, 15))
    q_pids, q_cams = rng.integers(0, 8, nq), rng.integers(0, 3, nq)
    g_pids, g_cams = rng.integers(-1, 8, ng), rng.integers(0, 3, ng)
    d = rng.integers(0, 6, (nq, ng)).astype(np.float32)  # many ties
    if seed % 2:
        d[rng.random(d.shape) < 0.1] = np.inf
    qa, ga = rng.random(nq) < 0.5, rng.random(ng) < 0.4
    np.testing.assert_array_equal(
        top_valid_matches(d, q_pids, g_pids, q_cams, g_cams, k),
        brute_top(d, q_pids, g_pids, q_cams, g_cams, k),
    )
    c = coverage_cue(q_pids, g_pids, q_cams, g_cams, qa, ga, distmat=d, k=k)
    share, chance = brute_cue(d, q_pids, g_pids, q_cams, g_cams, qa, ga, k)
    np.testing.assert_allclose(
        [c[f"wrong_top{k}_anon_share"], c[f"wrong_top{k}_anon_share_chance"]], [share, chance]
    )
    assert c["anon_share_gallery"] == pytest.approx(ga.mean())


def test_bad_input_is_one_clear_error():
    with pytest.raises(ValueError, match="exactly one"):
        coverage_cue(Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, [True, False], G_ANON)
    with pytest.raises(ValueError, match="q_anonymized has 3 flags for 2 crops"):
        cue([True, False, True], 10, distmat=DIST)
    with pytest.raises(ValueError, match="booleans"):
        cue([1, 0], 10, distmat=DIST)
    with pytest.raises(ValueError, match="outside"):
        cue([True, False], 10, ranked=[[7], [0]])
    d = DIST.copy()
    d[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        cue([True, True], 10, distmat=d)
    d[1, 2], d[1, 4] = 0.4, np.nan  # NaN at a removed item (pid -1) is never ranked
    assert cue([True, True], 10, distmat=d) == cue([True, True], 10, distmat=DIST)
    with pytest.raises(ValueError, match="k must be"):
        top_valid_matches(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, k=0)


# --------------------------------------------------------------------------- through evaluate
def pool_net():
    """A fixed feature map (4x2 average pools of the image): deterministic, nothing to train."""
    import torch

    class PoolNet(torch.nn.Module):
        input_size = (32, 16)
        pixel_mean, pixel_std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
        name = "poolnet"

        def forward(self, x):
            return torch.nn.functional.adaptive_avg_pool2d(x, (4, 2)).flatten(1)

    return PoolNet().eval()


def _zero(images, boxes, valid):  # a stand-in anonymizer: black inside the boxes
    out = images.clone()
    for i in range(images.shape[0]):
        for (x1, y1, x2, y2), v in zip(boxes[i].tolist(), valid[i].tolist()):
            if v:
                out[i, :, int(y1) : int(y2) + 1, int(x1) : int(x2) + 1] = 0
    return out


def test_evaluate_keeps_what_the_cue_needs(synthetic_root, tmp_path):
    from reidlab.datasets import build_dataset
    from reidlab.datasets.synthetic import load_face_boxes
    from reidlab.evaluation import EvalResult, evaluate, extract_features, pairwise_distance
    from reidlab.evaluation.coverage import result_coverage_cue
    from reidlab.faces import dataset_boxes

    ds = build_dataset("synthetic", synthetic_root)
    gt = load_face_boxes(synthetic_root)
    boxes, _ = dataset_boxes(ds, "oracle", splits=("query", "gallery"), progress=False)
    model = pool_net()
    res = evaluate(
        model, ds, boxes=boxes, query_anonymizer=_zero, gallery_anonymizer=_zero,
        progress=False, keep_topk=5,
    )  # fmt: skip
    q_pids, q_cams = [s.pid for s in ds.query], [s.camid for s in ds.query]
    g_pids, g_cams = [s.pid for s in ds.gallery], [s.camid for s in ds.gallery]
    # the ranking from the parts, ranked by brute force
    kw = {"size": (32, 16), "mean": model.pixel_mean, "std": model.pixel_std, "progress": False}
    kw["boxes"] = boxes
    qf = extract_features(model, ds.query, anonymizer=_zero, **kw)
    gf = extract_features(model, ds.gallery, anonymizer=_zero, **kw)
    d = pairwise_distance(qf, gf).numpy()
    np.testing.assert_array_equal(
        res.per_query["top_gallery"], brute_top(d, q_pids, g_pids, q_cams, g_cams, 5)
    )
    # boxed = the crop has a ground-truth face (fronts, not backs)
    q_boxed = np.array([len(gt[s.path]) > 0 for s in ds.query])
    g_boxed = np.array([len(gt[s.path]) > 0 for s in ds.gallery])
    assert q_boxed.any() and not q_boxed.all()
    np.testing.assert_array_equal(res.per_query["boxed"], q_boxed)
    np.testing.assert_array_equal(res.per_gallery["boxed"], g_boxed)
    np.testing.assert_array_equal(res.per_gallery["pid"], g_pids)
    c = result_coverage_cue(res)
    share, chance = brute_cue(d, q_pids, g_pids, q_cams, g_cams, q_boxed, g_boxed, 5)
    assert c["anon_share_query"] == pytest.approx(q_boxed.mean())
    assert c["anon_share_gallery"] == pytest.approx(g_boxed.mean())
    assert c["wrong_top5_anon_share"] == pytest.approx(share)
    assert c["wrong_top5_anon_share_chance"] == pytest.approx(chance)
    assert result_coverage_cue(res, k=2) == coverage_cue(
        q_pids, g_pids, q_cams, g_cams, q_boxed, g_boxed, distmat=d, k=2
    )
    # JSON round trip keeps the arrays and their dtypes
    back = EvalResult.from_json(res.to_json(tmp_path / "r.json"))
    assert back.per_query["boxed"].dtype == bool and back.per_gallery["boxed"].dtype == bool
    assert result_coverage_cue(back) == c
    # without keep_topk nothing is kept, and asking for the cue says how to get it
    plain = evaluate(model, ds, boxes=boxes, progress=False)
    assert "top_gallery" not in plain.per_query and plain.per_gallery == {}
    with pytest.raises(ValueError, match="keep_topk"):
        result_coverage_cue(plain)
    with pytest.raises(ValueError, match="k must be in"):
        result_coverage_cue(res, k=6)
    with pytest.raises(ValueError, match="keep_topk must be a positive integer"):
        evaluate(model, ds, progress=False, keep_topk=0)


def test_full_coverage_boxes_every_crop_and_the_shares_are_one(synthetic_root):
    from reidlab.datasets import build_dataset
    from reidlab.datasets.synthetic import load_face_boxes
    from reidlab.evaluation import evaluate
    from reidlab.evaluation.coverage import result_coverage_cue
    from reidlab.faces import dataset_boxes
    from reidlab.faces.prior import HeadPrior, head_prior_box

    ds = build_dataset("synthetic", synthetic_root)
    gt = load_face_boxes(synthetic_root)
    splits = ("query", "gallery")
    boxes, info = dataset_boxes(ds, "oracle", splits=splits, full_coverage=True, progress=False)
    assert info["full_coverage"] is True and info["fail_closed"] == vars(HeadPrior())
    crops = ds.query + ds.gallery
    for s in crops:  # detections where found, the default head prior elsewhere
        want = gt[s.path] if len(gt[s.path]) else head_prior_box(128, 64, HeadPrior())[None, :4]
        np.testing.assert_allclose(boxes[s.path], want, atol=1e-4)
    assert info["face_rate_query"] == info["face_rate_gallery"] == 1.0
    assert info["detection_rate_query"] < 1.0
    # fail_closed's own prior is the one used when it is given
    b2, i2 = dataset_boxes(
        ds, "oracle", splits=splits, full_coverage=True, fail_closed=0.2, progress=False
    )
    back = next(s.path for s in crops if not len(gt[s.path]))
    np.testing.assert_allclose(b2[back], head_prior_box(128, 64, HeadPrior(0.2))[None, :4])
    assert i2["fail_closed"] == 0.2 and i2["full_coverage"] is True
    _, off = dataset_boxes(ds, "oracle", splits=splits, progress=False)
    assert off["full_coverage"] is False and off["face_rate_query"] < 1.0

    res = evaluate(
        pool_net(), ds, boxes=boxes, query_anonymizer=_zero, gallery_anonymizer=_zero,
        progress=False, keep_topk=10,
    )  # fmt: skip
    assert res.per_query["boxed"].all() and res.per_gallery["boxed"].all()
    c = result_coverage_cue(res)
    assert c["anon_share_query"] == c["anon_share_gallery"] == 1.0
    assert c["wrong_top10_anon_share"] == c["wrong_top10_anon_share_chance"] == 1.0
