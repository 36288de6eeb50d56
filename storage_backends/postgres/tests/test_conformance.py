"""The core storage conformance suite, against a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from nucleus_storage_postgres import PostgresStorage

from nucleus_core.capabilities import (
    CheckpointStorage,
    DiscardableStorage,
    EntryRowStorage,
    GrantIndexStorage,
    MerkleEntryReadStorage,
    MerkleTreeStorage,
    PooledConnectionStorage,
    ReadOnlyStorage,
    SavepointTransaction,
    SharedDiscardStorage,
    SqlDatabaseStorage,
    WriteBehindTransaction,
)
from nucleus_core.testing import CapabilityConformance, MerkleTreeConformance, StorageConformance

pytestmark = pytest.mark.postgres


class TestPostgresConformance(StorageConformance):
    @pytest.fixture
    def storage_factory(self, make_storage: Callable[..., PostgresStorage]) -> Callable[[], PostgresStorage]:
        return make_storage


class TestPostgresCapabilities(CapabilityConformance):
    capabilities = (
        EntryRowStorage, DiscardableStorage, SharedDiscardStorage,
        ReadOnlyStorage, SqlDatabaseStorage, PooledConnectionStorage,
        GrantIndexStorage, CheckpointStorage, MerkleTreeStorage, MerkleEntryReadStorage, SavepointTransaction,
        WriteBehindTransaction,
    )

    @pytest.fixture
    def storage_factory(self, make_storage: Callable[..., PostgresStorage]) -> Callable[[], PostgresStorage]:
        return make_storage


class TestPostgresTree(MerkleTreeConformance):
    @pytest.fixture
    def storage_factory(self, make_storage: Callable[..., PostgresStorage]) -> Callable[[], PostgresStorage]:
        return make_storage
