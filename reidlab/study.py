"""The study runner: execute the parameterized notebooks with papermill, collect what they
write, and check results against a committed baseline.

``reidlab study`` (``make study``) runs every notebook in ``notebooks/`` (sorted by name) into
``papermill_runs/<run-id>/`` (:func:`reidlab.paths.runs_dir`) and prints where they are. Each notebook takes the parameters
``smoke`` (tiny, for tests), ``out_dir`` (where it writes tables and figures) and its own; a
parameter a notebook does not declare is not passed to it (papermill would only warn). Kernels
run one at a time with ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` set to the planned thread count
(:func:`reidlab.grid.plan`; a ``threads`` parameter where a notebook declares one), recorded in
``summary.json``.

``reidlab study --config FILE`` runs a grid file instead (:func:`run_grid_study`): its cells in a
process pool or on a Dask cluster (:mod:`reidlab.grid`), one ``results.csv`` and a report.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)


def list_notebooks(folder: Path | None = None) -> list[Path]:
    """The study notebooks in ``folder`` (default: the checkout's ``notebooks/``), sorted by name."""
    from reidlab.errors import ReidlabError
    from reidlab.paths import notebook_dir

    folder = folder or notebook_dir()
    if folder is None:
        raise ReidlabError(
            "the study notebooks live in a source checkout of reidlab; give notebook paths"
        )
    return sorted(p for p in Path(folder).glob("*.ipynb") if not p.name.startswith("_"))


def notebook_parameters(path: Path) -> set[str]:
    """Names declared in the notebook's cell tagged ``parameters``."""
    import papermill as pm

    return set(pm.inspect_notebook(str(path)))


def new_run_id(prefix: str = "run") -> str:
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"


def run_notebook(
    path: Path,
    out_dir: Path,
    parameters: dict | None = None,
    kernel: str | None = None,
    progress: bool = True,
) -> Path:
    """Execute one notebook with papermill into ``out_dir/<name>`` and return that path.

    Only parameters the notebook declares are passed; ``out_dir`` is always set to a folder
    named after the notebook inside ``out_dir`` when the notebook declares it.
    """
    import papermill as pm

    path, out_dir = Path(path), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    declared = notebook_parameters(path)
    params = {"out_dir": str(out_dir / path.stem)} | dict(parameters or {})
    params = {k: v for k, v in params.items() if k in declared}
    out = out_dir / path.name
    log.info("executing %s -> %s with %s", path.name, out, params)
    pm.execute_notebook(
        str(path),
        str(out),
        parameters=params,
        kernel_name=kernel,
        progress_bar=progress,
        cwd=str(path.parent),
        log_output=False,
    )
    return out


def run_study(
    notebooks: list[Path] | None = None,
    run_id: str | None = None,
    parameters: dict | None = None,
    per_notebook: dict[str, dict] | None = None,
    runs_dir: Path | None = None,
    kernel: str | None = None,
    keep_going: bool = True,
    threads: int | None = None,
    workers: int | None = None,
) -> dict:
    """Run ``notebooks`` (default: all) into ``runs_dir/run_id``; returns a summary dict
    (also written as ``summary.json``, and as the run's report) with each notebook's output
    path, status and seconds, and the failed grid cells found in the notebooks' ``results.csv``.

    Notebooks run ``workers`` at a time (default: one per available core), each kernel with
    ``threads`` torch/OpenMP threads (default: the cores divided among them, so 1 on a 2-core
    machine): :func:`reidlab.grid.plan`, the grid's plan. ``$OMP_NUM_THREADS``, when set, is the
    caller's plan for the threads. Why single-threaded kernels side by side: a run's numbers
    depend on its thread count (``docs/architecture.md``, "Same seed, same numbers"), so one
    thread everywhere gives the same numbers on every machine; and two threads per kernel ran
    6-12x slower when another process used a core, one thread about 1.6x slower than two on an
    idle machine, which the second kernel wins back.

    A notebook that fails (a cell raises, its kernel dies) is recorded as ``failed`` with the
    error, and the remaining notebooks still run (``keep_going=False`` stops at the first one,
    raising its error after writing the summary).
    """
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from tqdm.auto import tqdm

    from reidlab.errors import ReidlabError
    from reidlab.grid import plan
    from reidlab.paths import runs_dir as default_runs_dir

    notebooks = list_notebooks() if notebooks is None else [Path(p) for p in notebooks]
    run_dir = Path(runs_dir or default_runs_dir()) / (run_id or new_run_id())
    run_dir.mkdir(parents=True, exist_ok=True)
    preset = os.environ.get("OMP_NUM_THREADS", "")
    if threads is None and preset.isdigit() and int(preset) > 0:
        threads = int(preset)
    parallel, threads = plan(len(notebooks), workers, threads)
    summary = {
        "run_dir": str(run_dir),
        "parameters": parameters or {},
        "threads": threads,
        "parallel": parallel,
        "notebooks": [],
    }
    jobs = []
    for nb in notebooks:
        # headless: notebooks with sliders render static figures instead
        params = (
            {"interactive": False, "threads": threads}
            | dict(parameters or {})
            | dict((per_notebook or {}).get(nb.stem, {}))
        )
        jobs.append((nb, run_dir, params, kernel, threads, parallel == 1))
    done: dict[int, dict] = {}

    def finish(i: int, entry: dict) -> None:
        done[i] = entry
        summary["notebooks"] = [done[k] for k in sorted(done)]
        _write_summary(run_dir, summary)
        if parallel > 1:
            bar.update(1)
            bar.write(f"{entry['status']:7s} {entry['seconds']:7.1f}s  {entry['notebook']}")
        if entry["status"] != "ok" and not keep_going:
            raise ReidlabError(f"{entry['notebook']}: {entry['error']}")

    if parallel == 1:  # papermill's own cell progress bar shows
        bar = None
        for i, job in enumerate(jobs):
            finish(i, _run_one(*job))
        return summary
    import multiprocessing as mp

    bar = tqdm(total=len(jobs), desc=f"notebooks ({parallel} at a time, {threads} thread each)")
    with ProcessPoolExecutor(parallel, mp_context=mp.get_context("spawn")) as pool:
        pending = {pool.submit(_run_one, *job): i for i, job in enumerate(jobs)}
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for f in finished:
                    finish(pending.pop(f), f.result())
        finally:
            for f in pending:
                f.cancel()
            bar.close()
    return summary


def _run_one(nb: Path, run_dir: Path, params: dict, kernel, threads: int, progress: bool) -> dict:
    """One notebook of a study run, with ``threads`` for its kernel: its summary entry (the
    error as one line, so it crosses a process boundary whatever papermill raised)."""
    t0 = time.perf_counter()
    entry = {"notebook": nb.name, "output": str(Path(run_dir) / nb.name)}
    try:
        with thread_env(threads):
            run_notebook(nb, run_dir, params, kernel=kernel, progress=progress)
        entry["status"] = "ok"
    except Exception as e:  # noqa: BLE001 (any failure of a notebook is recorded, the rest run)
        entry["status"] = "failed"
        entry["error"] = describe_error(e)
    entry["seconds"] = round(time.perf_counter() - t0, 1)
    return entry


@contextlib.contextmanager
def thread_env(threads: int):
    """``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` = ``threads`` for the kernels started inside
    (they inherit this process's environment), restored afterwards."""
    from reidlab.grid import THREAD_ENV

    old = {v: os.environ.get(v) for v in THREAD_ENV}
    os.environ.update({v: str(threads) for v in THREAD_ENV})
    try:
        yield
    finally:
        for v, value in old.items():
            if value is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = value


def run_grid_study(
    config: Path | str,
    *,
    run_id: str | None = None,
    runs_dir: Path | None = None,
    engine: str | None = None,
    address: str | None = None,
    workers: int | None = None,
    threads: int | None = None,
    progress: bool = True,
) -> dict:
    """Run the grid file ``config`` (:mod:`reidlab.grid_config`) into ``runs_dir/run_id``.

    ``engine``, ``address``, ``workers``, ``threads`` override the file's. Writes the cells'
    outputs (``cells/<dataset>-<model>-seed<seed>/``), the concatenated ``results.csv`` and
    ``per_query.parquet``, ``report.md`` (results, failed cells, paired differences vs original,
    the cells and the plan they ran with) and ``summary.json``; returns the summary, whose
    ``failed_cells`` lists every failed row (as :func:`run_study`'s does).
    """
    from dataclasses import asdict

    from reidlab.experiment import write_results
    from reidlab.grid import run_cells
    from reidlab.grid_config import expand, load_grid, resolve_roots
    from reidlab.paths import runs_dir as default_runs_dir

    spec = load_grid(config)
    for key, value in (
        ("engine", engine),
        ("address", address),
        ("workers", workers),
        ("threads", threads),
    ):
        if value is not None:
            setattr(spec, key, value)
    if spec.engine == "local" and spec.address:
        from reidlab.errors import ReidlabError

        raise ReidlabError(f"--address {spec.address} needs --engine dask")
    run_dir = Path(runs_dir or default_runs_dir()) / (run_id or new_run_id("grid"))
    run_dir.mkdir(parents=True, exist_ok=True)
    resolve_roots(spec)  # generate synthetic data once, before the cells run in parallel
    (run_dir / "grid.json").write_text(json.dumps(asdict(spec), indent=2, default=str))
    cells = expand(spec, run_dir)
    out = run_cells(
        cells,
        engine=spec.engine,
        address=spec.address,
        workers=spec.workers,
        threads=spec.threads,
        device=spec.device,
        progress=progress,
    )
    results, per_query = out["results"], out["per_query"]
    write_results(results, run_dir)
    per_query.to_parquet(run_dir / "per_query.parquet", index=False)
    plan = {k: out[k] for k in ("engine", "address", "parallel", "threads", "available_cores")}
    summary = {"run_dir": str(run_dir), "config": str(config), **plan, "cells": out["cells"]}
    summary["failed_cells"] = [
        {
            "results": str(run_dir / "results.csv"),
            "dataset": r.dataset,
            "model": r.model,
            "seed": r.seed,
            "condition": r.condition,
            "error": r.error,
        }
        for r in results[results["status"] != "ok"].itertuples()
    ]
    paths = _write_grid_report(run_dir, spec, results, per_query, summary)
    summary["findings"] = paths["findings"]
    summary["report"] = {"md": str(paths["md"]), "html": str(paths["html"])}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def _write_grid_report(run_dir: Path, spec, results, per_query, summary: dict) -> dict:
    """The grid run's ``report.md`` / ``report.html`` (:func:`reidlab.report.write_report`):
    findings, settings (the rows' and the run's plan), results, failed cells, paired
    differences of every condition against its cell's original."""
    from reidlab.report import write_report as write_experiment_report
    from reidlab.stats import compare_to_baseline

    comparison = None
    if len(per_query):
        keys = ["dataset", "model", "seed"]
        has_base = per_query[per_query["condition"] == "original"][keys].drop_duplicates()
        pq = per_query.merge(has_base, on=keys)  # a cell whose original failed has no baseline
        if len(pq):
            comparison = compare_to_baseline(
                pq, baseline="original", by=("condition", "dataset", "model", "seed")
            )
    cells = summary["cells"]
    bad = [f"{c['dataset']} {c['model']} seed {c['seed']}" for c in cells if c["status"] != "ok"]
    settings = {
        "grid file": summary["config"],
        "engine": spec.engine + (f" at {spec.address}" if spec.address else ""),
        "parallel cells": summary["parallel"],
        "threads per cell": summary["threads"] or "planned per worker host",
        "cells": f"{len(cells)}, {len(bad)} with failures"
        + (f" ({'; '.join(bad)})" if bad else ""),
    }
    return write_experiment_report(
        results, comparison, run_dir, settings=settings, title=f"Study grid {Path(run_dir).name}"
    )


def failed_grid_cells(run_dir: Path) -> list[dict]:
    """Failed cells of every ``results.csv`` under ``run_dir`` (the notebooks' output folders)."""
    import pandas as pd

    from reidlab.experiment import failed_cells

    out = []
    for csv in sorted(Path(run_dir).glob("*/results.csv")):
        try:
            bad = failed_cells(pd.read_csv(csv, keep_default_na=False, na_values=[""]))
        except (OSError, ValueError) as e:
            out.append(
                {
                    "results": str(csv),
                    "model": "?",
                    "seed": "?",
                    "condition": "?",
                    "error": f"unreadable results table: {e}",
                }
            )
            continue
        for r in bad.itertuples():
            out.append(
                {
                    "results": str(csv),
                    "model": r.model,
                    "seed": r.seed,
                    "condition": r.condition,
                    "error": r.error,
                }
            )
    return out


def describe_error(e: BaseException, limit: int = 400) -> str:
    """One line for a notebook's failure: the exception raised in the notebook and the cell it ran
    in (papermill's ``PapermillExecutionError``), or the runner's own (a dead kernel, ...)."""
    if hasattr(e, "ename") and hasattr(e, "evalue"):
        text = f"{e.ename}: {e.evalue} (cell {getattr(e, 'exec_count', '?')})"
    else:
        text = f"{type(e).__name__}: {e}"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _write_summary(run_dir: Path, summary: dict) -> None:
    """``summary.json`` and the run's report (:func:`reidlab.report.write_run_report`: md and
    html, with the findings in ``summary["findings"]``), rewritten after every notebook."""
    from reidlab.report import write_run_report

    summary["failed_cells"] = failed_grid_cells(run_dir)
    paths = write_run_report(run_dir, summary)
    summary["findings"] = paths["findings"]
    summary["report"] = {"md": str(paths["md"]), "html": str(paths["html"])}
    (Path(run_dir) / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
