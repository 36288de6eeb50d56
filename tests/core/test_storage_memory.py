"""The in-memory backend passes the storage conformance suite."""

from __future__ import annotations

import pytest

from nucleus_core import MemoryStorage
from nucleus_core.capabilities import (
    CheckpointStorage,
    ExtensionStorage,
    MerkleTreeStorage,
    RollbackTransaction,
    SavepointTransaction,
)
from nucleus_core.testing import CapabilityConformance, MerkleTreeConformance, StorageConformance


class TestMemoryStorage(StorageConformance):
    @pytest.fixture
    def storage_factory(self):
        return lambda: MemoryStorage()


class TestMemoryTree(MerkleTreeConformance):
    @pytest.fixture
    def storage_factory(self):
        return lambda: MemoryStorage()


class TestMemoryCapabilities(CapabilityConformance):
    capabilities = (ExtensionStorage, RollbackTransaction, SavepointTransaction, CheckpointStorage, MerkleTreeStorage)

    @pytest.fixture
    def storage_factory(self):
        return lambda: MemoryStorage()
