"""``reidlab study``: run the study notebooks with papermill (see reidlab.study)."""

from __future__ import annotations

import json
from pathlib import Path


def add_arguments(p) -> None:
    p.add_argument("notebooks", nargs="*", help="notebooks to run (default: all in notebooks/)")
    p.add_argument("--run-id", help="folder name under papermill_runs/ (default: run-<timestamp>)")
    p.add_argument("--smoke", action="store_true", help="tiny parameters (what the tests use)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="parameter for every notebook that declares it (VALUE parsed as JSON when possible)")
    p.add_argument("--keep-going", action="store_true", help="run the remaining notebooks after a failure")
    p.add_argument("--check", metavar="BASELINE_CSV", nargs="?", const="default",
                   help="compare the run's results.csv with papermill_runs/baselines/<name>.csv")
    p.add_argument("--tolerance", type=float, default=2.0, help="points of mAP/rank-1 allowed by --check")


def _parse_params(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"reidlab study: -p expects NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def run(args) -> int:
    from reidlab import study

    params = _parse_params(args.param)
    if args.smoke:
        params.setdefault("smoke", True)
    nbs = [Path(n) for n in args.notebooks] or None
    summary = study.run_study(nbs, run_id=args.run_id, parameters=params, keep_going=args.keep_going)
    run_dir = Path(summary["run_dir"])
    for e in summary["notebooks"]:
        print(f"{e['status']:7s} {e['seconds']:7.1f}s  {e['output']}")
    print(f"executed notebooks and results are in {run_dir}")
    report = run_dir / "03_anonymization_cost" / "report.md"
    if report.exists():
        print(f"report: {report}")
    failed = [e for e in summary["notebooks"] if e["status"] != "ok"]
    if args.check:
        base = study.BASELINE_DIR / f"{args.check}.csv" if not args.check.endswith(".csv") else Path(args.check)
        results = run_dir / "03_anonymization_cost" / "results.csv"
        table = study.check_regression(results, base, tolerance=args.tolerance)
        print(table.to_string(index=False))
        if not table.attrs["ok"]:
            print(f"regression check FAILED against {base}")
            return 1
        print(f"regression check passed against {base} (tolerance {args.tolerance} points)")
    return 1 if failed else 0
