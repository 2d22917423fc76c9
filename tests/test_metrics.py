"""Re-ID metrics against an independent brute force and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from reidlab.evaluation.metrics import positive_ranks, rank_metrics, single_gallery_shot_cmc


def brute_force(d, qp, gp, qc, gc, max_rank=50):
    """Per-query Python loops with an explicit sort by (distance, gallery index)."""
    out = []
    for q in range(len(qp)):
        items = [
            (float(d[q][j]), j)
            for j in range(len(gp))
            if gp[j] != -1 and not (gp[j] == qp[q] and gc[j] == qc[q])
        ]
        items.sort()
        hits = [r for r, (_, j) in enumerate(items, start=1) if gp[j] == qp[q]]
        if not hits:
            out.append(None)
            continue
        P = len(hits)
        ap = sum(i / r for i, r in enumerate(hits, start=1)) / P
        # Market-1501 compute_AP.m, literally: a loop over the ranked list
        old_recall, old_precision, ap_trap, inter = 0.0, 1.0, 0.0, 0
        for n, (_, j) in enumerate(items):
            if gp[j] == qp[q]:
                inter += 1
            recall, precision = inter / P, inter / (n + 1)
            ap_trap += (recall - old_recall) * (old_precision + precision) / 2
            old_recall, old_precision = recall, precision
            if inter == P:
                break
        cmc = [1.0 if hits[0] <= k else 0.0 for k in range(1, max_rank + 1)]
        out.append(
            {"ap": ap, "trap": ap_trap, "inp": P / hits[-1], "first": hits[0], "cmc": cmc, "P": P}
        )
    return out


def random_case(rng, dtype):
    Q = int(rng.integers(1, 25))
    G = int(rng.integers(1, 80))
    n_ids = int(rng.integers(1, 8))
    qp = rng.integers(1, n_ids + 1, size=Q)
    gp = rng.integers(-1, n_ids + 1, size=G)  # includes junk -1 and distractors 0
    qc = rng.integers(0, 3, size=Q)
    gc = rng.integers(0, 3, size=G)
    if rng.random() < 0.5:
        d = rng.integers(0, 6, size=(Q, G)).astype(dtype)  # many ties
    else:
        d = rng.normal(size=(Q, G)).astype(dtype)  # negative values too
    if rng.random() < 0.2:
        d[rng.random((Q, G)) < 0.2] = -0.0
    return d, qp, gp, qc, gc


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_brute_force_on_random_cases(dtype):
    rng = np.random.default_rng(123)
    for _ in range(150):
        d, qp, gp, qc, gc = random_case(rng, dtype)
        ref = brute_force(d, qp, gp, qc, gc, max_rank=10)
        m = rank_metrics(d, qp, gp, qc, gc, max_rank=10)
        t = rank_metrics(d, qp, gp, qc, gc, max_rank=10, ap="trapezoid")
        valid = np.array([r is not None for r in ref])
        np.testing.assert_array_equal(m.valid, valid)
        assert m.num_valid_queries == valid.sum()
        assert m.num_skipped_queries == (~valid).sum()
        rv = [r for r in ref if r is not None]
        if not rv:
            assert np.isnan(m.mAP) and np.all(np.isnan(m.ap))
            continue
        np.testing.assert_allclose(m.ap[valid], [r["ap"] for r in rv], rtol=0, atol=1e-12)
        np.testing.assert_allclose(t.ap[valid], [r["trap"] for r in rv], rtol=0, atol=1e-12)
        np.testing.assert_allclose(m.inp[valid], [r["inp"] for r in rv], rtol=0, atol=1e-12)
        np.testing.assert_array_equal(m.first_hit_rank[valid], [r["first"] for r in rv])
        np.testing.assert_array_equal(m.num_positives[valid], [r["P"] for r in rv])
        assert np.all(m.first_hit_rank[~valid] == -1) and np.all(np.isnan(m.ap[~valid]))
        np.testing.assert_allclose(m.cmc, np.mean([r["cmc"] for r in rv], 0), atol=1e-12)
        assert m.mAP == pytest.approx(np.mean([r["ap"] for r in rv]), abs=1e-12)
        assert m.mINP == pytest.approx(np.mean([r["inp"] for r in rv]), abs=1e-12)
        assert np.all(t.ap[valid] <= m.ap[valid] + 1e-12)  # trapezoid never above standard


def test_chunking_and_torch_input_do_not_change_ranks():
    import torch

    rng = np.random.default_rng(5)
    d, qp, gp, qc, gc = random_case(rng, np.float32)
    d = rng.integers(0, 4, size=(40, 70)).astype(np.float32)
    qp = rng.integers(1, 5, size=40)
    gp = rng.integers(-1, 5, size=70)
    qc, gc = rng.integers(0, 3, size=40), rng.integers(0, 3, size=70)
    full = positive_ranks(d, qp, gp, qc, gc)
    for ce in (1, 70, 150, 10**9):
        part = positive_ranks(d, qp, gp, qc, gc, chunk_elements=ce)
        np.testing.assert_array_equal(full[0], part[0])
        np.testing.assert_array_equal(full[1], part[1])
    t = positive_ranks(torch.from_numpy(d), torch.from_numpy(qp), gp, qc, gc)
    np.testing.assert_array_equal(full[1], t[1])
    # a non-contiguous view
    d2 = np.asfortranarray(d)
    np.testing.assert_array_equal(full[1], positive_ranks(d2, qp, gp, qc, gc)[1])


def test_hand_computed_single_query():
    # query pid 1, camera 0. Gallery item 2 is pid 1 in camera 0: removed (junk).
    d = np.array([[0.5, 0.1, 0.3, 0.2, 0.9]])
    gp = np.array([1, 2, 1, 3, 1])
    gc = np.array([1, 1, 0, 1, 2])
    m = rank_metrics(d, [1], gp, [0], gc, max_rank=5)
    # valid ranking: item1 (0.1, pid 2), item3 (0.2, pid 3), item0 (0.5, +), item4 (0.9, +)
    # positives at ranks 3 and 4: AP = (1/3 + 2/4) / 2
    assert m.mAP == pytest.approx((1 / 3 + 2 / 4) / 2, abs=1e-15)
    assert m.first_hit_rank.tolist() == [3]
    assert m.cmc.tolist() == [0, 0, 1, 1, 1]
    assert m.mINP == pytest.approx(2 / 4)
    # Market MATLAB trapezoid: (prev precision + precision) / 2 per positive
    #   1st positive at rank 3: prev 0/2, now 1/3 -> 1/6; 2nd at rank 4: prev 1/3, now 1/2 -> 5/12
    t = rank_metrics(d, [1], gp, [0], gc, ap="trapezoid")
    assert t.mAP == pytest.approx((1 / 6 + 5 / 12) / 2, abs=1e-15)


def test_trapezoid_hand_case_first_hit_at_rank_one():
    # positives at ranks 1 and 3
    d = np.array([[0.1, 0.2, 0.3]])
    gp, gc = np.array([1, 2, 1]), np.array([1, 1, 1])
    s = rank_metrics(d, [1], gp, [0], gc)
    t = rank_metrics(d, [1], gp, [0], gc, ap="trapezoid")
    assert s.mAP == pytest.approx((1 + 2 / 3) / 2)
    # rank 1: prev precision 1 (start of the curve), now 1 -> 1; rank 3: prev 1/2, now 2/3
    assert t.mAP == pytest.approx((1 + (1 / 2 + 2 / 3) / 2) / 2)


def test_minp_hand_case():
    # positives at ranks 1, 2 and 5 -> INP = 3 / 5; AP = (1 + 1 + 3/5) / 3
    d = np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])
    gp = np.array([7, 7, 8, 9, 7, 8])
    m = rank_metrics(d, [7], gp, [0], np.ones(6, int))
    assert m.mINP == pytest.approx(3 / 5)
    assert m.mAP == pytest.approx((1 + 1 + 3 / 5) / 3)


def test_ties_broken_by_gallery_order_and_distractors_count():
    d = np.array([[0.1, 0.1, 0.1, 0.1]])
    gp = np.array([0, 2, 1, 1])  # a distractor (pid 0) and a negative first, then positives
    m = rank_metrics(d, [1], gp, [0], [1, 1, 1, 1])
    assert m.first_hit_rank.tolist() == [3]
    assert m.mAP == pytest.approx((1 / 3 + 2 / 4) / 2)
    # -0.0 and +0.0 are equal distances (tie by index)
    d0 = np.array([[0.0, -0.0]], dtype=np.float32)
    assert rank_metrics(d0, [1], [2, 1], [0], [1, 1]).first_hit_rank.tolist() == [2]


def test_skipped_and_junk_queries():
    d = np.zeros((3, 4))
    gp = np.array([1, 1, -1, 2])
    gc = np.array([0, 0, 1, 1])
    # q0: pid 1 cam 0 -> its only matches are same camera: skipped
    # q1: pid 1 cam 1 -> two positives; q2: pid 3 -> none in gallery: skipped
    m = rank_metrics(d, [1, 1, 3], gp, [0, 1, 0], gc)
    assert m.valid.tolist() == [False, True, False]
    assert (m.num_valid_queries, m.num_skipped_queries) == (1, 2)
    assert m.first_hit_rank.tolist() == [-1, 1, -1]
    # a pid -1 query never matches the -1 junk
    assert not rank_metrics(d[:1], [-1], gp, [0], gc).valid[0]


def test_input_validation():
    with pytest.raises(ValueError, match="2-D"):
        rank_metrics(np.zeros(3), [1], [1, 2, 3], [0], [0, 0, 0])
    with pytest.raises(ValueError, match="gallery pids"):
        rank_metrics(np.zeros((1, 3)), [1], [1, 2], [0], [0, 0, 0])
    with pytest.raises(ValueError, match="ap must be"):
        rank_metrics(np.zeros((1, 2)), [1], [1, 2], [0], [1, 1], ap="interpolated")


def test_single_gallery_shot():
    rng = np.random.default_rng(0)
    # one image per identity: SGS CMC equals the Market CMC
    d = rng.random((6, 5))
    qp, gp = rng.integers(0, 5, 6), np.arange(5)
    qc, gc = np.zeros(6, int), np.ones(5, int)
    m = rank_metrics(d, qp, gp, qc, gc, max_rank=5)
    s = rank_metrics(d, qp, gp, qc, gc, max_rank=5, cmc_mode="single_gallery_shot", repeats=3)
    np.testing.assert_allclose(s.cmc, m.cmc)
    assert s.mAP == m.mAP and s.extra == {"sgs_repeats": 3, "sgs_seed": 0}
    # positive at 0.1; negative identity with images at 0.05 and 0.5: rank-1 with prob. 1/2
    d = np.array([[0.1, 0.05, 0.5]])
    c = single_gallery_shot_cmc(d, [1], [1, 2, 2], [0], [1, 1, 1], max_rank=2, repeats=2000, seed=1)
    assert c[0] == pytest.approx(0.5, abs=0.04) and c[1] == 1.0
    c2 = single_gallery_shot_cmc(
        d, [1], [1, 2, 2], [0], [1, 1, 1], max_rank=2, repeats=2000, seed=1
    )
    np.testing.assert_array_equal(c, c2)  # seeded


# ------------------------------------------------ non-finite and integer distances
def stable_reference(d, qp, gp, qc, gc, max_rank=50):
    """Per query: drop removed items, stable argsort of the row (ties by gallery index),
    AP = mean of i / r_i, INP = P / r_P, CMC from the first hit. Exact for ints and infinities."""
    out = []
    for q in range(len(qp)):
        keep = np.flatnonzero((gp != -1) & ~((gp == qp[q]) & (gc == qc[q])))
        order = keep[np.argsort(d[q, keep], kind="stable")]
        hits = np.flatnonzero(gp[order] == qp[q]) + 1  # 1-based ranks of the positives
        if len(hits) == 0:
            out.append(None)
            continue
        i = np.arange(1, len(hits) + 1)
        out.append(
            {
                "ranks": hits - 1,
                "ap": float(np.mean(i / hits)),
                "inp": len(hits) / hits[-1],
                "first": int(hits[0]),
                "cmc": (hits[0] <= np.arange(1, max_rank + 1)).astype(float),
            }
        )
    return out


def assert_matches_reference(d, qp, gp, qc, gc, max_rank=10, **kw):
    ref = stable_reference(d, qp, gp, qc, gc, max_rank)
    m = rank_metrics(d, qp, gp, qc, gc, max_rank=max_rank)
    valid = np.array([r is not None for r in ref])
    np.testing.assert_array_equal(m.valid, valid)
    rows, ranks = positive_ranks(d, qp, gp, qc, gc, **kw)
    rv = [r for r in ref if r is not None]
    np.testing.assert_array_equal(ranks, np.concatenate([r["ranks"] for r in rv]) if rv else [])
    np.testing.assert_array_equal(
        rows, np.repeat(np.flatnonzero(valid), [len(r["ranks"]) for r in rv])
    )
    if rv:
        np.testing.assert_allclose(m.ap[valid], [r["ap"] for r in rv], rtol=0, atol=1e-12)
        np.testing.assert_allclose(m.inp[valid], [r["inp"] for r in rv], rtol=0, atol=1e-12)
        np.testing.assert_array_equal(m.first_hit_rank[valid], [r["first"] for r in rv])
        np.testing.assert_allclose(m.cmc, np.mean([r["cmc"] for r in rv], 0), atol=1e-12)
    return m


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_infinities_match_stable_argsort_reference(dtype):
    """+inf / -inf sprinkled over positives, negatives and removed items (same camera, pid -1).
    Before: removed items were set to +inf too, so they counted ahead of a +inf positive."""
    rng = np.random.default_rng(7)
    n_inf_positive_rows = 0
    for it in range(200):
        d, qp, gp, qc, gc = random_case(rng, dtype)
        u = rng.random(d.shape)
        d[u < 0.25] = np.inf
        d[(u > 0.25) & (u < 0.35)] = -np.inf
        same = qp[:, None] == gp[None]
        valid_pos = same & (qc[:, None] != gc[None])
        n_inf_positive_rows += int(((d == np.inf) & valid_pos).any(1).sum())
        assert_matches_reference(
            d, qp, gp, qc, gc, chunk_elements=int(rng.choice([1, 50, 1 << 20]))
        )
    assert n_inf_positive_rows > 100  # the case the old code got wrong is well covered


def test_inf_positives_tie_with_inf_negatives_hand_case():
    # query pid 1, camera 0
    #   idx: 0     1    2     3          4     5    6           7        8
    #   pid: 1     2    3     1 (cam 0)  1     1    -1          0        4
    #   d:   +inf  0.5  +inf  +inf junk  +inf  0.2  +inf junk   -inf     -inf
    inf = np.inf
    d = np.array(
        [
            [inf, 0.5, inf, inf, inf, 0.2, inf, -inf, -inf],
            [inf, 0.5, inf, inf, inf, 0.2, inf, -inf, -inf],
        ]
    )
    gp = np.array([1, 2, 3, 1, 1, 1, -1, 0, 4])
    gc = np.array([1, 1, 1, 0, 2, 1, 1, 1, 1])
    # valid order: 7 (-inf), 8 (-inf), 5 (0.2, +), 1 (0.5), 0 (+inf, +), 2 (+inf), 4 (+inf, +);
    # the removed 3 and 6 never count. Positives at ranks 3, 5, 7.
    # second query, pid 4 camera 0: its positive 8 ties at -inf with distractor 7: rank 2
    for dt in (np.float32, np.float64):
        m = rank_metrics(d.astype(dt), [1, 4], gp, [0, 0], gc, max_rank=8)
        assert m.ap[0] == pytest.approx((1 / 3 + 2 / 5 + 3 / 7) / 3, abs=1e-15)
        assert m.inp[0] == pytest.approx(3 / 7, abs=1e-15)
        assert m.first_hit_rank.tolist() == [3, 2] and m.num_positives.tolist() == [3, 1]
        assert m.ap[1] == pytest.approx(1 / 2) and m.inp[1] == pytest.approx(1 / 2)
        assert m.cmc.tolist() == [0, 0.5, 1, 1, 1, 1, 1, 1]
        assert positive_ranks(d.astype(dt), [1, 4], gp, [0, 0], gc)[1].tolist() == [2, 4, 6, 1]
    # single-gallery-shot ranks infinities the same way: one image each of ids 0 (7, -inf),
    # 4 (8, -inf), 2 (1, 0.5), 3 (2, +inf) and one of id 1's {0, 4, 5} drawn at random:
    # 5 (0.2) -> rank 3; 0 (+inf, before 2 by index) -> rank 4; 4 (+inf, after 2) -> rank 5
    c = single_gallery_shot_cmc(d[:1], [1], gp, [0], gc, max_rank=6, repeats=3000, seed=0)
    assert c[:2].tolist() == [0, 0] and c[4:].tolist() == [1, 1]
    assert c[2] == pytest.approx(1 / 3, abs=0.03) and c[3] == pytest.approx(2 / 3, abs=0.03)


def test_single_gallery_shot_with_infinities_matches_market_cmc_when_ids_are_unique():
    rng = np.random.default_rng(3)
    for _ in range(30):
        G = int(rng.integers(2, 30))
        gp = rng.permutation(G) + 1  # one image per identity: SGS = Market CMC
        gc = np.ones(G, int)
        Q = int(rng.integers(1, 10))
        qp, qc = rng.integers(1, G + 1, Q), np.zeros(Q, int)
        d = rng.integers(0, 3, (Q, G)).astype(np.float64)
        d[rng.random(d.shape) < 0.3] = np.inf
        d[rng.random(d.shape) < 0.1] = -np.inf
        ref = stable_reference(d, qp, gp, qc, gc, max_rank=5)
        c = single_gallery_shot_cmc(d, qp, gp, qc, gc, max_rank=5, repeats=2)
        np.testing.assert_allclose(c, np.mean([r["cmc"] for r in ref if r], 0), atol=1e-12)


def test_nan_distances_are_rejected_with_count_and_rows():
    """Before: an IndexError from deep inside, or silently wrong ranks."""
    import torch

    d = np.zeros((8, 5), np.float32)
    gp, gc = np.array([1, 2, 1, -1, 3]), np.array([1, 1, 0, 1, 1])
    qp, qc = np.array([1, 1, 2, 9, 9, 9, 9, 1]), np.zeros(8, int)
    # removed: item 3 (pid -1) for every query, item 2 (pid 1, camera 0) for queries 0, 1, 7
    cases = [  # (NaN cells, the ones that count)
        ([(0, 0)], [(0, 0)]),  # a positive
        ([(1, 1), (1, 4), (7, 1)], [(1, 1), (1, 4), (7, 1)]),  # negatives
        ([(4, 1)], [(4, 1)]),  # a query without positives (a chunk of its own below)
        ([(0, 2), (1, 1), (5, 3)], [(1, 1)]),  # NaN at removed items is not counted
    ]
    for cells, counted in cases:
        for dt in (np.float16, np.float32, np.float64):
            x = d.astype(dt)
            for r, c in cells:
                x[r, c] = np.nan
            rows = sorted({r for r, _ in counted})
            n = len(counted)
            msg = (
                f"{n} NaN distance{'s' if n > 1 else ''} in {len(rows)} query "
                f"row{'s' if len(rows) > 1 else ''} \\({', '.join(map(str, rows))}\\)"
            )
            for ce in (1, 1 << 20):
                with pytest.raises(ValueError, match=msg):
                    positive_ranks(x, qp, gp, qc, gc, chunk_elements=ce)
            with pytest.raises(ValueError, match=msg):
                rank_metrics(torch.from_numpy(x), qp, gp, qc, gc)
            with pytest.raises(ValueError, match=msg):
                single_gallery_shot_cmc(x, qp, gp, qc, gc)
    # many rows: the first five are named; 3 of the 5 items of each row are ranked
    x = np.full((9, 5), np.nan)
    with pytest.raises(
        ValueError, match=r"27 NaN distances in 9 query rows \(0, 1, 2, 3, 4, \.\.\.\)"
    ):
        rank_metrics(x, np.ones(9, int), gp, np.zeros(9, int), gc)


def test_nan_at_removed_items_is_never_looked_at():
    # e.g. a NaN feature of a pid -1 image: its whole column is NaN, and it is never ranked
    rng = np.random.default_rng(11)
    for _ in range(40):
        d, qp, gp, qc, gc = random_case(rng, np.float32)
        removed = (gp == -1)[None] | ((qp[:, None] == gp[None]) & (qc[:, None] == gc[None]))
        x = d.copy()
        x[removed & (rng.random(d.shape) < 0.7)] = np.nan
        for ce in (1, 1 << 20):
            ref = positive_ranks(d, qp, gp, qc, gc, chunk_elements=ce)
            got = positive_ranks(x, qp, gp, qc, gc, chunk_elements=ce)
            np.testing.assert_array_equal(ref[0], got[0])
            np.testing.assert_array_equal(ref[1], got[1])
        np.testing.assert_array_equal(
            single_gallery_shot_cmc(d, qp, gp, qc, gc, repeats=2),
            single_gallery_shot_cmc(x, qp, gp, qc, gc, repeats=2),
        )


@pytest.mark.parametrize(
    "base",
    [
        1 << 24,
        -(1 << 24) - 3,
        (1 << 31) - 6,
        (1 << 32) - 6,
        1 << 40,
        -(1 << 40),
        1 << 60,
        (1 << 63) - 6,
        (1 << 64) - 6,
    ],
)
def test_integer_distances_are_ranked_exactly(base):
    """Values base + 0..5 differ by 1; float32 (before: any int of <= 4 bytes) cannot tell
    2^24 + 1 from 2^24, float64 cannot above 2^53."""
    rng = np.random.default_rng(abs(base) % 1000)
    dtypes = [
        dt
        for dt in (np.int32, np.uint32, np.int64, np.uint64)
        if np.iinfo(dt).min <= base and base + 5 <= np.iinfo(dt).max
    ]
    assert dtypes
    for dt in dtypes:
        n_checked = 0
        for _ in range(60):
            _, qp, gp, qc, gc = random_case(rng, np.float64)
            off = rng.integers(0, 6, size=(len(qp), len(gp)))
            d = (np.array(base, dtype=object) + off).astype(dt)
            assert np.array_equal(d.astype(object) - base, off)  # the test matrix itself is exact
            m = assert_matches_reference(d, qp, gp, qc, gc)
            n_checked += m.num_valid_queries
        assert n_checked > 50
    # by hand: the positive at base + 1 comes after the negative at base
    d = np.array([[base + 1, base, base + 2]], dtype=dtypes[0])
    assert rank_metrics(d, [1], [1, 2, 1], [0], [1, 1, 1]).first_hit_rank.tolist() == [2]
    assert positive_ranks(d, [1], [1, 2, 1], [0], [1, 1, 1])[1].tolist() == [1, 2]


def test_float64_distances_stay_exact():
    # 1 and 1 + 2^-40 are one float32 value; in float64 the positive is behind the negative
    e = 2.0**-40
    d = np.array([[1.0 + e, 1.0, 1.0 + 2 * e], [1.0, 1.0 + e, 1.0 + 2 * e]])
    m = rank_metrics(d, [1, 1], [1, 2, 1], [0, 0], [1, 1, 1])
    assert m.first_hit_rank.tolist() == [2, 1]
    assert m.ap.tolist() == pytest.approx([(1 / 2 + 2 / 3) / 2, (1 + 2 / 3) / 2])
    big = np.array([[2.0**60 + 2**8, 2.0**60, 2.0**60 + 2**9]])  # 1 ulp apart
    assert rank_metrics(big, [1], [1, 2, 1], [0], [1, 1, 1]).first_hit_rank.tolist() == [2]
