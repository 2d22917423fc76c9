"""Reports a reader understands: what was found, in sentences computed from the numbers.

- :func:`findings`: sentences from an experiment's results table and its paired comparison
  (:func:`reidlab.stats.compare_to_baseline`): each method's mAP change with its 95% bootstrap CI
  against the reference study's < 1.5 points, zeroing vs blurring, the retraining recovery, and
  why a Wilcoxon-significant change can have a bootstrap CI that includes 0.
- :func:`write_report`: one experiment's ``report.md`` and self-contained ``report.html``
  (findings, settings taken from the results rows, tables, the figures in the folder).
- :func:`write_run_report`: the same for a whole study run (``reidlab study``).
- :func:`experiment_rankings`: one query's ranked gallery under original and anonymized
  conditions, for :func:`reidlab.plots.ranked_rows` (the experiment keeps metrics, not rankings).
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from reidlab.plots import condition_kind, condition_order, method_of
from reidlab.stats import PAIRED_STATS

#: The reference study: Dietlmeier et al., "How important are faces for person
#: re-identification?", ICPR 2020 (mAP and rank-1 in points).
REFERENCE = {
    "citation": "Dietlmeier et al., ICPR 2020",
    "max_drop": 1.5,  # every anonymization cost less than this many mAP points
    "market_blur": -1.39,  # Market1501, blur, mAP change
    "duke_map": (66.3, 64.4, 65.4),  # DukeMTMC mean mAP: original, anonymized, retrained
    "zero_minus_blur": -0.25,  # zeroing about 0.25 mAP points worse than blurring
}

# columns of a comparison table that are statistics, not the identity of a compared pair
_STAT_COLUMNS = {
    "condition",
    "n",
    "boot_seed",
    "n_boot",
    *PAIRED_STATS,
    "p_holm",
    "significant",
    "relative_pct",
}

# results columns that describe how every number was produced (shown as the report's settings)
SETTING_COLUMNS = (
    "dataset",
    "detector",
    "mask",
    "mask_scale",
    "face_rate_query",
    "face_rate_gallery",
    "distance",
    "normalize",
    "flip",
    "ap_definition",
    "cmc_mode",
    "junk",
    "rerank",
    "input_size",
    "pretrained",
    "num_query",
    "num_gallery",
)

_RESULT_COLUMNS = ("model", "seed", "condition", "mAP", "rank1", "rank5", "mINP", "n_queries")
_COMPARISON_COLUMNS = (
    "condition",
    "model",
    "seed",
    "n",
    "delta",
    "ci_low",
    "ci_high",
    "frac_worse",
    "p_wilcoxon",
    "p_holm",
    "significant",
)
STATS_NOTE = (
    "delta: mean over queries of (AP condition - AP original), in mAP points; CI: bootstrap 95% "
    "percentile interval of that mean over queries; p: Wilcoxon signed-rank on the paired "
    "per-query differences (exact zeros dropped), Holm-corrected over the table; significant: "
    "p_holm < 0.05."
)


def _pair_columns(comparison) -> list[str]:
    return [c for c in comparison.columns if c not in _STAT_COLUMNS]


def _label(row, cols: Sequence[str]) -> str:
    return ", ".join(f"{c} {row[c]}" if c != "model" else str(row[c]) for c in cols)


def _ci(row) -> str:
    return f"95% CI {row['ci_low']:+.2f} to {row['ci_high']:+.2f}"


def _within(delta: float) -> bool:
    return abs(delta) <= REFERENCE["max_drop"]


def _method_sentence(method: str, rows, cols: list[str]) -> str:
    """The mAP change of one method on anonymized query+gallery: its largest and smallest."""
    rows = rows.sort_values("delta")
    worst, best = rows.iloc[0], rows.iloc[-1]
    ref = f"the reference study's {REFERENCE['max_drop']:g} points ({REFERENCE['citation']})"
    if len(rows) == 1:
        text = f"{method}: anonymizing faces in query and gallery changed mAP by "
        text += f"{worst['delta']:+.2f} points ({_ci(worst)})"
        text += ", within " + ref if _within(worst["delta"]) else ", more than " + ref
    else:
        n_in = int(sum(_within(d) for d in rows["delta"]))
        text = (
            f"{method}: anonymizing faces in query and gallery changed mAP by "
            f"{worst['delta']:+.2f} to {best['delta']:+.2f} points over {len(rows)} runs "
            f"(lowest: {_label(worst, cols)}, {_ci(worst)}; highest: {_label(best, cols)}, "
            f"{_ci(best)}); {n_in} of {len(rows)} within {ref}"
        )
    if method == "blur":
        text += f"; the reference found {REFERENCE['market_blur']:+.2f} for blur on Market1501"
    return text + "."


def _paired(comparison, a: str, b: str, cols: list[str]):
    """Rows of conditions ``a`` and ``b`` matched on the pair columns (model, seed, ...)."""
    x = comparison[comparison["condition"] == a]
    y = comparison[comparison["condition"] == b]
    if not len(x) or not len(y):
        return None
    return (
        x.merge(y, on=cols, suffixes=("_a", "_b"))
        if cols
        else x.assign(_k=0).merge(y.assign(_k=0), on="_k", suffixes=("_a", "_b"))
    )


def findings(results, comparison) -> list[str]:
    """Sentences saying what an experiment found, computed from its tables (most important first).

    Args:
        results: the results table of :func:`reidlab.experiment.run_experiment` (``status``,
            ``error``, ``model``, ``seed``, ``condition``, metrics); may be empty.
        comparison: :func:`reidlab.stats.compare_to_baseline` against ``"original"`` (``delta``,
            ``ci_low``, ``ci_high`` in points, ``significant``); conditions are named as the
            experiment names them (``blur``, ``blur (query only)``, ``blur (retrained)``).

    Returns:
        Plain-text sentences (no markup): failed cells, each method's mAP change on anonymized
        query+gallery (largest drop first) against the reference study's 1.5 points, queries only,
        zeroing vs blurring, the retraining recovery, and where Wilcoxon and the bootstrap CI
        disagree, why.
    """
    out: list[str] = []
    if results is not None and "status" in results.columns:
        bad = results[results["status"] != "ok"]
        if len(bad):
            cells = "; ".join(
                f"{r.model} seed {r.seed} {r.condition}: {r.error}" for r in bad.itertuples()
            )
            out.append(
                f"{len(bad)} of {len(results)} grid cells failed and are missing from every "
                f"number below ({cells})."
            )
    if comparison is None or not len(comparison) or "delta" not in comparison.columns:
        return out + ["No paired comparison with the original condition was computed."]
    comp = comparison[np.isfinite(comparison["delta"].astype(float))]
    cols = _pair_columns(comp)
    kinds = comp["condition"].map(condition_kind)
    full = comp[kinds == "query+gallery"]
    per_method = sorted(
        ((m, g) for m, g in full.groupby(full["condition"].map(method_of), sort=False)),
        key=lambda mg: mg[1]["delta"].min(),
    )
    out += [_method_sentence(m, g, cols) for m, g in per_method]
    qo = comp[kinds == "query only"]
    if len(qo):
        parts = [
            f"{method_of(c)} {g['delta'].mean():+.2f}"
            for c, g in qo.groupby("condition", sort=False)
        ]
        out.append(
            "With only the queries anonymized (gallery original), mean mAP change: "
            + ", ".join(parts)
            + " points; here the anonymization itself can become a matching cue."
        )
    pair = _paired(comp, "zero", "blur", cols)
    if pair is not None and len(pair):
        diff = float((pair["delta_a"] - pair["delta_b"]).mean())
        how = "worse" if diff < 0 else "better"
        out.append(
            f"Zeroing the face changed mAP by {diff:+.2f} points relative to blurring it "
            f"({abs(diff):.2f} {how}, mean over {len(pair)} paired runs); the reference study found "
            f"zeroing about {abs(REFERENCE['zero_minus_blur']):.2f} points worse."
        )
    for cond in comp.loc[kinds == "retrained", "condition"].unique():
        m = method_of(cond)
        pair = _paired(comp, cond, m, cols)
        if pair is None or not len(pair):
            continue
        after, before = float(pair["delta_a"].mean()), float(pair["delta_b"].mean())
        o, a, r = REFERENCE["duke_map"]
        ref = (
            f"(reference, DukeMTMC: {o:g} -> {a:g} mAP, back to {r:g} after retraining, "
            f"{r - a:.1f} of {o - a:.1f} points recovered)"
        )
        if before < 0:
            recovered = after - before
            out.append(
                f"Retraining on {m}-anonymized data: mAP change {after:+.2f} points against "
                f"{before:+.2f} without retraining, recovering {recovered:.2f} of the "
                f"{-before:.2f} points lost {ref}."
            )
        else:
            out.append(
                f"Retraining on {m}-anonymized data: mAP change {after:+.2f} points; without "
                f"retraining {before:+.2f}, so there was no loss to recover {ref}."
            )
    if "significant" in comp.columns:
        sig = comp["significant"].astype(bool)
        spans = sig & (comp["ci_low"] <= 0) & (comp["ci_high"] >= 0)
        if spans.any():
            names = ", ".join(condition_order(comp.loc[spans, "condition"]))
            out.append(
                f"{names}: Wilcoxon says significant although the 95% bootstrap CI of the mean "
                "includes 0. The two ask different questions: Wilcoxon tests whether the paired "
                "per-query differences are shifted (it drops the many exact zeros and ranks the "
                "rest, so many small drops count even when a few large gains cancel them), "
                "while the bootstrap CI is for the mean difference, which those few large "
                "changes dominate."
            )
    return out


def settings_from_results(results, columns: Sequence[str] = SETTING_COLUMNS) -> dict:
    """The settings recorded in the results rows: each column of ``columns`` present, with its
    value (several values joined by ", "): what produced the numbers, never restated by hand."""
    out = {}
    if results is None:
        return out
    for c in columns:
        if c not in results.columns:
            continue
        values = [v for v in dict.fromkeys(results[c].tolist()) if not _missing(v)]
        if values:
            out[c] = ", ".join(_fmt(v) for v in values)
    return out


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or v == ""


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4g}"
    return str(v)


# ------------------------------------------------------------------------- tables and pages


def md_table(df) -> str:
    """A GitHub markdown table (pandas' to_markdown needs the extra ``tabulate`` package)."""

    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(map(cell, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(map(cell, row)) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


class _Page:
    """One report written twice: markdown lines and an HTML body built side by side."""

    def __init__(self, title: str, base: Path):
        self.base = base
        self.md = [f"# {title}", ""]
        self.html = [f"<h1>{html.escape(title)}</h1>"]
        self.title = title

    def heading(self, text: str) -> None:
        self.md += [f"## {text}", ""]
        self.html.append(f"<h2>{html.escape(text)}</h2>")

    def para(self, text: str) -> None:
        self.md += [text, ""]
        self.html.append(f"<p>{html.escape(text)}</p>")

    def bullets(self, items: Sequence[str]) -> None:
        self.md += [f"- {t}" for t in items] + [""]
        self.html.append("<ul>" + "".join(f"<li>{html.escape(t)}</li>" for t in items) + "</ul>")

    def links(self, items: Sequence[tuple[str, str]]) -> None:
        """``(text, path relative to the report)`` pairs."""
        self.md += [f"- [{t}]({p})" for t, p in items] + [""]
        self.html.append(
            "<ul>"
            + "".join(
                f'<li><a href="{html.escape(p, quote=True)}">{html.escape(t)}</a></li>'
                for t, p in items
            )
            + "</ul>"
        )

    def table(self, df) -> None:
        self.md += [md_table(df), ""]
        self.html.append(df.to_html(index=False, border=0, na_rep="", escape=True))

    def figure(self, png: Path) -> None:
        rel = png.relative_to(self.base).as_posix()
        self.md += [f"![{png.stem}]({rel})", ""]
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        self.html.append(
            f'<figure><img alt="{html.escape(png.stem)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(rel)}</figcaption></figure>"
        )

    def write(self, folder: Path) -> tuple[Path, Path]:
        md, page = folder / "report.md", folder / "report.html"
        md.write_text("\n".join(self.md))
        style = (
            "body{font-family:sans-serif;max-width:70em;margin:2em auto;line-height:1.4}"
            "table{border-collapse:collapse;font-size:90%}td,th{padding:2px 8px;"
            "border-bottom:1px solid #ddd;text-align:right}img{max-width:100%}"
        )
        page.write_text(
            '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
            f"<title>{html.escape(self.title)}</title><style>{style}</style></head><body>\n"
            + "\n".join(self.html)
            + "\n</body></html>\n"
        )
        return md, page


def _experiment_sections(page: _Page, results, comparison, settings: dict, figures) -> None:
    if settings:
        page.heading("Settings")
        page.bullets([f"{k}: {_fmt(v)}" for k, v in settings.items()])
    if results is not None and len(results):
        page.heading("Results (percent)")
        cols = [c for c in _RESULT_COLUMNS if c in results.columns]
        ordered = results
        if "condition" in results.columns:
            rank = {c: i for i, c in enumerate(condition_order(results["condition"]))}
            ordered = results.sort_values("condition", key=lambda s: s.map(rank), kind="stable")
        page.table(ordered[cols].round(2))
        if "status" in results.columns and (results["status"] != "ok").any():
            bad = results[results["status"] != "ok"]
            page.heading(f"Failed cells ({len(bad)} of {len(results)})")
            page.para(
                "These cells raised; their metrics are missing above and in every comparison."
            )
            page.table(
                bad[[c for c in ("model", "seed", "condition", "error") if c in bad.columns]]
            )
    if comparison is not None and len(comparison):
        page.heading("Paired differences vs original (per-query AP, points)")
        page.para(STATS_NOTE)
        extra = [c for c in _pair_columns(comparison) if c not in _COMPARISON_COLUMNS]
        cols = [c for c in (*extra, *_COMPARISON_COLUMNS) if c in comparison.columns]
        page.table(comparison[cols].round(4))
    if figures:
        page.heading("Figures")
        for f in figures:
            page.figure(f)


def write_report(
    results,
    comparison,
    out_dir: Path,
    settings: dict | None = None,
    title: str = "Anonymization cost",
) -> dict:
    """One experiment's ``report.md`` and self-contained ``report.html`` in ``out_dir``.

    Both hold the findings (:func:`findings`), the settings (default: those recorded in the
    results rows, :func:`settings_from_results`; a given dict is added to them), the results and
    paired-comparison tables, and every PNG figure in ``out_dir`` (embedded as base64 in the HTML,
    linked in the markdown). The comparison is also written as ``comparison.csv`` (the run report
    reads it).

    Returns:
        ``{"md": Path, "html": Path, "findings": list[str]}``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    found = findings(results, comparison)
    recorded = settings_from_results(results) | dict(settings or {})
    if comparison is not None:
        comparison.to_csv(out_dir / "comparison.csv", index=False)
    page = _Page(title, out_dir)
    page.heading("Findings")
    page.bullets(found)
    _experiment_sections(page, results, comparison, recorded, sorted(out_dir.glob("*.png")))
    md, page_path = page.write(out_dir)
    return {"md": md, "html": page_path, "findings": found}


def _read_tables(folder: Path):
    import pandas as pd

    def read(name):
        p = folder / name
        if not p.is_file():
            return None
        try:
            return pd.read_csv(p, keep_default_na=False, na_values=[""])
        except (OSError, ValueError):
            return None

    return read("results.csv"), read("comparison.csv")


def write_run_report(run_dir: Path, summary: dict) -> dict:
    """A study run's ``report.md`` and self-contained ``report.html`` at ``run_dir``.

    Args:
        run_dir: the run's folder (the executed notebooks and one output folder per notebook).
        summary: as :func:`reidlab.study.run_study` builds it: ``notebooks`` (entries with
            ``notebook``, ``output``, ``status``, ``seconds``, ``error``), ``failed_cells``
            (``results``, ``model``, ``seed``, ``condition``, ``error``), ``parameters``.

    Returns:
        ``{"md": Path, "html": Path, "findings": list[str]}``: ``findings`` are the run's three
        most important lines (failures first, then each notebook's first finding, in notebook
        order, then their second ...).
    """
    import pandas as pd

    run_dir = Path(run_dir)
    entries = list(summary.get("notebooks", []))
    failed_cells = list(summary.get("failed_cells", []))
    per_nb: list[tuple[dict, Path, list[str], object, object]] = []
    for e in entries:
        folder = run_dir / Path(e["notebook"]).stem
        results, comparison = _read_tables(folder)
        found = findings(results, comparison) if results is not None else []
        per_nb.append((e, folder, found, results, comparison))
    top: list[str] = []
    bad = [e for e in entries if e.get("status") != "ok"]
    if bad:
        top.append(
            f"{len(bad)} of {len(entries)} notebooks failed: "
            + "; ".join(f"{e['notebook']}: {e.get('error', '')}" for e in bad)
        )
    if failed_cells:
        top.append(
            f"{len(failed_cells)} grid cells failed: "
            + "; ".join(
                f"{Path(str(c['results'])).parent.name} {c['model']} seed {c['seed']} "
                f"{c['condition']}"
                for c in failed_cells
            )
        )
    depth = max((len(f) for _, _, f, _, _ in per_nb), default=0)
    ranked = [
        f"{Path(e['notebook']).stem}: {found[i]}"
        for i in range(depth)
        for e, _, found, _, _ in per_nb
        if i < len(found) and "grid cells failed" not in found[i]
    ]
    top = (top + ranked)[:3]
    if not top:
        top = ["No notebook of this run produced a results table."]

    page = _Page(f"Study run {run_dir.name}", run_dir)
    page.heading("Findings")
    page.bullets(top)
    if summary.get("parameters"):
        page.heading("Run parameters")
        page.bullets(
            [f"{k}: {json.dumps(v, default=str)}" for k, v in summary["parameters"].items()]
        )
    page.heading("Notebooks")
    page.table(
        pd.DataFrame(
            [
                {
                    "notebook": e["notebook"],
                    "status": e.get("status", ""),
                    "seconds": e.get("seconds", ""),
                    "error": e.get("error", ""),
                }
                for e in entries
            ],
            columns=["notebook", "status", "seconds", "error"],
        )
    )
    page.links(
        [(f"executed {e['notebook']}", Path(e.get("output", e["notebook"])).name) for e in entries]
    )
    if failed_cells:
        cells = pd.DataFrame(failed_cells)
        cells["results"] = [Path(str(r)).parent.name for r in cells["results"]]
        page.heading(f"Failed grid cells ({len(cells)})")
        page.table(
            cells[[c for c in ("results", "model", "seed", "condition", "error") if c in cells]]
        )
    for e, folder, found, results, comparison in per_nb:
        stem = Path(e["notebook"]).stem
        page.heading(stem)
        own = [
            (f"{stem} report ({p.suffix[1:]})", p.relative_to(run_dir).as_posix())
            for p in (folder / "report.html", folder / "report.md")
            if p.is_file()
        ]
        if own:
            page.links(own)
        if found:
            page.bullets(found)
        if results is not None:
            page.para(
                "Settings: "
                + "; ".join(f"{k}: {v}" for k, v in settings_from_results(results).items())
            )
        for png in sorted(folder.glob("*.png")) if folder.is_dir() else []:
            page.figure(png)
    md, html_path = page.write(run_dir)
    return {"md": md, "html": html_path, "findings": top}


# ------------------------------------------------------------------------- rankings


def experiment_rankings(
    cfg,
    per_query,
    model: str,
    seed: int,
    method: str,
    *,
    query: int | None = None,
    topk: int = 10,
) -> list[dict]:
    """One query's ranked gallery under the original and the ``method``-anonymized condition
    (query and gallery) of a finished experiment, as rows for :func:`reidlab.plots.ranked_rows`.

    The rankings are the experiment's own (``per_query["top_gallery"]`` of
    :func:`reidlab.experiment.run_experiment`, the ten nearest valid gallery items), so nothing is
    evaluated again; only the shown crops are read and, for the anonymized row, anonymized as the
    experiment did. ``query``: its index (default: the query with a face box whose first true
    match moves most between the two conditions, preferring one with a true match on show).

    Returns:
        Two dicts (``label``, ``query_image``, ``gallery`` (top-k images), ``match`` (bool per
        shown item), ``marked`` (anonymized crop), ``query_marked``).
    """
    import torch

    from reidlab import experiment as ex
    from reidlab.anonymize import Anonymizer
    from reidlab.boxes import pad_boxes
    from reidlab.datasets import build_dataset
    from reidlab.imageio import read_rgb

    def ranking(condition: str):
        rows = per_query[
            (per_query["model"] == model)
            & (per_query["seed"] == seed)
            & (per_query["condition"] == condition)
        ].sort_values("query")
        if rows.empty:
            raise ValueError(f"no per-query results for {model} seed {seed} {condition!r}")
        return np.stack(rows["top_gallery"].to_numpy()), rows["first_hit_rank"].to_numpy()

    (top_o, hit_o), (top_m, hit_m) = ranking("original"), ranking(method)
    ds = build_dataset(cfg.dataset, cfg.root, **cfg.dataset_options)
    boxes, _ = ex.face_boxes_for(ds, cfg, splits=("query", "gallery"), progress=False)
    q_pids = np.array([s.pid for s in ds.query])
    g_pids = np.array([s.pid for s in ds.gallery])
    has_face = np.array([len(boxes.get(s.path, ())) > 0 for s in ds.gallery])
    if query is None:
        q_face = [i for i, s in enumerate(ds.query) if len(boxes.get(s.path, ()))]
        far = len(ds.gallery) + 1  # a query without a valid match ranks it nowhere

        def key(q):
            a, b = (int(h[q]) if h[q] > 0 else far for h in (hit_o, hit_m))
            return (min(a, b) <= topk, abs(a - b), -q)  # a match on show, then the largest move

        query = max(q_face or range(len(ds.query)), key=key)
    anon = Anonymizer(**ex._anon_settings(method, cfg))

    def load(samples, idx, a):
        x = torch.stack(
            [
                torch.from_numpy(read_rgb(samples[i].path)).permute(2, 0, 1).float() / 255
                for i in idx
            ]
        )
        if a is None:
            return list(x)
        b, v = pad_boxes(
            [boxes.get(samples[i].path, np.zeros((0, 4))) for i in idx], dtype=np.float32
        )
        with torch.no_grad():
            return list(a(x, torch.from_numpy(b), torch.from_numpy(v)))

    rows = []
    for label, top_all, a in (
        ("original", top_o, None),
        (f"{method} (query+gallery)", top_m, anon),
    ):
        top = top_all[query][:topk]
        top = top[top >= 0]
        rows.append(
            {
                "label": label,
                "query_image": load(ds.query, [query], a)[0],
                "query_pid": int(q_pids[query]),
                "query_marked": a is not None and len(boxes.get(ds.query[query].path, ())) > 0,
                "gallery": load(ds.gallery, top, a),
                "match": (g_pids[top] == q_pids[query]).tolist(),
                "marked": (has_face[top] & (a is not None)).tolist(),
            }
        )
    return rows
