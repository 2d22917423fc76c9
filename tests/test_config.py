"""reidlab.config: a dataclass field described once by a Param gives its check, its flag and
the config built from parsed flags."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from reidlab.config import (
    add_config_arguments,
    check_config,
    config_from_args,
    config_params,
    replace_config,
    setting,
)


@dataclass
class Demo:
    size: tuple[int, int] | None = setting(
        None, "height and width", type=int, nargs=2, optional=True, low=0, low_open=True
    )
    rate: float = setting(0.5, "a share", low=0, high=1)
    mode: str = setting("a", "a mode", choices=("a", "b"))
    on: bool = setting(False, "a switch")
    count: int = setting(3, "how many", low=0, flag="--n")
    note: str = "free"  # no Param: neither checked nor a flag

    def __post_init__(self):
        check_config(self)


def test_params_come_from_the_fields():
    ps = {p.name: p for p in config_params(Demo)}
    assert list(ps) == ["size", "rate", "mode", "on", "count"]
    assert ps["rate"].default == 0.5 and ps["rate"].type is float
    assert ps["count"].cli_flag == "--n" and ps["size"].cli_flag == "--size"


def test_values_are_checked_and_converted():
    assert Demo(size=[4, 2]).size == (4, 2)
    assert type(Demo(rate=1).rate) is float
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\], got 2"):
        Demo(rate=2)
    with pytest.raises(ValueError, match="size must be 2 values"):
        Demo(size=[4])
    with pytest.raises(ValueError, match="mode must be one of a, b"):
        replace_config(Demo(), mode="c")
    with pytest.raises(TypeError, match="unknown Demo setting.*bogus.*known: count"):
        replace_config(Demo(), bogus=1)
    assert replace_config(Demo(), count=5).count == 5


def test_flags_round_trip():
    p = argparse.ArgumentParser()
    add_config_arguments(p, Demo, exclude=("mode",))
    assert config_from_args(Demo, p.parse_args([])) == Demo()
    given = p.parse_args(["--size", "8", "4", "--rate", "0.25", "--on", "--n", "7"])
    assert config_from_args(Demo, given) == Demo(size=(8, 4), rate=0.25, on=True, count=7)
    base = Demo(on=True, rate=0.1)  # flags not given keep the base's values
    assert config_from_args(Demo, p.parse_args(["--no-on"]), base=base) == Demo(rate=0.1)
    for bad in (["--mode", "b"], ["--rate", "2"], ["--note", "x"], ["--count", "1"]):
        with pytest.raises(SystemExit):
            p.parse_args(bad)
