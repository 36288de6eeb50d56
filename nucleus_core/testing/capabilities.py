"""Conformance tests for the optional storage capabilities (:mod:`nucleus_core.capabilities`).

A backend's test class lists the capabilities it claims in ``capabilities``; the first test checks
that the backend claims exactly those (no more, no fewer), and each capability's test then checks
its behaviour, or, for a capability not listed, that the backend really does not claim it.
"""

from __future__ import annotations

import contextlib
import operator
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest

from ..capabilities import (
    CheckpointStorage,
    CopyableStorage,
    CosignatureStore,
    DiscardableStorage,
    EntryRowStorage,
    ExtensionStorage,
    GrantIndexStorage,
    MerkleEntryReadStorage,
    MerkleTreeStorage,
    MerkleTreeTransaction,
    PooledConnectionStorage,
    ReadOnlyStorage,
    RollbackTransaction,
    SavepointTransaction,
    SharedDiscardStorage,
    SqlDatabaseStorage,
    WriteBehindTransaction,
)
from ..checkpoint import NoteSigner, sign_checkpoint
from ..errors import ConflictError, DuplicateRecordError, LedgerNotFoundError, NotFoundError, ValidationError
from ..hashing import GENESIS_HASH, entry_hash_with_prefix, preimage_prefix
from ..ledger import create_ledger, open_ledger
from ..merkle import NodeKey, frontier_keys, inclusion_keys
from ..records import Entry, Record
from ..storage import ENTRY_FIELDS, ChainHead, StorageBackend, StorageQuery
from .conformance import make_context, make_record

StorageFactory = Callable[[], StorageBackend]

STORAGE_CAPABILITIES: tuple[type, ...] = (
    EntryRowStorage,
    DiscardableStorage,
    SharedDiscardStorage,
    CopyableStorage,
    ReadOnlyStorage,
    SqlDatabaseStorage,
    PooledConnectionStorage,
    ExtensionStorage,
    GrantIndexStorage,
    CheckpointStorage,
    MerkleTreeStorage,
    MerkleEntryReadStorage,
)
"""The capabilities a storage backend may claim (:class:`RollbackTransaction`,
:class:`SavepointTransaction` and :class:`WriteBehindTransaction` are its write transaction's,
listed in ``capabilities`` like the
others; :class:`MerkleTreeTransaction` is the write transaction's of a :class:`MerkleTreeStorage`,
not listed: :class:`~nucleus_core.testing.MerkleTreeConformance` tests the tree)."""


class CapabilityConformance:
    """Subclass beside :class:`~nucleus_core.testing.StorageConformance` (same ``storage_factory``
    fixture) and set ``capabilities`` to the protocols the backend claims."""

    ledger_id = "capabilities"
    capabilities: ClassVar[tuple[type, ...]] = ()

    @pytest.fixture
    def storage_factory(self) -> StorageFactory:  # pragma: no cover - must be overridden
        pytest.fail("a conformance test class must define the storage_factory fixture")

    def _claims(self, capability: type, storage: object) -> bool:
        """Whether the test class lists ``capability``; asserts the backend agrees."""
        claimed = capability in self.capabilities
        assert isinstance(storage, capability) == claimed, (
            f"{type(storage).__name__} {'does not offer' if claimed else 'offers'} {capability.__name__}"
            f" but the test class {'lists' if claimed else 'does not list'} it"
        )
        return claimed

    def _ledger(self, storage_factory: StorageFactory, n: int = 0) -> Any:
        ledger = create_ledger(id=self.ledger_id, storage=storage_factory())
        if n:
            ledger.append_batch([make_record(i) for i in range(n)], make_context())
        return ledger

    def test_claims_exactly_the_listed_capabilities(self, storage_factory: StorageFactory) -> None:
        listed = set(self.capabilities) - {RollbackTransaction, SavepointTransaction, WriteBehindTransaction}
        with self._ledger(storage_factory) as ledger:
            offered = {c for c in STORAGE_CAPABILITIES if isinstance(ledger.storage, c)}
            assert offered == listed
            with ledger.storage.write() as tx:
                assert isinstance(tx, RollbackTransaction) == (RollbackTransaction in self.capabilities)
                assert isinstance(tx, SavepointTransaction) == (SavepointTransaction in self.capabilities)
                assert isinstance(tx, WriteBehindTransaction) == (WriteBehindTransaction in self.capabilities)
                assert isinstance(tx, MerkleTreeTransaction) == (MerkleTreeStorage in self.capabilities)

    def test_entry_rows(self, storage_factory: StorageFactory) -> None:
        """``iter_entry_rows`` yields exactly what ``iter_entries`` holds, as tuples, from any seq."""
        with self._ledger(storage_factory, 12) as ledger:
            storage = ledger.storage
            if not self._claims(EntryRowStorage, storage):
                return
            as_row = operator.attrgetter(*ENTRY_FIELDS)
            for start in (1, 5, 12, 13):
                rows = [(*row[:-1], bytes(row[-1])) for row in storage.iter_entry_rows(start)]
                assert rows == [as_row(e) for e in storage.iter_entries(start)]
            assert len(list(storage.iter_entry_rows())) == 12

    def test_discard(self, storage_factory: StorageFactory) -> None:
        """``discard`` after an open that created the ledger leaves no ledger behind."""
        storage = storage_factory()
        storage.open(self.ledger_id)
        if not self._claims(DiscardableStorage, storage):
            storage.close()
            return
        assert isinstance(storage, DiscardableStorage)
        storage.discard()
        again = storage_factory()
        with pytest.raises(LedgerNotFoundError):
            again.open(self.ledger_id, create=False)
        again.close()

    def test_discard_with(self, storage_factory: StorageFactory) -> None:
        """``discard_with(other)``: another object that opened the new ledger (and closed) does not
        keep it; the ledger is gone, as after ``discard``."""
        storage = storage_factory()
        storage.open(self.ledger_id)
        if not self._claims(SharedDiscardStorage, storage):
            storage.close()
            return
        assert isinstance(storage, SharedDiscardStorage)
        other = storage_factory()
        other.open(self.ledger_id, create=False)
        other.close()
        storage.discard_with(other)
        again = storage_factory()
        with pytest.raises(LedgerNotFoundError):
            again.open(self.ledger_id, create=False)
        again.close()

    def test_copy(self, storage_factory: StorageFactory, tmp_path: Path) -> None:
        """``backup`` writes a copy that ``restore`` brings back, verified."""
        with self._ledger(storage_factory, 3) as ledger:
            storage = ledger.storage
            if not self._claims(CopyableStorage, storage):
                return
            assert isinstance(storage, CopyableStorage)
            head = ledger.latest_hash()
            dest = tmp_path / "capability-copy"
            report = storage.backup(str(dest))
            assert report.to_dict()["ledgers"][self.ledger_id]["entries"] == 3
            ledger.append(make_record(100), make_context())
            storage.restore(str(dest))
        with open_ledger(id=self.ledger_id, storage=storage_factory()) as restored:
            assert restored.length() == 3 and restored.latest_hash() == head
            assert restored.verify().ok

    def test_read_only(self, storage_factory: StorageFactory) -> None:
        storage = storage_factory()
        if not storage.persistent:
            storage.open(self.ledger_id)
            assert not self._claims(ReadOnlyStorage, storage), "only persistent storage can be reopened read-only"
            return
        self._ledger(storage_factory).close()
        storage.open(self.ledger_id, read_only=True, create=False)
        if not self._claims(ReadOnlyStorage, storage):
            storage.close()
            return
        assert isinstance(storage, ReadOnlyStorage)
        assert storage.read_only is True
        storage.close()
        writable = storage_factory()
        assert isinstance(writable, ReadOnlyStorage)
        writable.open(self.ledger_id, create=False)
        assert writable.read_only is False
        writable.close()

    def test_sql_database(self, storage_factory: StorageFactory) -> None:
        """``ensure_tables`` creates a plugin's table in ``database``, where rows commit and read back."""
        with self._ledger(storage_factory) as ledger:
            storage = ledger.storage
            if not self._claims(SqlDatabaseStorage, storage):
                return
            assert isinstance(storage, SqlDatabaseStorage)
            import peewee  # a backend claiming a peewee database depends on peewee

            class Note(peewee.Model):
                text = peewee.CharField()

                class Meta:
                    table_name = "capability_conformance_notes"

            storage.ensure_tables([Note])
            db = storage.database
            assert db.table_exists("capability_conformance_notes")
            with db.atomic():
                Note.create(text="kept")
            assert [n.text for n in Note.select()] == ["kept"]

    def test_pooled_connection(self, storage_factory: StorageFactory) -> None:
        """``connection()`` blocks nest and reads run inside them."""
        with self._ledger(storage_factory, 2) as ledger:
            storage = ledger.storage
            if not self._claims(PooledConnectionStorage, storage):
                return
            assert isinstance(storage, PooledConnectionStorage)
            with storage.connection(), storage.connection():
                assert ledger.storage.count() == 2
            assert ledger.storage.count() == 2

    def test_extensions(self, storage_factory: StorageFactory) -> None:
        """``extensions`` is a dict that outlives the ledger on the same storage object."""
        storage = storage_factory()
        with create_ledger(id=self.ledger_id, storage=storage):
            if not self._claims(ExtensionStorage, storage):
                return
            assert isinstance(storage, ExtensionStorage)
            storage.extensions["capability-conformance"] = kept = object()
        with open_ledger(id=self.ledger_id, storage=storage):
            assert storage.extensions["capability-conformance"] is kept

    def test_rollback_actions(self, storage_factory: StorageFactory) -> None:
        """``on_rollback`` actions run (newest first) when the transaction rolls back, never on commit."""
        with self._ledger(storage_factory) as ledger:
            storage = ledger.storage
            with storage.write() as tx:
                if not self._claims(RollbackTransaction, tx):
                    return
                assert isinstance(tx, RollbackTransaction)
                ran: list[int] = []
                tx.on_rollback(lambda: ran.append(1))
            assert ran == []
            with pytest.raises(RuntimeError), storage.write() as tx:
                assert isinstance(tx, RollbackTransaction)
                tx.on_rollback(lambda: ran.append(1))
                tx.on_rollback(lambda: ran.append(2))
                raise RuntimeError("roll back")
            assert ran == [2, 1]

    def test_savepoints(self, storage_factory: StorageFactory) -> None:
        """A savepoint that raises undoes its inserts (and the head the transaction reads, and its
        undo actions) alone; one refusing a duplicate id leaves the transaction usable; what the
        other savepoints wrote commits."""
        with self._ledger(storage_factory, 2) as ledger:
            storage = ledger.storage
            undone: list[int] = []
            with storage.write() as tx:
                if not self._claims(SavepointTransaction, tx):
                    return
                sp = cast(SavepointTransaction, tx)
                kept = _chained(tx.head(), [make_record(10)], ledger.id)
                with sp.savepoint():
                    tx.insert(kept)
                with pytest.raises(RuntimeError), sp.savepoint():
                    tx.insert(_chained(tx.head(), [make_record(11), make_record(12)], ledger.id))
                    if isinstance(tx, RollbackTransaction):
                        tx.on_rollback(lambda: undone.append(1))
                    raise RuntimeError("undo this savepoint")
                assert tx.head() == ChainHead(seq=kept[0].seq, hash=kept[0].hash, committed_at=None)
                assert not sp.aborted
                with pytest.raises(DuplicateRecordError), sp.savepoint():
                    tx.insert(_chained(tx.head(), [make_record(0)], ledger.id))  # stored already
                assert not sp.aborted
                last = _chained(tx.head(), [make_record(13)], ledger.id)
                with sp.savepoint():
                    tx.insert(last)
            assert undone == ([1] if RollbackTransaction in self.capabilities else [])
            ids = [e.record_id for e in storage.iter_entries()]
            assert ids[-2:] == ["rec-000010", "rec-000013"] and storage.count() == len(ids)
            assert "rec-000011" not in ids and storage.head() == ChainHead(seq=last[0].seq, hash=last[0].hash)

    def test_write_behind(self, storage_factory: StorageFactory) -> None:
        """``flush`` writes the rows inserted so far at once: another statement of the transaction
        sees them, a record id stored already is refused there (and nothing of the transaction is
        written), and flushing with nothing kept back does nothing."""
        with self._ledger(storage_factory, 2) as ledger:
            storage = ledger.storage
            with storage.write() as tx:
                if not self._claims(WriteBehindTransaction, tx):
                    return
                wb = cast(WriteBehindTransaction, tx)
                wb.flush()
                kept = _chained(tx.head(), [make_record(10)], ledger.id)
                tx.insert(kept)
                wb.flush()
                assert storage.get_by_id("rec-000010") is not None  # read in the transaction, after the flush
                wb.flush()
            assert storage.head() == ChainHead(seq=kept[0].seq, hash=kept[0].hash)
            before = storage.count()
            with pytest.raises(DuplicateRecordError), storage.write() as tx:
                tx.insert(_chained(tx.head(), [make_record(11), make_record(0)], ledger.id))  # rec-0 stored
                cast(WriteBehindTransaction, tx).flush()
            assert storage.count() == before and storage.get_by_id("rec-000011") is None

    def test_grant_index(self, storage_factory: StorageFactory) -> None:
        """Grants, expiry, the wildcard, the resource index and the queries filtered by grants."""
        with self._ledger(storage_factory, 6) as ledger:
            storage = ledger.storage
            if not self._claims(GrantIndexStorage, storage):
                return
            assert isinstance(storage, GrantIndexStorage)
            index = storage.grant_index(wildcard="*", read_scope=1)
            index.setup()
            alice, bob = "oid:test:user:alice", "oid:test:user:bob"
            with ledger.storage.write():
                # entries 1-3 are notes n1..n3, 4-6 are tasks t4..t6
                index.index([(s, "note", f"n{s}") if s <= 3 else (s, "task", f"t{s}") for s in range(1, 7)])
                index.put_grant((alice, "note", "n1", 2, "oid:test:user:admin", None))
                index.put_grant((alice, "note", "n2", 1, None, 1000))  # expired at now=1000
                index.put_grant((alice, "task", "*", 1, None, None))
                index.put_grant((bob, "note", "*", 0, None, None))  # below read: reads nothing
            assert index.max_indexed_seq() == 6
            assert index.resource_of(4) == (4, "task", "t4") and index.resource_of(7) is None
            assert index.resource_exists("note", "n3") and not index.resource_exists("note", "n9")
            assert list(index.iter_index())[:2] == [(1, "note", "n1"), (2, "note", "n2")]
            assert index.get_grant(alice, "note", "n1") == (alice, "note", "n1", 2, "oid:test:user:admin", None)
            assert index.get_grant(alice, "note", "n3") is None
            assert index.best_scope(alice, "note", "n1", 999) == 2
            assert index.best_scope(alice, "note", "n2", 999) == 1
            assert index.best_scope(alice, "note", "n2", 1000) is None
            assert index.best_scope(alice, "task", "t9", 1000) == 1
            assert index.best_scope(bob, "note", "n1", 1000) == 0
            q = StorageQuery(limit=100)

            def seqs(entries: list[Any]) -> list[int]:
                return [e.seq for e in entries]

            with index.session():
                assert seqs(index.query_visible(q, alice, 999, None)) == [1, 2, 4, 5, 6]
                assert seqs(index.query_visible(q, alice, 1000, None)) == [1, 4, 5, 6]
                assert seqs(index.query_visible(q, alice, 1000, ("note",))) == [1]
                assert seqs(index.query_visible(StorageQuery(after_seq=4, limit=1), alice, 1000, None)) == [5]
                assert index.query_visible(q, bob, 1000, None) == []
                assert seqs(index.query_kinds(q, ("task",))) == [4, 5, 6]
                assert index.query_visible(q, alice, 1000, None)[0] == ledger.storage.get_by_seq(1)
            assert [g[:3] for g in index.grants()] == [
                (alice, "note", "n1"), (alice, "note", "n2"), (alice, "task", "*"), (bob, "note", "*"),
            ]
            with ledger.storage.write():
                assert index.delete_grant(alice, "note", "n1") is True
            assert index.delete_grant(alice, "note", "n1") is False
            with contextlib.suppress(RuntimeError), ledger.storage.write():
                index.put_grant((bob, "task", "t4", 3, None, None))
                raise RuntimeError("roll back")
            assert index.get_grant(bob, "task", "t4") is None  # rolled back with the transaction
            with ledger.storage.write():
                index.clear()
            assert list(index.grants()) == [] and index.max_indexed_seq() == 0

    def test_checkpoints(self, storage_factory: StorageFactory) -> None:
        """Checkpoints are kept verbatim per size: the first of a size stays, a smaller size after a
        larger one is refused (and rolls back alone), and they outlive the ledger object."""
        signer = NoteSigner.generate("example.com/conformance")

        def note(size: int, fill: int = 1) -> str:
            return sign_checkpoint("example.com/conformance", size, bytes([fill]) * 32, [signer])

        with self._ledger(storage_factory, 3) as ledger:
            storage = ledger.storage
            persistent = storage.persistent
            if not self._claims(CheckpointStorage, storage):
                return
            assert isinstance(storage, CheckpointStorage)
            store = storage.checkpoint_store()
            assert store.latest() is None and store.get(0) is None
            assert store.put(2, note(2)) == note(2)
            assert "\u2014 example.com/conformance " in store.get(2)  # type: ignore[operator]
            assert store.get(2) == note(2) and store.latest() == (2, note(2))
            assert store.put(2, note(2, fill=9)) == note(2)  # the first checkpoint of a size stays
            with pytest.raises(ConflictError, match="size 2"):
                store.put(1, note(1))
            assert store.get(1) is None
            ledger.append(make_record(50), make_context())  # the refused put rolled back only itself
            assert store.put(5, note(5)) == note(5)
            assert store.latest() == (5, note(5)) and store.get(2) == note(2) and store.get(3) is None
            for size, text in ((-1, note(1)), (4, ""), (True, note(1))):
                with pytest.raises(ValidationError):
                    store.put(size, text)
        reopened = storage_factory() if persistent else ledger.storage
        with open_ledger(id=self.ledger_id, storage=reopened) as again:
            assert isinstance(again.storage, CheckpointStorage)
            assert again.storage.checkpoint_store().latest() == (5, note(5))
        if persistent:  # one database, several ledgers: each its own checkpoints
            with create_ledger(id=f"{self.ledger_id}-other", storage=storage_factory()) as other:
                assert isinstance(other.storage, CheckpointStorage)
                assert other.storage.checkpoint_store().latest() is None

    def test_cosignatures(self, storage_factory: StorageFactory) -> None:
        """A checkpoint store keeps witness cosignatures per (size, witness): the first stays, a
        size without a checkpoint is refused, the latest size cosigned by enough witnesses is found,
        and they outlive the ledger object, per ledger."""
        signer = NoteSigner.generate("example.com/conformance")
        w1, w2, w3 = (f"w{i}.example+0000000{i}+B{'A' * 43}=" for i in (1, 2, 3))

        def line(witness: str, size: int) -> str:
            return f"\u2014 {witness.split('+')[0]} {'A' * 102}{size:02d}\n"

        with self._ledger(storage_factory, 3) as ledger:
            storage = ledger.storage
            persistent = storage.persistent
            if not self._claims(CheckpointStorage, storage):
                return
            assert isinstance(storage, CheckpointStorage)
            store = storage.checkpoint_store()
            assert isinstance(store, CosignatureStore)
            assert store.cosignatures(2) == {} and store.cosigned_sizes() == {}
            assert store.latest_cosigned([w1], 1) is None
            with pytest.raises(NotFoundError, match="size 2"):
                store.put_cosignature(2, w1, line(w1, 2))
            for size in (2, 3, 7):
                store.put(size, sign_checkpoint("example.com/conformance", size, bytes([size]) * 32, [signer]))
            assert store.put_cosignature(2, w1, line(w1, 2)) is True
            assert store.put_cosignature(2, w1, line(w1, 99)) is False  # the first cosignature stays
            assert store.put_cosignature(2, w2, line(w2, 2)) is True
            assert store.put_cosignature(3, w1, line(w1, 3)) is True
            assert store.put_cosignature(7, w3, line(w3, 7)) is True
            assert store.cosignatures(2) == {w1: line(w1, 2), w2: line(w2, 2)}
            assert store.cosignatures(5) == {} and store.cosignatures(-1) == {}
            assert store.cosigned_sizes() == {w1: 3, w2: 2, w3: 7}
            assert store.latest_cosigned([w1, w2, w3], 1) == 7
            assert store.latest_cosigned([w1, w2], 1) == 3
            assert store.latest_cosigned([w1, w2, w3], 2) == 2
            assert store.latest_cosigned([w1, w2, w2], 2) == 2  # a witness named twice counts once
            assert store.latest_cosigned([w1, w3], 2) is None
            assert store.latest_cosigned([w1, w2, w3], 3) is None
            bad: tuple[Any, ...]
            for bad in ((True, w1, line(w1, 2)), (2, "", line(w1, 2)), (2, w1, "- w1 A\n"), (2, w1, line(w1, 2) * 2)):
                with pytest.raises(ValidationError):
                    store.put_cosignature(*bad)
            for count in (0, -1, True):
                with pytest.raises(ValidationError):
                    store.latest_cosigned([w1], count)
        reopened = storage_factory() if persistent else ledger.storage
        with open_ledger(id=self.ledger_id, storage=reopened) as again:
            assert isinstance(again.storage, CheckpointStorage)
            kept = again.storage.checkpoint_store()
            assert isinstance(kept, CosignatureStore)
            assert kept.cosigned_sizes() == {w1: 3, w2: 2, w3: 7}
            assert kept.cosignatures(7) == {w3: line(w3, 7)}
        if persistent:  # one database, several ledgers: each its own cosignatures
            with create_ledger(id=f"{self.ledger_id}-other", storage=storage_factory()) as other:
                assert isinstance(other.storage, CheckpointStorage)
                store = other.storage.checkpoint_store()
                assert isinstance(store, CosignatureStore)
                assert store.cosigned_sizes() == {} and store.latest_cosigned([w1, w2, w3], 1) is None
    def test_merkle_entry_read(self, storage_factory: StorageFactory) -> None:
        """``entry_and_merkle_nodes(seq, keys)`` answers exactly ``get_by_seq(seq)`` and
        ``merkle_store().nodes(keys)``: seqs in the tree, beyond it and below 1, with the keys of
        inclusion proofs and roots, of stored and derived levels, of nodes not complete yet, none."""
        with self._ledger(storage_factory, 70) as ledger:
            storage = ledger.storage
            if not self._claims(MerkleEntryReadStorage, storage):
                return
            assert isinstance(ledger.storage, MerkleTreeStorage)
            store = storage.merkle_store()
            size = storage.merkle_size()
            assert size == 70
            rng = random.Random(13)
            key_sets: list[set[NodeKey]] = [set(), {(0, 0)}, {(4, 3)}, {(4, 4)}, {(2, 17)}, {(0, 69), (0, 70)}]
            key_sets.append({(9, 0)})
            key_sets += [set(frontier_keys(n)) for n in (1, 16, 33, 64, 70)]
            for _ in range(12):
                n = rng.randint(1, size)
                key_sets.append(inclusion_keys(rng.randrange(n), n))
                key_sets.append({(level, rng.randrange(80 >> level)) for level in rng.sample(range(7), 3)})
            seqs = [1, 2, 16, 17, 64, 69, 70, 71, 1000, 2**62, 0, -1, *rng.sample(range(1, 71), 10)]
            for i, seq in enumerate(seqs):
                for keys in key_sets[i % 3 :: 3]:
                    entry, nodes = storage.entry_and_merkle_nodes(seq, keys)
                    assert entry == storage.get_by_seq(seq), seq
                    assert dict(nodes) == dict(store.nodes(keys)), (seq, sorted(keys))


def _chained(head: ChainHead | None, records: list[Record], ledger_id: str) -> list[Entry]:
    """``records`` as entries (format version 1) chained after ``head``."""
    prefix = preimage_prefix(ledger_id)
    seq, prev = (head.seq, head.hash) if head is not None else (0, GENESIS_HASH)
    out: list[Entry] = []
    for record in records:
        seq += 1
        digest = entry_hash_with_prefix(prefix, seq, prev, record.canonical)
        out.append(Entry.chained(seq=seq, hash=digest, prev_hash=prev, record=record))
        prev = digest
    return out
