"""The study's regression check: is a new run's table the baseline's, up to seed-to-seed noise?

A run is compared with a committed baseline table (``papermill_runs/baselines/*.csv``) per
(model, condition): the mean of each metric over the run's seeds against the mean over the
baseline's seeds. How far apart two means may be is derived from the baseline itself, not chosen
by hand: the pooled seed-to-seed standard deviation ``s`` of the metric over every (model,
condition) group that has two or more seeds (``df = sum(n_i - 1)``), and the two-sided Student-t
interval of a difference of two means,

    allowed = t(1 - alpha/2, df) * s * sqrt(1 / n_baseline + 1 / n_run)

(the pooled two-sample t-test's acceptance region; pooling across conditions because the spread
that training seeds cause is a property of the recipe, and two seeds per condition alone would give
a t-quantile of 12.7). A baseline with one seed per condition carries no spread: then a
``tolerance`` in points must be given, and is used as ``allowed`` for every group.

The default study is deterministic on one machine (same seed, same numbers), so a run there
matches its baseline exactly; the allowance is for another CPU or torch build, where float
rounding changes training the way a different seed does.
"""

from __future__ import annotations

from pathlib import Path

from reidlab.errors import ReidlabError

KEYS = ("model", "condition")


def seed_spread(table, columns=("mAP", "rank1"), keys=KEYS) -> dict[str, tuple[float, int]]:
    """Pooled seed-to-seed standard deviation of each metric: ``{column: (sd, df)}`` over the
    ``keys`` groups of ``table`` (one row per seed) that have at least two rows; ``(nan, 0)``
    when no group has two."""
    import numpy as np

    out = {}
    for col in columns:
        groups = table.groupby(list(keys))[col]
        n = groups.count()
        var = groups.var(ddof=1)
        use = n >= 2
        df = int((n[use] - 1).sum())
        ss = float(((n[use] - 1) * var[use]).sum())
        out[col] = (float(np.sqrt(ss / df)) if df else float("nan"), df)
    return out


def _read(path: Path, what: str):
    import pandas as pd

    if not Path(path).is_file():
        raise ReidlabError(f"regression check: expected a {what} CSV at {path}, found nothing")
    table = pd.read_csv(path)
    if "status" in table.columns:  # failed cells have no metrics; they count as missing
        table = table[table["status"].fillna("ok") == "ok"]
    return table


def check_regression(
    results_csv: Path,
    baseline_csv: Path,
    *,
    columns=("mAP", "rank1"),
    tolerance: float | None = None,
    confidence: float = 0.95,
    keys=KEYS,
):
    """Compare a run's results table with a baseline table (see the module docstring).

    Args:
        results_csv, baseline_csv: tables with ``keys``, a ``seed`` column and ``columns``.
        tolerance: points allowed between the means; ``None`` derives it from the baseline's
            seed-to-seed spread (needs two or more seeds in some group).
        confidence: of the t-interval.

    Returns:
        DataFrame, one row per baseline (model, condition): ``n_baseline``, ``n_run``, and per
        metric the two means, ``<col>_allowed`` and the ``status`` ('ok', 'changed', 'missing');
        ``.attrs``: ``ok`` (overall), ``spread`` ({column: (sd, df)}), ``tolerance``.

    Raises:
        ReidlabError: a file is missing, or no spread can be derived and no tolerance was given.
    """
    import numpy as np
    import pandas as pd
    from scipy import stats

    res = _read(results_csv, "results")
    base = _read(baseline_csv, "baseline")
    keys = [k for k in keys if k in base.columns]
    columns = [c for c in columns if c in base.columns]
    spread = seed_spread(base, columns, keys)
    if tolerance is None and any(df == 0 for _, df in spread.values()):
        raise ReidlabError(
            f"regression check: {baseline_csv} has one seed per condition, so it carries no "
            "seed-to-seed spread; give a tolerance in points (--tolerance)"
        )
    b = base.groupby(keys)[columns].agg(["mean", "count"])
    r = res.groupby(keys)[columns].agg(["mean", "count"]) if len(res) else None
    rows = []
    for key, brow in b.iterrows():
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(keys, key))
        n_b = int(brow[(columns[0], "count")])
        have = r is not None and key in r.index
        n_r = int(r.loc[key, (columns[0], "count")]) if have else 0
        row |= {"n_baseline": n_b, "n_run": n_r}
        status = "ok" if have else "missing"
        for col in columns:
            if tolerance is not None:
                allowed = float(tolerance)
            else:
                sd, df = spread[col]
                t = stats.t.ppf(1 - (1 - confidence) / 2, df)
                allowed = float(t * sd * np.sqrt(1 / n_b + 1 / max(n_r, 1)))
            mean_b = float(brow[(col, "mean")])
            mean_r = float(r.loc[key, (col, "mean")]) if have else float("nan")
            row |= {f"{col}_baseline": mean_b, col: mean_r, f"{col}_allowed": allowed}
            if have and not abs(mean_r - mean_b) <= allowed:  # NaN counts as changed
                status = "changed"
        row["status"] = status
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs.update(ok=bool((out["status"] == "ok").all()), spread=spread, tolerance=tolerance)
    return out
