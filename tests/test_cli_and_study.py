"""The CLI stays fast and thin; the study runner's regression check flags real changes."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from reidlab.cli import COMMANDS, main
from reidlab.report import write_report


def test_import_reidlab_does_not_import_torch():
    code = "import sys, reidlab, reidlab.cli; print(any(m in sys.modules for m in ('torch', 'timm', 'onnxruntime', 'cv2')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for name in COMMANDS:
        assert name in text


def test_every_subcommand_module_has_the_contract():
    import importlib

    for name, (module, _) in COMMANDS.items():
        mod = importlib.import_module(f"reidlab.commands.{module}")
        assert callable(mod.add_arguments) and callable(mod.run), name


def test_unknown_subcommand_is_an_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["no-such-command"])
    assert e.value.code == 2


def _table(maps):
    return pd.DataFrame(
        [
            {"model": "tiny", "condition": c, "seed": 0, "mAP": m, "rank1": m + 10}
            for c, m in maps.items()
        ]
    )


def test_write_report_states_settings(tmp_path):
    res = _table({"original": 50.0, "blur": 48.0}).assign(rank5=1.0, mINP=2.0, n_queries=10)
    cmp = pd.DataFrame(
        [
            {
                "condition": "blur",
                "model": "tiny",
                "n": 10,
                "delta": -2.0,
                "ci_low": -3.0,
                "ci_high": -1.0,
                "p_wilcoxon": 0.01,
                "p_holm": 0.01,
                "significant": True,
            }
        ]
    )
    paths = write_report(res, cmp, tmp_path, settings={"distance": "squared euclidean"})
    text = paths["md"].read_text()
    assert "squared euclidean" in text and "| blur |" in text and "-2.0" in text


def test_key_value_parses_json_or_keeps_text():
    import argparse

    from reidlab.commands.argtypes import key_value

    pairs = [
        key_value(t) for t in ["a=1", 'b="x"', "c=[1, 2]", "d=plain", "split-index=3", "e=false"]
    ]
    assert dict(pairs) == {
        "a": 1,
        "b": "x",
        "c": [1, 2],
        "d": "plain",
        "split_index": 3,
        "e": False,
    }
    for bad in ("novalue", "=x", "2x=1"):
        with pytest.raises(argparse.ArgumentTypeError, match="KEY=VALUE"):
            key_value(bad)
