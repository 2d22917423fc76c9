"""Every notebook is committed without outputs, declares a `parameters` cell, and runs headless
under papermill with its small (`smoke`) parameters; any cell error fails the test."""

from __future__ import annotations

import json

import pytest

from reidlab.paths import baseline_dir
from reidlab.regression import check_regression
from reidlab.study import list_notebooks, run_notebook

NOTEBOOKS = list_notebooks()


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 3


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stripped_and_parameterized(nb):
    data = json.loads(nb.read_text())
    carrying = [
        i
        for i, c in enumerate(data["cells"])
        if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count") is not None)
    ]
    assert not carrying, f"{nb.name}: cells {carrying} carry outputs; strip them before committing"
    tagged = [c for c in data["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{nb.name}: needs exactly one cell tagged 'parameters'"
    src = "".join(tagged[0]["source"])
    assert "smoke" in src and "out_dir" in src, (
        f"{nb.name}: parameters must include smoke and out_dir"
    )
    for c in data["cells"]:
        if c["cell_type"] == "code":
            code = "".join(c["source"])
            assert "\nclass " not in "\n" + code, (
                f"{nb.name}: define classes in reidlab/, not in notebooks"
            )


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_headless(nb, tmp_path, synthetic_root):
    params = {"smoke": True, "interactive": False, "data_root": str(synthetic_root)}
    out = run_notebook(nb, tmp_path, params, progress=False)
    executed = json.loads(out.read_text())
    errors = [
        o
        for c in executed["cells"]
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors
    if nb.stem == "03_anonymization_cost":
        # The regression check CI runs: the study's smoke results against the committed baseline
        # (papermill_runs/baselines/smoke.csv, made by this same run on the project's machine).
        # Tolerance 1 point: deterministic on one machine; other CPUs or torch builds may differ
        # by float rounding.
        table = check_regression(
            tmp_path / nb.stem / "results.csv", baseline_dir() / "smoke.csv", tolerance=1.0
        )
        assert table.attrs["ok"], "\n" + table.to_string()
