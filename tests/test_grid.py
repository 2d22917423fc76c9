"""The study grid from a YAML file: checks (one line per error, naming file and key), expansion
into cells, the thread plan, the same results table from the process pool and from a Dask
cluster, and a grid with failing cells that completes, reports them and exits non-zero."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from reidlab.grid import plan, planned_conditions
from reidlab.grid_config import (
    GridConfigError,
    expand,
    grid_from_dict,
    load_grid,
    trains,
)

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"


def _write(tmp_path, text: str, name: str = "grid.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("seed: 0\n", "seed: unknown key; known: datasets,"),
        ("seeds: zero\n", "seeds: must be a list of integers, got 'zero'"),
        ("seeds: [0, 0]\n", "seeds: lists a seed twice"),
        ("workers: 0\n", "workers: must be > 0, got 0"),
        ("epochs: true\n", "epochs: must be a number, got True"),
        ("engine: ray\n", "engine: must be one of local, dask, got 'ray'"),
        ("device: 0\n", "device: must be a string, got 0"),
        ("models: []\n", "models: must name at least one"),
        ("methods: [blurr]\n", "methods: unknown method 'blurr'; known: blur,"),
        ("methods: {blur: 1}\n", "methods: must be a list of names"),
        ("weights: {osnet_x0_25: w.pth}\n", "weights.osnet_x0_25: is not listed; listed: tiny"),
        ("method_settings: {zero: {}}\nmethods: [blur]\n", "method_settings.zero: is not listed"),
        ("datasets: [{name: synthetic, rooot: x}]\n", "datasets[0].rooot: unknown key"),
        ("datasets: [{name: market}]\n", "datasets[0].name: unknown dataset 'market'"),
        ("datasets: [{name: market1501, generate: {num_ids: 3}}]\n", "datasets[0].generate:"),
        ("detector: face\n", "detector: unknown 'face'"),
        ("recipe: huge\n", "recipe: unknown 'huge'"),
        ("mask: circle\n", "mask: must be one of box, ellipse, segmentation, got 'circle'"),
        ("mask: segmentation\n", "mask: segmentation needs a detector with face maps; oracle"),
        ("eval: {k1: 0}\n", "eval: k1 must be > 0, got 0"),
        ("eval: {k3: 1}\n", "eval: unknown EvalConfig setting(s) k3"),
        ("address: tcp://h:8786\n", "address: is for engine: dask"),
        (
            "datasets: [{name: market1501, root: $REIDLAB_TEST_UNSET_VAR/m}]\n",
            "datasets[0].root: $REIDLAB_TEST_UNSET_VAR is not set",
        ),
        ("- just\n- a list\n", "(top level): must be a mapping"),
        ("models: [tiny\n", ": line 2: not valid YAML"),
    ],
)
def test_a_bad_grid_file_is_one_line_naming_the_file_and_the_key(tmp_path, text, expected):
    os.environ.pop("REIDLAB_TEST_UNSET_VAR", None)
    path = _write(tmp_path, text)
    with pytest.raises(GridConfigError) as e:
        load_grid(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: ") and expected in msg and "\n" not in msg, msg


def test_cli_refuses_a_bad_grid_file_with_one_line_and_exit_2(tmp_path, capsys):
    from reidlab.cli import main

    bad = _write(tmp_path, "datasets: [synthetic]\nseeds: [0]\nworkrs: 2\n")
    assert main(["study", "--config", str(bad), "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{bad}: workrs: unknown key" in err, err
    assert main(["study", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: cannot read the grid file" in capsys.readouterr().err
    assert main(["study", "--config", str(bad), "--smoke"]) == 2
    assert "--smoke apply to notebook runs" in capsys.readouterr().err
    assert main(["study", "--engine", "dask"]) == 2  # grid flags without a grid file
    assert "--engine applies to a grid file" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # nothing ran


def test_expansion_one_cell_per_dataset_model_seed(tmp_path, monkeypatch):
    monkeypatch.setenv("REIDLAB_TEST_DATA", str(tmp_path / "data"))
    (tmp_path / "sub").mkdir()
    path = _write(
        tmp_path,
        """
        datasets:
          - {name: synthetic, root: syn}
          - {name: market1501, root: "${REIDLAB_TEST_DATA}/m", options: {strict: false}}
        models: [tiny, osnet_x0_25]
        weights: {osnet_x0_25: "${REIDLAB_TEST_UNSET_VAR:-w}/osnet.pth"}
        methods: [zero]
        method_settings: {zero: {value: 0.5}}
        retrain: []
        seeds: [3, 1]
        epochs: 2
        device: cpu
        eval: {distance: cosine}
        """,
        name="sub/grid.yaml",
    )
    cells = expand(load_grid(path), tmp_path / "run")
    # written out by hand: datasets, then models, then seeds as listed; the model with weights
    # and nothing to retrain is evaluated once (seed 3, the first)
    assert [(c.dataset, c.models, c.seeds) for c in cells] == [
        ("synthetic", ("tiny",), (3,)),
        ("synthetic", ("tiny",), (1,)),
        ("synthetic", ("osnet_x0_25",), (3,)),
        ("market1501", ("tiny",), (3,)),
        ("market1501", ("tiny",), (1,)),
        ("market1501", ("osnet_x0_25",), (3,)),
    ]
    syn, mkt = cells[0], cells[5]
    assert syn.root == str(tmp_path / "sub" / "syn")  # relative to the file's folder
    assert mkt.root == str(tmp_path / "data" / "m") and mkt.dataset_options == {"strict": False}
    assert mkt.weights == {"osnet_x0_25": str(tmp_path / "sub" / "w" / "osnet.pth")}
    assert syn.weights == {} and trains(syn) and not trains(mkt)
    assert syn.out_dir == str(tmp_path / "run" / "cells" / "synthetic-tiny-seed3")
    assert syn.eval.device == "cpu" and syn.eval.distance == "cosine" and syn.epochs == 2
    assert syn.methods == ("zero",) and syn.method_settings == {"zero": {"value": 0.5}}
    assert syn.query_only and syn.retrain == () and syn.detector == "oracle"
    # retraining trains every seed, weights or not
    spec = grid_from_dict({"models": ["osnet_x0_25"], "weights": {"osnet_x0_25": "/w.pth"}})
    spec.seeds, spec.retrain = (0, 1), ("blur",)
    assert [c.seeds for c in expand(spec)] == [(0,), (1,)]
    assert all(trains(c) for c in expand(spec))


def test_the_checked_in_grids_load_and_expand(monkeypatch):
    smoke = expand(load_grid(CONFIGS / "smoke.yaml"))
    assert [(c.dataset, c.models, c.seeds, c.epochs) for c in smoke] == [
        ("synthetic", ("tiny",), (0,), 1),
        ("synthetic", ("tiny",), (1,), 1),
    ]
    spec = load_grid(CONFIGS / "default.yaml")
    assert spec.datasets[0].generate == {"num_ids": 100, "uniform_fraction": 0.5}
    (c0, c1) = expand(spec)
    assert c0.methods == ("blur", "pixelate", "fill", "zero") and c0.retrain == ("blur",)
    assert c0.epochs == 48 and (c0.seeds, c1.seeds) == ((0,), (1,)) and c0.query_only
    monkeypatch.delenv("REIDLAB_DATA", raising=False)
    (mkt,) = expand(load_grid(CONFIGS / "market1501.yaml"))
    assert mkt.root == str(REPO.parent / "shared" / "market1501")
    assert mkt.weights == {
        "osnet_x0_25": str(REPO.parent / "shared" / "weights" / "osnet_x0_25_market1501.pth")
    }
    assert (mkt.models, mkt.seeds, mkt.retrain, mkt.detector) == (
        ("osnet_x0_25",),
        (0,),
        (),
        "centerface",
    )
    assert mkt.methods == ("blur", "pixelate", "fill", "zero") and not trains(mkt)
    monkeypatch.setenv("REIDLAB_DATA", "/data/reid")
    assert expand(load_grid(CONFIGS / "market1501.yaml"))[0].root == "/data/reid/market1501"


def test_thread_plan_divides_the_cores_among_parallel_cells(monkeypatch):
    assert plan(2, available=2) == (2, 1)  # one single-threaded cell per core
    assert plan(2, available=16) == (2, 8)  # fewer cells than cores: the cores are shared out
    assert plan(40, available=16) == (16, 1)
    assert plan(1, available=2) == (1, 2)  # notebook kernels run one at a time
    assert plan(8, workers=3, available=16) == (3, 5)
    assert plan(8, workers=3, threads=2, available=16) == (3, 2)
    assert plan(2, workers=4, available=1) == (2, 1)
    from reidlab import grid

    monkeypatch.setattr(grid.os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    assert grid.available_cores() in (1, 2, 3)  # three, or fewer under a cgroup CPU quota
    assert plan(4)[0] == grid.available_cores()


def _smoke_spec(synthetic_root, **changes):
    spec = load_grid(CONFIGS / "smoke.yaml")
    spec.datasets[0].root, spec.datasets[0].generate = str(synthetic_root), {}
    for k, v in changes.items():
        setattr(spec, k, v)
    return spec


COMPARED = ["dataset", "model", "seed", "condition", "status", "mAP", "rank1", "rank5", "mINP"]


def test_smoke_grid_gives_the_same_table_in_a_process_pool_and_on_a_dask_cluster(
    synthetic_root, tmp_path
):
    from distributed import LocalCluster

    from reidlab.grid import run_cells

    spec = _smoke_spec(synthetic_root)
    local = run_cells(expand(spec, tmp_path / "local"), engine="local", workers=2, progress=False)
    assert local["parallel"] == 2 and local["threads"] == max(1, local["available_cores"] // 2)
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        dask = run_cells(
            expand(spec, tmp_path / "dask"),
            engine="dask",
            address=cluster.scheduler_address,
            progress=False,
        )
    a, b = local["results"], dask["results"]
    assert (a["status"] == "ok").all() and len(a) == 2 * 5  # 2 seeds x (original + 2 x 2)
    assert list(a["seed"]) == [0] * 5 + [1] * 5  # the cells' order, not the finishing order
    pd.testing.assert_frame_equal(a[COMPARED], b[COMPARED])  # metrics equal exactly
    # every cell ran with the planned thread count, on both engines (cores / parallel cells)
    assert set(a["runtime.torch_threads"]) == set(b["runtime.torch_threads"]) == {local["threads"]}
    pd.testing.assert_frame_equal(local["per_query"], dask["per_query"])
    assert list(local["per_query"].columns[:4]) == ["dataset", "model", "seed", "condition"]
    # each cell's own table is the rows of the concatenated one
    own = pd.read_csv(tmp_path / "local" / "cells" / "synthetic-tiny-seed1" / "results.csv")
    assert list(own["mAP"]) == list(a[a["seed"] == 1]["mAP"])


def test_failing_cells_are_recorded_the_rest_completes_and_the_exit_code_is_1(
    synthetic_root, tmp_path, capsys
):
    from reidlab.cli import main

    grid = _write(
        tmp_path,
        f"""
        datasets:
          - {{name: synthetic, root: {json.dumps(str(synthetic_root))}}}
          - {{name: market1501, root: {json.dumps(str(tmp_path / "no_market"))}}}
        models: [tiny]
        methods: [zero, blur]
        method_settings: {{blur: {{sigma_rel: -1}}}}
        retrain: []
        seeds: [0]
        epochs: 1
        train_options: {{batch_p: 4, iters_per_epoch: 2}}
        device: cpu
        """,
    )
    # on a Dask cluster started by the grid itself (the pool's failures: the test below)
    code = main(
        ["study", "--config", str(grid), "--runs-dir", str(tmp_path), "--run-id", "r"]
        + ["--engine", "dask", "--address", "local", "--workers", "2"]
    )
    out = capsys.readouterr().out
    run = tmp_path / "r"
    assert code == 1
    results = pd.read_csv(run / "results.csv")
    syn, mkt = results[results.dataset == "synthetic"], results[results.dataset == "market1501"]
    # the synthetic cell ran: its blur conditions failed on the bad setting, the rest is fine
    assert list(syn["condition"]) == [
        "original",
        "zero",
        "zero (query only)",
        "blur",
        "blur (query only)",
    ]
    assert list(syn["status"]) == ["ok", "ok", "ok", "failed", "failed"]
    assert syn["mAP"].iloc[:3].notna().all() and syn["mAP"].iloc[3:].isna().all()
    assert syn["error"].iloc[3].startswith("ValueError: sigma_rel must be > 0")
    # the Market-1501 cell raised as a whole (no such folder): every planned row, failed
    assert (mkt["status"] == "failed").all() and mkt["mAP"].isna().all()
    assert mkt["error"].str.contains("DatasetError").all()
    assert mkt["error"].str.contains("no_market").all()
    cols = ["condition", "method", "anonymized", "train_data"]
    assert mkt[cols].values.tolist() == syn[cols].values.tolist()  # planned == what ran
    summary = json.loads((run / "summary.json").read_text())
    assert [c["status"] for c in summary["cells"]] == ["failed", "failed"]  # both have failures
    assert len(summary["failed_cells"]) == 2 + 5
    report = (run / "report.md").read_text()
    assert "Failed cells (7 of 10)" in report and "no_market" in report and "sigma_rel" in report
    assert "cells: 2, 2 with failures" in report
    assert "no_market" in (run / "report.html").read_text()
    assert "failed cell: market1501 tiny seed 0 original: DatasetError" in out
    assert f"report: {run / 'report.html'} (markdown: {run / 'report.md'})" in out
    per_query = pd.read_parquet(run / "per_query.parquet")
    assert set(per_query["condition"]) == {"original", "zero", "zero (query only)"}


def _exit_or_answer(cfg, threads, parallel_by_host, gpu):
    """Stand-in for run_cell: the seed-1 cell's process dies, seed 2 raises, the others answer."""
    if cfg.seeds[0] == 1:
        os._exit(3)
    if cfg.seeds[0] == 2:
        raise ValueError("seed 2 is bad")
    return {"seeds": cfg.seeds, "threads": threads}


def test_a_dead_cell_process_fails_only_its_cell():
    from reidlab import grid
    from reidlab.study import describe_error

    cells = expand(grid_from_dict({"seeds": [0, 1, 2, 3]}))
    outcomes = dict(grid._local(cells, 2, 1, None, run=_exit_or_answer))
    assert sorted(outcomes) == [0, 1, 2, 3]
    assert "BrokenProcessPool" in describe_error(outcomes[1])
    assert describe_error(outcomes[2]) == "ValueError: seed 2 is bad"
    assert outcomes[0] == {"seeds": (0,), "threads": 1} and outcomes[3]["seeds"] == (3,)
    assert len(planned_conditions(cells[1])) == 1 + 4 * 2 + 1  # original, 4 methods x 2, retrain
