"""The SQLite backend passes the core's storage conformance suite, at both durability levels."""

from __future__ import annotations

from pathlib import Path

import pytest
from nucleus_storage_sqlite import sqlite_storage

from nucleus_core.capabilities import (
    CheckpointStorage,
    CopyableStorage,
    DiscardableStorage,
    EntryRowStorage,
    GrantIndexStorage,
    MerkleEntryReadStorage,
    MerkleTreeStorage,
    ReadOnlyStorage,
    SavepointTransaction,
    SharedDiscardStorage,
    SqlDatabaseStorage,
    WriteBehindTransaction,
)
from nucleus_core.testing import CapabilityConformance, MerkleTreeConformance, StorageConformance


class TestSqliteConformance(StorageConformance):
    @pytest.fixture(params=["full", "normal"])
    def storage_factory(self, tmp_path: Path, request: pytest.FixtureRequest):
        path = tmp_path / "conformance.db"
        return lambda: sqlite_storage(path, durability=request.param)


class TestSqliteCapabilities(CapabilityConformance):
    capabilities = (
        EntryRowStorage, DiscardableStorage, SharedDiscardStorage,
        CopyableStorage, ReadOnlyStorage, SqlDatabaseStorage, GrantIndexStorage,
        CheckpointStorage,
        MerkleTreeStorage, MerkleEntryReadStorage, SavepointTransaction, WriteBehindTransaction,
    )

    @pytest.fixture
    def storage_factory(self, tmp_path: Path):
        path = tmp_path / "capabilities.db"
        return lambda: sqlite_storage(path)


class TestSqliteTree(MerkleTreeConformance):
    @pytest.fixture
    def storage_factory(self, tmp_path: Path):
        path = tmp_path / "tree.db"
        return lambda: sqlite_storage(path)
