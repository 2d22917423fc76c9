"""One description of a setting, from which its check, its command-line flag and its widget follow.

A :class:`Param` names a setting, its type, default, allowed range or choices and a help line.
Everything that takes settings derives from it instead of restating them:

* the library checks values with :meth:`Param.check` (``ValueError`` naming the setting);
* the CLI adds flags with :func:`add_param_arguments` (bad values: one argparse line, exit 2);
* the explorer builds a slider / dropdown / checkbox from :attr:`Param.widget` (see ``reidlab.widgets``);
* recorded settings list every param's value.

The anonymization methods' registry (:mod:`reidlab.anonymize.methods`) and the configuration
dataclasses (evaluation, training) describe their settings this way.

>>> sigma = Param("sigma_rel", float, 0.2, "blur std / face height", low=0, low_open=True)
>>> sigma.check(0.3)
0.3
>>> sigma.check(-1)
Traceback (most recent call last):
...
ValueError: sigma_rel must be > 0, got -1
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Param:
    """A setting: ``name``, ``type`` (``int``, ``float``, ``str``, ``bool``), ``default``, ``help``.

    Attributes:
        low, high: inclusive bounds for numbers (``low_open`` / ``high_open``: exclusive).
        choices: allowed values (strings); ``nargs``: a fixed-length tuple of values (a colour).
        optional: ``None`` is allowed (e.g. an absolute ``sigma`` that overrides ``sigma_rel``).
        widget: explorer control options (``{"step": 0.01, "max": 1.0, "label": "sigma / face h"}``;
            ``max``/``min`` bound a slider when the range is open-ended); ``None`` = no control.
        flag: the command-line flag (default ``--name-with-dashes``).
    """

    name: str
    type: type = float
    default: Any = None
    help: str = ""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple | None = None
    nargs: int | None = None
    optional: bool = False
    widget: dict | None = None
    flag: str | None = None

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    def describe_range(self) -> str:
        """``> 0``, ``in [0, 1]``, ``one of blur, zero`` (for messages and help)."""
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        if self.low is not None and self.high is not None:
            return (
                f"in {'(' if self.low_open else '['}{self.low:g}, "
                f"{self.high:g}{')' if self.high_open else ']'}"
            )
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return ""

    def _scalar(self, v):
        if self.type is bool:
            if isinstance(v, str) and v.lower() in ("true", "false", "1", "0", "yes", "no"):
                return v.lower() in ("true", "1", "yes")
            if not isinstance(v, (bool, int)):
                raise ValueError(f"{self.name} must be true or false, got {v!r}")
            return bool(v)
        if self.type in (int, float):
            try:
                x = self.type(v)
            except (TypeError, ValueError):
                kind = "an integer" if self.type is int else "a number"
                raise ValueError(f"{self.name} must be {kind}, got {v!r}") from None
            if self.type is int and isinstance(v, float) and v != x:
                raise ValueError(f"{self.name} must be an integer, got {v!r}")
            if self.type is float and not math.isfinite(x):
                raise ValueError(f"{self.name} must be a finite number, got {v!r}")
            bad = (self.low is not None and (x <= self.low if self.low_open else x < self.low)) or (
                self.high is not None and (x >= self.high if self.high_open else x > self.high)
            )
            if bad:
                raise ValueError(f"{self.name} must be {self.describe_range()}, got {v!r}")
            return x
        x = self.type(v)
        if self.choices is not None and x not in self.choices:
            raise ValueError(f"{self.name} must be {self.describe_range()}, got {v!r}")
        return x

    def check(self, value):
        """``value`` converted to the param's type and checked; raises ``ValueError`` naming it."""
        if value is None:
            if self.optional:
                return None
            raise ValueError(
                f"{self.name} must be given ({self.describe_range() or self.type.__name__})"
            )
        if self.nargs is not None:
            if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
                raise ValueError(f"{self.name} must be {self.nargs} values, got {value!r}")
            if len(value) != self.nargs:
                raise ValueError(f"{self.name} must be {self.nargs} values, got {len(value)}")
            return tuple(self._scalar(v) for v in value)
        return self._scalar(value)

    def parse(self, text: str):
        """argparse ``type=``: :meth:`check` with the error turned into an argparse error."""
        try:
            return self._scalar(text)
        except ValueError as e:
            msg = str(e).removeprefix(f"{self.name} ")
            raise argparse.ArgumentTypeError(msg) from None


def add_param_arguments(parser, params, *, defaults: bool = False, dest_prefix: str = "") -> None:
    """Add one flag per param to ``parser`` (or an argument group).

    ``defaults=False`` (the default) leaves every flag's default at ``None``, so the caller can
    tell "not given" from "given" and fill in :attr:`Param.default` itself (what the method
    registry does to refuse, say, ``--blocks`` with ``--method blur``).
    """
    for p in params:
        kw: dict[str, Any] = {
            "dest": dest_prefix + p.name,
            "default": p.default if defaults else None,
        }
        help_ = p.help
        if p.default is not None:
            shown = " ".join(map(str, p.default)) if isinstance(p.default, tuple) else p.default
            help_ += f" (default {shown})"
        if p.type is bool:
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["type"] = p.parse
            if p.choices is not None:
                kw["choices"] = p.choices
            if p.nargs is not None:
                kw["nargs"] = p.nargs
                kw["metavar"] = tuple(f"{p.name.upper()}{i + 1}" for i in range(p.nargs))
        parser.add_argument(p.cli_flag, help=help_.replace("%", "%%"), **kw)
