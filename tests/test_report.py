"""Reports say what was found, computed from the tables (hand-made here, values chosen so the
expected sentences can be worked out by hand), and the HTML is self-contained with valid links."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pandas as pd
import pytest

from reidlab.report import findings, settings_from_results, write_report, write_run_report


def _results(failed: bool = False) -> pd.DataFrame:
    conds = ["original", "blur", "blur (query only)", "zero", "blur (retrained)"]
    maps = [60.0, 59.0, 59.5, 57.5, 59.6]
    rows = [
        {
            "model": "tiny",
            "seed": 0,
            "condition": c,
            "status": "ok",
            "error": "",
            "mAP": m,
            "rank1": m + 10,
            "distance": "squared_euclidean",
            "flip": False,
            "ap_definition": "standard",
            "detector": "oracle",
            "mask": "box",
            "mask_scale": 1.2000000000000002,
        }
        for c, m in zip(conds, maps)
    ]
    if failed:
        rows.append(
            rows[1] | {"condition": "fill", "status": "failed", "error": "RuntimeError: boom"}
        )
        rows[-1]["mAP"] = float("nan")
    return pd.DataFrame(rows)


def _comparison(blur_sig: bool = False) -> pd.DataFrame:
    def row(cond, delta, lo, hi, significant=True):
        return {
            "condition": cond,
            "model": "tiny",
            "seed": 0,
            "n": 100,
            "delta": delta,
            "ci_low": lo,
            "ci_high": hi,
            "p_wilcoxon": 0.001,
            "p_holm": 0.004,
            "significant": significant,
        }

    return pd.DataFrame(
        [
            row("blur", -1.0, -1.5, -0.5),
            row("blur (query only)", -0.5, -0.9, -0.1),
            row("zero", -2.5, -3.0, -2.0),
            row("blur (retrained)", -0.4, -0.8, 0.0),
            row("pixelate", -0.2, -0.6, 0.3, significant=blur_sig),
        ]
    )


def test_blur_within_reference_and_zero_beyond():
    text = findings(_results(), _comparison())
    blur = next(s for s in text if s.startswith("blur:"))
    assert "-1.00 points" in blur and "95% CI -1.50 to -0.50" in blur
    assert "within the reference study's 1.5 points" in blur
    zero = next(s for s in text if s.startswith("zero:"))
    assert "-2.50" in zero and "more than the reference study's 1.5 points" in zero
    # most important first: the largest drop (zero, -2.5) leads
    assert text[0].startswith("zero:")


def test_zero_vs_blur_and_retraining_recovery_are_computed():
    text = findings(_results(), _comparison())
    zb = next(s for s in text if s.startswith("Zeroing"))
    assert "-1.50 points relative to blurring" in zb and "1.50 worse" in zb  # -2.5 - (-1.0)
    assert "0.25 points worse" in zb  # the reference
    rt = next(s for s in text if s.startswith("Retraining on blur"))
    # retrained -0.4 against -1.0: 0.60 of the 1.00 points lost come back
    assert "-0.40" in rt and "recovering 0.60 of the 1.00 points lost" in rt
    qo = next(s for s in text if "only the queries" in s)
    assert "blur -0.50" in qo


def test_disagreement_sentence_only_when_wilcoxon_and_ci_disagree():
    quiet = findings(_results(), _comparison(blur_sig=False))
    # blur (retrained) has CI [-0.8, 0.0] (includes 0) and is significant: one sentence for it
    why = [s for s in quiet if "Wilcoxon says significant" in s]
    assert len(why) == 1 and why[0].startswith("blur (retrained):")
    both = findings(_results(), _comparison(blur_sig=True))
    why = next(s for s in both if "Wilcoxon says significant" in s)
    assert why.startswith("pixelate, blur (retrained):")  # condition order: retrained last
    assert "median" not in why or "mean" in why
    assert "mean difference" in why
    none = _comparison().assign(significant=False)
    assert not [s for s in findings(_results(), none) if "Wilcoxon" in s]


def test_failed_cell_is_the_first_finding():
    text = findings(_results(failed=True), _comparison())
    assert text[0].startswith("1 of 6 grid cells failed")
    assert "tiny seed 0 fill: RuntimeError: boom" in text[0]


def test_several_runs_give_largest_and_smallest():
    comp = pd.concat(
        [
            _comparison(),
            _comparison().assign(
                seed=1,
                delta=lambda d: d["delta"] - 1.0,
                ci_low=lambda d: d["ci_low"] - 1.0,
                ci_high=lambda d: d["ci_high"] - 1.0,
            ),
        ]
    )
    blur = next(s for s in findings(None, comp) if s.startswith("blur:"))
    assert "-2.00 to -1.00 points over 2 runs" in blur
    assert "lowest: tiny, seed 1, 95% CI -2.50 to -1.50" in blur
    assert "highest: tiny, seed 0, 95% CI -1.50 to -0.50" in blur
    assert "1 of 2 within" in blur


def test_settings_come_from_the_rows():
    s = settings_from_results(_results())
    assert s["distance"] == "squared_euclidean" and s["ap_definition"] == "standard"
    assert s["mask_scale"] == "1.2"  # formatted, not 1.2000000000000002
    assert "mAP" not in s


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.links, self.tables = [], [], 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a["src"])
        elif tag == "a":
            self.links.append(a["href"])
        elif tag == "table":
            self.tables += 1


def _png(path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1])
    fig.savefig(path)
    plt.close(fig)


def test_write_report_md_and_self_contained_html(tmp_path):
    _png(tmp_path / "delta_map.png")
    _png(tmp_path / "ranked.png")
    out = write_report(_results(failed=True), _comparison(), tmp_path, title="T")
    md, page = out["md"].read_text(), out["html"].read_text()
    assert out["findings"] == findings(_results(failed=True), _comparison())
    for f in out["findings"]:
        assert f in md
    assert "| model | seed | condition |" in md
    assert "![delta_map](delta_map.png)" in md and "distance: squared_euclidean" in md
    p = _Collect()
    p.feed(page)
    assert len(p.imgs) == 2 and all(s.startswith("data:image/png;base64,") for s in p.imgs)
    assert p.tables == 3  # results, failed cells, comparison
    assert "RuntimeError: boom" in page
    # the results table reads in condition order: original first, retrained last
    conds = re.findall(r"\| tiny \| 0 \| ([^|]+) \|", md.split("## Results")[1].split("##")[0])
    assert [c.strip() for c in conds] == [
        "original",
        "blur",
        "blur (query only)",
        "zero",
        "fill",
        "blur (retrained)",
    ]
    assert (tmp_path / "comparison.csv").is_file()


def test_run_report_links_resolve_and_failures_lead(tmp_path):
    exp = tmp_path / "03_cost"
    exp.mkdir()
    _results(failed=True).to_csv(exp / "results.csv", index=False)  # as run_experiment does
    write_report(_results(failed=True), _comparison(), exp)
    _png(exp / "delta_map.png")
    (tmp_path / "03_cost.ipynb").write_text("{}")
    (tmp_path / "00_tour.ipynb").write_text("{}")
    summary = {
        "parameters": {"smoke": True},
        "notebooks": [
            {"notebook": "00_tour.ipynb", "output": str(tmp_path / "00_tour.ipynb"),
             "status": "failed", "seconds": 1.0, "error": "ValueError: bad (cell 3)"},
            {"notebook": "03_cost.ipynb", "output": str(tmp_path / "03_cost.ipynb"),
             "status": "ok", "seconds": 2.0},
        ],
        "failed_cells": [
            {"results": str(exp / "results.csv"), "model": "tiny", "seed": 0,
             "condition": "fill", "error": "RuntimeError: boom"}
        ],
    }  # fmt: skip
    out = write_run_report(tmp_path, summary)
    assert len(out["findings"]) == 3
    assert out["findings"][0].startswith("1 of 2 notebooks failed: 00_tour.ipynb: ValueError")
    assert out["findings"][1].startswith("1 grid cells failed: 03_cost tiny seed 0 fill")
    assert out["findings"][2].startswith("03_cost: zero:")
    p = _Collect()
    p.feed(out["html"].read_text())
    assert len(p.imgs) == 1
    assert {"00_tour.ipynb", "03_cost.ipynb", "03_cost/report.html"} <= set(p.links)
    for href in p.links:
        assert (tmp_path / href).is_file(), href
    md = out["md"].read_text()
    for target in re.findall(r"\]\(([^)]+)\)", md):
        assert (tmp_path / target).is_file(), target
    assert "RuntimeError: boom" in md


@pytest.mark.parametrize("comp", [None, pd.DataFrame()])
def test_no_comparison_says_so(comp):
    assert findings(_results(), comp) == [
        "No paired comparison with the original condition was computed."
    ]
