"""Argument types shared by the subcommands: numbers checked at parse time, dataset options.

Each type raises :class:`argparse.ArgumentTypeError`, so a bad value ends in one line
(``reidlab <command>: error: argument --sigma: must be > 0, got -3``) and exit code 2, before
any work starts or any heavy module is imported.
"""

from __future__ import annotations

import argparse
import json

from reidlab.params import Param

# argparse ``type=`` functions for flags written by hand; the checks are reidlab.params.Param's
positive_int = Param("value", int, low=0, low_open=True).parse
nonneg_int = Param("value", int, low=0).parse
positive_float = Param("value", float, low=0, low_open=True).parse
nonneg_float = Param("value", float, low=0).parse
fraction = Param("value", float, low=0, high=1).parse  # thresholds, colours, fractions of a crop
open_fraction = Param(
    "value", float, low=0, high=1, low_open=True
).parse  # a share that must not be empty


def key_value(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` -> ``(key, value)``; VALUE is parsed as JSON when it is JSON (``3``,
    ``false``, ``[1, 2]``), else kept as a string (``labeled``)."""
    key, sep, raw = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. variant=labeled), got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value


def add_dataset_options(parser: argparse.ArgumentParser) -> None:
    """``--dataset-option KEY=VALUE`` (repeatable): keyword options for the dataset loader."""
    parser.add_argument(
        "--dataset-option",
        dest="dataset_options",
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="loader option, repeatable: variant=labeled|detected (cuhk03, required), version=v1|v2 "
        "(msmt17, required), split_index=N (viper), strict=false; see data/README.md",
    )


def dataset_options(args: argparse.Namespace) -> dict:
    """The ``--dataset-option`` pairs as a dict (a repeated key: the last one wins)."""
    return dict(getattr(args, "dataset_options", None) or [])
