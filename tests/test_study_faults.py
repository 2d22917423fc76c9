"""The grid and the study runner under faults: a failing cell, a notebook that raises, a kernel
that dies. The rest completes, every failure is in the results table and the report, and the
exit code is non-zero."""

from __future__ import annotations

import json
import os

import nbformat
import pandas as pd
import pytest

from reidlab.experiment import ExperimentConfig, ExperimentError, check_complete, run_experiment
from reidlab.grid import available_cores
from reidlab.report import write_report


def test_failing_cells_are_recorded_and_the_rest_of_the_grid_runs(synthetic_root, tmp_path):
    cfg = ExperimentConfig(
        root=str(synthetic_root),
        models=("tiny", "no_such_model"),
        methods=("zero", "bogus"),
        retrain=(),
        seeds=(0,),
        epochs=1,
        train_options={"batch_p": 4, "iters_per_epoch": 2},
        out_dir=str(tmp_path),
    )
    results, per_query = run_experiment(cfg, progress=False)
    table = results.set_index(["model", "condition"])["status"]
    conditions = ["original", "zero", "zero (query only)", "bogus", "bogus (query only)"]
    assert list(results["condition"]) == conditions * 2  # the whole grid, failures included
    assert [table["tiny", c] for c in conditions] == ["ok", "ok", "ok", "failed", "failed"]
    assert (results[results.model == "no_such_model"]["status"] == "failed").all()
    bogus = results[(results.model == "tiny") & (results.condition == "bogus")].iloc[0]
    assert "ValueError" in bogus["error"] and "bogus" in bogus["error"] and pd.isna(bogus["mAP"])
    assert "no_such_model" in results[results.model == "no_such_model"]["error"].iloc[0]
    # the cells that ran have their per-query APs, the failed ones none
    assert set(per_query["condition"]) == {"original", "zero", "zero (query only)"}
    assert results[results.status == "ok"]["mAP"].notna().all()
    # the table on disk holds the failures too
    on_disk = pd.read_csv(tmp_path / "results.csv")
    assert (on_disk["status"] == "failed").sum() == 7
    report = write_report(results, None, tmp_path)["md"].read_text()
    assert "Failed cells (7 of 10)" in report and "bogus (query only)" in report
    with pytest.raises(ExperimentError, match="7 of 10 grid cells failed.*bogus"):
        check_complete(results)


def _notebook(path, code: str) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("smoke = False\nout_dir = None\ndata_root = None")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(code)]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, str(path))


GRID = """
from pathlib import Path
from reidlab.experiment import ExperimentConfig, check_complete, run_experiment
from reidlab.report import write_report
cfg = ExperimentConfig(root=data_root, methods=("zero", "bogus"), query_only=False, retrain=(), epochs=1,
                       train_options={"batch_p": 4, "iters_per_epoch": 2}, out_dir=out_dir)
results, _ = run_experiment(cfg, progress=False)
write_report(results, None, Path(out_dir))
check_complete(results)
"""


def test_study_runs_every_notebook_and_reports_every_failure(synthetic_root, tmp_path, capsys):
    from reidlab.cli import main

    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _notebook(nbs / "a_grid.ipynb", GRID)
    _notebook(nbs / "b_killed.ipynb", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    _notebook(
        nbs / "c_fine.ipynb",
        "import os\nfrom pathlib import Path\nPath(out_dir).mkdir(parents=True)\n"
        "(Path(out_dir) / 'ran.txt').write_text(os.environ['OMP_NUM_THREADS'])",
    )
    runs = tmp_path / "runs"
    code = main(
        [
            "study",
            *(str(p) for p in sorted(nbs.glob("*.ipynb"))),
            "--runs-dir",
            str(runs),
            "--run-id",
            "faults",
            "-p",
            f"data_root={json.dumps(str(synthetic_root))}",
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    run = runs / "faults"
    summary = json.loads((run / "summary.json").read_text())
    # the notebook after the dead kernel ran, with the planned thread count it was given
    threads = summary["threads"]
    assert (run / "c_fine" / "ran.txt").read_text() == str(threads)
    # a caller's plan, else the cores divided among the kernels running side by side
    parallel = min(available_cores(), 3)
    assert summary["parallel"] == parallel
    expected = os.environ.get("OMP_NUM_THREADS") or str(max(1, available_cores() // parallel))
    assert str(threads) == expected
    status = {e["notebook"]: e["status"] for e in summary["notebooks"]}
    assert status == {"a_grid.ipynb": "failed", "b_killed.ipynb": "failed", "c_fine.ipynb": "ok"}
    killed = next(e for e in summary["notebooks"] if e["notebook"] == "b_killed.ipynb")
    assert "Dead" in killed["error"] or "died" in killed["error"].lower(), killed["error"]
    grid = next(e for e in summary["notebooks"] if e["notebook"] == "a_grid.ipynb")
    assert "ExperimentError" in grid["error"]
    assert [(c["model"], c["condition"]) for c in summary["failed_cells"]] == [("tiny", "bogus")]
    report = (run / "report.md").read_text()
    assert (
        "b_killed.ipynb" in report and "| failed |" in report and "Failed grid cells (1)" in report
    )
    results = pd.read_csv(run / "a_grid" / "results.csv")
    assert list(results["status"]) == ["ok", "ok", "failed"]
    assert "failed cell: a_grid: tiny seed 0 bogus" in out
    assert f"report: {run / 'report.html'} (markdown: {run / 'report.md'})" in out
    assert "findings:" in out and "2 of 3 notebooks failed" in out
