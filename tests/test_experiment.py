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
    # the columns papermill_runs/baselines/*.csv and the notebooks read, then EvalResult.to_row's
    for col in (
        "model",
        "seed",
        "condition",
        "method",
        "anonymized",
        "train_data",
        "status",
        "error",
        "mAP",
        "rank1",
        "rank5",
        "rank10",
        "mINP",
        "n_queries",
        "distance",
        "ap_definition",
        "flip",
        "normalize",
        "mask",
        "mask_scale",
        "face_rate_query",
        "face_rate_gallery",
        "detector",
        "pretrained",
        "input_size",
        "runtime.batch_size",
        "query_anonymization.method",
    ):
        assert col in results.columns, col
    row = results.set_index("condition").loc["zero (query only)"]
    assert row["query_anonymization.method"] == "zero" and row["status"] == "ok"
    assert 0 <= row["mAP"] <= 100 and row["distance"] == "squared_euclidean"
    assert (results["face_rate_query"] > 0).all()
    from pathlib import Path

    assert {"results.csv", "timings.csv", "per_query.parquet", "config.json"} <= {
        p.name for p in Path(cfg.out_dir).iterdir()
    }
    # wall times (machine load, not the model) go to timings.csv: same seeds, same results.csv
    import pandas as pd

    saved = pd.read_csv(Path(cfg.out_dir) / "results.csv")
    timings = pd.read_csv(Path(cfg.out_dir) / "timings.csv")
    assert "runtime.feature_seconds" in results.columns
    assert not [c for c in saved.columns if c.endswith("_seconds")]
    assert list(timings.columns) == [
        "dataset",
        "model",
        "seed",
        "condition",
        *[c for c in results.columns if c in timings.columns and c.startswith("runtime.")],
    ]
    assert "runtime.images_per_second" in timings.columns and len(timings) == len(saved)


def test_eval_settings_live_in_eval():
    from reidlab.evaluation import EvalConfig
    from reidlab.experiment import _train_config

    assert ExperimentConfig(eval={"flip": True}).eval == EvalConfig(flip=True)
    with pytest.raises(TypeError):  # one way: evaluation settings live in eval
        ExperimentConfig(distance="cosine")
    cfg = ExperimentConfig(root="/data/x", eval=EvalConfig(device="cpu"), epochs=2, out_dir="/o")
    tc = _train_config("tiny", 1, cfg, {"a.jpg": None}, "blur")
    assert (tc.device, tc.epochs, tc.seed, tc.root) == ("cpu", 2, 1, "/data/x")
    assert tc.anonymizer["method"] == "blur" and tc.boxes == {"a.jpg": None}
    assert tc.out_dir == "/o/models/tiny-seed1-blur" and not tc.final_eval
    assert _train_config("tiny", 0, cfg, {"a.jpg": None}, None).boxes is None


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


def test_real_detector_boxes_are_cached(synthetic_root, tmp_path, monkeypatch):
    from reidlab.datasets import build_dataset
    from reidlab.experiment import face_boxes_for
    from reidlab.faces.centerface import CenterFaceDetector

    ds = build_dataset("synthetic", synthetic_root)
    cfg = ExperimentConfig(root=str(synthetic_root), detector="centerface", cache_dir=str(tmp_path))
    boxes, info = face_boxes_for(ds, cfg)
    assert 0 < info["face_rate_query"] <= 1 and boxes
    assert any(tmp_path.iterdir()), "detections were not cached"

    def no_second_detection(self, images, *rest):
        raise AssertionError("the second call ran the detector instead of reading the cache")

    monkeypatch.setattr(CenterFaceDetector, "_detect", no_second_detection)
    boxes2, info2 = face_boxes_for(ds, cfg)
    assert info2 == info and boxes2.keys() == boxes.keys()
    assert all((boxes2[k] == boxes[k]).all() for k in boxes)


def test_grid_extracts_the_original_gallery_once_and_reuses_it_exactly(
    synthetic_root, tmp_path, monkeypatch
):
    """Query-only conditions compare against the original gallery: extracted once per model, and
    the reused features give exactly the numbers a fresh extraction gives."""
    from reidlab.datasets import build_dataset
    from reidlab.evaluation import evaluate, features
    from reidlab.experiment import _anonymizer, _train, face_boxes_for

    calls = []
    real = features.extract_features

    def counting(model, samples, *, anonymizer=None, desc=None, **kw):
        calls.append((desc, anonymizer is None))
        return real(model, samples, anonymizer=anonymizer, desc=desc, **kw)

    monkeypatch.setattr(features, "extract_features", counting)
    cfg = ExperimentConfig(
        root=str(synthetic_root),
        methods=("zero",),
        retrain=(),
        epochs=1,
        train_options={"batch_p": 4, "iters_per_epoch": 2},
        out_dir=str(tmp_path),
    )
    results, per_query = run_experiment(cfg, progress=False)
    galleries = [d for d, plain in calls if d.endswith("gallery")]
    # original (extracted), zero (anonymized), zero (query only): the original gallery reused
    assert galleries == ["tiny seed 0 original gallery", "tiny seed 0 zero gallery"]
    assert (
        results.set_index("condition").loc["zero (query only)", "runtime.features_reused"]
        == '["gallery"]'
    )

    # a fresh extraction of the same condition (the same seeded training) gives identical APs
    model = _train("tiny", 0, cfg, None, None)
    ds = build_dataset("synthetic", synthetic_root)
    boxes = face_boxes_for(ds, cfg)[0]
    fresh = evaluate(
        model, ds, cfg.eval, boxes=boxes, query_anonymizer=_anonymizer("zero", cfg), progress=False
    )
    got = per_query[per_query.condition == "zero (query only)"]["ap"].to_numpy()
    np.testing.assert_array_equal(
        np.where(fresh.per_query["valid"], fresh.per_query["ap"], np.nan), got
    )


def test_train_split_is_detected_only_when_retraining(synthetic_root):
    from reidlab.datasets import build_dataset
    from reidlab.experiment import face_boxes_for

    ds = build_dataset("synthetic", synthetic_root)
    boxes, info = face_boxes_for(ds, ExperimentConfig(root=str(synthetic_root), retrain=()))
    assert "face_rate_train" not in info and not any(s.path in boxes for s in ds.train)
    boxes, info = face_boxes_for(ds, ExperimentConfig(root=str(synthetic_root), retrain=("blur",)))
    assert info["face_rate_train"] > 0 and any(s.path in boxes for s in ds.train)


CUE = (
    "anon_share_query",
    "anon_share_gallery",
    "wrong_top10_anon_share",
    "wrong_top10_anon_share_chance",
    "wrong_top10_count",
    "anon_queries",
)


def test_rows_carry_the_coverage_cue(grid, synthetic_root):
    """The cue's shares are the ground-truth face rates (oracle boxes); an identity anonymizer
    leaves the cue of the original ranking; coverage_table sets each condition beside it."""
    from pathlib import Path

    import pandas as pd

    from reidlab.datasets import build_dataset
    from reidlab.datasets.synthetic import load_face_boxes
    from reidlab.experiment import coverage_table

    cfg, results, _ = grid
    ds = build_dataset("synthetic", synthetic_root)
    gt = load_face_boxes(synthetic_root)
    q_faces = np.mean([len(gt[s.path]) > 0 for s in ds.query])
    g_faces = np.mean([len(gt[s.path]) > 0 for s in ds.gallery])
    assert 0 < q_faces < 1 and 0 < g_faces < 1
    for col in (*CUE, "full_coverage"):
        assert col in results.columns, col
    assert not results["full_coverage"].any()
    np.testing.assert_allclose(results["anon_share_query"], q_faces)
    np.testing.assert_allclose(results["anon_share_gallery"], g_faces)
    assert (results["anon_queries"] == round(q_faces * len(ds.query))).all()
    by = results.set_index("condition")
    for col in CUE:
        assert by.loc["none", col] == by.loc["original", col], col
    share = by["wrong_top10_anon_share"]
    assert ((share >= 0) & (share <= 1)).all() and (by["wrong_top10_count"] > 0).all()

    table = coverage_table(results)
    assert list(table["condition"]) == ["none", "none (query only)", "zero", "zero (query only)"]
    orig = by.loc["original"]
    assert (table["wrong_top10_anon_share_original"] == orig["wrong_top10_anon_share"]).all()
    z = table.set_index("condition").loc["zero"]
    assert z["wrong_top10_anon_share"] == by.loc["zero", "wrong_top10_anon_share"]
    assert z["anonymized"] == "query+gallery"
    written = pd.read_csv(Path(cfg.out_dir) / "coverage.csv")
    assert list(written["condition"]) == list(table["condition"])


def test_full_coverage_grid_anonymizes_every_crop(synthetic_root, tmp_path):
    """full_coverage=True: every query and gallery crop has a box, so every share is 1.0 (no
    grid training: random-init weights are loaded)."""
    import torch

    from reidlab.datasets import build_dataset
    from reidlab.experiment import face_boxes_for
    from reidlab.models import build_model

    weights = tmp_path / "tiny.pth"
    torch.manual_seed(0)
    torch.save(build_model("tiny").state_dict(), weights)
    cfg = ExperimentConfig(
        root=str(synthetic_root),
        methods=("zero",),
        retrain=(),
        weights={"tiny": str(weights)},
        full_coverage=True,
        out_dir=str(tmp_path / "out"),
    )
    ds = build_dataset("synthetic", synthetic_root)
    boxes, info = face_boxes_for(ds, cfg)
    assert info["full_coverage"] and info["detection_rate_query"] < 1
    assert all(len(boxes[s.path]) >= 1 for s in ds.query + ds.gallery)
    results, _ = run_experiment(cfg, progress=False)
    assert list(results["condition"]) == ["original", "zero", "zero (query only)"]
    assert (results["status"] == "ok").all() and results["full_coverage"].all()
    for col in ("anon_share_query", "anon_share_gallery"):
        assert (results[col] == 1.0).all(), col
    assert (results["wrong_top10_anon_share"] == 1.0).all()
    assert (results["wrong_top10_anon_share_chance"] == 1.0).all()
    assert (results["anon_queries"] == len(ds.query)).all()
