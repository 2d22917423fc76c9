"""Same seed, same numbers: the grid (training with augmentation, random erasing, anonymized
retraining, evaluation) run twice in one process gives identical tables, whatever the global
random state in between. (Across processes: tests/test_grid.py runs the smoke grid in a process
pool and on a Dask cluster and compares the tables.)"""

from __future__ import annotations

import random

import numpy as np
import pandas as pd

from reidlab.experiment import ExperimentConfig, run_experiment

METRICS = ["mAP", "rank1", "rank5", "mINP"]


def _run(root, out):
    cfg = ExperimentConfig(
        root=str(root),
        methods=("blur",),
        retrain=("blur",),
        seeds=(3,),
        epochs=2,
        train_options={"batch_p": 4, "random_erasing": 0.5},
        out_dir=str(out),
    )
    return run_experiment(cfg, progress=False)


def test_the_grid_twice_gives_identical_tables(synthetic_root, tmp_path):
    import torch

    first, first_q = _run(synthetic_root, tmp_path / "a")
    # disturb every global generator a careless pipeline would read
    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)
    torch.rand(17)
    second, second_q = _run(synthetic_root, tmp_path / "b")
    assert list(first["condition"]) == ["original", "blur", "blur (query only)", "blur (retrained)"]
    assert (first["status"] == "ok").all()
    pd.testing.assert_frame_equal(first[METRICS], second[METRICS])
    pd.testing.assert_frame_equal(first_q, second_q)
    # and the retrained model really is another model: the test can see a difference
    assert not np.array_equal(
        first_q[first_q["condition"] == "blur"]["ap"].to_numpy(),
        first_q[first_q["condition"] == "blur (retrained)"]["ap"].to_numpy(),
    )
