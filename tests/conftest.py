"""Shared fixtures: one Prefect test harness per session, real stores in temporary folders."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from flows.settings import apply_offline_env

apply_offline_env()

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]
DEMO_CORPUS = REPO / "docs" / "demo" / "corpus"


@pytest.fixture(autouse=True, scope="session")
def prefect_harness():
    """One temporary Prefect API for the whole session, with the per-flow heartbeat off."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield


@pytest.fixture(autouse=True)
def _clean_kbflow_env(monkeypatch):
    """Tests start from the defaults, whatever the developer's shell exports."""
    for key in list(os.environ):
        if key.startswith("KBFLOW_"):
            monkeypatch.delenv(key)


@pytest.fixture
def store_dir(tmp_path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def docs_dir(tmp_path) -> Path:
    """A folder with a few small real documents (copied from tests/data/docs)."""
    target = tmp_path / "docs"
    shutil.copytree(DATA / "docs", target)
    return target
