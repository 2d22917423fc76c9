"""k-reciprocal re-ranking (Zhong et al., "Re-ranking Person Re-identification with k-reciprocal
Encoding", CVPR 2017), in torch, in memory-bounded chunks, on the inputs' device.

It reproduces the authors' reference code (``re_ranking`` in zhunzhong07/person-re-ranking,
copied by torchreid), including its conventions:

* the input distances are **squared** first (``original_dist = dist ** 2``; torchreid feeds
  squared euclidean distances, so it ranks by their square - kept for comparability) and each
  row of the ``(Q+G) x (Q+G)`` matrix is divided by its maximum;
* ``R(i, k1)``: the k1-reciprocal neighbours of ``i`` among its ``k1 + 1`` nearest (itself
  included); each ``c`` in it whose ``R(c, round(k1 / 2))`` shares more than 2/3 of its members
  with ``R(i, k1)`` adds that set (``round`` as numpy's ``around``: half to even);
* ``V[i, j] = exp(-d(i, j)) / sum`` over the expanded set; query expansion averages the rows
  of the ``k2`` nearest neighbours (itself included);
* Jaccard distance ``1 - sum_k min(V_ik, V_jk) / (2 - sum_k min(V_ik, V_jk))``;
  final = ``(1 - lambda) * jaccard + lambda * d``.

What differs from the reference is only the memory: it holds ``V`` sparse (about 50 nonzeros a
row) and only chunks of the dense matrix, never ``(Q+G)^2`` floats (1.5 GB for Market-1501).
Nearest neighbours come from ``torch.topk``; exact distance ties at the k-th neighbour may
be resolved differently from numpy's argsort (the reference's own tie order is unspecified).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def _default_rows(n: int, max_memory_mb: float) -> int:
    return max(1, int(max_memory_mb * 2**20 // (4 * 4 * max(n, 1))))


def _rerank_core(
    rows_fn: Callable[[int, int], "torch.Tensor"],  # noqa: F821
    num_query: int,
    num_all: int,
    k1: int,
    k2: int,
    lambda_value: float,
    device,
    chunk_rows: int,
):
    import torch

    N, Q = num_all, num_query
    G = N - Q
    kh = int(np.around(k1 / 2.0))
    kk = min(k1 + 1, N)

    def norm_rows(s, e):
        d = rows_fn(s, e).to(device=device, dtype=torch.float32) ** 2
        return d / d.max(dim=1, keepdim=True).values

    # 1) k1+1 nearest neighbours of every point (itself first)
    knn = torch.empty((N, kk), dtype=torch.int64, device=device)
    for s in range(0, N, chunk_rows):
        e = min(N, s + chunk_rows)
        d = norm_rows(s, e)
        vals, idx = torch.topk(d, kk, dim=1, largest=False, sorted=True)
        # ties inside the selection ordered by index (what a stable argsort gives)
        o = torch.sort(idx, dim=1).indices
        o = o.gather(1, torch.sort(vals.gather(1, o), dim=1, stable=True).indices)
        knn[s:e] = idx.gather(1, o)
    ar = torch.arange(N, device=device)

    def reciprocal(k):  # (N, k+1) neighbours and mask of the k-reciprocal ones
        f = knn[:, : k + 1]
        m = (f[f] == ar[:, None, None]).any(-1)
        return f, m

    F, M = reciprocal(k1)
    Fh, Mh = reciprocal(kh)
    sizes_h = Mh.sum(1).double()

    # 2) sparse V: expanded k-reciprocal sets with Gaussian weights
    v_rows, v_cols, v_vals = [], [], []
    for s in range(0, N, chunk_rows):
        e = min(N, s + chunk_rows)
        n = e - s
        rset = torch.zeros((n, N), dtype=torch.bool, device=device)
        ri = torch.arange(n, device=device)[:, None].expand_as(F[s:e])
        rset[ri[M[s:e]], F[s:e][M[s:e]]] = True
        cand = F[s:e]  # (n, k1+1) candidates c, valid where M
        fc, mc = Fh[cand], Mh[cand]  # (n, k1+1, kh+1)
        inr = rset.gather(1, fc.reshape(n, -1)).view_as(fc) & mc
        accept = M[s:e] & (inr.sum(-1).double() > (2.0 / 3.0) * sizes_h[cand])
        eset = rset.clone()
        sel = accept[:, :, None] & mc
        bi = torch.arange(n, device=device)[:, None, None].expand_as(fc)
        eset[bi[sel], fc[sel]] = True
        w = torch.exp(-norm_rows(s, e)) * eset
        w = w / w.sum(1, keepdim=True)
        r, c = torch.nonzero(eset, as_tuple=True)
        v_rows.append(r + s)
        v_cols.append(c)
        v_vals.append(w[r, c])
    V = torch.sparse_coo_tensor(
        torch.stack([torch.cat(v_rows), torch.cat(v_cols)]), torch.cat(v_vals), (N, N),
        check_invariants=False,
    ).coalesce()

    # 3) local query expansion: V[i] <- mean of V over i's k2 nearest neighbours (a sparse
    #    gather of whole rows; duplicates summed by coalesce)
    if k2 != 1:
        vi, vv = V.indices(), V.values()
        cnt = torch.bincount(vi[0], minlength=N)
        ptr = torch.cumsum(cnt, 0) - cnt
        nb = knn[:, :k2].reshape(-1)  # (N * k2,) source rows
        dst = ar.repeat_interleave(k2)
        c = cnt[nb]
        start = torch.repeat_interleave(ptr[nb] - (torch.cumsum(c, 0) - c), c)
        pos = start + torch.arange(int(c.sum()), device=device)
        V = torch.sparse_coo_tensor(
            torch.stack([torch.repeat_interleave(dst, c), vi[1][pos]]), vv[pos] / k2, (N, N),
            check_invariants=False,
        ).coalesce()
    vi, vv = V.indices(), V.values()
    keep = vv != 0
    vr, vc, vv = vi[0][keep], vi[1][keep], vv[keep]

    # 4) Jaccard distance of queries to gallery items through the inverted index (columns)
    gal = vr >= Q
    order = torch.sort(vc[gal] * N + vr[gal]).indices
    inv_row, inv_val = vr[gal][order], vv[gal][order]
    col_cnt = torch.bincount(vc[gal], minlength=N)
    col_ptr = torch.cumsum(col_cnt, 0) - col_cnt
    q_ptr = torch.searchsorted(vr, torch.arange(0, Q + 1, device=device))
    out = torch.empty((Q, G), dtype=torch.float32, device=device)
    for s in range(0, Q, chunk_rows):
        e = min(Q, s + chunk_rows)
        a, b = int(q_ptr[s]), int(q_ptr[e])
        qi, qk, qv = vr[a:b] - s, vc[a:b], vv[a:b]
        cnt = col_cnt[qk]
        rep_i = torch.repeat_interleave(qi, cnt)
        rep_v = torch.repeat_interleave(qv, cnt)
        start = torch.repeat_interleave(col_ptr[qk] - (torch.cumsum(cnt, 0) - cnt), cnt)
        pos = start + torch.arange(int(cnt.sum()), device=device)
        tm = torch.zeros((e - s, G), dtype=torch.float32, device=device)
        tm.index_put_((rep_i, inv_row[pos] - Q), torch.minimum(rep_v, inv_val[pos]), accumulate=True)
        jac = 1.0 - tm / (2.0 - tm)
        out[s:e] = jac * (1.0 - lambda_value) + norm_rows(s, e)[:, Q:] * lambda_value
    return out


def re_ranking(
    q_g_dist,
    q_q_dist,
    g_g_dist,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    max_memory_mb: float = 512.0,
):
    """Re-ranked ``(Q, G)`` distances from the three distance matrices.

    Args:
        q_g_dist: ``(Q, G)``; q_q_dist: ``(Q, Q)``; g_g_dist: ``(G, G)`` distances (numpy or
            torch; torch runs on their device). Squared inside, as the reference code does.
        k1, k2, lambda_value: the paper's parameters (defaults: its Market-1501 setting).
        max_memory_mb: bound for the dense row chunks (``V`` is sparse).

    Returns:
        ``(Q, G)`` float32, numpy for numpy input, else a tensor on the input's device.
    """
    import torch

    as_numpy = not isinstance(q_g_dist, torch.Tensor)
    qg = torch.as_tensor(q_g_dist)
    device = qg.device
    qq = torch.as_tensor(q_q_dist).to(device)
    gg = torch.as_tensor(g_g_dist).to(device)
    Q, G = qg.shape
    if qq.shape != (Q, Q) or gg.shape != (G, G):
        raise ValueError(
            f"expected q_q {Q}x{Q} and g_g {G}x{G} for q_g {Q}x{G}, got {tuple(qq.shape)}, "
            f"{tuple(gg.shape)}"
        )

    def rows(s, e):
        parts = []
        if s < Q:
            qe = min(e, Q)
            parts.append(torch.cat([qq[s:qe], qg[s:qe]], 1).float())
        if e > Q:
            gs = max(s, Q) - Q
            parts.append(torch.cat([qg[:, gs : e - Q].t(), gg[gs : e - Q]], 1).float())
        return torch.cat(parts, 0)

    with torch.no_grad():
        out = _rerank_core(
            rows, Q, Q + G, k1, k2, lambda_value, device, _default_rows(Q + G, max_memory_mb)
        )
    return out.cpu().numpy() if as_numpy else out


def re_ranking_features(
    qf,
    gf,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    metric: str = "euclidean",
    max_memory_mb: float = 512.0,
):
    """:func:`re_ranking` computed from features ``(Q, D)``, ``(G, D)`` without ever holding
    the ``(Q+G)^2`` distance matrix; distances by :func:`~reidlab.evaluation.distance.pairwise_distance`
    (``metric``), equal to ``re_ranking(d(q,g), d(q,q), d(g,g))``.
    """
    import torch

    from reidlab.evaluation.distance import pairwise_distance

    as_numpy = not isinstance(qf, torch.Tensor)
    q = torch.as_tensor(qf).float()
    g = torch.as_tensor(gf).float().to(q.device)
    allf = torch.cat([q, g], 0)

    def rows(s, e):
        return pairwise_distance(allf[s:e], allf, metric=metric)

    with torch.no_grad():
        out = _rerank_core(
            rows, len(q), len(allf), k1, k2, lambda_value, q.device,
            _default_rows(len(allf), max_memory_mb),
        )
    return out.cpu().numpy() if as_numpy else out
