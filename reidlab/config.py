"""Configuration dataclasses whose fields are described once, by a :class:`reidlab.params.Param`.

A field made with :func:`setting` carries its Param (type, range or choices, help, flag) in its
metadata; the field's name and default fill in the Param's. From that one description follow:

* the check: ``__post_init__`` calls :func:`check_config` (``ValueError`` naming the setting);
* the command line: :func:`add_config_arguments` adds one flag per field and
  :func:`config_from_args` builds the config from the flags that were given;
* changes by keyword: :func:`replace_config` (an unknown name is a ``TypeError`` listing the
  known ones).

Why a small helper rather than tyro, jsonargparse or simple-parsing: argparse is already the
CLI's parser (``reidlab.cli`` turns its errors into one line and exit code 2), the CLI imports a
subcommand's module only when that subcommand runs so that ``reidlab --help`` stays fast, and
these ~40 lines are cheaper than a dependency.
"""

from __future__ import annotations

import builtins
import dataclasses
import functools
from dataclasses import MISSING, field

from reidlab.params import Param, add_param_arguments


def setting(default=None, help: str = "", *, type: type | None = None, **param):
    """A dataclass field described by a :class:`Param` (``low``, ``choices``, ``nargs``, ``flag``...).

    ``type`` defaults to the default's type; give it when the default is None.
    """
    t = type or builtins.type(default)
    return field(default=default, metadata={"param": Param("", t, None, help, **param)})


@functools.cache
def config_params(cls) -> tuple[Param, ...]:
    """The Params of ``cls``'s fields made with :func:`setting` (name and default filled in)."""
    return tuple(
        dataclasses.replace(
            f.metadata["param"], name=f.name, default=None if f.default is MISSING else f.default
        )
        for f in dataclasses.fields(cls)
        if "param" in f.metadata
    )


def check_config(obj) -> None:
    """Check and convert every described field of ``obj`` in place (call from ``__post_init__``)."""
    for p in config_params(type(obj)):
        object.__setattr__(obj, p.name, p.check(getattr(obj, p.name)))


def replace_config(obj, **changes):
    """A copy of the dataclass ``obj`` with ``changes``; unknown names: ``TypeError`` listing the known."""
    known = {f.name for f in dataclasses.fields(obj) if f.init}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise TypeError(
            f"unknown {type(obj).__name__} setting(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )
    return dataclasses.replace(obj, **changes) if changes else obj


def add_config_arguments(parser, cls, *, exclude=()) -> None:
    """One flag per described field of ``cls`` (except ``exclude``), default None ("not given")."""
    add_param_arguments(parser, [p for p in config_params(cls) if p.name not in exclude])


def config_from_args(cls, args, base=None):
    """``base`` (default ``cls()``) with the fields whose flags were given in ``args`` replaced."""
    given = {
        p.name: getattr(args, p.name)
        for p in config_params(cls)
        if getattr(args, p.name, None) is not None
    }
    return replace_config(base if base is not None else cls(), **given)
