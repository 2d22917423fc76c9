"""Re-ID ranking metrics from a query x gallery distance matrix: CMC, mAP, mINP, per-query AP.

Definitions (all values are fractions in [0, 1], not percentages):

* **Market-1501 rule.** For query ``q``, gallery items with the same pid *and* the same camera
  as ``q`` are removed (they are "junk"), and so are gallery items with pid ``-1`` (Market's junk
  images) if present. Distractors (pid ``0``) are ordinary negatives. A query whose remaining
  gallery holds no item of its pid is *skipped*: it counts in ``num_skipped_queries`` and in no
  average.
* **Ranking and ties.** The remaining gallery is ordered by increasing distance; equal
  distances are ordered by gallery index (what a stable sort gives), so results are
  deterministic. torchreid's ``np.argsort`` (quicksort) leaves tie order unspecified.
* **Non-finite and integer distances.** ``+inf`` ranks after every finite distance and ``-inf``
  before; equal infinities tie like any other equal distances (by gallery index). ``NaN``
  cannot be ranked and is rejected with a ``ValueError`` naming the query rows (except at removed
  items, whose value is never looked at: a NaN feature of a pid ``-1`` image is harmless). Integer
  matrices are ranked exactly (float32 only while every value is within +-2^24, float64 up to
  +-2^53, beyond that by their exact order).
* **Positives' ranks.** ``r_1 < r_2 < ... < r_P`` are the 1-based ranks of the query's ``P``
  positives in that ordering.
* ``ap="standard"`` (torchreid, fast-reid): non-interpolated AP, ``AP = 1/P * sum_i i / r_i``.
* ``ap="trapezoid"``: the original Market-1501 MATLAB ``compute_AP.m`` (Zheng et al. 2015), a
  trapezoid rule over the precision/recall curve starting from precision 1 at recall 0:
  ``AP = 1/P * sum_i (p_prev_i + i / r_i) / 2`` with ``p_prev_i = (i - 1) / (r_i - 1)``
  (precision just before the i-th positive) or ``1`` when ``r_i = 1``. As ``p_prev_i <= i / r_i``
  it is never above the standard AP. OSNet x0.25 on Market-1501 (squared euclidean): standard
  74.94, trapezoid 74.22 mAP.
* **CMC** ``cmc[k-1]`` = fraction of valid queries whose first positive has rank ``<= k``
  (``k = 1..max_rank``).
* **mINP** (Ye et al., "Deep Learning for Person Re-identification: A Survey", TPAMI 2021):
  ``INP = P / r_P``, the precision at the hardest (last) positive; mINP is its mean.

How it is fast: no row is ever fully sorted. For each query only the gallery items at a distance
``<=`` its farthest positive can precede a positive, so a chunk of queries is thresholded at
once (in cache-sized chunks; the chunk is never copied: removed items are dropped from the
selected ones, and selecting "not above" the threshold selects NaN too, so a NaN is caught
without an extra pass), each surviving item gets one ``int64`` key ``(query, distance bits,
index)``, a ``searchsorted`` among the positives' keys drops it into the bucket between two
consecutive positives, and bucket counts give every positive's rank (float64 distances are
ordered exactly by a lexsort of the surviving items instead). Every metric follows from those
ranks. The counting runs in NumPy on the CPU; a torch matrix on a GPU is copied to host memory
first. Timings: ``benchmarks/bench_metrics.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

AP_DEFINITIONS = ("standard", "trapezoid")
CMC_MODES = ("market", "single_gallery_shot")


@dataclass
class RankMetrics:
    """Summary metrics plus per-query arrays (length = number of queries, in query order).

    ``ap``, ``inp`` are NaN and ``first_hit_rank`` is ``-1`` for skipped (invalid) queries;
    ``first_hit_rank`` is 1-based; ``num_positives`` counts the query's valid positives.
    """

    mAP: float
    mINP: float
    cmc: np.ndarray  # (max_rank,) float64
    num_valid_queries: int
    num_skipped_queries: int
    ap: np.ndarray  # (Q,) float64
    inp: np.ndarray  # (Q,) float64
    first_hit_rank: np.ndarray  # (Q,) int64
    num_positives: np.ndarray  # (Q,) int64
    valid: np.ndarray  # (Q,) bool
    ap_definition: str = "standard"
    cmc_mode: str = "market"
    extra: dict[str, Any] = field(default_factory=dict)

    def rank(self, k: int) -> float:
        """CMC at rank ``k`` (1-based); NaN when ``k`` exceeds ``max_rank``."""
        return float(self.cmc[k - 1]) if 1 <= k <= len(self.cmc) else float("nan")

    @property
    def rank1(self) -> float:
        return self.rank(1)

    def summary(self) -> dict[str, Any]:
        """Scalars for tables: mAP, mINP, rank1/5/10/20, counts."""
        return {
            "mAP": self.mAP,
            "mINP": self.mINP,
            "rank1": self.rank(1),
            "rank5": self.rank(5),
            "rank10": self.rank(10),
            "rank20": self.rank(20),
            "num_valid_queries": self.num_valid_queries,
            "num_skipped_queries": self.num_skipped_queries,
        }


def _as_numpy(x) -> np.ndarray:
    """numpy view of an array-like or torch tensor (any device; moved to the CPU)."""
    if hasattr(x, "detach"):
        x = x.detach()
        if x.device.type != "cpu":
            x = x.cpu()
        return x.numpy()
    return np.asarray(x)


def _removed_mask(q_pids, g_pids, q_camids, g_camids) -> np.ndarray:
    """``(Q, G)`` bool: the items the Market rule removes (same pid and camera, or pid -1)."""
    q_pids, g_pids = (
        np.asarray(q_pids, np.int64).reshape(-1),
        np.asarray(g_pids, np.int64).reshape(-1),
    )
    q_camids = np.asarray(q_camids, np.int64).reshape(-1)
    g_camids = np.asarray(g_camids, np.int64).reshape(-1)
    same = (q_pids[:, None] == g_pids[None]) & (q_camids[:, None] == g_camids[None])
    return same | (g_pids == -1)[None]


def _reject_nan(d: np.ndarray, removed: np.ndarray | None = None) -> None:
    """ValueError naming how many NaN distances ``d`` (2-D) holds and in which query rows;
    NaN at ``removed`` items (a ``(Q, G)`` bool mask) is ignored: they are never ranked."""
    bad = np.isnan(d)
    if removed is not None:
        bad &= ~removed
    n = int(bad.sum())
    if n == 0:
        return
    rows = np.flatnonzero(bad.any(axis=1))
    shown = ", ".join(str(int(r)) for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
    raise ValueError(
        f"distmat holds {n} NaN distance{'s' if n != 1 else ''} in {len(rows)} query "
        f"row{'s' if len(rows) != 1 else ''} ({shown}); NaN cannot be ranked: check the features "
        f"(a diverged model gives NaN) or replace NaN by +inf to rank those items last"
    )


def _as_float(d: np.ndarray) -> np.ndarray:
    """float32 / float64 distances with exactly the order and ties of ``d``.

    Integers go to float32 only while every value is within +-2^24 (float32 holds those
    exactly), to float64 within +-2^53; wider integers (and float types wider than float64 whose
    values float64 would round) are replaced by their dense rank, which keeps order and ties.
    NaN passes through (the caller rejects it).
    """
    if d.dtype in (np.float32, np.float64):
        return d
    kind = d.dtype.kind
    if kind == "b" or (kind in "iuf" and d.size == 0):
        return d.astype(np.float32)
    if kind in "iu":
        lo, hi = int(d.min()), int(d.max())
        if -(1 << 24) <= lo and hi <= 1 << 24:
            return d.astype(np.float32)
        if -(1 << 53) <= lo and hi <= 1 << 53:
            return d.astype(np.float64)
    elif kind == "f":
        if d.dtype.itemsize < 4:
            return d.astype(np.float32)  # float16: exact
        d64 = d.astype(np.float64)
        if np.array_equal(d64, d, equal_nan=True):
            return d64
    else:
        return d.astype(np.float64)
    _, inverse = np.unique(d, return_inverse=True)
    out = inverse.reshape(d.shape).astype(np.float64)
    if kind == "f":
        out[np.isnan(d)] = np.nan  # np.unique ranks NaN last; keep it NaN (the caller rejects it)
    return out


def _orderable_bits(v: np.ndarray) -> np.ndarray:
    """float32 values -> int64 in [0, 2^32) with the same order (and -0.0 == +0.0)."""
    b = (v.astype(np.float32, copy=False) + np.float32(0.0)).view(np.int32).astype(np.int64)
    return np.where(b < 0, b ^ 0x7FFFFFFF, b) + (1 << 31)


def _same_pid_pairs(q_pids: np.ndarray, g_pids: np.ndarray):
    """All (query, gallery) index pairs with equal pid: query-major, then gallery order.

    Returns ``rows (M,), cols (M,)`` int64 (a CSR-style expansion; no Q x G work).
    """
    g_order = np.argsort(g_pids, kind="stable")
    uniq, starts, counts = np.unique(g_pids[g_order], return_index=True, return_counts=True)
    if len(uniq) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pos = np.minimum(np.searchsorted(uniq, q_pids), len(uniq) - 1)
    found = uniq[pos] == q_pids
    n = np.where(found, counts[pos], 0).astype(np.int64)
    st = np.where(found, starts[pos], 0).astype(np.int64)
    total = int(n.sum())
    rows = np.repeat(np.arange(len(q_pids), dtype=np.int64), n)
    offs = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(n) - n, n)
    return rows, g_order[np.repeat(st, n) + offs].astype(np.int64)


def _chunk_ranks(
    dc: np.ndarray,
    pr: np.ndarray,
    pc: np.ndarray,
    jr: np.ndarray,
    jc: np.ndarray,
    junk_col: np.ndarray | None,
) -> np.ndarray | None:
    """0-based ranks of positives ``(pr, pc)`` (sorted by row) in a C-contiguous chunk ``dc``.

    Removed items: the pairs ``(jr, jc)`` and the columns where ``junk_col`` (``(G,)`` bool or
    None) is True. A positive's rank = number of items of its row with smaller distance, or
    equal distance and smaller column. Only items ``<=`` the row's farthest positive can count,
    so those are selected (removed ones dropped), and counted into buckets between consecutive
    positives. Selecting "not ``>``" also selects every NaN, so a NaN among the ranked items is
    seen among the few candidates, without an extra pass over the chunk: then None is returned.
    ``+-inf`` need nothing special (a ``+inf`` farthest positive selects the whole row).
    """
    R, G = dc.shape
    pv = dc[pr, pc]
    if np.isnan(pv).any():
        return None
    thr = np.full(R, -np.inf, dc.dtype)
    np.maximum.at(thr, pr, pv)
    cand = np.greater(dc, thr[:, None])
    idx = np.flatnonzero(np.logical_not(cand, out=cand))  # candidates, row-major (row, col)
    r = idx // G
    c = idx - r * G
    keep = ~junk_col[c] if junk_col is not None else np.ones(len(idx), bool)
    if len(jr):
        jflat = jr * G + jc
        at = np.minimum(np.searchsorted(idx, jflat), max(len(idx) - 1, 0))
        if len(idx):
            keep[at[idx[at] == jflat]] = False
    if not keep.all():
        idx, r, c = idx[keep], r[keep], c[keep]
    v = dc.ravel()[idx]
    if np.isnan(v).any():
        return None
    rowstart = np.searchsorted(idx, np.arange(R, dtype=np.int64) * G)
    if dc.dtype.itemsize <= 4:
        # one int64 key per item: row | value bits | column; keys are unique
        cb = max(1, int(G - 1).bit_length())
        key = (r << (32 + cb)) | (_orderable_bits(v) << cb) | c
        pkey = (pr << (32 + cb)) | (_orderable_bits(pv) << cb) | pc
        po = np.argsort(pkey)
        s = np.searchsorted(pkey[po], key)  # number of positives (all rows) before each item
        cum = np.cumsum(np.bincount(s, minlength=len(pkey) + 1))
        ranks = np.empty(len(pkey), np.int64)
        ranks[po] = cum[: len(pkey)] - 1 - rowstart[pr[po]]
        return ranks
    # float64: exact order by (row, value, column) with a lexsort of the candidates
    order = np.lexsort((c, v, r))
    where = np.empty(len(idx), np.int64)
    where[order] = np.arange(len(idx), dtype=np.int64)
    loc = np.searchsorted(idx, pr * G + pc)  # positives are candidates (their d <= thr)
    return where[loc] - rowstart[pr]


def positive_ranks(
    distmat,
    q_pids,
    g_pids,
    q_camids,
    g_camids,
    chunk_elements: int = 1 << 20,
):
    """0-based ranks of every query's positives among its valid gallery items.

    Args:
        distmat: ``(Q, G)`` distances (numpy, or torch on any device: it is copied to the CPU;
            the counting runs in NumPy). Smaller = more similar; ``+-inf`` allowed, NaN
            rejected; integers are ranked exactly.
        q_pids, q_camids: ``(Q,)`` ints; g_pids, g_camids: ``(G,)`` ints.
        chunk_elements: queries are processed in chunks of about this many matrix elements
            (1M float32 = 4 MB: a chunk stays in cache).

    Returns:
        ``(rows, ranks)`` int64 arrays, one entry per positive, grouped by query (increasing),
        ranks increasing within a query; ``rank`` = number of valid gallery items before it.

    Raises:
        ValueError: a shape that does not fit, or NaN distances (the message says how many and
            in which query rows). NaN at removed items (same pid and camera, pid -1) is
            ignored: they are never ranked.
    """
    d = _as_numpy(distmat)
    if d.ndim != 2:
        raise ValueError(f"distmat must be 2-D (Q, G), got shape {d.shape}")
    d = _as_float(d)
    Q, G = d.shape
    q_pids = np.asarray(q_pids, dtype=np.int64).reshape(-1)
    g_pids = np.asarray(g_pids, dtype=np.int64).reshape(-1)
    q_camids = np.asarray(q_camids, dtype=np.int64).reshape(-1)
    g_camids = np.asarray(g_camids, dtype=np.int64).reshape(-1)
    if len(q_pids) != Q or len(q_camids) != Q or len(g_pids) != G or len(g_camids) != G:
        raise ValueError(
            f"distmat is {Q}x{G} but got {len(q_pids)} query pids, {len(q_camids)} query camids, "
            f"{len(g_pids)} gallery pids, {len(g_camids)} gallery camids"
        )
    prow, pcol = _same_pid_pairs(q_pids, g_pids)
    junk = (g_camids[pcol] == q_camids[prow]) | (g_pids[pcol] == -1)
    pr_all, pc_all = prow[~junk], pcol[~junk]
    jr_all, jc_all = prow[junk], pcol[junk]
    junk_col = (g_pids == -1) if np.any(g_pids == -1) else None
    # rows per chunk: cache-sized, and few enough for the int64 keys (row | 32 bits | column)
    cb = max(1, int(G - 1).bit_length())
    step = max(1, min(Q, chunk_elements // max(G, 1), 1 << max(0, 31 - cb)))
    starts = np.arange(0, Q + step, step)
    pb = np.searchsorted(pr_all, starts)
    jb = np.searchsorted(jr_all, starts)
    out_rows, out_ranks = [], []
    for ci, s in enumerate(range(0, Q, step)):
        e = min(Q, s + step)
        dc = d[s:e]
        pr, pc = pr_all[pb[ci] : pb[ci + 1]] - s, pc_all[pb[ci] : pb[ci + 1]]
        if len(pr) == 0:
            if np.isnan(dc.min(initial=np.inf)):  # nothing to rank here, but NaN is refused
                _reject_nan(d, _removed_mask(q_pids, g_pids, q_camids, g_camids))
            continue
        jr, jc = jr_all[jb[ci] : jb[ci + 1]] - s, jc_all[jb[ci] : jb[ci + 1]]
        if not dc.flags.c_contiguous:
            dc = np.ascontiguousarray(dc)
        ranks = _chunk_ranks(dc, pr, pc, jr, jc, junk_col)
        if ranks is None:  # a NaN among the items it ranks
            _reject_nan(d, _removed_mask(q_pids, g_pids, q_camids, g_camids))
        out_rows.append(pr + s)
        out_ranks.append(ranks)
    if not out_rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    rows = np.concatenate(out_rows)
    ranks = np.concatenate(out_ranks)
    o = np.lexsort((ranks, rows))
    return rows[o], ranks[o]


def metrics_from_ranks(
    rows: np.ndarray,
    ranks: np.ndarray,
    num_queries: int,
    max_rank: int = 50,
    ap: str = "standard",
) -> RankMetrics:
    """All metrics from the positives' 0-based ranks (``rows`` grouped, ranks increasing)."""
    if ap not in AP_DEFINITIONS:
        raise ValueError(f"ap must be one of {AP_DEFINITIONS}, got {ap!r}")
    Q = int(num_queries)
    P = np.bincount(rows, minlength=Q).astype(np.int64)
    pos_start = np.cumsum(P) - P
    j = np.arange(len(rows), dtype=np.int64) - pos_start[rows]  # 0-based index of positive
    r1 = ranks.astype(np.float64) + 1.0
    prec = (j + 1.0) / r1
    if ap == "standard":
        term = prec
    else:
        prev = np.where(ranks > 0, j / np.maximum(ranks, 1).astype(np.float64), 1.0)
        term = (prev + prec) / 2.0
    valid = P > 0
    Pf = np.maximum(P, 1).astype(np.float64)
    ap_q = np.bincount(rows, weights=term, minlength=Q) / Pf
    first = np.full(Q, -1, np.int64)
    last = np.full(Q, -1, np.int64)
    first[rows[j == 0]] = ranks[j == 0]
    is_last = j == (P[rows] - 1)
    last[rows[is_last]] = ranks[is_last]
    inp = P / np.maximum(last + 1.0, 1.0)
    ap_q[~valid] = np.nan
    inp[~valid] = np.nan
    nv = int(valid.sum())
    hist = np.bincount(first[valid], minlength=max_rank)[:max_rank]
    cmc = np.cumsum(hist) / max(nv, 1)
    return RankMetrics(
        mAP=float(ap_q[valid].mean()) if nv else float("nan"),
        mINP=float(inp[valid].mean()) if nv else float("nan"),
        cmc=cmc.astype(np.float64),
        num_valid_queries=nv,
        num_skipped_queries=Q - nv,
        ap=ap_q,
        inp=inp,
        first_hit_rank=np.where(valid, first + 1, -1),
        num_positives=P,
        valid=valid,
        ap_definition=ap,
    )


def single_gallery_shot_cmc(
    distmat,
    q_pids,
    g_pids,
    q_camids,
    g_camids,
    max_rank: int = 50,
    repeats: int = 10,
    seed: int = 0,
) -> np.ndarray:
    """CUHK03 single-gallery-shot CMC, ``(max_rank,)`` float64.

    For each query and each of ``repeats`` draws, after the Market removal rule, one gallery
    image per identity is drawn at random (``numpy.random.default_rng(seed)``, queries in order,
    repeats inner); CMC is computed on that reduced gallery and averaged over draws and valid
    queries (as torchreid's ``eval_cuhk03``). Ties are broken by gallery index; ``+-inf`` rank
    last / first, integers are compared exactly.

    Raises:
        ValueError: NaN distances at items that are not removed (how many, in which query rows).
    """
    d = _as_numpy(distmat)
    if d.ndim != 2:
        raise ValueError(f"distmat must be 2-D (Q, G), got shape {d.shape}")
    if d.dtype.kind in "fc" and np.isnan(d).any():
        _reject_nan(d, _removed_mask(q_pids, g_pids, q_camids, g_camids))
    q_pids = np.asarray(q_pids, np.int64)
    g_pids = np.asarray(g_pids, np.int64)
    q_camids = np.asarray(q_camids, np.int64)
    g_camids = np.asarray(g_camids, np.int64)
    rng = np.random.default_rng(seed)
    cmc = np.zeros(max_rank, np.float64)
    nv = 0
    for q in range(d.shape[0]):
        keep = (g_pids != -1) & ~((g_pids == q_pids[q]) & (g_camids == q_camids[q]))
        if not np.any(g_pids[keep] == q_pids[q]):
            continue
        nv += 1
        idx = np.nonzero(keep)[0]
        pids, dist = g_pids[idx], d[q, idx]
        acc = np.zeros(max_rank, np.float64)
        for _ in range(repeats):
            o = np.lexsort((rng.random(len(idx)), pids))
            ps = pids[o]
            sel = o[np.r_[True, ps[1:] != ps[:-1]]]  # one random item per identity
            sd, sp = dist[sel], pids[sel]
            order = np.lexsort((idx[sel], sd))  # by distance, then gallery index
            first = int(np.nonzero(sp[order] == q_pids[q])[0][0])
            acc[first:] += 1.0
        cmc += acc / repeats
    return cmc / max(nv, 1)


def rank_metrics(
    distmat,
    q_pids,
    g_pids,
    q_camids,
    g_camids,
    max_rank: int = 50,
    ap: str = "standard",
    cmc_mode: str = "market",
    repeats: int = 10,
    seed: int = 0,
) -> RankMetrics:
    """CMC, mAP, mINP and per-query arrays from a ``(Q, G)`` distance matrix.

    Args:
        distmat: ``(Q, G)`` distances, numpy or torch on any device (copied to the CPU;
            counting runs in NumPy). Smaller means more similar; ``+inf`` ranks last and
            ``-inf`` first (ties by gallery index), NaN raises ``ValueError``; integer
            distances are ranked exactly.
        q_pids, q_camids: ``(Q,)`` int arrays; g_pids, g_camids: ``(G,)`` int arrays.
        max_rank: length of the CMC curve.
        ap: ``"standard"`` (torchreid / fast-reid) or ``"trapezoid"`` (Market-1501 MATLAB).
        cmc_mode: ``"market"`` or ``"single_gallery_shot"`` (CUHK03 old protocol; CMC only,
            AP and mINP stay on the full gallery, as in torchreid); ``repeats`` and ``seed``
            drive its sampling and are recorded in ``extra``.

    Returns:
        :class:`RankMetrics` (see the module docstring for the exact definitions).

    Example:
        >>> import numpy as np
        >>> m = rank_metrics(np.array([[0.1, 0.5, 0.3]]), [1], [1, 2, 1], [0], [1, 1, 2])
        >>> round(m.mAP, 4), m.first_hit_rank.tolist()
        (1.0, [1])
    """
    if cmc_mode not in CMC_MODES:
        raise ValueError(f"cmc_mode must be one of {CMC_MODES}, got {cmc_mode!r}")
    if max_rank < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    rows, ranks = positive_ranks(distmat, q_pids, g_pids, q_camids, g_camids)
    m = metrics_from_ranks(rows, ranks, len(np.asarray(q_pids).reshape(-1)), max_rank, ap)
    if cmc_mode == "single_gallery_shot":
        m.cmc = single_gallery_shot_cmc(
            distmat, q_pids, g_pids, q_camids, g_camids, max_rank, repeats, seed
        )
        m.cmc_mode = cmc_mode
        m.extra.update({"sgs_repeats": repeats, "sgs_seed": seed})
    return m
