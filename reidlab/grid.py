"""Run the study grid's cells in parallel: a local process pool, or a Dask distributed cluster.

A cell is one (dataset, model, seed) :func:`reidlab.experiment.run_experiment` call (see
:mod:`reidlab.grid_config`). :func:`run_cells` runs every cell on the chosen engine and returns
their results concatenated in the cells' order (not the order they finish in). A cell that raises,
or whose process dies, becomes ``status="failed"`` rows carrying the error; the other cells run.

Threads: each cell runs in its own process and first sets its torch / OpenMP / MKL thread count
to the planned value (:func:`plan`): the cores this process may use, divided among the cells that
run at once, so parallel cells never oversubscribe the machine. ``docs/cluster.md`` says why Dask
and how to run on an existing cluster.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity (``os.cpu_count()`` where there is none),
    capped by a cgroup v2 CPU quota (containers)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        n = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            n = min(n, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return max(1, n)


def plan(
    cells: int, workers: int | None = None, threads: int | None = None, available=None
) -> tuple[int, int]:
    """``(parallel cells, torch threads per cell)`` for ``cells`` cells on ``available`` cores.

    ``workers`` (default: one cell per core, at most ``cells``) and ``threads`` (default:
    ``available // parallel``, at least 1) override. One single-threaded cell per core is the
    default because a grid cell (a small CNN trained and evaluated on small crops) scales
    better across processes than across intra-op threads (its batches are too small to keep many
    threads busy), and threads beyond the free cores cost most: tests/conftest.py measured OSNet
    6-12x slower with two threads per process than with one on a loaded 2-core machine; the
    smoke grid (``configs/smoke.yaml``, 2 cells) took 198 s as 2 cells x 1 thread and 238 s as
    1 cell x 2 threads there (load average 12, identical numbers).
    """
    available = available or available_cores()
    parallel = max(1, min(workers or available, cells or 1))
    return parallel, threads or max(1, available // parallel)


def apply_threads(n: int) -> None:
    """Use ``n`` threads: torch's intra-op pool, and OpenMP/MKL for processes started from here."""
    import torch

    for var in THREAD_ENV:
        os.environ[var] = str(n)
    torch.set_num_threads(n)


def planned_conditions(cfg) -> list[dict]:
    """The rows :func:`~reidlab.experiment.run_experiment` makes for the one-model, one-seed
    ``cfg`` (model, seed, condition, method, anonymized, train_data, dataset), in its order:
    the rows a cell gets when it fails as a whole."""
    conditions = [("original", "none", "none", "original")]
    for m in cfg.methods:
        conditions.append((m, m, "query+gallery", "original"))
        if cfg.query_only:
            conditions.append((f"{m} (query only)", m, "query", "original"))
    conditions += [(f"{m} (retrained)", m, "query+gallery", f"anonymized:{m}") for m in cfg.retrain]
    keys = ("condition", "method", "anonymized", "train_data")
    return [
        {"model": cfg.models[0], "seed": cfg.seeds[0]}
        | dict(zip(keys, c))
        | {"dataset": cfg.dataset}
        for c in conditions
    ]


def failed_rows(cfg, error: str):
    """A failed cell's rows: every planned condition, ``status="failed"``, the error, NaN metrics."""
    import pandas as pd

    from reidlab.experiment import METRIC_COLUMNS

    nan = {k: float("nan") for k in METRIC_COLUMNS}
    return pd.DataFrame(
        [r | {"status": "failed", "error": error} | nan for r in planned_conditions(cfg)]
    )


def run_cell(cfg, threads: int | None = None, parallel_by_host: dict | None = None, gpu=None):
    """Run one cell here (a pool process or a Dask worker): set the thread count, then
    :func:`~reidlab.experiment.run_experiment`. ``threads`` None: this machine's cores divided by
    the cells it runs at once (``parallel_by_host[host]``, default 1). ``gpu``: the one GPU this
    cell may see (``CUDA_VISIBLE_DEVICES``, set before torch starts CUDA)."""
    import socket

    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    if threads is None:
        host = _worker_host() or socket.gethostname()
        threads = max(1, available_cores() // (parallel_by_host or {}).get(host, 1))
    apply_threads(threads)
    from reidlab.experiment import run_experiment

    t0 = time.perf_counter()
    results, per_query = run_experiment(cfg, progress=False)
    return {
        "results": results,
        "per_query": per_query,
        "seconds": round(time.perf_counter() - t0, 1),
        "threads": threads,
        "host": socket.gethostname(),
    }


def _worker_host() -> str | None:
    """The Dask worker's host (as the scheduler names it), or None outside a worker."""
    try:
        from distributed import get_worker

        return get_worker().address.rsplit(":", 1)[0].split("://")[-1]
    except (ImportError, ValueError):
        return None


def _gpu_ids(device: str | None) -> list[str]:
    """The GPUs to hand out one per training cell: only for ``device: cuda`` (an explicit
    ``cuda:N`` is left alone); the visible ones when ``CUDA_VISIBLE_DEVICES`` is set."""
    if device != "cuda":
        return []
    import torch

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [v for v in visible.split(",") if v] if visible else []
    return ids or [str(i) for i in range(torch.cuda.device_count())]


def _local(cells, parallel: int, threads: int, device, run=run_cell):
    """Yield ``(index, outcome)`` as cells finish; each cell in its own spawned process.

    One single-process ``ProcessPoolExecutor`` per cell, ``parallel`` at a time, rather than one
    shared pool: a worker that dies breaks its whole pool (``BrokenProcessPool`` for every
    pending task), so a shared pool could not tell which cell killed it nor run the rest. Spawn,
    not fork: forking a process that has started torch's threads is unsafe. ``run``: the
    function each process runs (a module-level function; tests pass stand-ins).
    """
    import multiprocessing
    import queue
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed

    from reidlab.grid_config import trains

    ctx = multiprocessing.get_context("spawn")
    gpus = _gpu_ids(device)
    free = queue.Queue()
    for g in gpus:
        free.put(g)

    def one(i):
        cfg = cells[i]
        exclusive = bool(gpus) and trains(cfg)  # one GPU per training cell; evaluation shares
        gpu = free.get() if exclusive else (gpus[i % len(gpus)] if gpus else None)
        try:
            with ProcessPoolExecutor(1, mp_context=ctx) as ex:
                return ex.submit(run, cfg, threads, None, gpu).result()
        finally:
            if exclusive:
                free.put(gpu)

    with ThreadPoolExecutor(parallel, thread_name_prefix="grid-cell") as pool:
        futures = {pool.submit(one, i): i for i in range(len(cells))}
        for f in as_completed(futures):
            yield futures[f], (f.exception() or f.result())


def _dask(cells, address: str | None, parallel: int, threads: int | None, device):
    """Yield ``(index, outcome)`` from a Dask cluster: the scheduler at ``address``, or a
    ``LocalCluster`` of ``parallel`` single-threaded worker processes (``"local"`` / None).

    Worker processes, not threads: torch's random generator and thread count are per process,
    so two cells training in threads of one process would change each other's numbers.
    """
    import uuid
    from collections import Counter

    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        from reidlab.errors import ReidlabError

        raise ReidlabError(
            "engine dask needs Dask distributed: pip install 'reidlab[cluster]'"
        ) from None

    from reidlab.grid_config import trains

    cuda = device == "cuda"  # an explicit cuda:N is used as given, without GPU requests
    cluster = None
    if address in (None, "local"):
        cluster = LocalCluster(
            n_workers=parallel,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            resources={"GPU": 1} if cuda else None,
        )
        address = cluster.scheduler_address
    try:
        with Client(address) as client:
            try:
                info = client.scheduler_info(n_workers=-1)  # all workers (newer distributed)
            except TypeError:
                info = client.scheduler_info()
            workers = info["workers"].values()
            by_host = Counter()
            for w in workers:
                by_host[w["host"]] += w["nthreads"]
            tag = uuid.uuid4().hex[:8]
            futures = {}
            for i, cfg in enumerate(cells):
                f = client.submit(
                    run_cell,
                    cfg,
                    threads,  # None on a remote cluster: planned on the worker's host
                    dict(by_host),
                    None,
                    key=f"reidlab-cell-{i}-{tag}",
                    pure=False,
                    # one GPU per training cell; evaluation-only cells ask for none and share
                    resources={"GPU": 1} if cuda and trains(cfg) else None,
                )
                futures[f] = i
            for f in as_completed(futures):
                try:
                    yield futures[f], f.result()
                except Exception as e:  # noqa: BLE001 (the cell's error, or KilledWorker)
                    yield futures[f], e
    finally:
        if cluster is not None:
            cluster.close()


def run_cells(
    cells: list,
    *,
    engine: str = "local",
    address: str | None = None,
    workers: int | None = None,
    threads: int | None = None,
    device: str | None = None,
    progress: bool = True,
) -> dict:
    """Run ``cells`` (ExperimentConfigs) on ``engine``; returns ``results`` and ``per_query``
    (the cells' tables concatenated in the cells' order; ``per_query`` gains a ``dataset``
    column), ``cells`` (per cell: dataset, model, seed, status, seconds, threads, error) and the
    plan (``engine``, ``parallel``, ``threads``, ``available_cores``).

    On a remote cluster (``address`` other than ``"local"``) ``threads`` None is planned on each
    worker's host: its cores divided by the Dask threads running there.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from reidlab.study import describe_error

    parallel, planned = plan(len(cells), workers, threads)
    remote = engine == "dask" and address not in (None, "local")
    cell_threads = threads if remote else planned
    log.info(
        "grid: %d cells on %s, %d at a time, %s threads each",
        len(cells),
        engine,
        parallel,
        cell_threads or "planned",
    )
    if engine == "local":
        outcomes = _local(cells, parallel, planned, device)
    elif engine == "dask":
        outcomes = _dask(cells, address, parallel, cell_threads, device)
    else:
        raise ValueError(f"engine must be local or dask, got {engine!r}")
    done: dict[int, dict] = {}
    t0 = time.perf_counter()
    bar = tqdm(total=len(cells), desc="grid cells", unit="cell", disable=not progress)
    for i, out in outcomes:
        cfg = cells[i]
        if isinstance(out, BaseException):
            err = describe_error(out)
            out = {"results": failed_rows(cfg, err), "per_query": pd.DataFrame(), "error": err}
            out["seconds"] = round(time.perf_counter() - t0, 1)  # since the grid started
        bad = out["results"]["status"] != "ok"
        status = "failed" if bad.any() else "ok"
        done[i] = out | {"status": status}
        line = (
            f"{status:6s} {out['seconds']:7.1f}s  {cfg.dataset} {cfg.models[0]} seed {cfg.seeds[0]}"
            + (f"  ({bad.sum()} of {len(bad)} conditions failed)" if bad.any() else "")
        )
        log.debug("grid cell %s", line)
        bar.update()
        if progress:
            tqdm.write(line)
    bar.close()
    results = pd.concat([done[i]["results"] for i in range(len(cells))], ignore_index=True)
    pqs = []
    for i, cfg in enumerate(cells):
        pq = done[i]["per_query"]
        if len(pq):
            pqs.append(pq.assign(dataset=cfg.dataset) if "dataset" not in pq else pq)
    per_query = pd.concat(pqs, ignore_index=True) if pqs else pd.DataFrame()
    if len(per_query):
        per_query = per_query[["dataset"] + [c for c in per_query.columns if c != "dataset"]]
    summary = [
        {
            "dataset": cfg.dataset,
            "model": cfg.models[0],
            "seed": cfg.seeds[0],
            "status": done[i]["status"],
            "seconds": done[i]["seconds"],
            "threads": done[i].get("threads"),
            "error": done[i].get("error", ""),
            "out_dir": cfg.out_dir,
        }
        for i, cfg in enumerate(cells)
    ]
    return {
        "results": results,
        "per_query": per_query,
        "cells": summary,
        "engine": engine,
        "address": address,
        "parallel": parallel,
        "threads": cell_threads,
        "available_cores": available_cores(),
    }
