"""Argument types shared by the subcommands: numbers checked at parse time, dataset options.

Each type raises :class:`argparse.ArgumentTypeError`, so a bad value ends in one line
(``reidlab <command>: error: argument --sigma: must be > 0, got -3``) and exit code 2, before
any work starts or any heavy module is imported.
"""

from __future__ import annotations

import argparse
import json
import math


def _number(text: str, kind: type) -> float | int:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
        ) from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    v = _number(text, int)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return v


def nonneg_int(text: str) -> int:
    v = _number(text, int)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return v


def positive_float(text: str) -> float:
    v = _number(text, float)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return v


def nonneg_float(text: str) -> float:
    v = _number(text, float)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return v


def fraction(text: str) -> float:
    """A number in ``[0, 1]`` (thresholds, colours, fractions of a crop)."""
    v = _number(text, float)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return v


def open_fraction(text: str) -> float:
    """A number in ``(0, 1]`` (a share of the crop that must not be empty)."""
    v = _number(text, float)
    if not 0.0 < v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return v


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
