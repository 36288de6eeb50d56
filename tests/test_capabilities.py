"""Storage capabilities are typed protocols of the core: nothing finds a storage's powers by
attribute name, and nothing outside the SQL base reaches into it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nucleus_core import MemoryStorage, capabilities
from nucleus_core.testing import STORAGE_CAPABILITIES

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(
    p
    for folder in ("nucleus_core", "plugins", "storage_backends", "token_parsers")
    for p in (ROOT / folder).rglob("*.py")
    if "tests" not in p.relative_to(ROOT).parts
)
SQL_BASE = ROOT / "storage_backends" / "sql"
# The SQL backends built on the base subclass it; everything else uses capabilities.
SQL_SUBCLASSES = (ROOT / "storage_backends" / "sqlite", ROOT / "storage_backends" / "postgres")


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_sources_are_found() -> None:
    assert len(SOURCES) > 80


@pytest.mark.parametrize("path", SOURCES, ids=_rel)
def test_no_capability_is_found_by_attribute_name(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    found = re.findall(r"\b(?:getattr|hasattr)\((?:self\._storage|storage|ledger\.storage|context\.storage|tx)\b", text)
    assert found == [], _rel(path)


@pytest.mark.parametrize("path", SOURCES, ids=_rel)
def test_nothing_outside_the_sql_base_reaches_into_it(path: Path) -> None:
    if path.is_relative_to(SQL_BASE):
        return
    text = path.read_text(encoding="utf-8")
    assert "nucleus_storage_sql.backend" not in text and "nucleus_storage_sql.models" not in text, _rel(path)
    if any(path.is_relative_to(d) for d in SQL_SUBCLASSES):
        return
    for name in ("SqlStorageBackend", "ENTRY_COLUMNS", "nucleus_storage_sql"):
        assert name not in text, f"{_rel(path)} names {name}"


def test_every_capability_is_a_runtime_checkable_protocol_tested_by_the_suite() -> None:
    declared = {
        obj
        for name, obj in vars(capabilities).items()
        if isinstance(obj, type)
        and getattr(obj, "_is_protocol", False)
        and name not in ("GrantIndex", "CheckpointStore", "CosignatureStore", "Protocol")
    }
    assert declared == {
        *STORAGE_CAPABILITIES, capabilities.RollbackTransaction, capabilities.SavepointTransaction,
        capabilities.MerkleTreeTransaction,
    }
    # A checkpoint store's own capability, tested with CheckpointStorage (CapabilityConformance.test_cosignatures).
    assert getattr(capabilities.CosignatureStore, "_is_runtime_protocol", False)
    for protocol in declared:
        assert getattr(protocol, "_is_runtime_protocol", False), protocol.__name__
    assert set(capabilities.__all__) >= {p.__name__ for p in declared}


def test_every_capability_is_documented_in_plugins_md() -> None:
    doc = (ROOT / "docs" / "PLUGINS.md").read_text(encoding="utf-8")
    for name in capabilities.__all__:
        assert f"`{name}`" in doc, f"docs/PLUGINS.md does not name {name}"


def test_memory_storage_claims_what_it_offers() -> None:
    storage = MemoryStorage()
    assert isinstance(storage, capabilities.ExtensionStorage)
    assert not isinstance(storage, capabilities.GrantIndexStorage | capabilities.SqlDatabaseStorage)
