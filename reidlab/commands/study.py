"""``reidlab study``: run the study notebooks with papermill (see reidlab.study)."""

from __future__ import annotations

from pathlib import Path


def add_arguments(p) -> None:
    from reidlab.commands.argtypes import key_value, positive_float

    p.add_argument("notebooks", nargs="*", help="notebooks to run (default: all in notebooks/)")
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
        default=2.0,
        help="points of mAP/rank-1 allowed by --check",
    )


def run(args) -> int:
    from reidlab import study

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
    print(f"executed notebooks and results are in {run_dir}")
    print(f"report: {run_dir / 'report.md'}")
    failed = [e for e in summary["notebooks"] if e["status"] != "ok"] + summary["failed_cells"]
    if args.check:
        from reidlab.paths import baseline_dir

        base = (
            Path(args.check)
            if args.check.endswith(".csv")
            else (baseline_dir() or Path(".")) / f"{args.check}.csv"
        )
        results = run_dir / "03_anonymization_cost" / "results.csv"
        table = study.check_regression(results, base, tolerance=args.tolerance)
        print(table.to_string(index=False))
        if not table.attrs["ok"]:
            print(f"regression check FAILED against {base}")
            return 1
        print(f"regression check passed against {base} (tolerance {args.tolerance} points)")
    return 1 if failed else 0
