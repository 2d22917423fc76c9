"""Where reidlab reads and writes its own files: study runs, generated data, caches.

One place decides, so an installed (non-editable) reidlab never writes into ``site-packages``:

==========  =====================================  ==================================  =======================
what        from a source checkout                 installed as a package              override
==========  =====================================  ==================================  =======================
runs        ``<checkout>/papermill_runs``          ``<user data>/reidlab/runs``        ``$REIDLAB_RUNS``
data        ``<checkout>/data``                    ``<user data>/reidlab/data``        ``$REIDLAB_DATA``
cache       ``<user cache>/reidlab``               ``<user cache>/reidlab``            ``$REIDLAB_CACHE``
==========  =====================================  ==================================  =======================

``<user data>`` is ``$XDG_DATA_HOME`` or ``~/.local/share``; ``<user cache>`` is ``$XDG_CACHE_HOME``
or ``~/.cache``. A *source checkout* is the folder above the ``reidlab`` package when it holds the
project's ``pyproject.toml`` and ``notebooks/`` (an editable install, or running from the clone).
The committed regression baselines and the study notebooks exist only in a checkout.
"""

from __future__ import annotations

import os
from pathlib import Path


def checkout_root() -> Path | None:
    """The source checkout reidlab is imported from, or None when it is an installed package."""
    root = Path(__file__).resolve().parents[1]
    pyproject = root / "pyproject.toml"
    if (
        (root / "notebooks").is_dir()
        and pyproject.is_file()
        and 'name = "reidlab"' in pyproject.read_text()
    ):
        return root
    return None


def _user_dir(env: str, fallback: str) -> Path:
    base = os.environ.get(env)
    return Path(base) if base else Path.home() / fallback


def _choose(override: str, in_checkout: str, installed: str) -> Path:
    if os.environ.get(override):
        return Path(os.environ[override])
    root = checkout_root()
    if root is not None:
        return root / in_checkout
    return _user_dir("XDG_DATA_HOME", ".local/share") / "reidlab" / installed


def runs_dir() -> Path:
    """Where study runs, experiment outputs and trained models go (see the module table)."""
    return _choose("REIDLAB_RUNS", "papermill_runs", "runs")


def data_dir() -> Path:
    """Where generated datasets (the synthetic one) go (see the module table)."""
    return _choose("REIDLAB_DATA", "data", "data")


def cache_dir() -> Path:
    """Caches that can be rebuilt (face detections): ``$REIDLAB_CACHE`` or ``<user cache>/reidlab``."""
    if os.environ.get("REIDLAB_CACHE"):
        return Path(os.environ["REIDLAB_CACHE"])
    return _user_dir("XDG_CACHE_HOME", ".cache") / "reidlab"


def notebook_dir() -> Path | None:
    """The study notebooks (only in a checkout)."""
    root = checkout_root()
    return None if root is None else root / "notebooks"


def baseline_dir() -> Path | None:
    """The committed regression baselines (only in a checkout)."""
    root = checkout_root()
    return None if root is None else root / "papermill_runs" / "baselines"
