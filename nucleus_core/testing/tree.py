"""Conformance tests for storage that keeps the Merkle tree (:class:`~nucleus_core.capabilities.MerkleTreeStorage`).

Subclass beside :class:`~nucleus_core.testing.StorageConformance` with the same
``storage_factory`` fixture::

    class TestMyBackendTree(MerkleTreeConformance):
        @pytest.fixture
        def storage_factory(self, tmp_path): ...

The tree must be RFC 9162's over the entry hashes, written in the write transaction of the entries
it covers (a rolled-back batch leaves no node), readable in ``O(log n)`` nodes, streamed in node
number order, and buildable for entries written without it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping
from typing import Any

import pytest

from ..capabilities import MerkleTreeStorage, MerkleTreeTransaction
from ..errors import DuplicateRecordError
from ..ledger import create_ledger
from ..merkle import MerkleNodeStore, NodeKey, frontier_keys
from ..storage import StorageBackend
from ..tlog_verify import verify_consistency, verify_inclusion
from ..tree import build_tree, check_tree, stored_node_count
from .conformance import make_context, make_record

StorageFactory = Callable[[], StorageBackend]


def reference_root(entry_hashes: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.1, written from the text: MTH over the entry hashes as leaves."""
    if not entry_hashes:
        return hashlib.sha256(b"").digest()
    if len(entry_hashes) == 1:
        return hashlib.sha256(b"\x00" + entry_hashes[0]).digest()
    k = 1 << ((len(entry_hashes) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + reference_root(entry_hashes[:k]) + reference_root(entry_hashes[k:])).digest()


class CountingStore:
    """A node store that counts what is asked of the one it wraps."""

    def __init__(self, inner: MerkleNodeStore) -> None:
        self.inner = inner
        self.calls: list[int] = []

    def nodes(self, keys: Collection[NodeKey]) -> Mapping[NodeKey, bytes]:
        self.calls.append(len(keys))
        return self.inner.nodes(keys)


class MerkleTreeConformance:
    """The tree contract, on a backend that claims :class:`MerkleTreeStorage`."""

    ledger_id = "tree"

    @pytest.fixture
    def storage_factory(self) -> StorageFactory:  # pragma: no cover - must be overridden
        pytest.fail("a conformance test class must define the storage_factory fixture")

    def _ledger(self, storage_factory: StorageFactory) -> Any:
        ledger = create_ledger(id=self.ledger_id, storage=storage_factory())
        assert isinstance(ledger.storage, MerkleTreeStorage)
        return ledger

    @staticmethod
    def _hashes(storage: Any) -> list[bytes]:
        return [bytes.fromhex(e.hash) for e in storage.iter_entries()]

    def test_roots_and_proofs_match_rfc_9162(self, storage_factory: StorageFactory) -> None:
        ctx = make_context()
        with self._ledger(storage_factory) as ledger:
            storage = ledger.storage
            n = 0
            for batch in (1, 2, 13, 1, 30, 17, 1, 5):  # crosses 16- and 64-leaf boundaries
                ledger.append_batch([make_record(n + i) for i in range(batch)], ctx)
                n += batch
                assert storage.merkle_size() == ledger.tree_size() == n
            hashes = self._hashes(storage)
            roots = [ledger.root_hash(size) for size in range(n + 1)]
            assert roots == [reference_root(hashes[:size]) for size in range(n + 1)]
            assert ledger.root_hash() == roots[n]
            for size in (1, 2, 15, 16, 17, 33, 64, n):
                for seq in {1, min(2, size), size // 2 or 1, size}:
                    proof = ledger.inclusion_proof(seq, size, ctx)
                    leaf = hashlib.sha256(b"\x00" + hashes[seq - 1]).digest()
                    verify_inclusion(leaf, proof.leaf_index, size, list(proof.hashes), roots[size])
                for old in {1, 3, 16, size // 2 or 1, size}:
                    if old <= size:
                        c = ledger.consistency_proof(old, size, ctx)
                        verify_consistency(old, size, roots[old], roots[size], list(c.hashes))

    def test_each_answer_is_one_read_of_log_n_nodes(self, storage_factory: StorageFactory) -> None:
        """Every root and proof asks the store once, for at most ``2 ceil(log2 n) + 1`` nodes."""
        from .. import merkle

        with self._ledger(storage_factory) as ledger:
            ledger.append_batch([make_record(i) for i in range(100)], make_context())
            store = CountingStore(ledger.storage.merkle_store())
            for size in (1, 17, 64, 99, 100):
                bound = 2 * max(1, (size - 1).bit_length()) + 1
                merkle.root_hash(store, size)
                merkle.inclusion_proof(store, size // 2, size)
                merkle.consistency_proof(store, max(1, size // 3), size)
                assert len(store.calls) <= 3 and all(c <= bound for c in store.calls), (size, store.calls)
                store.calls.clear()

    def test_a_rolled_back_batch_leaves_no_node(self, storage_factory: StorageFactory) -> None:
        ctx = make_context()
        with self._ledger(storage_factory) as ledger:
            storage = ledger.storage
            ledger.append_batch([make_record(i) for i in range(20)], ctx)
            before = list(storage.iter_merkle_nodes())
            root = ledger.root_hash()
            with pytest.raises(DuplicateRecordError):
                ledger.append_batch([make_record(100 + i) for i in range(30)] + [make_record(3)], ctx)
            with pytest.raises(RuntimeError), storage.write() as tx:
                assert isinstance(tx, MerkleTreeTransaction)
                tx.write_merkle(21, [((4, 1), b"\x07" * 32), ((5, 0), b"\x08" * 32)])
                assert tx.merkle_size() == 21
                raise RuntimeError("roll back")
            assert storage.merkle_size() == 20
            assert list(storage.iter_merkle_nodes()) == before
            assert ledger.root_hash() == root
            ledger.append_batch([make_record(200 + i) for i in range(30)], ctx)
            assert ledger.root_hash() == reference_root(self._hashes(storage))
            assert check_tree(storage) is None

    def test_nodes_are_streamed_by_number(self, storage_factory: StorageFactory) -> None:
        with self._ledger(storage_factory) as ledger:
            storage = ledger.storage
            ledger.append_batch([make_record(i) for i in range(75)], make_context())
            numbers = [number for number, _ in storage.iter_merkle_nodes()]
            count = stored_node_count(75, storage.merkle_min_level)
            assert numbers == list(range(count))
            assert [number for number, _ in storage.iter_merkle_nodes(count - 2)] == [count - 2, count - 1]
            assert all(len(value) == 32 for _, value in storage.iter_merkle_nodes())
            assert [seq for seq, _ in storage.iter_entry_hashes(70)] == [70, 71, 72, 73, 74, 75]

    def test_entries_written_without_the_tree_get_it_built(self, storage_factory: StorageFactory) -> None:
        """As for a ledger from before the tree: built in committed chunks, resumable after a crash."""
        ctx = make_context()
        with self._ledger(storage_factory) as ledger:
            storage = ledger.storage
            ledger.append_batch([make_record(i) for i in range(5)], ctx)
            ledger._keep_tree = False  # a writer that keeps no tree
            ledger.append_batch([make_record(5 + i) for i in range(60)], ctx)
            assert storage.merkle_size() == 5
            calls: list[tuple[int, int]] = []

            def crash(done: int, total: int) -> None:
                calls.append((done, total))
                if len(calls) == 2:
                    raise KeyboardInterrupt

            with pytest.raises(KeyboardInterrupt):
                build_tree(storage, chunk_entries=7, progress=crash)
            assert storage.merkle_size() == 19  # two chunks committed
            assert build_tree(storage, chunk_entries=7) == 65
            assert ledger.root_hash() == reference_root(self._hashes(storage))
            assert check_tree(storage) is None
            # A tree-keeping append after another writer's: it adds the missing leaves first.
            ledger.append_batch([make_record(65 + i) for i in range(3)], ctx)
            ledger._keep_tree = True
            ledger.append_batch([make_record(68 + i) for i in range(3)], ctx)
            assert ledger.tree_size() == 71
            assert ledger.root_hash() == reference_root(self._hashes(storage))
            assert check_tree(storage) is None
            assert ledger.verify().ok

    def test_frontier_is_all_an_append_reads(self, storage_factory: StorageFactory) -> None:
        with self._ledger(storage_factory) as ledger:
            ledger.append_batch([make_record(i) for i in range(45)], make_context())
            with ledger.storage.write() as tx:
                store = CountingStore(tx.merkle_store())
                keys = frontier_keys(tx.merkle_size())
                found = store.nodes(keys)
                assert set(found) == set(keys) and store.calls == [len(keys)]
