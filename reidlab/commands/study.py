"""``reidlab study``: run the study notebooks with papermill, or a grid file (``--config``) in a
process pool or on a Dask cluster (see reidlab.study, reidlab.grid)."""

from __future__ import annotations

from pathlib import Path


def add_arguments(p) -> None:
    from reidlab.commands.argtypes import key_value, positive_float, positive_int

    p.add_argument("notebooks", nargs="*", help="notebooks to run (default: all in notebooks/)")
    grid = p.add_argument_group("grid file (instead of the notebooks; flags override the file)")
    grid.add_argument(
        "--config",
        metavar="FILE",
        help="run the grid in this YAML file (configs/smoke.yaml, configs/default.yaml, "
        "configs/market1501.yaml; see reidlab.grid_config)",
    )
    grid.add_argument(
        "--engine", choices=("local", "dask"), help="local process pool or a Dask cluster"
    )
    grid.add_argument(
        "--address",
        metavar="ADDR",
        help="Dask scheduler (tcp://host:8786), or 'local' for a cluster started here",
    )
    grid.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        help="grid cells or notebooks run at once (default: one per core)",
    )
    grid.add_argument(
        "--threads",
        type=positive_int,
        metavar="N",
        help="torch threads per cell or kernel (default: available cores / parallel cells)",
    )
    p.add_argument("--run-id", help="folder name under the runs folder (default: run-<timestamp>)")
    p.add_argument(
        "--runs-dir",
        help="where runs go (default: papermill_runs/ of the checkout, "
        "$REIDLAB_RUNS; see reidlab.paths)",
    )
    p.add_argument("--smoke", action="store_true", help="tiny parameters (what the tests use)")
    p.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        type=key_value,
        help="parameter for every notebook that declares it (VALUE parsed as JSON when possible)",
    )
    p.add_argument(
        "--fail-fast",
        dest="keep_going",
        action="store_false",
        help="stop at the first failing notebook (default: run them all, exit 1 if any failed)",
    )
    p.add_argument(
        "--check",
        metavar="BASELINE_CSV",
        nargs="?",
        const="default",
        help="compare the run's results.csv with papermill_runs/baselines/<name>.csv",
    )
    p.add_argument(
        "--tolerance",
        type=positive_float,
        default=None,
        help="points of mAP/rank-1 allowed by --check between a condition's means over seeds "
        "(default: the t-interval of the baseline's pooled seed-to-seed spread; "
        "see reidlab.regression)",
    )


def run_config(args) -> int:
    """``--config FILE``: run the grid, print each failure and where the run is."""
    from reidlab import study
    from reidlab.errors import ReidlabError

    ignored = [
        flag
        for flag, given in (
            ("notebook paths", args.notebooks),
            ("--smoke", args.smoke),
            ("-p/--param", args.param),
        )
        if given
    ]
    if ignored:
        raise ReidlabError(
            f"--config runs a grid file; {', '.join(ignored)} apply to notebook runs"
        )
    summary = study.run_grid_study(
        args.config,
        run_id=args.run_id,
        runs_dir=args.runs_dir,
        engine=args.engine,
        address=args.address,
        workers=args.workers,
        threads=args.threads,
    )
    run_dir = Path(summary["run_dir"])
    for c in summary["failed_cells"]:
        print(
            f"failed cell: {c['dataset']} {c['model']} seed {c['seed']} {c['condition']}: "
            f"{c['error']}"
        )
    print(f"grid results are in {run_dir / 'results.csv'}")
    print_findings(summary)
    code = 1 if summary["failed_cells"] else 0
    if args.check:
        code = max(code, check(args, run_dir / "results.csv"))
    return code


def print_findings(summary: dict) -> None:
    """The run's three most important lines, then where its HTML and markdown reports are."""
    findings = summary.get("findings") or []
    if findings:
        print("findings:")
        for line in findings[:3]:
            print(f"  - {line}")
    print(f"report: {summary['report']['html']} (markdown: {summary['report']['md']})")


def check(args, results: Path) -> int:
    """``--check``: the run's results against a baseline (:mod:`reidlab.regression`); 1 when a
    condition moved more than allowed."""
    from reidlab.paths import baseline_dir
    from reidlab.regression import check_regression

    base = (
        Path(args.check)
        if args.check.endswith(".csv")
        else (baseline_dir() or Path(".")) / f"{args.check}.csv"
    )
    table = check_regression(results, base, tolerance=args.tolerance)
    print(table.round(3).to_string(index=False))
    how = (
        f"tolerance {args.tolerance} points"
        if args.tolerance is not None
        else "allowance from the baseline's seed-to-seed spread: "
        + ", ".join(
            f"{col} sd {sd:.2f} ({df} df)" for col, (sd, df) in table.attrs["spread"].items()
        )
    )
    if not table.attrs["ok"]:
        print(f"regression check FAILED against {base} ({how})")
        return 1
    print(f"regression check passed against {base} ({how})")
    return 0


def run(args) -> int:
    from reidlab import study

    if args.config:
        return run_config(args)
    grid_only = [f for f in ("engine", "address") if getattr(args, f) is not None]
    if grid_only:
        from reidlab.errors import ReidlabError

        raise ReidlabError(f"--{grid_only[0]} applies to a grid file (--config FILE)")
    params = dict(args.param)
    if args.smoke:
        params.setdefault("smoke", True)
    nbs = [Path(n) for n in args.notebooks] or None
    missing = [str(n) for n in nbs or [] if not n.is_file()]
    if missing:
        from reidlab.errors import ReidlabError

        raise ReidlabError(f"no such notebook: {', '.join(missing)}")
    summary = study.run_study(
        nbs,
        run_id=args.run_id,
        parameters=params,
        keep_going=args.keep_going,
        runs_dir=args.runs_dir,
        threads=args.threads,
        workers=args.workers,
    )
    run_dir = Path(summary["run_dir"])
    for e in summary["notebooks"]:
        print(
            f"{e['status']:7s} {e['seconds']:7.1f}s  {e['output']}"
            + (f"  ({e['error']})" if e.get("error") else "")
        )
    for c in summary["failed_cells"]:
        print(
            f"failed cell: {Path(c['results']).parent.name}: {c['model']} seed {c['seed']} {c['condition']}: "
            f"{c['error']}"
        )
    print(
        f"executed notebooks and results are in {run_dir} ({summary['parallel']} at a time, "
        f"{summary['threads']} thread{'s' if summary['threads'] != 1 else ''} each)"
    )
    print_findings(summary)
    failed = [e for e in summary["notebooks"] if e["status"] != "ok"] + summary["failed_cells"]
    code = 1 if failed else 0
    if args.check:
        code = max(code, check(args, run_dir / "03_anonymization_cost" / "results.csv"))
    return code
