"""Shared test fixtures: seeding, isolated settings/cache folders, tiny synthetic media."""

from __future__ import annotations

import os
import random

import pytest


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """Every test gets its own cache and HF_HOME, and no user settings file leaks in."""
    monkeypatch.setenv("FSV2V_CACHE_DIR", str(tmp_path / "fsv2v-cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.delenv("FSV2V_CONFIG", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    yield


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    try:
        import numpy as np

        np.random.seed(0)
    except ImportError:  # pragma: no cover
        pass
    try:
        import torch

        torch.manual_seed(0)
        torch.set_num_threads(min(2, os.cpu_count() or 1))
    except ImportError:  # pragma: no cover
        pass
    yield


@pytest.fixture
def one_thread():
    """Tiny models are fastest on one thread (and the CI machine is shared); restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
