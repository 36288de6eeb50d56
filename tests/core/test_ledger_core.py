"""The ledger API on the memory backend: appends, reads, queries, verification, refusals.

Every refusal is checked to leave the ledger unchanged, and a missing requester is checked to be
refused before the storage backend is touched at all (SECURITY-TESTS 25, 30, 32)."""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from nucleus_core import (
    ConfigurationError,
    DuplicateRecordError,
    Entry,
    Ledger,
    LedgerClosedError,
    MemoryStorage,
    MissingRequesterError,
    QueryError,
    QueryFilters,
    Record,
    RecordTooLargeError,
    RecordValidationError,
    RequestContext,
    StorageError,
    ValidationError,
    create_ledger,
)
from nucleus_core.hashing import GENESIS_HASH, entry_hash_v2
from nucleus_core.ledger import MAX_BATCH_SIZE
from nucleus_core.storage import MAX_QUERY_LIMIT, ChainHead, StorageQuery, WriteTransaction

CTX = RequestContext(oid="oid:test:user:alice", source="dev")
NO_REQUESTER: list[Any] = [None, "", " ", "\t\n", "oid:test:user:alice", {"oid": "oid:test:user:alice"}, object()]


def rec(i: int, *, stream: str = "events", ts: int | None = None, **payload: Any) -> Record:
    timestamp = ts if ts is not None else 1000 + i
    return Record(id=f"r{i:04d}", stream=stream, timestamp=timestamp, payload={"i": i, **payload})


def deep(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


class CountingStorage:
    """A MemoryStorage that records every call made to it (to prove that none happened)."""

    persistent = False

    def __init__(self, fail_insert: bool = False) -> None:
        self.inner = MemoryStorage()
        self.url = "memory://counting"
        self.calls: list[str] = []
        self.fail_insert = fail_insert

    def open(self, ledger_id: str, *, read_only: bool = False) -> None:
        self.calls.append("open")
        self.inner.open(ledger_id, read_only=read_only)

    def close(self) -> None:
        self.calls.append("close")

    @contextlib.contextmanager
    def write(self) -> Iterator[WriteTransaction]:
        self.calls.append("write")
        with self.inner.write() as tx:
            if self.fail_insert:
                yield _FailingTransaction(tx)
            else:
                yield tx

    def head(self) -> ChainHead | None:
        self.calls.append("head")
        return self.inner.head()

    def count(self) -> int:
        self.calls.append("count")
        return self.inner.count()

    def get_by_hash(self, entry_hash: str) -> Entry | None:
        self.calls.append("get_by_hash")
        return self.inner.get_by_hash(entry_hash)

    def get_by_id(self, record_id: str) -> Entry | None:
        self.calls.append("get_by_id")
        return self.inner.get_by_id(record_id)

    def get_by_seq(self, seq: int) -> Entry | None:
        self.calls.append("get_by_seq")
        return self.inner.get_by_seq(seq)

    def range(self, from_seq: int, limit: int) -> list[Entry]:
        self.calls.append("range")
        return self.inner.range(from_seq, limit)

    def iter_entries(self, from_seq: int = 1) -> Iterator[Entry]:
        self.calls.append("iter_entries")
        return self.inner.iter_entries(from_seq)

    def query(self, query: StorageQuery) -> list[Entry]:
        self.calls.append("query")
        return self.inner.query(query)


class _FailingTransaction:
    def __init__(self, tx: WriteTransaction) -> None:
        self.tx = tx

    def head(self) -> ChainHead | None:
        return self.tx.head()

    def insert(self, entries: Sequence[Entry]) -> None:
        self.tx.insert(entries)
        raise StorageError("disk full (simulated, after the rows were inserted)")


@pytest.fixture
def ledger() -> Iterator[Ledger]:
    with create_ledger(id="core-test", storage="memory://") as led:
        yield led


@contextlib.contextmanager
def unchanged(ledger: Ledger) -> Iterator[None]:
    before = (ledger.length(), ledger.latest_hash(), list(ledger.storage.iter_entries(1)))
    yield
    assert (ledger.length(), ledger.latest_hash(), list(ledger.storage.iter_entries(1))) == before
    assert ledger.verify().ok


# -- appends and reads -----------------------------------------------------------------------


def test_append_and_read_back(ledger: Ledger) -> None:
    assert (ledger.length(), ledger.latest_hash()) == (0, None)
    first = ledger.append(rec(1), CTX)
    assert isinstance(first, Entry)
    assert (first.seq, first.prev_hash) == (1, GENESIS_HASH)
    assert first.hash == entry_hash_v2(
        "core-test", 1, GENESIS_HASH, rec(1).canonical,
        committed_at=first.committed_at, appender=CTX.oid, auth_source=CTX.source,
    )
    assert (first.version, first.appender, first.auth_source) == (2, CTX.oid, CTX.source)
    assert first.canonical == rec(1).canonical
    second = ledger.append(rec(2), CTX)
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert (ledger.length(), ledger.latest_hash()) == (2, second.hash)
    assert ledger.get(first.hash, CTX) == first
    assert ledger.get_by_id("r0002", CTX) == second
    assert ledger.get("0" * 64, CTX) is None
    assert ledger.get_by_id("absent", CTX) is None
    assert first.to_dict()["record"] == rec(1).to_dict()
    assert ledger.has_storage() is False
    assert ledger.verify().ok and ledger.verify_storage().ok


def test_append_batch_links_in_order(ledger: Ledger) -> None:
    ledger.append(rec(0), CTX)
    entries = ledger.append_batch([rec(i, ts=5) for i in range(1, 30)], CTX)
    assert [e.seq for e in entries] == list(range(2, 31))
    assert entries[0].prev_hash == ledger.get_by_id("r0000", CTX).hash  # type: ignore[union-attr]
    for a, b in itertools.pairwise(entries):
        assert b.prev_hash == a.hash
    assert [ledger.get_by_id(e.record.id, CTX) for e in entries] == entries
    report = ledger.verify()
    assert report.ok and report.entries_checked == 30 and report.head_hash == entries[-1].hash


@pytest.mark.parametrize("bad", ["ABC", "0" * 63, "G" * 64, ("A" * 64), 5, None])
def test_get_refuses_malformed_hash(ledger: Ledger, bad: Any) -> None:
    with pytest.raises(ValidationError) as info:
        ledger.get(bad, CTX)
    assert info.value.field == "hash"


@pytest.mark.parametrize("bad", ["", None, 5])
def test_get_by_id_refuses_bad_id(ledger: Ledger, bad: Any) -> None:
    with pytest.raises(ValidationError) as info:
        ledger.get_by_id(bad, CTX)
    assert info.value.field == "record_id"


def test_iter_entries_streams_in_seq_order(ledger: Ledger) -> None:
    ledger.append_batch([rec(i) for i in range(10)], CTX)
    assert [e.seq for e in ledger.iter_entries(CTX)] == list(range(1, 11))
    assert [e.seq for e in ledger.iter_entries(CTX, from_seq=8)] == [8, 9, 10]


# -- duplicates, batches, size --------------------------------------------------------------


def test_duplicate_id_refused_never_overwrites(ledger: Ledger) -> None:
    original = ledger.append(rec(1, v="original"), CTX)
    with unchanged(ledger), pytest.raises(DuplicateRecordError) as info:
        ledger.append(rec(1, v="replacement"), CTX)
    assert info.value.record_id == "r0001"
    assert ledger.get_by_id("r0001", CTX) == original
    assert ledger.get_by_id("r0001", CTX).record.payload["v"] == "original"  # type: ignore[union-attr]


def test_duplicate_in_batch_or_against_ledger_writes_nothing(ledger: Ledger) -> None:
    ledger.append(rec(1), CTX)
    with unchanged(ledger), pytest.raises(DuplicateRecordError):
        ledger.append_batch([rec(2), rec(3), rec(2)], CTX)
    with unchanged(ledger), pytest.raises(DuplicateRecordError):
        ledger.append_batch([rec(2), rec(3), rec(1)], CTX)
    assert ledger.get_by_id("r0002", CTX) is None


@pytest.mark.parametrize(
    "batch",
    [
        [],
        [rec(1), {"id": "x", "stream": "s", "timestamp": 1, "payload": {}}],
        [rec(1), "r0002"],
        rec(1),
        "r0001",
        [rec(1), Record(id="sys", stream="_grants", timestamp=1, payload={})],
    ],
    ids=["empty", "dict-item", "str-item", "single-record", "string", "system-stream"],
)
def test_bad_batches_refused_whole(ledger: Ledger, batch: Any) -> None:
    ledger.append(rec(0), CTX)
    with unchanged(ledger), pytest.raises(ValidationError):
        ledger.append_batch(batch, CTX)


def test_batch_size_limit(ledger: Ledger) -> None:
    records = [rec(i) for i in range(MAX_BATCH_SIZE + 1)]
    with unchanged(ledger), pytest.raises(ValidationError, match=str(MAX_BATCH_SIZE)):
        ledger.append_batch(records, CTX)
    assert len(ledger.append_batch(records[:MAX_BATCH_SIZE], CTX)) == MAX_BATCH_SIZE


def test_storage_failure_mid_batch_commits_nothing() -> None:
    storage = CountingStorage(fail_insert=True)
    with create_ledger(id="fail", storage=storage) as led:
        with pytest.raises(StorageError, match="disk full"):
            led.append_batch([rec(i) for i in range(5)], CTX)
        assert (led.length(), led.latest_hash(), storage.inner.count()) == (0, None, 0)
        storage.fail_insert = False
        entry = led.append(rec(9), CTX)
        assert entry.seq == 1 and entry.prev_hash == GENESIS_HASH  # no in-memory state leaked
        assert led.verify().ok


def test_record_size_limit_default_and_configured() -> None:
    big = Record(id="big", stream="s", timestamp=1, payload={"x": "a" * (1024 * 1024)})
    fits = Record(id="fits", stream="s", timestamp=1, payload={"x": "a" * (1024 * 1024 - 100)})
    assert big.size > 1024 * 1024 >= fits.size
    with create_ledger(id="size", storage="memory://") as led:
        with unchanged(led), pytest.raises(RecordTooLargeError) as info:
            led.append(big, CTX)
        assert "1048576" in str(info.value)
        led.append(fits, CTX)
    with create_ledger(id="size", storage="memory://", max_record_bytes=200) as led:
        with unchanged(led), pytest.raises(RecordTooLargeError):
            led.append_batch([rec(1), rec(2, pad="x" * 200)], CTX)
        led.append(rec(1), CTX)


@pytest.mark.parametrize("limit", [0, 63, 64 * 1024 * 1024 + 1, "1000", 1.5, True])
def test_record_size_limit_must_be_sane(limit: Any) -> None:
    with pytest.raises(ConfigurationError):
        create_ledger(id="size", storage="memory://", max_record_bytes=limit)


def test_system_streams_refused_for_users(ledger: Ledger) -> None:
    with unchanged(ledger), pytest.raises(RecordValidationError) as info:
        ledger.append(Record(id="g", stream="_grants", timestamp=1, payload={}), CTX)
    assert info.value.field == "stream"
    entries = ledger.append_system([Record(id="g", stream="_grants", timestamp=1, payload={})], CTX)
    assert entries[0].seq == 1
    with unchanged(ledger), pytest.raises(RecordValidationError):
        ledger.append_system([rec(5)], CTX)  # and plugins cannot use it for user streams


# -- requester --------------------------------------------------------------------------------


def _every_call(led: Ledger, ctx: Any) -> list[Any]:
    return [
        lambda: led.append(rec(1), ctx),
        lambda: led.append_batch([rec(1), rec(2)], ctx),
        lambda: led.append_system([Record(id="g", stream="_grants", timestamp=1, payload={})], ctx),
        lambda: led.get("0" * 64, ctx),
        lambda: led.get("not a hash", ctx),
        lambda: led.get_by_id("r0001", ctx),
        lambda: led.query({"stream": "events"}, ctx),
        lambda: led.query({"bogus": 1}, ctx),
        lambda: list(led.iter_entries(ctx)),
    ]


@pytest.mark.parametrize("ctx", NO_REQUESTER, ids=[repr(c)[:20] for c in NO_REQUESTER])
def test_missing_requester_refused_before_any_storage_call(ctx: Any) -> None:
    storage = CountingStorage()
    with create_ledger(id="ctx", storage=storage) as led:
        led.append(rec(0), CTX)
        head = storage.inner.head()
        for call in _every_call(led, ctx):
            storage.calls.clear()
            with pytest.raises(MissingRequesterError):
                call()
            assert storage.calls == [], storage.calls
        assert storage.inner.head() == head and storage.inner.count() == 1


def test_requester_is_required_positionally_too(ledger: Ledger) -> None:
    with pytest.raises(TypeError):
        ledger.append(rec(1))  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        ledger.query({})  # type: ignore[call-arg]


# -- queries ----------------------------------------------------------------------------------


@pytest.fixture
def filled(ledger: Ledger) -> Ledger:
    records = [rec(i, stream=("orders", "events", "audit.log")[i % 3], ts=1000 + (i // 2)) for i in range(60)]
    ledger.append_batch(records, CTX)
    return ledger


def ids(result: Any) -> list[str]:
    return [e.record.id for e in result]


def test_query_filters(filled: Ledger) -> None:
    all_ = filled.query(None, CTX)
    assert [e.seq for e in all_] == list(range(1, 61)) and all_.next_cursor is None
    orders = filled.query({"stream": "orders"}, CTX)
    assert ids(orders) == [f"r{i:04d}" for i in range(0, 60, 3)]
    two = filled.query(QueryFilters(stream=["orders", "audit.log"]), CTX)
    assert len(two) == 40 and all(e.record.stream != "events" for e in two)
    picked = filled.query({"record_ids": ["r0007", "r0003", "nope"]}, CTX)
    assert ids(picked) == ["r0003", "r0007"]  # seq order, whatever the request order
    window = filled.query({"since": 1005, "until": 1008}, CTX)  # since <= ts < until
    assert ids(window) == [f"r{i:04d}" for i in range(10, 16)]
    combined = filled.query({"stream": "events", "since": 1005, "until": 1008, "record_ids": ["r0010", "r0013"]}, CTX)
    assert ids(combined) == ["r0010", "r0013"]
    assert len(filled.query({"stream": "unused"}, CTX)) == 0


def test_query_pagination_covers_everything_once(filled: Ledger) -> None:
    for limit in (1, 7, 20, 59, 60, 1000):
        seen: list[int] = []
        cursor = None
        pages = 0
        while True:
            page = filled.query({"limit": limit, "cursor": cursor}, CTX)
            assert len(page) <= limit
            seen += [e.seq for e in page]
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == list(range(1, 61))
        assert pages == -(-60 // limit)
    # pagination within a filter
    first = filled.query({"stream": "events", "limit": 5}, CTX)
    rest = filled.query({"stream": "events", "limit": 1000, "cursor": first.next_cursor}, CTX)
    assert ids(first) + ids(rest) == [f"r{i:04d}" for i in range(1, 60, 3)]


def test_query_limit_bounds(filled: Ledger) -> None:
    assert MAX_QUERY_LIMIT == 1000
    assert len(filled.query({}, CTX)) == 60  # default limit 100
    assert len(filled.query({"limit": MAX_QUERY_LIMIT}, CTX)) == 60
    assert len(filled.query({"limit": 1}, CTX)) == 1
    for bad in (0, -1, MAX_QUERY_LIMIT + 1, 10**9, "10", 2.0, True, None):
        with pytest.raises(QueryError) as info:
            filled.query({"limit": bad}, CTX)
        assert info.value.field == "limit"


@pytest.mark.parametrize(
    "filters",
    [
        {"bogus": 1},
        {"stream": "events", "order_by": "seq"},
        {"sort": "timestamp desc"},
        "stream=events",
        ["stream"],
        {"stream": 5},
        {"stream": []},
        {"stream": "Bad Stream"},
        {"stream": "%"},
        {"record_ids": "r0001"},
        {"record_ids": []},
        {"record_ids": [""]},
        {"record_ids": [1]},
        {"since": -1},
        {"since": "yesterday"},
        {"until": 1.5},
        {"cursor": "x"},
        {"cursor": "s-1"},
        {"cursor": "s"},
        {"cursor": "s1e3"},
        {"cursor": "s" + "9" * 40},
        {"cursor": 5},
    ],
)
def test_bad_filters_refused(filled: Ledger, filters: Any) -> None:
    with unchanged(filled), pytest.raises(QueryError):
        filled.query(filters, CTX)


def test_filter_values_are_literals(ledger: Ledger) -> None:
    ledger.append_batch(
        [Record(id=i, stream="s", timestamp=1, payload={}) for i in ("abc", "a_c", "a%c", "' OR 1=1 --", "x")], CTX
    )
    for value, expected in [
        ("a_c", ["a_c"]),
        ("a%c", ["a%c"]),
        ("%", []),
        ("_", []),
        ("' OR 1=1 --", ["' OR 1=1 --"]),
        ("z" * 100_000, []),
    ]:
        assert ids(ledger.query({"record_ids": [value]}, CTX)) == expected
        assert (ledger.get_by_id(value, CTX) is not None) == bool(expected)
    assert len(ledger.query({"record_ids": ["' OR 1=1 --", "%"]}, CTX)) == 1
    for nul in ("\x00", "abc\x00"):  # no record id holds a control character: refused, on every backend
        with unchanged(ledger), pytest.raises(QueryError):
            ledger.query({"record_ids": [nul]}, CTX)
        with pytest.raises(ValidationError):
            ledger.get_by_id(nul, CTX)


# -- verification and state -------------------------------------------------------------------


def test_length_and_latest_hash_follow_commits(ledger: Ledger) -> None:
    hashes = []
    for i in range(5):
        hashes.append(ledger.append(rec(i), CTX).hash)
        assert ledger.length() == i + 1 and ledger.latest_hash() == hashes[-1]
    report = ledger.verify_storage()
    assert report.ok and report.entries_checked == 5 and report.head_hash == hashes[-1]


def test_threads_appending_concurrently_never_fork(ledger: Ledger) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def worker(t: int) -> None:
        try:
            start.wait()
            for i in range(40):
                if i % 5 == 0:
                    ledger.append_batch([rec(t * 1000 + i * 10 + k) for k in range(3)], CTX)
                else:
                    ledger.append(rec(t * 1000 + i * 10), CTX)
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert ledger.length() == 4 * (32 + 8 * 3)
    entries = list(ledger.iter_entries(CTX))
    assert [e.seq for e in entries] == list(range(1, ledger.length() + 1))
    assert len({e.record.id for e in entries}) == len(entries)
    assert ledger.verify().ok


def test_closed_ledger_refuses_everything() -> None:
    led = create_ledger(id="closing", storage="memory://")
    led.append(rec(1), CTX)
    led.close()
    led.close()  # idempotent
    assert led.closed
    for call in [*_every_call(led, CTX)[:4], led.length, led.latest_hash, led.verify]:
        with pytest.raises(LedgerClosedError):
            call()


def test_refused_record_construction_never_reaches_the_ledger(ledger: Ledger) -> None:
    """SECURITY-TESTS 32: a bad record cannot be built, so the ledger never sees it."""
    bad_inputs: list[dict[str, Any]] = [
        {"payload": {"x": float("nan")}},
        {"payload": {"x": float("inf")}},
        {"payload": {"x": 2**53}},
        {"payload": {1: "x"}},
        {"payload": {"x": "\ud800"}},
        {"payload": {"\udfff": 1}},
        {"payload": {"a": deep(70)}},
        {"id": ""},
        {"stream": ""},
        {"id": "   "},
        {"stream": "UPPER"},
    ]
    ledger.append(rec(0), CTX)
    with unchanged(ledger):
        for change in bad_inputs:
            fields = {"id": "bad", "stream": "events", "timestamp": 1, "payload": {}, **change}
            with pytest.raises(RecordValidationError) as info:
                ledger.append(Record(**fields), CTX)
            assert info.value.field
