"""Where reidlab writes: the checkout's folders from a clone, user folders when installed, env overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from reidlab import paths

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def clean_env(monkeypatch):
    for var in ("REIDLAB_RUNS", "REIDLAB_DATA", "REIDLAB_CACHE", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_from_the_checkout(clean_env):
    assert paths.checkout_root() == REPO
    assert paths.runs_dir() == REPO / "papermill_runs"
    assert paths.data_dir() == REPO / "data"
    assert paths.baseline_dir() == REPO / "papermill_runs" / "baselines"
    assert paths.cache_dir() == Path.home() / ".cache" / "reidlab"


def test_installed_package_never_writes_into_its_own_folder(clean_env, tmp_path):
    clean_env.setattr(paths, "checkout_root", lambda: None)
    clean_env.setenv("HOME", str(tmp_path))
    package = Path(paths.__file__).resolve().parent
    for p in (paths.runs_dir(), paths.data_dir(), paths.cache_dir()):
        assert tmp_path in p.parents and package not in p.parents
    assert paths.notebook_dir() is None and paths.baseline_dir() is None
    clean_env.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert paths.runs_dir() == tmp_path / "xdg" / "reidlab" / "runs"


def test_environment_overrides(clean_env, tmp_path):
    clean_env.setenv("REIDLAB_RUNS", str(tmp_path / "r"))
    clean_env.setenv("REIDLAB_DATA", str(tmp_path / "d"))
    clean_env.setenv("REIDLAB_CACHE", str(tmp_path / "c"))
    assert (paths.runs_dir(), paths.data_dir(), paths.cache_dir()) == (
        tmp_path / "r",
        tmp_path / "d",
        tmp_path / "c",
    )
    from reidlab.datasets.synthetic import default_root
    from reidlab.faces.cache import default_cache_dir

    assert tmp_path / "d" / "synthetic" in default_root({"num_ids": 3}).parents
    assert default_cache_dir() == tmp_path / "c" / "faces"


def test_resolve_root(tmp_path):
    from reidlab.datasets import resolve_root
    from reidlab.errors import DatasetError

    assert resolve_root("market1501", str(tmp_path)) == tmp_path
    with pytest.raises(DatasetError, match="needs its folder"):
        resolve_root("market1501", None)
