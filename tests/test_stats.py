"""reidlab.stats against hand-computed cases and scipy references."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from reidlab.stats import compare_to_baseline, effects_model, paired_difference


def test_paired_difference_hand_case():
    a = np.array([1.0, 0.5, 0.5, 0.25])
    b = np.array([0.5, 0.5, 0.25, 0.25])
    r = paired_difference(a, b, n_boot=500, seed=1)
    assert r["n"] == 4
    assert r["baseline_mean"] == pytest.approx(56.25)
    assert r["condition_mean"] == pytest.approx(37.5)
    assert r["delta"] == pytest.approx(-18.75)
    assert r["frac_worse"] == pytest.approx(0.5)
    assert r["ci_low"] <= r["delta"] <= r["ci_high"]
    assert r["p_ttest"] == pytest.approx(sps.ttest_rel(b, a).pvalue)


def test_paired_difference_drops_nan_pairwise_and_identical_is_p1():
    a = np.array([0.2, np.nan, 0.4])
    r = paired_difference(a, a.copy())
    assert r["n"] == 2 and r["delta"] == 0 and r["p_wilcoxon"] == 1.0


def test_paired_difference_detects_small_consistent_drop():
    rng = np.random.default_rng(0)
    a = rng.uniform(0.3, 0.9, 2000)
    b = a - 0.01 + rng.normal(0, 0.01, 2000)
    r = paired_difference(a, b)
    assert r["delta"] == pytest.approx(-1.0, abs=0.1)
    assert r["p_wilcoxon"] < 1e-6
    assert r["ci_high"] < 0


def test_paired_difference_rejects_unpaired():
    with pytest.raises(ValueError, match="equal-length"):
        paired_difference(np.zeros(3), np.zeros(4))


def test_compare_to_baseline_per_model_with_holm():
    rng = np.random.default_rng(1)
    rows = []
    for model in ("m1", "m2"):
        base = rng.uniform(0.2, 1.0, 300)
        for cond, shift in (("original", 0.0), ("blur", -0.05), ("same", 0.0)):
            ap = base + shift
            rows += [
                {"condition": cond, "model": model, "query": i, "ap": v} for i, v in enumerate(ap)
            ]
    out = compare_to_baseline(pd.DataFrame(rows), baseline="original", by=("condition", "model"))
    assert len(out) == 4
    blur = out[out.condition == "blur"]
    assert np.allclose(blur["delta"], -5.0) and blur["significant"].all()
    same = out[out.condition == "same"]
    assert (same["delta"] == 0).all() and not same["significant"].any()
    assert (out["p_holm"] >= out["p_wilcoxon"] - 1e-12).all()


def test_effects_model_recovers_method_cost():
    rng = np.random.default_rng(2)
    rows = []
    for seed in range(5):
        for model, mb in (("a", 60.0), ("b", 70.0)):
            for method, cost in (("none", 0.0), ("blur", -1.0), ("zero", -1.25)):
                rows.append(
                    {
                        "seed": seed,
                        "model": model,
                        "method": method,
                        "mAP": mb + cost + rng.normal(0, 0.05),
                    }
                )
    fit = effects_model(pd.DataFrame(rows), "mAP ~ C(method, Treatment('none')) + C(model)")
    assert fit.params["C(method, Treatment('none'))[T.blur]"] == pytest.approx(-1.0, abs=0.1)
    assert fit.params["C(method, Treatment('none'))[T.zero]"] == pytest.approx(-1.25, abs=0.1)


def test_compare_to_baseline_keeps_grouping_columns_named_like_outputs():
    rows = []
    for seed in (0, 1):
        for cond, shift in (("original", 0.0), ("blur", -0.1 * (seed + 1))):
            rows += [
                {"condition": cond, "seed": seed, "query": i, "ap": 0.5 + 0.001 * i + shift}
                for i in range(50)
            ]
    out = compare_to_baseline(pd.DataFrame(rows), baseline="original", by=("condition", "seed"))
    assert sorted(out["seed"]) == [0, 1]
    assert out.set_index("seed")["delta"].round(6).to_dict() == {0: -10.0, 1: -20.0}
