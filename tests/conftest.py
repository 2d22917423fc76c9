"""Shared test fixtures.

``../shared`` (beside the checkout) holds real data; tests that need it use the ``shared_dir``
fixture (or ``require_shared``) and skip, saying why, when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# `make test` runs two xdist workers on the 2-core machines: one torch/OpenMP thread each.
# More oversubscribes the cores; measured here, two threads per process ran OSNet 6-12x
# slower than one under such load. Notebook kernels started by the tests inherit the env.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
SHARED = Path(os.environ.get("REIDLAB_SHARED", REPO.parent / "shared")).resolve()


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "browser: drives JupyterLab in headless Chromium (Debian's /usr/bin/chromium, installed by"
        " `make browser`; skips when absent)",
    )


def require_shared(*parts: str) -> Path:
    """Path under ../shared, or skip the test saying what is missing."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} is absent: this test needs the project's ../shared material")
    return p


@pytest.fixture
def shared_dir():
    return require_shared()


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """A small synthetic dataset generated once per test session (per xdist worker)."""
    from reidlab.datasets.synthetic import generate

    root = tmp_path_factory.mktemp("synthetic")
    generate(root, num_ids=12, seed=0)
    return root
