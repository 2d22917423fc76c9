"""The coverage cue: when only some crops are anonymized, is "anonymized" itself a matching cue?

A detector finds faces in only part of the crops, so only those get anonymized. If anonymized
queries then match anonymized gallery crops *because* both are anonymized, the anonymization
has become a cue the model can use. :func:`coverage_cue` measures it from a ranking:

* ``anon_share_query`` / ``anon_share_gallery``: the share of anonymized crops in each split;
* over the anonymized queries, their wrong matches in the top ``k`` (after the Market-1501 rule:
  gallery items with the query's pid and camera, and pid ``-1``, are removed, as in
  :mod:`reidlab.evaluation.metrics`; a wrong match is a remaining item of another pid):
  ``wrong_top10_anon_share``, the share of anonymized gallery crops among them (pooled over the
  queries), and ``wrong_top10_anon_share_chance``, the share they would have if the wrong
  matches were drawn at random from each query's possible wrong matches (its valid gallery items
  of other pids), weighted like the measured share (by each query's number of wrong matches).

:func:`result_coverage_cue` reads the same from an :class:`~reidlab.evaluation.EvalResult` made
with ``evaluate(..., keep_topk=10)`` (the top-k ranking and the crops with a face box are kept, no
features are recomputed). A measured share well above its chance share means anonymized queries are drawn to anonymized
gallery crops. Computed from the original ranking (with the flags the anonymizer *would* use)
and from the anonymized ranking, it shows how anonymization changes who the wrong matches are.
:func:`coverage_table` puts those two side by side from :func:`reidlab.experiment.run_experiment`'s
results table.

>>> c = coverage_cue([1], [1, 2, 3], [0], [1, 0, 0], [True], [False, True, False],
...                  ranked=[[1, 2, 0]], k=2)
>>> c["wrong_top2_anon_share"], c["wrong_top2_anon_share_chance"]   # wrong: 1 (anon) and 2
(0.5, 0.5)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reidlab.evaluation.metrics import _as_float, _as_numpy, _reject_nan, _removed_mask

_CHUNK = 256  # queries per removed-mask block (a block is _CHUNK x G bools)


def cue_columns(k: int = 10) -> tuple[str, ...]:
    """The names of :func:`coverage_cue`'s figures for top ``k`` (the results-table columns)."""
    return (
        "anon_share_query",
        "anon_share_gallery",
        f"wrong_top{k}_anon_share",
        f"wrong_top{k}_anon_share_chance",
        f"wrong_top{k}_count",
        "anon_queries",
    )


def top_valid_matches(distmat, q_pids, g_pids, q_camids, g_camids, k: int = 10) -> np.ndarray:
    """``(Q, k)`` int64: each query's ``k`` nearest gallery indices after the Market-1501 rule.

    Ordered by increasing distance, ties by gallery index (the order
    :func:`~reidlab.evaluation.metrics.rank_metrics` ranks by); ``-1`` pads a row with fewer than
    ``k`` remaining items. NaN at a remaining item is a ``ValueError`` (it cannot be ranked).
    """
    d = _as_float(_as_numpy(distmat))
    if d.ndim != 2:
        raise ValueError(f"distmat must be 2-D (queries x gallery), got shape {d.shape}")
    q_pids = np.asarray(q_pids, np.int64).reshape(-1)
    q_camids = np.asarray(q_camids, np.int64).reshape(-1)
    g_pids = np.asarray(g_pids, np.int64).reshape(-1)
    g_camids = np.asarray(g_camids, np.int64).reshape(-1)
    _check_lengths(d.shape, q_pids, q_camids, g_pids, g_camids)
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    out = np.full((d.shape[0], k), -1, np.int64)
    # A row is partitioned, not sorted: only items at or below its k-th smallest distance can be
    # in its top k; those few are then sorted stably (ties by gallery index).
    for s in range(0, d.shape[0], _CHUNK):
        rows = slice(s, s + _CHUNK)
        removed = _removed_mask(q_pids[rows], g_pids, q_camids[rows], g_camids)
        _reject_nan(d[rows], removed)
        for i, (row, rem) in enumerate(zip(d[rows], removed)):
            keep = np.flatnonzero(~rem)
            v = row[keep]
            if len(v) > k:
                t = np.partition(v, k - 1)[k - 1]
                sel = np.flatnonzero(v <= t)
                keep, v = keep[sel], v[sel]
            top = keep[np.argsort(v, kind="stable")][:k]
            out[s + i, : len(top)] = top
    return out


def _check_lengths(shape, q_pids, q_camids, g_pids, g_camids) -> None:
    if len(q_pids) != shape[0] or len(q_camids) != shape[0]:
        raise ValueError(
            f"{shape[0]} ranked queries but {len(q_pids)} query pids and {len(q_camids)} cameras"
        )
    if len(g_camids) != len(g_pids) or (shape[1] is not None and len(g_pids) != shape[1]):
        raise ValueError(
            f"gallery of {shape[1]} items but {len(g_pids)} pids and {len(g_camids)} cameras"
        )


def _flags(x, n: int, name: str) -> np.ndarray:
    f = np.asarray(x)
    if f.dtype != bool:
        raise ValueError(f"{name} must be booleans (one per crop), got dtype {f.dtype}")
    f = f.reshape(-1)
    if len(f) != n:
        raise ValueError(f"{name} has {len(f)} flags for {n} crops")
    return f


def coverage_cue(
    q_pids,
    g_pids,
    q_camids,
    g_camids,
    q_anonymized,
    g_anonymized,
    *,
    distmat=None,
    ranked=None,
    k: int = 10,
) -> dict[str, Any]:
    """The coverage-cue figures of one ranking (see the module docstring).

    Args:
        q_pids, g_pids, q_camids, g_camids: ids and cameras of query and gallery crops.
        q_anonymized, g_anonymized: bool per crop: anonymized (or, for an original ranking,
            would be).
        distmat: ``(Q, G)`` distances; or
        ranked: ``(Q, n)`` gallery indices per query in rank order (``-1`` = none), e.g. from
            :func:`top_valid_matches`; items the Market-1501 rule removes are skipped here, so a
            plain ``argsort`` of the distances works too. Exactly one of the two.
        k: how many of each query's top remaining matches are looked at.

    Returns:
        ``anon_share_query``, ``anon_share_gallery``, ``wrong_top{k}_anon_share``,
        ``wrong_top{k}_anon_share_chance`` (NaN when no anonymized query has a wrong match in
        its top ``k``), ``wrong_top{k}_count`` (wrong matches counted) and ``anon_queries``.
    """
    if (distmat is None) == (ranked is None):
        raise ValueError("coverage_cue: give exactly one of distmat= and ranked=")
    q_pids = np.asarray(q_pids, np.int64).reshape(-1)
    q_camids = np.asarray(q_camids, np.int64).reshape(-1)
    g_pids = np.asarray(g_pids, np.int64).reshape(-1)
    g_camids = np.asarray(g_camids, np.int64).reshape(-1)
    qa = _flags(q_anonymized, len(q_pids), "q_anonymized")
    ga = _flags(g_anonymized, len(g_pids), "g_anonymized")
    k = int(k)
    if distmat is not None:
        ranked = top_valid_matches(distmat, q_pids, g_pids, q_camids, g_camids, k)
    ranked = np.asarray(_as_numpy(ranked))
    if ranked.ndim != 2 or ranked.dtype.kind not in "iu":
        raise ValueError(f"ranked must be a 2-D integer array, got {ranked.dtype} {ranked.shape}")
    ranked = ranked.astype(np.int64)
    _check_lengths((ranked.shape[0], None), q_pids, q_camids, g_pids, g_camids)
    if ranked.size and (ranked.max() >= len(g_pids) or ranked.min() < -1):
        raise ValueError(f"ranked holds gallery indices outside [-1, {len(g_pids) - 1}]")

    n_wrong = n_wrong_anon = 0
    expected = 0.0  # anonymized wrong matches expected by chance
    valid_g = g_pids != -1
    n_valid, n_valid_anon = int(valid_g.sum()), int((valid_g & ga).sum())
    for q in np.flatnonzero(qa):
        idx = ranked[q][ranked[q] >= 0]
        idx = idx[
            ~_removed_mask(q_pids[q : q + 1], g_pids[idx], q_camids[q : q + 1], g_camids[idx])[0]
        ]
        wrong = idx[:k][g_pids[idx[:k]] != q_pids[q]]
        if not len(wrong):
            continue
        same = valid_g & (g_pids == q_pids[q])
        candidates = n_valid - int(same.sum())  # valid items of other pids
        chance = (n_valid_anon - int((same & ga).sum())) / candidates
        n_wrong += len(wrong)
        n_wrong_anon += int(ga[wrong].sum())
        expected += len(wrong) * chance
    nan = float("nan")
    return {
        "anon_share_query": float(qa.mean()) if len(qa) else nan,
        "anon_share_gallery": float(ga.mean()) if len(ga) else nan,
        f"wrong_top{k}_anon_share": n_wrong_anon / n_wrong if n_wrong else nan,
        f"wrong_top{k}_anon_share_chance": expected / n_wrong if n_wrong else nan,
        f"wrong_top{k}_count": n_wrong,
        "anon_queries": int(qa.sum()),
    }


def result_coverage_cue(result, k: int | None = None) -> dict[str, Any]:
    """:func:`coverage_cue` of an :class:`~reidlab.evaluation.EvalResult` from
    ``evaluate(..., keep_topk=...)`` (no features recomputed); ``k`` defaults to the kept top-k.

    The flags are the crops with a face box, whether or not the result's anonymizers ran: an
    original ranking gives the cue with the crops the anonymizer *would* change.
    """
    pq, pg = result.per_query, result.per_gallery
    if "top_gallery" not in pq or "boxed" not in pg:
        raise ValueError(
            "this result has no top-k ranking: evaluate(..., keep_topk=10) keeps what the "
            "coverage cue needs"
        )
    top = np.asarray(pq["top_gallery"], np.int64).reshape(len(pq["pid"]), -1)
    k = top.shape[1] if k is None else int(k)
    if not 1 <= k <= top.shape[1]:
        raise ValueError(f"k must be in [1, {top.shape[1]}] (the kept top-k), got {k}")
    return coverage_cue(
        pq["pid"], pg["pid"], pq["camid"], pg["camid"], pq["boxed"], pg["boxed"], ranked=top, k=k
    )
