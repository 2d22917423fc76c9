"""Speed of :func:`reidlab.evaluation.rank_metrics` against a per-query argsort baseline.

The case mimics Market-1501 (seeded): 3,368 queries x 15,913 gallery, 750 query ids, 6 cameras,
about 14 cross-camera positives per query plus same-camera items (removed), 2,800 distractors
(pid 0) and some junk (pid -1); features are identity centres plus noise (mAP about 0.7), distance
squared euclidean. The baseline, written here, is the textbook evaluation: for each query drop
the junk, stable-argsort the row, read AP / CMC / INP off the match vector (torchreid's
``eval_market1501`` in NumPy). Both run in this process; agreement is checked on every query.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def make_case(
    num_q: int, num_g: int, num_ids: int, num_cams: int = 6, dim: int = 64, seed: int = 0
):
    """Seeded Market-like case: ``distmat (Q,G) float32, q_pids, g_pids, q_cams, g_cams``."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_ids + 1, dim)).astype(np.float32)
    # queries: ~ num_q / num_ids per id, random cameras
    q_pids = rng.integers(1, num_ids + 1, size=num_q)
    q_cams = rng.integers(0, num_cams, size=num_q)
    n_distr = int(0.176 * num_g)  # Market: 2,798 distractors in 15,913
    n_junk = int(0.02 * num_g)
    n_id = num_g - n_distr - n_junk
    g_pids = np.concatenate(
        [rng.integers(1, num_ids + 1, size=n_id), np.zeros(n_distr, int), -np.ones(n_junk, int)]
    )
    g_cams = rng.integers(0, num_cams, size=num_g)
    perm = rng.permutation(num_g)
    g_pids, g_cams = g_pids[perm], g_cams[perm]
    noise = 0.72

    def feats(pids):
        c = centres[np.where(pids > 0, pids, 0)]
        # distractors / junk: random points
        c = np.where((pids > 0)[:, None], c, rng.normal(size=c.shape).astype(np.float32))
        return c + noise * rng.normal(size=c.shape).astype(np.float32) * np.sqrt(2.0)

    qf, gf = feats(q_pids), feats(g_pids)
    d = (qf**2).sum(1)[:, None] + (gf**2).sum(1)[None] - 2 * qf @ gf.T
    d = np.round(np.maximum(d, 0), 2).astype(np.float32)  # rounding creates ties on purpose
    return d, q_pids, g_pids, q_cams, g_cams


def reference(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=50):
    """Per-query loop: drop junk, stable argsort, match vector -> AP, CMC, INP (numpy)."""
    Q = distmat.shape[0]
    ap = np.full(Q, np.nan)
    inp = np.full(Q, np.nan)
    first = np.full(Q, -1)
    cmc = np.zeros(max_rank)
    nv = 0
    for q in range(Q):
        keep = (g_pids != -1) & ~((g_pids == q_pids[q]) & (g_cams == q_cams[q]))
        row = distmat[q][keep]
        matches = (g_pids[keep] == q_pids[q])[np.argsort(row, kind="stable")]
        if not matches.any():
            continue
        nv += 1
        hits = np.nonzero(matches)[0]
        ap[q] = np.mean(np.arange(1, len(hits) + 1) / (hits + 1.0))
        inp[q] = len(hits) / (hits[-1] + 1.0)
        first[q] = hits[0] + 1
        c = matches.cumsum()[:max_rank] > 0
        cmc[: len(c)] += c
        cmc[len(c) :] += c[-1] if len(c) else 0
    return ap, inp, first, cmc / max(nv, 1)


def _best_of(fn, n):
    best, out = float("inf"), None
    for _ in range(n):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_metrics", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a 10x smaller case")
    p.add_argument("--repeats", type=int, default=3, help="best of N timings for the fast path")
    args = p.parse_args(argv or [])
    from reidlab.evaluation.metrics import rank_metrics

    if args.quick:
        shape = (337, 1591, 75)
    else:
        shape = (3368, 15913, 750)
    d, qp, gp, qc, gc = make_case(*shape, seed=0)
    rank_metrics(d[:8], qp[:8], gp, qc[:8], gc)  # warm-up (imports, thread pool)
    t_fast, m = _best_of(lambda: rank_metrics(d, qp, gp, qc, gc, max_rank=50), args.repeats)
    t_ref, (ap, inp, first, cmc) = _best_of(lambda: reference(d, qp, gp, qc, gc, 50), 1)
    valid = ~np.isnan(ap)
    assert np.array_equal(valid, m.valid), "valid-query flags differ"
    diffs = {
        "AP": float(np.max(np.abs(ap[valid] - m.ap[valid]))),
        "INP": float(np.max(np.abs(inp[valid] - m.inp[valid]))),
        "CMC": float(np.max(np.abs(cmc - m.cmc))),
        "first-hit": float(np.max(np.abs(first - m.first_hit_rank))),
    }
    print(
        f"case: {shape[0]} queries x {shape[1]} gallery, {shape[2]} ids, 6 cams, float32; "
        f"valid {m.num_valid_queries}, skipped {m.num_skipped_queries}, "
        f"positives/query {m.num_positives[m.valid].mean():.1f}, mAP {m.mAP:.4f}, "
        f"rank-1 {m.rank1:.4f}, mINP {m.mINP:.4f}; NumPy, one thread"
    )
    print(f"{'method':<34s}{'seconds':>10s}{'ratio':>10s}")
    print(f"{'per-query stable argsort (ref)':<34s}{t_ref:>10.3f}{1.0:>10.2f}")
    label = f"rank_metrics (best of {args.repeats})"
    print(f"{label:<34s}{t_fast:>10.3f}{t_ref / t_fast:>10.1f}x")
    print("max abs diff vs reference: " + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
    ok = max(diffs.values()) <= 1e-9
    print("agreement:", "OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
