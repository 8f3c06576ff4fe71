"""Shared fixtures: the data folder (``MFR_DATA``) and tiny synthetic inputs."""

from __future__ import annotations

import os

import numpy as np
import pytest

from mfr.paths import data_root


def pytest_collection_modifyitems(config, items):
    if os.environ.get("MFR_SLOW"):
        return
    skip = pytest.mark.skip(reason="slow test: set MFR_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def data_dir():
    """The real data folder; tests that need it are skipped when it is absent."""
    root = data_root()
    if not root.is_dir():
        pytest.skip(f"no data folder at {root} (set MFR_DATA)")
    return root


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def model_home(tmp_path_factory, monkeypatch):
    """An empty model home (MFR_HOME) per test: no test sees the user's installed models."""
    home = tmp_path_factory.mktemp("mfr-home")
    monkeypatch.setenv("MFR_HOME", str(home))
    return home
