"""The regression check: tolerance from the baseline's pooled seed-to-seed spread."""

from __future__ import annotations

import pandas as pd
import pytest

from reidlab.errors import ReidlabError
from reidlab.regression import check_regression, seed_spread

T_0975_DF2 = 4.302652729911275  # Student t, 97.5th percentile, 2 degrees of freedom (tables)


def _table(rows):
    return pd.DataFrame(
        [
            {"model": "tiny", "condition": c, "seed": s, "mAP": m, "rank1": m + 10}
            for c, s, m in rows
        ]
    )


BASE = [("original", 0, 50.0), ("original", 1, 52.0), ("blur", 0, 48.0), ("blur", 1, 48.0)]


def test_pooled_spread_by_hand():
    # original: var 2 (1 df); blur: var 0 (1 df) -> pooled var (2 + 0) / 2 = 1, df 2
    sd, df = seed_spread(_table(BASE))["mAP"]
    assert sd == pytest.approx(1.0) and df == 2


def test_allowance_is_the_t_interval_of_two_means(tmp_path):
    base = tmp_path / "base.csv"
    _table(BASE).to_csv(base, index=False)
    # allowed = t(0.975, 2) * 1 * sqrt(1/2 + 1/2)
    inside = 48.0 + T_0975_DF2 - 0.01
    outside = 48.0 + T_0975_DF2 + 0.01
    run = tmp_path / "run.csv"
    _table(
        [("original", 0, 51.0), ("original", 1, 51.0), ("blur", 0, inside), ("blur", 1, inside)]
    ).to_csv(run, index=False)
    t = check_regression(run, base)
    assert t.attrs["ok"], t
    assert t["mAP_allowed"].tolist() == pytest.approx([T_0975_DF2] * 2)
    _table(
        [("original", 0, 51.0), ("original", 1, 51.0), ("blur", 0, outside), ("blur", 1, outside)]
    ).to_csv(run, index=False)
    t = check_regression(run, base)
    assert not t.attrs["ok"]
    assert dict(zip(t["condition"], t["status"])) == {"blur": "changed", "original": "ok"}


def test_one_run_seed_widens_the_allowance(tmp_path):
    base = tmp_path / "base.csv"
    _table(BASE).to_csv(base, index=False)
    run = tmp_path / "run.csv"
    _table([("original", 0, 51.0), ("blur", 0, 48.0)]).to_csv(run, index=False)
    t = check_regression(run, base)
    # sqrt(1/2 + 1/1)
    assert t["mAP_allowed"].iloc[0] == pytest.approx(T_0975_DF2 * 1.5**0.5)


def test_missing_and_failed_cells(tmp_path):
    base = tmp_path / "base.csv"
    _table(BASE).to_csv(base, index=False)
    run = tmp_path / "run.csv"
    failed = _table([("original", 0, 51.0), ("blur", 0, float("nan"))])
    failed["status"] = ["ok", "failed"]
    failed.to_csv(run, index=False)
    t = check_regression(run, base)
    assert dict(zip(t["condition"], t["status"])) == {"blur": "missing", "original": "ok"}


def test_single_seed_baseline_needs_a_tolerance(tmp_path):
    base = tmp_path / "base.csv"
    _table([("original", 0, 50.0), ("blur", 0, 48.0)]).to_csv(base, index=False)
    run = tmp_path / "run.csv"
    _table([("original", 0, 50.5), ("blur", 0, 46.0)]).to_csv(run, index=False)
    with pytest.raises(ReidlabError, match="one seed per condition.*--tolerance"):
        check_regression(run, base)
    t = check_regression(run, base, tolerance=1.0)
    assert dict(zip(t["condition"], t["status"])) == {"blur": "changed", "original": "ok"}


def test_missing_files_are_named(tmp_path):
    base = tmp_path / "base.csv"
    _table(BASE).to_csv(base, index=False)
    with pytest.raises(ReidlabError, match="results CSV at .*nope.csv"):
        check_regression(tmp_path / "nope.csv", base)
    with pytest.raises(ReidlabError, match="baseline CSV"):
        check_regression(base, tmp_path / "missing.csv")
