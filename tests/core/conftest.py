"""The core's own tests: they need nothing but ``nucleus-core`` and its ``test`` extra.

A few tests here show a core behaviour on a persistent backend and say so with
``@pytest.mark.needs_distribution("nucleus-storage-sqlite")``. The full run (every distribution
installed) runs them like any other test; a missing distribution there is an error, never a skip.
In the core's minimal environment (``.ci/dist-tests`` sets ``NUCLEUS_CORE_ONLY=1``) they are
deselected, listed by name, because that environment holds the core alone by design.
"""

from __future__ import annotations

import importlib.metadata as md
import os

import pytest

CORE_ONLY_ENV = "NUCLEUS_CORE_ONLY"


def _missing(item: pytest.Item) -> list[str]:
    missing = []
    for mark in item.iter_markers("needs_distribution"):
        for name in mark.args:
            try:
                md.distribution(name)
            except md.PackageNotFoundError:
                missing.append(name)
    return missing


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    core_only = os.environ.get(CORE_ONLY_ENV) == "1"
    keep, drop = [], []
    for item in items:
        missing = _missing(item)
        if not missing:
            keep.append(item)
        elif core_only:
            drop.append(item)
        else:
            raise pytest.UsageError(
                f"{item.nodeid} needs {', '.join(missing)}, which is not installed "
                f"(install requirements-dev.txt, or set {CORE_ONLY_ENV}=1 to run the core's tests alone)"
            )
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            names = ", ".join(item.nodeid for item in drop)
            reporter.write_line(f"core-only run: deselected {len(drop)} tests that need another distribution: {names}")
