"""reidlab.params.Param: checks, argparse flags and their errors, from one description."""

from __future__ import annotations

import argparse

import pytest

from reidlab.params import Param, add_param_arguments

SIGMA = Param("sigma_rel", float, 0.2, "blur std", low=0, low_open=True)
BLOCKS = Param("blocks", int, 4, "cells", low=1, high=64)
COLOR = Param("color", float, (0.5, 0.5, 0.5), "rgb", low=0, high=1, nargs=3)
FILL = Param("fill", str, "constant", "fill", choices=("constant", "mean"))
FLAG = Param("flip", bool, False, "flip")


@pytest.mark.parametrize(
    "param,value,expected",
    [
        (SIGMA, 0.3, 0.3),
        (SIGMA, "0.5", 0.5),
        (BLOCKS, 64, 64),
        (BLOCKS, 1.0, 1),
        (COLOR, [0, 1, 0.5], (0, 1, 0.5)),
        (FILL, "mean", "mean"),
        (FLAG, "false", False),
        (FLAG, 1, True),
    ],
)
def test_check_accepts_and_converts(param, value, expected):
    assert param.check(value) == expected and type(param.check(value)) is type(expected)


@pytest.mark.parametrize(
    "param,value,message",
    [
        (SIGMA, 0, "sigma_rel must be > 0"),
        (SIGMA, float("nan"), "finite"),
        (SIGMA, float("inf"), "finite"),
        (SIGMA, "x", "must be a number"),
        (SIGMA, None, "must be given"),
        (BLOCKS, 0, "in [1, 64]"),
        (BLOCKS, 65, "in [1, 64]"),
        (BLOCKS, 2.5, "integer"),
        (COLOR, (0, 2, 0), "in [0, 1]"),
        (COLOR, (0, 1), "3 values"),
        (FILL, "noise", "one of constant, mean"),
        (FLAG, "maybe", "true or false"),
    ],
)
def test_check_refuses_with_the_name_and_the_range(param, value, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")):
        param.check(value)


def test_flags_parse_checked_values_and_leave_unset_flags_none(capsys):
    parser = argparse.ArgumentParser(prog="p")
    add_param_arguments(parser, [SIGMA, BLOCKS, COLOR, FILL, FLAG])
    args = parser.parse_args(["--sigma-rel", "0.4", "--color", "0", "1", "0", "--no-flip"])
    assert (args.sigma_rel, args.blocks, args.color, args.fill, args.flip) == (
        0.4,
        None,
        [0.0, 1.0, 0.0],
        None,
        False,
    )
    for bad in (
        ["--sigma-rel", "-1"],
        ["--blocks", "0"],
        ["--color", "2", "0", "0"],
        ["--fill", "noise"],
    ):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)
    assert "must be > 0" in capsys.readouterr().err
    assert (
        "(default 0.2)" in parser.format_help() and "(default 0.5 0.5 0.5)" in parser.format_help()
    )
