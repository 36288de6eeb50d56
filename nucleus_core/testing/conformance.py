"""The storage conformance suite: one set of tests every storage backend passes."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

import pytest

from ..context import RequestContext
from ..errors import DuplicateRecordError, LedgerNotFoundError, StorageError
from ..hashing import GENESIS_HASH
from ..ledger import Ledger, create_ledger
from ..records import Record
from ..storage import StorageBackend, StorageQuery

StorageFactory = Callable[[], StorageBackend]


def make_context(oid: str = "oid:test:user:alice") -> RequestContext:
    return RequestContext(oid=oid, source="dev")


def make_record(i: int, *, stream: str = "events", prefix: str = "rec") -> Record:
    return Record(
        id=f"{prefix}-{i:06d}",
        stream=stream,
        timestamp=1_700_000_000_000 + i,
        payload={"n": i, "subject": f"oid:test:user:u{i % 7}", "note": "é✓ \u2028", "f": i / 4},
        meta={"batch": i // 10},
    )


class StorageConformance:
    """Subclass in a backend's tests and provide the ``storage_factory`` fixture."""

    ledger_id = "conformance"

    @pytest.fixture
    def storage_factory(self) -> StorageFactory:  # pragma: no cover - must be overridden
        pytest.fail("a conformance test class must define the storage_factory fixture")

    @pytest.fixture
    def ctx(self) -> RequestContext:
        return make_context()

    def open_ledger(self, storage_factory: StorageFactory, **kwargs: Any) -> Ledger:
        return create_ledger(id=self.ledger_id, storage=storage_factory(), **kwargs)

    # creating and opening ---------------------------------------------------------------
    def test_open_without_create_creates_nothing(self, storage_factory: StorageFactory) -> None:
        """``open(create=False)`` refuses storage without the ledger, listing the ids it holds, and
        creates nothing; after ``create_ledger`` the ledger opens that way (empty, but existing)."""
        fresh = storage_factory()
        with pytest.raises(LedgerNotFoundError) as missing:
            fresh.open(self.ledger_id, create=False)
        assert missing.value.ledger_ids == ()
        fresh.close()
        if not fresh.persistent:
            return  # every factory call makes new, empty storage
        create_ledger(id=self.ledger_id, storage=storage_factory()).close()
        other = storage_factory()
        with pytest.raises(LedgerNotFoundError) as absent:
            other.open(f"{self.ledger_id}-other", create=False)
        assert absent.value.ledger_ids == (self.ledger_id,)
        other.close()
        existing = storage_factory()
        existing.open(self.ledger_id, create=False)
        assert existing.count() == 0
        existing.close()

    # ordering and hashing -----------------------------------------------------------------
    def test_empty_ledger(self, storage_factory: StorageFactory) -> None:
        with self.open_ledger(storage_factory) as ledger:
            assert ledger.length() == 0
            assert ledger.latest_hash() is None
            report = ledger.verify()
            assert report.ok and report.entries_checked == 0
            assert ledger.storage.head() is None
            assert ledger.storage.count() == 0
            assert list(ledger.storage.iter_entries()) == []

    def test_append_orders_by_seq_and_links(self, storage_factory: StorageFactory, ctx: RequestContext) -> None:
        with self.open_ledger(storage_factory) as ledger:
            entries = [ledger.append(make_record(i), ctx) for i in range(5)]
            entries += ledger.append_batch([make_record(i) for i in range(5, 25)], ctx)
            assert [e.seq for e in entries] == list(range(1, 26))
            assert entries[0].prev_hash == GENESIS_HASH
            for a, b in itertools.pairwise(entries):
                assert b.prev_hash == a.hash
            stored = list(ledger.storage.iter_entries())
            assert [s.seq for s in stored] == list(range(1, 26))
            assert [s.hash for s in stored] == [e.hash for e in entries]
            assert all(s.canonical == e.canonical for s, e in zip(stored, entries, strict=True))
            assert ledger.length() == 25 and ledger.latest_hash() == entries[-1].hash
            assert ledger.verify().ok

    def test_same_timestamp_keeps_seq_order(self, storage_factory: StorageFactory, ctx: RequestContext) -> None:
        with self.open_ledger(storage_factory) as ledger:
            recs = [Record(id=f"same-{i}", stream="s", timestamp=5, payload={"i": i}) for i in range(10)]
            ledger.append_batch(list(reversed(recs)), ctx)
            ids = [e.record.id for e in ledger.query({"stream": "s"}, ctx)]
            assert ids == [f"same-{i}" for i in reversed(range(10))]

    # atomicity and duplicates -------------------------------------------------------------
    def test_duplicate_id_refused_and_nothing_written(
        self, storage_factory: StorageFactory, ctx: RequestContext
    ) -> None:
        with self.open_ledger(storage_factory) as ledger:
            ledger.append_batch([make_record(i) for i in range(3)], ctx)
            before = (ledger.length(), ledger.latest_hash())
            with pytest.raises(DuplicateRecordError) as info:
                ledger.append(make_record(1), ctx)
            assert info.value.record_id == make_record(1).id
            with pytest.raises(DuplicateRecordError):
                ledger.append_batch([make_record(10), make_record(11), make_record(2)], ctx)
            with pytest.raises(DuplicateRecordError):
                ledger.append_batch([make_record(20), make_record(20)], ctx)
            assert (ledger.length(), ledger.latest_hash()) == before
            assert ledger.get_by_id(make_record(10).id, ctx) is None
            assert ledger.verify().ok

    def test_failed_transaction_rolls_back(self, storage_factory: StorageFactory, ctx: RequestContext) -> None:
        with self.open_ledger(storage_factory) as ledger:
            ledger.append(make_record(0), ctx)
            before = (ledger.length(), ledger.latest_hash(), ledger.storage.count())

            def boom(_tx: Any) -> None:
                raise RuntimeError("fail inside the transaction")

            with pytest.raises(RuntimeError):
                ledger.append_system(
                    [
                        Record(id="sys-1", stream="_system", timestamp=1, payload={}),
                        Record(id="sys-2", stream="_system", timestamp=1, payload={}),
                    ],
                    ctx,
                    within=boom,
                )
            assert (ledger.length(), ledger.latest_hash(), ledger.storage.count()) == before
            assert ledger.get_by_id("sys-1", ctx) is None
            entry = ledger.append(make_record(1), ctx)
            assert entry.seq == 2
            assert ledger.verify().ok

    def test_insert_must_follow_head(self, storage_factory: StorageFactory, ctx: RequestContext) -> None:
        with self.open_ledger(storage_factory) as ledger:
            entry = ledger.append(make_record(0), ctx)
            stored = ledger.storage.get_by_seq(1)
            assert stored is not None
            forged = type(stored)(
                seq=1,
                hash="ab" * 32,
                prev_hash=entry.hash,
                record_id="other",
                stream="events",
                timestamp=1,
                canonical=b"{}",
            )
            with pytest.raises(StorageError), ledger.storage.write() as tx:
                tx.insert([forged])
            assert ledger.length() == 1 and ledger.verify().ok

    # lookups -------------------------------------------------------------------------------
    def test_lookups(self, storage_factory: StorageFactory, ctx: RequestContext) -> None:
        with self.open_ledger(storage_factory) as ledger:
            entries = ledger.append_batch([make_record(i) for i in range(10)], ctx)
            storage = ledger.storage
            for e in entries:
                by_hash = storage.get_by_hash(e.hash)
                by_id = storage.get_by_id(e.record.id)
                by_seq = storage.get_by_seq(e.seq)
                assert by_hash == by_id == by_seq
                assert by_hash is not None and by_hash == e
                assert by_hash.record_id == e.record.id and by_hash.stream == e.record.stream
                assert by_hash.timestamp == e.record.timestamp
            assert storage.get_by_hash("00" * 32) is None
            assert storage.get_by_id("nope") is None
            assert storage.get_by_seq(0) is None and storage.get_by_seq(11) is None
            assert ledger.get(entries[3].hash, ctx) == entries[3]
            assert ledger.get_by_id(entries[4].record.id, ctx) == entries[4]
            assert ledger.get_by_id("missing", ctx) is None

    def test_range_and_iter(self, storage_factory: StorageFactory, ctx: RequestContext) -> None:
        with self.open_ledger(storage_factory) as ledger:
            ledger.append_batch([make_record(i) for i in range(30)], ctx)
            storage = ledger.storage
            assert [e.seq for e in storage.range(5, 10)] == list(range(5, 15))
            assert [e.seq for e in storage.range(25, 10)] == list(range(25, 31))
            assert storage.range(31, 5) == []
            assert [e.seq for e in storage.iter_entries(28)] == [28, 29, 30]
            assert storage.count() == 30

    # queries -------------------------------------------------------------------------------
    def test_query_filters_and_pagination(self, storage_factory: StorageFactory, ctx: RequestContext) -> None:
        with self.open_ledger(storage_factory) as ledger:
            recs = [make_record(i, stream="a" if i % 3 else "b") for i in range(60)]
            ledger.append_batch(recs, ctx)
            storage = ledger.storage
            only_b = storage.query(StorageQuery(streams=("b",), limit=1000))
            assert [e.record_id for e in only_b] == [r.id for r in recs if r.stream == "b"]
            both = storage.query(StorageQuery(streams=("a", "b"), limit=1000))
            assert len(both) == 60
            t0 = recs[10].timestamp
            window = storage.query(StorageQuery(since=t0, until=t0 + 5, limit=1000))
            assert [e.record_id for e in window] == [r.id for r in recs[10:15]]
            ids = storage.query(StorageQuery(record_ids=(recs[7].id, recs[3].id, "absent"), limit=10))
            assert [e.record_id for e in ids] == [recs[3].id, recs[7].id]
            seen: list[str] = []
            cursor = None
            while True:
                res = ledger.query({"stream": "a", "limit": 7, "cursor": cursor}, ctx)
                seen += [e.record.id for e in res]
                assert len(res) <= 7
                cursor = res.next_cursor
                if cursor is None:
                    break
            assert seen == [r.id for r in recs if r.stream == "a"]
            assert storage.query(StorageQuery(streams=("zzz",), limit=10)) == []

    def test_query_values_are_literals(self, storage_factory: StorageFactory, ctx: RequestContext) -> None:
        with self.open_ledger(storage_factory) as ledger:
            ledger.append_batch([make_record(i) for i in range(3)], ctx)
            for evil in ("' OR 1=1 --", "%", "_", "rec-%", "a\x00b", "x" * 10000, '"; DROP TABLE entries; --'):
                assert ledger.storage.query(StorageQuery(record_ids=(evil,), limit=10)) == []
                assert ledger.storage.get_by_id(evil) is None
            assert ledger.length() == 3 and ledger.verify().ok

    # reopen ---------------------------------------------------------------------------------
    def test_reopen_keeps_everything(self, storage_factory: StorageFactory, ctx: RequestContext) -> None:
        with self.open_ledger(storage_factory) as ledger:
            if not ledger.has_storage():
                pytest.skip("backend is not persistent")
            entries = ledger.append_batch([make_record(i) for i in range(20)], ctx)
        with self.open_ledger(storage_factory) as again:
            assert again.length() == 20
            assert again.latest_hash() == entries[-1].hash
            assert again.get_by_id(entries[5].record.id, ctx) == entries[5]
            nxt = again.append(make_record(100), ctx)
            assert nxt.seq == 21 and nxt.prev_hash == entries[-1].hash
            assert again.verify().ok

    def test_read_only_without_verification(self, storage_factory: StorageFactory, ctx: RequestContext) -> None:
        with self.open_ledger(storage_factory) as ledger:
            if not ledger.has_storage():
                pytest.skip("backend is not persistent")
            ledger.append(make_record(0), ctx)
        from ..errors import ReadOnlyLedgerError

        with self.open_ledger(storage_factory, verify_on_open=False) as ro:
            assert ro.read_only
            assert ro.get_by_id(make_record(0).id, ctx) is not None
            with pytest.raises(ReadOnlyLedgerError):
                ro.append(make_record(1), ctx)

    # concurrency ----------------------------------------------------------------------------
    def test_threads_never_fork(self, storage_factory: StorageFactory, ctx: RequestContext) -> None:
        with self.open_ledger(storage_factory) as ledger:
            errors: list[BaseException] = []

            def worker(t: int) -> None:
                try:
                    for i in range(25):
                        ledger.append(make_record(t * 1000 + i, prefix=f"t{t}"), ctx)
                except BaseException as err:  # noqa: BLE001
                    errors.append(err)

            threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            assert not errors
            assert ledger.length() == 100
            assert ledger.verify().ok
