"""kbflow installs four generic top-level packages (connectors, tasks, flows, kbflow). The layout is fixed; this test
fails when another installed distribution provides one of those names too, where the two would overwrite each other."""

from __future__ import annotations

import importlib
import importlib.metadata
from pathlib import Path

import pytest

OURS = ("connectors", "tasks", "flows", "kbflow")


@pytest.mark.unit
def test_no_other_installed_distribution_provides_our_top_level_packages():
    providers = importlib.metadata.packages_distributions()
    clashes = {name: sorted(set(providers.get(name, [])) - {"kbflow"}) for name in OURS}
    assert {name: dists for name, dists in clashes.items() if dists} == {}


@pytest.mark.unit
def test_each_top_level_package_is_imported_from_this_project():
    folders = {name: Path(importlib.import_module(name).__file__).resolve().parents[1] for name in OURS}
    assert len(set(folders.values())) == 1, folders
