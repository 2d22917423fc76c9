"""The experiment grid end to end on tiny synthetic data, checked against invariants that must
hold whatever the numbers: an identity anonymizer changes nothing, each row's mAP is the mean of
its per-query APs, and real-detector boxes come from (and are cached by) reidlab.faces."""

from __future__ import annotations

import numpy as np
import pytest

from reidlab.experiment import ExperimentConfig, run_experiment


@pytest.fixture(scope="module")
def grid(synthetic_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("grid")
    cfg = ExperimentConfig(
        root=str(synthetic_root),
        methods=("none", "zero"),
        retrain=(),
        seeds=(0,),
        epochs=1,
        train_options={"batch_p": 4},
        out_dir=str(out),
    )
    return cfg, *run_experiment(cfg, progress=False)


def test_rows_and_files(grid):
    cfg, results, _ = grid
    assert list(results["condition"]) == [
        "original",
        "none",
        "none (query only)",
        "zero",
        "zero (query only)",
    ]
    for col in (
        "distance",
        "ap_definition",
        "flip",
        "normalize",
        "detector",
        "mAP",
        "rank1",
        "mINP",
    ):
        assert col in results.columns
    assert (results["face_rate_query"] > 0).all()
    from pathlib import Path

    assert {"results.csv", "per_query.parquet", "config.json"} <= {
        p.name for p in Path(cfg.out_dir).iterdir()
    }


def test_identity_anonymizer_changes_nothing(grid):
    _, results, per_query = grid
    orig = per_query[per_query.condition == "original"]["ap"].to_numpy()
    none = per_query[per_query.condition == "none"]["ap"].to_numpy()
    np.testing.assert_array_equal(orig, none)
    m = results.set_index("condition")["mAP"]
    assert m["none"] == m["original"]


def test_map_is_mean_of_per_query_ap(grid):
    _, results, per_query = grid
    for cond, row in results.set_index("condition").iterrows():
        ap = per_query[per_query.condition == cond]["ap"].to_numpy()
        assert row["mAP"] == pytest.approx(100 * np.nanmean(ap), abs=1e-9)
        assert row["n_queries"] == np.isfinite(ap).sum()


def test_real_detector_boxes_are_cached(synthetic_root, tmp_path):
    from reidlab.datasets import build_dataset
    from reidlab.experiment import face_boxes_for

    ds = build_dataset("synthetic", synthetic_root)
    cfg = ExperimentConfig(root=str(synthetic_root), detector="centerface", cache_dir=str(tmp_path))
    boxes, info = face_boxes_for(ds, cfg)
    assert 0 < info["face_rate_query"] <= 1 and boxes
    assert any(tmp_path.iterdir()), "detections were not cached"
    boxes2, info2 = face_boxes_for(ds, cfg)
    assert info2 == info and boxes2.keys() == boxes.keys()
