"""Dataset registry: one small module per dataset, imported lazily.

>>> from reidlab.datasets import build_dataset
>>> ds = build_dataset("market1501", "../shared/market1501")   # doctest: +SKIP
>>> ds.stats()["train"]                                        # doctest: +SKIP
{'images': 12936, 'ids': 751, 'cameras': 6}
"""

from __future__ import annotations

import importlib

from reidlab.datasets.base import ReIDDataset, Sample
from reidlab.datasets.parsing import relabel
from reidlab.errors import DatasetError

# name -> "module:function"; the function takes (root, **options) and returns a ReIDDataset.
_REGISTRY: dict[str, str] = {
    "market1501": "reidlab.datasets.market1501:load",
    "dukemtmc": "reidlab.datasets.dukemtmc:load",
    "cuhk03": "reidlab.datasets.cuhk03:load",
    "msmt17": "reidlab.datasets.msmt17:load",
    "viper": "reidlab.datasets.viper:load",
    "custom": "reidlab.datasets.custom:load",
    "synthetic": "reidlab.datasets.synthetic:load",
}


def available_datasets() -> list[str]:
    return sorted(_REGISTRY)


def build_dataset(name: str, root, **options) -> ReIDDataset:
    """Load dataset ``name`` from ``root``. Unknown names raise a DatasetError listing known ones."""
    key = name.lower().replace("-", "").replace("_", "")
    aliases = {"market": "market1501", "duke": "dukemtmc", "dukemtmcreid": "dukemtmc"}
    key = aliases.get(key, key)
    if key not in _REGISTRY:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(available_datasets())}")
    mod, fn = _REGISTRY[key].split(":")
    return getattr(importlib.import_module(mod), fn)(root, **options)


def resolve_root(name: str, root=None, **synthetic):
    """The dataset folder: ``root`` when given; for the synthetic dataset without a root, the folder
    generated (or reused) for the ``synthetic`` settings (:func:`reidlab.datasets.synthetic.ensure_synthetic`).

    Raises:
        DatasetError: ``root`` is None for a dataset that is not generated.
    """
    from pathlib import Path

    if root is not None:
        return Path(root)
    if name.lower() == "synthetic":
        from reidlab.datasets.synthetic import ensure_synthetic

        return ensure_synthetic(**synthetic)
    raise DatasetError(
        f"dataset {name!r} needs its folder (root / data_root / --root); only 'synthetic' "
        "is generated when none is given"
    )


__all__ = [
    "ReIDDataset",
    "Sample",
    "available_datasets",
    "build_dataset",
    "relabel",
    "resolve_root",
]
