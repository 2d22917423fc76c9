"""The study grid's YAML file: load it, check it (one line per error, naming the file and the key),
and expand it into one :class:`~reidlab.experiment.ExperimentConfig` per cell.

A *cell* is one (dataset, model, seed): one :func:`reidlab.experiment.run_experiment` call that
trains once (or loads the model's weights) and then evaluates all its conditions. The file's keys
are the experiment's settings, lists where the grid varies, plus where and how to run it::

    datasets:                       # each: a name, or {name, root, options, generate}
      - {name: synthetic, root: null, generate: {num_ids: 12}}
    models: [tiny]
    weights: {}                     # model -> checkpoint (that model is not trained)
    methods: [blur, zero]
    method_settings: {blur: {sigma_rel: 0.3}}
    retrain: []
    seeds: [0, 1]
    epochs: 1
    device: cpu                     # or cuda
    engine: local                   # local (process pool) | dask
    address: null                   # dask scheduler (tcp://host:8786) or "local"
    workers: 2                      # parallel cells (default: see reidlab.grid.plan)
    threads: null                   # torch threads per cell (default: cores / parallel cells)

Paths (``root``, ``weights``) may use ``$VAR`` and ``${VAR:-default}``; a relative path is taken
relative to the YAML file's folder. ``configs/`` in the checkout holds the study's grids.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from reidlab.errors import ReidlabError
from reidlab.params import Param


class GridConfigError(ReidlabError):
    """The grid's YAML file is not what the grid expects (the message names the file and key)."""


@dataclass
class DatasetSpec:
    """One dataset of the grid: loader ``options``; ``generate``: the synthetic generator's
    settings when ``root`` is None (``reidlab.datasets.resolve_root``)."""

    name: str
    root: str | None = None
    options: dict = field(default_factory=dict)
    generate: dict = field(default_factory=dict)


@dataclass
class GridSpec:
    """Every setting of a grid file (the defaults are :class:`ExperimentConfig`'s)."""

    datasets: list[DatasetSpec] = field(default_factory=lambda: [DatasetSpec("synthetic")])
    models: tuple[str, ...] = ("tiny",)
    weights: dict = field(default_factory=dict)
    methods: tuple[str, ...] = ("blur", "pixelate", "fill", "zero")
    method_settings: dict = field(default_factory=dict)
    mask: str = "box"
    scale: float = 1.2
    query_only: bool = True
    retrain: tuple[str, ...] = ("blur",)
    detector: str = "oracle"
    detector_params: dict = field(default_factory=dict)
    fail_closed: float | None = None
    full_coverage: bool = False
    trust_checkpoint: bool = False
    seeds: tuple[int, ...] = (0,)
    recipe: str = "tiny"
    epochs: int | None = None
    train_options: dict = field(default_factory=dict)
    eval: dict = field(default_factory=dict)  # EvalConfig fields
    device: str | None = None
    engine: str = "local"
    address: str | None = None
    workers: int | None = None
    threads: int | None = None
    source: str = "<dict>"  # the file it came from (for messages)


_SCALARS = {  # key -> Param (type, range or choices); reidlab.params checks the value
    "mask": Param("mask", str),  # one of reidlab.anonymize.masks.MASK_KINDS (checked below)
    "scale": Param("scale", float, low=0, low_open=True),
    "query_only": Param("query_only", bool),
    "detector": Param("detector", str),
    "fail_closed": Param("fail_closed", float, low=0, high=1, optional=True),
    "full_coverage": Param("full_coverage", bool),
    "trust_checkpoint": Param("trust_checkpoint", bool),
    "recipe": Param("recipe", str),
    "epochs": Param("epochs", int, low=0, low_open=True, optional=True),
    "device": Param("device", str, optional=True),
    "engine": Param("engine", str, choices=("local", "dask")),
    "address": Param("address", str, optional=True),
    "workers": Param("workers", int, low=0, low_open=True, optional=True),
    "threads": Param("threads", int, low=0, low_open=True, optional=True),
}
_STR_LISTS = ("models", "methods", "retrain")
_MAPPINGS = ("weights", "method_settings", "detector_params", "train_options", "eval")
_DATASET_KEYS = ("name", "root", "options", "generate")


def _fail(source: str, key: str, problem: str) -> GridConfigError:
    return GridConfigError(f"{source}: {key}: {' '.join(problem.split())}")


_VAR = re.compile(r"\$(?:\{(\w+)(?::-([^}]*))?\}|(\w+))")


def expand_path(text: str, base: Path, *, source: str, key: str) -> str:
    """``text`` with ``$VAR`` / ``${VAR:-default}`` replaced from the environment, ``~`` expanded,
    and made absolute relative to ``base`` (the YAML file's folder)."""

    def var(m: re.Match) -> str:
        name = m.group(1) or m.group(3)
        if os.environ.get(name):
            return os.environ[name]
        if m.group(2) is not None:
            return m.group(2)
        raise _fail(source, key, f"${name} is not set and {text!r} gives no default")

    path = Path(_VAR.sub(var, text)).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def _check_scalar(p: Param, value, source: str):
    if p.type in (int, float) and isinstance(value, bool):  # YAML's true is not a number
        raise _fail(source, p.name, f"must be a number, got {value!r}")
    if p.type is str and value is not None and not isinstance(value, str):
        raise _fail(source, p.name, f"must be a string, got {value!r}")
    try:
        return p.check(value)
    except ValueError as e:
        raise _fail(source, p.name, str(e).removeprefix(f"{p.name} ")) from None


def _str_list(key: str, value, source: str, *, empty: bool) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _fail(source, key, f"must be a list of names, got {value!r}")
    if not value and not empty:
        raise _fail(source, key, "must name at least one")
    if len(set(value)) != len(value):
        raise _fail(source, key, f"lists a name twice: {value!r}")
    return tuple(value)


def _dataset(i: int, value, base: Path, source: str) -> DatasetSpec:
    from reidlab.datasets import available_datasets

    key = f"datasets[{i}]"
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        raise _fail(
            source, key, f"must be a name or a mapping with name/root/options, got {value!r}"
        )
    unknown = sorted(set(value) - set(_DATASET_KEYS))
    if unknown:
        raise _fail(
            source, f"{key}.{unknown[0]}", f"unknown key; known: {', '.join(_DATASET_KEYS)}"
        )
    name = value.get("name")
    if name not in available_datasets():
        raise _fail(
            source, f"{key}.name", f"unknown dataset {name!r}; known: {available_datasets()}"
        )
    root = value.get("root")
    if root is not None and not isinstance(root, str):
        raise _fail(source, f"{key}.root", f"must be a path or null, got {root!r}")
    for sub in ("options", "generate"):
        if not isinstance(value.get(sub, {}), dict):
            raise _fail(source, f"{key}.{sub}", f"must be a mapping, got {value[sub]!r}")
    if value.get("generate") and (name != "synthetic" or root is not None):
        raise _fail(source, f"{key}.generate", "applies only to synthetic data with root: null")
    return DatasetSpec(
        name=name,
        root=None if root is None else expand_path(root, base, source=source, key=f"{key}.root"),
        options=dict(value.get("options") or {}),
        generate=dict(value.get("generate") or {}),
    )


def grid_from_dict(data, source: str = "<dict>", base: Path | None = None) -> GridSpec:
    """Check ``data`` (a YAML file's mapping) and return its :class:`GridSpec`.

    Raises :class:`GridConfigError` on the first problem: ``<source>: <key>: <problem>``.
    """
    from reidlab.anonymize.masks import MASK_KINDS
    from reidlab.anonymize.methods import METHODS
    from reidlab.faces.base import available_detectors, detector_class
    from reidlab.training.config import RECIPES

    base = Path(base or Path.cwd())
    if not isinstance(data, dict):
        raise _fail(source, "(top level)", f"must be a mapping of settings, got {data!r}")
    known = [f.name for f in fields(GridSpec) if f.name != "source"]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise _fail(source, str(unknown[0]), f"unknown key; known: {', '.join(known)}")
    spec = GridSpec(source=source)
    for key, value in data.items():
        if key in _SCALARS:
            setattr(spec, key, _check_scalar(_SCALARS[key], value, source))
        elif key in _STR_LISTS:
            setattr(spec, key, _str_list(key, value, source, empty=key != "models"))
        elif key in _MAPPINGS:
            if not isinstance(value, dict):
                raise _fail(source, key, f"must be a mapping, got {value!r}")
            setattr(spec, key, dict(value))
        elif key == "seeds":
            seeds = [value] if isinstance(value, int) and not isinstance(value, bool) else value
            if (
                not isinstance(seeds, list)
                or not seeds
                or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
            ):
                raise _fail(source, key, f"must be a list of integers, got {value!r}")
            if len(set(seeds)) != len(seeds):
                raise _fail(source, key, f"lists a seed twice: {value!r}")
            spec.seeds = tuple(seeds)
        elif key == "datasets":
            if not isinstance(value, list) or not value:
                raise _fail(source, key, f"must be a non-empty list, got {value!r}")
            spec.datasets = [_dataset(i, v, base, source) for i, v in enumerate(value)]
            names = [d.name for d in spec.datasets]
            if len(set(names)) != len(names):
                raise _fail(source, key, f"lists a dataset twice: {names}")
    for key in ("methods", "retrain"):
        bad = [m for m in getattr(spec, key) if m not in METHODS]
        if bad:
            raise _fail(source, key, f"unknown method {bad[0]!r}; known: {', '.join(METHODS)}")
    for key, names in (("weights", spec.models), ("method_settings", spec.methods + spec.retrain)):
        stray = [k for k in getattr(spec, key) if k not in names]
        if stray:
            raise _fail(source, f"{key}.{stray[0]}", f"is not listed; listed: {', '.join(names)}")
    for model, path in spec.weights.items():
        if not isinstance(path, str):
            raise _fail(source, f"weights.{model}", f"must be a checkpoint path, got {path!r}")
        spec.weights[model] = expand_path(path, base, source=source, key=f"weights.{model}")
    for method, settings in spec.method_settings.items():
        if not isinstance(settings, dict):
            raise _fail(source, f"method_settings.{method}", f"must be a mapping, got {settings!r}")
    if spec.mask not in MASK_KINDS:
        raise _fail(source, "mask", f"must be one of {', '.join(MASK_KINDS)}, got {spec.mask!r}")
    if spec.detector not in available_detectors():
        raise _fail(
            source, "detector", f"unknown {spec.detector!r}; known: {available_detectors()}"
        )
    if spec.mask == "segmentation" and not detector_class(spec.detector).gives_maps:
        raise _fail(
            source,
            "mask",
            f"segmentation needs a detector with face maps; {spec.detector} gives boxes only",
        )
    if spec.recipe not in RECIPES:
        raise _fail(source, "recipe", f"unknown {spec.recipe!r}; known: {', '.join(RECIPES)}")
    try:
        _eval_config(spec)
    except (TypeError, ValueError) as e:
        raise _fail(source, "eval", str(e)) from None
    if spec.engine == "local" and spec.address:
        raise _fail(source, "address", "is for engine: dask (the local engine needs none)")
    return spec


def load_grid(path: str | Path) -> GridSpec:
    """Read and check a grid YAML file (see the module docstring)."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise GridConfigError(f"{path}: cannot read the grid file ({e.strerror or e})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(syntax)"
        raise _fail(str(path), where, f"not valid YAML: {getattr(e, 'problem', e)}") from None
    return grid_from_dict(data, source=str(path), base=path.resolve().parent)


def _eval_config(spec: GridSpec):
    from reidlab.evaluation.config import EvalConfig

    ev = dict(spec.eval)
    if spec.device is not None:
        ev["device"] = spec.device
    return EvalConfig().replace(**ev)


def trains(cfg) -> bool:
    """Whether the cell ``cfg`` trains a model (no weights given, or retraining)."""
    return bool(cfg.retrain) or any(m not in cfg.weights for m in cfg.models)


def expand(spec: GridSpec, out_dir: str | Path | None = None) -> list:
    """The grid's cells, in a fixed order (datasets, then models, then seeds, as listed): one
    :class:`ExperimentConfig` per (dataset, model, seed), writing into ``out_dir/cells/<cell>``.

    A model with given weights and nothing to retrain is one cell (seed = the first), as in
    :func:`reidlab.experiment.run_experiment`: every seed would repeat the same evaluation.
    A synthetic dataset with no root keeps ``root=None`` (see :func:`resolve_roots`).
    """
    from reidlab.experiment import ExperimentConfig

    cells = []
    for ds in spec.datasets:
        for model in spec.models:
            seeds = spec.seeds
            if model in spec.weights and not spec.retrain:
                seeds = spec.seeds[:1]
            for seed in seeds:
                name = f"{ds.name}-{model}-seed{seed}"
                cells.append(
                    ExperimentConfig(
                        dataset=ds.name,
                        root=ds.root,
                        dataset_options=dict(ds.options),
                        models=(model,),
                        weights={model: spec.weights[model]} if model in spec.weights else {},
                        methods=spec.methods,
                        method_settings={k: dict(v) for k, v in spec.method_settings.items()},
                        mask=spec.mask,
                        scale=spec.scale,
                        query_only=spec.query_only,
                        retrain=spec.retrain,
                        detector=spec.detector,
                        detector_params=dict(spec.detector_params),
                        fail_closed=spec.fail_closed,
                        full_coverage=spec.full_coverage,
                        trust_checkpoint=spec.trust_checkpoint,
                        seeds=(seed,),
                        recipe=spec.recipe,
                        epochs=spec.epochs,
                        train_options=dict(spec.train_options),
                        eval=_eval_config(spec),
                        out_dir=None if out_dir is None else str(Path(out_dir) / "cells" / name),
                    )
                )
    return cells


def resolve_roots(spec: GridSpec) -> GridSpec:
    """Give every synthetic dataset without a root its generated folder (made once, here, before
    the cells run in parallel and would race to generate it)."""
    from reidlab.datasets import resolve_root

    for ds in spec.datasets:
        if ds.root is None:
            ds.root = str(resolve_root(ds.name, None, **ds.generate))
    return spec
