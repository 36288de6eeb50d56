"""Test helpers for plugin authors: the storage conformance suite.

A storage backend distribution runs the same suite as every other backend::

    from nucleus_core.testing import StorageConformance

    class TestMyBackend(StorageConformance):
        @pytest.fixture
        def storage_factory(self, tmp_path):
            # return a callable making a fresh, unopened backend over the SAME data each call
            return lambda: MyBackend(tmp_path / "x")

A backend with optional powers (:mod:`nucleus_core.capabilities`) also runs
:class:`CapabilityConformance`, listing what it claims::

    class TestMyBackendCapabilities(CapabilityConformance):
        capabilities = (EntryRowStorage, DiscardableStorage)

        @pytest.fixture
        def storage_factory(self, tmp_path): ...
"""

from .capabilities import STORAGE_CAPABILITIES, CapabilityConformance
from .clock import ManualClock
from .conformance import StorageConformance, make_context, make_record
from .tree import MerkleTreeConformance

__all__ = [
    "STORAGE_CAPABILITIES",
    "CapabilityConformance",
    "ManualClock",
    "MerkleTreeConformance",
    "StorageConformance",
    "make_context",
    "make_record",
]
