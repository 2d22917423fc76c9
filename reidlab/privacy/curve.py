"""The privacy-utility curve: per anonymization method and strength, how identifiable the faces
still are (x: the face-only attacker's rank-1, adaptive and naive) against what body re-ID keeps
(y: a given model's mAP on the same anonymized query and gallery), and the computed recommendation.

The body model is given, never retrained per point: a trained model (evaluated with
:func:`reidlab.evaluation.evaluate` on the anonymized query and gallery) or a function
``utility(anonymizer_or_None) -> mAP`` (a fraction). The naive attacker is trained once on
original train faces; the adaptive one per point, on train faces anonymized with the same settings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from reidlab.privacy.attacker import evaluate_attacker, train_attacker
from reidlab.privacy.faces import cut_faces, load_crops

#: Per method: its strength setting and the values tried, weakest first (fill and zero: one point).
DEFAULT_STRENGTHS: dict[str, tuple[str, tuple] | None] = {
    "blur": ("sigma_rel", (0.05, 0.1, 0.2, 0.4)),
    "pixelate": ("blocks", (8, 4, 2)),
    "fill": None,
    "zero": None,
}

#: Recommendation margin: adaptive rank-1 at most this many points above chance.
CHANCE_MARGIN = 2.0

SPLITS = ("train", "query", "gallery")


def _points(
    methods: Sequence[str], strengths: Mapping | None
) -> list[tuple[str, str | None, object]]:
    table = {**DEFAULT_STRENGTHS, **(strengths or {})}
    out = []
    for m in methods:
        if m not in table:
            raise ValueError(
                f"privacy curve: no strengths known for method {m!r}; pass strengths={{{m!r}: "
                "(param, (values, weakest first))}} or None for a single point"
            )
        spec = table[m]
        if spec is None:
            out.append((m, None, None))
        else:
            param, values = spec
            if not len(values):
                raise ValueError(f"privacy curve: no {param} values for {m}")
            out += [(m, param, v) for v in values]
    return out


def _utility_fn(utility, dataset, boxes, eval_options: Mapping | None) -> Callable:
    if utility is None:
        return lambda anonymizer: float("nan")
    import torch

    if isinstance(utility, torch.nn.Module):
        from reidlab.evaluation import evaluate

        def run(anonymizer):
            r = evaluate(
                utility,
                dataset,
                dict(eval_options or {}),
                boxes=boxes,
                query_anonymizer=anonymizer,
                gallery_anonymizer=anonymizer,
                progress=False,
            )
            return r.mAP

        return run
    if callable(utility):
        return lambda anonymizer: float(utility(anonymizer))
    raise TypeError(
        f"utility: expected a torch model, a function anonymizer -> mAP, or None; got {type(utility)}"
    )


def privacy_utility_curve(
    dataset,
    boxes: Mapping[str, np.ndarray],
    utility=None,
    *,
    methods: Sequence[str] = ("blur", "pixelate", "fill", "zero"),
    strengths: Mapping | None = None,
    anonymizer_options: Mapping | None = None,
    enlarge: float = 1.0,
    size: int = 24,
    attacker_options: Mapping | None = None,
    eval_options: Mapping | None = None,
    seed: int = 0,
    progress: bool = False,
):
    """One row per point: the original (method ``"none"``) then each method and strength.

    Args:
        dataset: a ``ReIDDataset`` (train / query / gallery of disjoint identities).
        boxes: face boxes ``{absolute path: (K, 4)}`` (e.g. the ground truth,
            ``reidlab.datasets.synthetic.load_face_boxes``); crops without a box are excluded.
        utility: the body model (a trained ``nn.Module``), a function ``anonymizer -> mAP``, or
            None (no utility axis: ``body_mAP`` is NaN).
        methods, strengths: the methods, and per method ``(param, values weakest first)`` or None
            (one point at the defaults); defaults: :data:`DEFAULT_STRENGTHS`.
        anonymizer_options: common anonymizer settings for every point (``mask``, ``scale``, ...).
        enlarge, size: the face cut (:func:`reidlab.privacy.faces.cut_faces`).
        attacker_options: :func:`reidlab.privacy.attacker.train_attacker` keywords (epochs, ...).
        eval_options: ``EvalConfig`` fields for evaluating a model given as ``utility``.
        seed: seeds every attacker and the chance levels.

    Returns:
        a pandas DataFrame (metrics as fractions); ``attrs["split"]`` holds the identities the
        attackers were trained on and those they were tested on, from the faces actually used.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from reidlab.anonymize import Anonymizer

    points = _points(methods, strengths)
    util = _utility_fn(utility, dataset, boxes, eval_options)
    crops = {s: load_crops(getattr(dataset, s), boxes) for s in SPLITS}
    opts = {"seed": seed, **(attacker_options or {})}
    cut = {"enlarge": enlarge, "size": size}

    def faces(anonymizer):
        return {s: cut_faces(crops[s], anonymizer, **cut) for s in SPLITS}

    original = faces(None)
    naive = train_attacker(original["train"], desc="naive face attacker", progress=progress, **opts)
    trained_on: set[int] = {int(p) for p in naive.train_pids}
    tested_on: dict[str, set[int]] = {"query": set(), "gallery": set()}
    rows = []
    bar = tqdm([("none", None, None), *points], desc="privacy curve", disable=not progress)
    for method, param, value in bar:
        settings = dict(anonymizer_options or {})
        if param is not None:
            settings[param] = value
        anon = None if method == "none" else Anonymizer(method, **settings)
        f = original if anon is None else faces(anon)
        if anon is None:
            adaptive = naive
        else:
            adaptive = train_attacker(
                f["train"], desc=f"adaptive attacker {method}", progress=progress, **opts
            )
        trained_on |= {int(p) for p in adaptive.train_pids}
        tested_on["query"] |= {int(p) for p in f["query"].pids}
        tested_on["gallery"] |= {int(p) for p in f["gallery"].pids}
        a = evaluate_attacker(adaptive, f["query"], f["gallery"], seed=seed)
        n = evaluate_attacker(naive, f["query"], f["gallery"], seed=seed)
        rows.append(
            {
                "method": method,
                "param": param,
                "value": value,
                "setting": method if param is None else f"{method} {param}={value}",
                "adaptive_rank1": a["rank1"],
                "adaptive_mAP": a["mAP"],
                "naive_rank1": n["rank1"],
                "naive_mAP": n["mAP"],
                "chance_rank1": a["chance_rank1"],
                "chance_mAP": a["chance_mAP"],
                "body_mAP": util(anon),
                "train_faces": len(f["train"]),
                "query_faces": a["n_query"],
                "gallery_faces": a["n_gallery"],
                "excluded_crops": sum(f[s].excluded for s in SPLITS),
                "seed": seed,
                "anonymizer": None if anon is None else anon.settings(),
            }
        )
    df = pd.DataFrame(rows)
    df.attrs["split"] = {
        "train": sorted(trained_on),
        "query": sorted(tested_on["query"]),
        "gallery": sorted(tested_on["gallery"]),
    }
    return df


def recommend(curve, margin: float = CHANCE_MARGIN):
    """Per method: the weakest setting whose adaptive-attacker rank-1 is at most ``margin`` points
    above chance, with its utility cost (points of body mAP lost against the original, and the
    share kept). A method none of whose settings reaches it gets a row with ``setting`` None.

    ``curve`` is :func:`privacy_utility_curve`'s table; rows of one method are taken in its order
    (weakest first)."""
    import pandas as pd

    orig = curve[curve["method"] == "none"]
    base = float(orig["body_mAP"].iloc[0]) if len(orig) else float("nan")
    rows = []
    for method in dict.fromkeys(curve.loc[curve["method"] != "none", "method"]):
        part = curve[curve["method"] == method]
        ok = part[100 * (part["adaptive_rank1"] - part["chance_rank1"]) <= margin]
        hit = ok.iloc[0] if len(ok) else None
        mAP = float(hit["body_mAP"]) if hit is not None else float("nan")
        rows.append(
            {
                "method": method,
                "setting": None if hit is None else hit["setting"],
                "param": None if hit is None else hit["param"],
                "value": None if hit is None else hit["value"],
                "adaptive_rank1": float("nan") if hit is None else float(hit["adaptive_rank1"]),
                "chance_rank1": float("nan") if hit is None else float(hit["chance_rank1"]),
                "body_mAP": mAP,
                "utility_cost_points": 100 * (base - mAP),
                "utility_kept_pct": 100 * mAP / base if base else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def summary_table(curve, defaults: Mapping[str, Mapping] | None = None):
    """Per method at its default strength (the anonymizer registry's default unless ``defaults``
    says otherwise): utility kept (% of original body mAP) and identifiability left (% of the
    original face-only rank-1, adaptive and naive attackers). Methods whose default strength is
    not on the curve are left out."""
    import pandas as pd

    from reidlab.anonymize import get_method

    orig = curve[curve["method"] == "none"].iloc[0]
    rows = []
    for method in dict.fromkeys(curve.loc[curve["method"] != "none", "method"]):
        part = curve[curve["method"] == method]
        param = part["param"].iloc[0]
        if param is None or (isinstance(param, float) and np.isnan(param)):
            row = part.iloc[0]
        else:
            want = (defaults or {}).get(method, {}).get(param)
            if want is None:
                want = get_method(method).resolve({})[param]
            hit = part[np.isclose(part["value"].astype(float), float(want))]
            if not len(hit):
                continue
            row = hit.iloc[0]
        rows.append(
            {
                "method": method,
                "setting": row["setting"],
                "utility_kept_pct": 100 * row["body_mAP"] / orig["body_mAP"],
                "adaptive_left_pct": 100 * row["adaptive_rank1"] / orig["adaptive_rank1"],
                "naive_left_pct": 100 * row["naive_rank1"] / orig["naive_rank1"],
                "adaptive_rank1": row["adaptive_rank1"],
                "naive_rank1": row["naive_rank1"],
                "chance_rank1": row["chance_rank1"],
            }
        )
    return pd.DataFrame(rows)


def plot_curve(curve, title: str = "Privacy-utility curve"):
    """The curve as a figure: x = face-only rank-1 (%), y = body re-ID mAP (%); per method one
    line from the original through its strengths (solid: adaptive attacker, dashed: naive),
    single-setting methods (fill, zero) as end points, the chance rank-1 as a vertical line.
    Rows of one setting over several seeds are averaged."""
    import matplotlib.pyplot as plt

    keys = ["method", "setting"]
    mean = curve.groupby(keys, sort=False)[
        ["adaptive_rank1", "naive_rank1", "body_mAP", "chance_rank1"]
    ].mean()
    mean = mean.reset_index()
    orig = mean[mean["method"] == "none"].iloc[0]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, method in enumerate(dict.fromkeys(mean.loc[mean["method"] != "none", "method"])):
        part = mean[mean["method"] == method]
        c = colors[k % len(colors)]
        for attacker, style in (("adaptive", "-"), ("naive", "--")):
            x = [100 * orig[f"{attacker}_rank1"], *(100 * part[f"{attacker}_rank1"])]
            y = [100 * orig["body_mAP"], *(100 * part["body_mAP"])]
            ax.plot(
                x,
                y,
                style,
                marker="o" if attacker == "adaptive" else "x",
                color=c,
                label=f"{method} ({attacker} attacker)",
            )
        for _, r in part.iterrows():
            if r["setting"] != method:
                ax.annotate(
                    r["setting"].split(" ", 1)[1],
                    (100 * r["adaptive_rank1"], 100 * r["body_mAP"]),
                    fontsize=7,
                    xytext=(3, 3),
                    textcoords="offset points",
                )
    ax.plot(100 * orig["adaptive_rank1"], 100 * orig["body_mAP"], "k*", ms=12, label="original")
    ax.axvline(100 * orig["chance_rank1"], color="grey", ls=":", label="chance rank-1")
    ax.set_xlabel("face identifiability: face-only attacker rank-1 (%)")
    ax.set_ylabel("utility: body re-ID mAP (%)")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def findings(curve, summary, recommendation, margin: float = CHANCE_MARGIN) -> list[str]:
    """The closing sentences, computed from the tables (percentages, one decimal)."""
    orig = curve[curve["method"] == "none"]
    r1 = 100 * orig["naive_rank1"].mean()
    chance = 100 * orig["chance_rank1"].mean()
    lines = [
        f"On original faces the face-only attacker reaches rank-1 {r1:.1f}% against a chance "
        f"level of {chance:.1f}% ({orig['gallery_faces'].iloc[0]} gallery faces, "
        f"{orig['query_faces'].iloc[0]} queries): "
        + ("the faces identify people." if r1 > chance + margin else "no better than chance.")
    ]
    for _, s in summary.iterrows():
        lines.append(
            f"{s['setting']} (default strength): keeps {s['utility_kept_pct']:.1f}% of the body "
            f"mAP and leaves {s['adaptive_left_pct']:.1f}% of the face rank-1 to the adaptive "
            f"attacker, {s['naive_left_pct']:.1f}% to the naive one."
        )
    for _, r in recommendation.iterrows():
        if _isna(r["setting"]):
            lines.append(
                f"{r['method']}: no tried strength brings the adaptive attacker within "
                f"{margin:g} points of chance; try stronger settings."
            )
        else:
            lines.append(
                f"Recommended {r['method']}: {r['setting']}, the weakest tried setting whose "
                f"adaptive rank-1 ({100 * r['adaptive_rank1']:.1f}%) is within {margin:g} points "
                f"of chance ({100 * r['chance_rank1']:.1f}%); it costs "
                f"{r['utility_cost_points']:.1f} points of body mAP "
                f"({r['utility_kept_pct']:.1f}% kept)."
            )
    return lines


def _isna(v) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


def write_privacy_report(out_dir, curve, summary, recommendation, lines, figure=None) -> dict:
    """Write ``privacy.csv``, ``privacy_summary.csv``, ``privacy_recommendation.csv`` and a
    ``report.md`` (tables, the figure file name if given, the findings ``lines``) into
    ``out_dir``; returns the paths."""
    from pathlib import Path

    from reidlab.report import md_table

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "curve": out / "privacy.csv",
        "summary": out / "privacy_summary.csv",
        "recommendation": out / "privacy_recommendation.csv",
        "report": out / "report.md",
    }
    curve.drop(columns=["anonymizer"], errors="ignore").to_csv(paths["curve"], index=False)
    summary.to_csv(paths["summary"], index=False)
    recommendation.to_csv(paths["recommendation"], index=False)
    md = ["# Privacy: how identifiable faces stay after anonymization", ""]
    if figure:
        md += [f"![privacy-utility curve]({figure})", ""]
    md += ["## At each method's default strength", "", md_table(summary.round(3)), ""]
    md += ["## Recommendation", "", md_table(recommendation.round(3)), ""]
    md += ["## Findings", "", *[f"- {x}" for x in lines], ""]
    md += [
        "## Every point (fractions)",
        "",
        md_table(curve.drop(columns=["anonymizer"], errors="ignore").round(4)),
    ]
    paths["report"].write_text("\n".join(md) + "\n")
    return {k: str(v) for k, v in paths.items()}
