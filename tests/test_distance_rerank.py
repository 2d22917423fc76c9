"""Distances against scipy's cdist; k-reciprocal re-ranking against a loop reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from reidlab.evaluation.distance import pairwise_distance
from reidlab.evaluation.rerank import re_ranking, re_ranking_features


@pytest.mark.parametrize("metric,scipy_name", [("euclidean", "sqeuclidean"), ("cosine", "cosine")])
def test_distance_matches_cdist_and_chunking(metric, scipy_name):
    rng = np.random.default_rng(0)
    q = rng.normal(size=(37, 16)).astype(np.float32)
    g = rng.normal(size=(53, 16)).astype(np.float32)
    ref = cdist(q.astype(np.float64), g.astype(np.float64), scipy_name)
    full = pairwise_distance(q, g, metric=metric)
    assert isinstance(full, np.ndarray) and full.dtype == np.float32 and full.shape == (37, 53)
    np.testing.assert_allclose(full, ref, atol=2e-5 * max(1.0, ref.max()))
    # BLAS blocks a matmul by its shape, so chunks agree to float32 rounding, not bitwise
    for cs in (1, 5, 36, 100):
        chunked = pairwise_distance(q, g, metric=metric, chunk_size=cs)
        np.testing.assert_allclose(chunked, full, rtol=1e-6, atol=1e-6)
    tiny = pairwise_distance(q, g, metric=metric, max_memory_mb=0.001)  # one row per chunk
    np.testing.assert_allclose(tiny, full, rtol=1e-6, atol=1e-6)
    t = pairwise_distance(torch.from_numpy(q), torch.from_numpy(g).double(), metric=metric)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_allclose(t.numpy(), full, atol=1e-6)


def test_distance_clamped_and_validated():
    x = np.ones((2, 4), np.float32) * 1e3
    assert (pairwise_distance(x, x) >= 0).all()  # rounding cannot make a distance negative
    with pytest.raises(ValueError, match="equal D"):
        pairwise_distance(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="metric"):
        pairwise_distance(x, x, metric="manhattan")


def reference_re_ranking(q_g, q_q, g_g, k1, k2, lam):
    """Zhong et al. 2017, written from the paper's algorithm as their reference code runs it."""
    original = (
        np.concatenate([np.concatenate([q_q, q_g], 1), np.concatenate([q_g.T, g_g], 1)], 0).astype(
            np.float32
        )
        ** 2
    )
    original = (original / original.max(1, keepdims=True)).astype(np.float32)
    N, Q = original.shape[0], q_g.shape[0]
    rank = np.argsort(original, axis=1, kind="stable")

    def k_reciprocal(i, k):
        forward = rank[i, : k + 1]
        return [j for j in forward if i in rank[j, : k + 1]]

    V = np.zeros((N, N), np.float32)
    for i in range(N):
        R = k_reciprocal(i, k1)
        expanded = set(R)
        for c in R:
            Rc = k_reciprocal(c, int(np.around(k1 / 2)))
            if len(set(Rc) & set(R)) > 2.0 / 3.0 * len(Rc):
                expanded |= set(Rc)
        idx = np.array(sorted(expanded))
        w = np.exp(-original[i, idx])
        V[i, idx] = w / w.sum()
    if k2 != 1:
        V = np.stack([V[rank[i, :k2]].mean(0) for i in range(N)])
    jaccard = np.zeros((Q, N), np.float32)
    for i in range(Q):
        for j in range(N):
            s = np.minimum(V[i], V[j]).sum()
            jaccard[i, j] = 1 - s / (2 - s)
    final = jaccard * (1 - lam) + original[:Q] * lam
    return final[:, Q:]


@pytest.mark.parametrize(
    "Q,G,k1,k2,lam", [(4, 15, 5, 3, 0.3), (6, 24, 20, 6, 0.3), (3, 12, 4, 1, 0.5)]
)
def test_re_ranking_matches_reference(Q, G, k1, k2, lam):
    rng = np.random.default_rng(Q * 100 + G)
    # clustered features so that k-reciprocal sets are non-trivial
    centres = rng.normal(size=(4, 8))
    f = centres[rng.integers(0, 4, Q + G)] + 0.5 * rng.normal(size=(Q + G, 8))
    qf, gf = f[:Q].astype(np.float32), f[Q:].astype(np.float32)
    q_g, q_q, g_g = (pairwise_distance(a, b) for a, b in ((qf, gf), (qf, qf), (gf, gf)))
    ref = reference_re_ranking(q_g, q_q, g_g, k1, k2, lam)
    out = re_ranking(q_g, q_q, g_g, k1=k1, k2=k2, lambda_value=lam)
    assert isinstance(out, np.ndarray) and out.shape == (Q, G) and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=2e-6)
    # memory-bounded chunks (one row at a time) and from features: the same numbers
    small = re_ranking(q_g, q_q, g_g, k1=k1, k2=k2, lambda_value=lam, max_memory_mb=1e-4)
    np.testing.assert_allclose(small, out, atol=1e-7)
    feat = re_ranking_features(
        torch.from_numpy(qf), torch.from_numpy(gf), k1=k1, k2=k2, lambda_value=lam
    )
    assert isinstance(feat, torch.Tensor)
    np.testing.assert_allclose(feat.numpy(), out, atol=1e-5)


def test_re_ranking_shape_check():
    with pytest.raises(ValueError, match="expected q_q"):
        re_ranking(np.zeros((2, 3)), np.zeros((3, 3)), np.zeros((3, 3)))
