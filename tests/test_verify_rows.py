"""Verification over plain row tuples (``verify_rows`` / ``entry_rows``), the fast path every ledger
open takes: it must reach exactly the verdicts of the object-based ``verify_entries``, whatever the
record ids and columns hold (quotes, backslashes, non-BMP text, non-UTF-8 bytes, wrong types)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nucleus_core import Record, RequestContext, StoredEntry, create_ledger
from nucleus_core.hashing import GENESIS_HASH, entry_hash
from nucleus_core.storage import ENTRY_FIELDS, MemoryStorage, entry_rows
from nucleus_core.verify import VerificationReport, verify_entries, verify_rows

CTX = RequestContext(oid="oid:test:user:verify-rows", source="dev")
LEDGER = "rows"

ids = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x7f"), min_size=1, max_size=12
).filter(lambda s: s == s.strip() and not any("\x80" <= c <= "\x9f" for c in s))


def chain(records: list[Record], ledger_id: str = LEDGER) -> list[tuple[Any, ...]]:
    """Valid rows for ``records``, hashed with the reference function of ``hashing``."""
    out: list[tuple[Any, ...]] = []
    prev = GENESIS_HASH
    for seq, r in enumerate(records, 1):
        h = entry_hash(ledger_id, seq, prev, r.canonical)
        out.append((seq, h, prev, r.id, r.stream, r.timestamp, r.canonical))
        prev = h
    return out


def rehash(rows: list[tuple[Any, ...]], ledger_id: str = LEDGER) -> list[tuple[Any, ...]]:
    """The same rows with every hash and link recomputed over the stored bytes (a forger's chain)."""
    out: list[tuple[Any, ...]] = []
    prev = GENESIS_HASH
    for seq, _h, _p, rid, stream, ts, canonical in rows:
        h = entry_hash(ledger_id, int(seq), prev, bytes(canonical))
        out.append((seq, h, prev, rid, stream, ts, canonical))
        prev = h
    return out


def both(rows: list[tuple[Any, ...]]) -> tuple[VerificationReport, VerificationReport]:
    """The reports of verify_rows and of verify_entries over the same rows."""
    entries = [StoredEntry(**dict(zip(ENTRY_FIELDS, row, strict=True))) for row in rows]
    return verify_rows(LEDGER, rows), verify_entries(LEDGER, entries)


@settings(max_examples=150, deadline=None)
@given(record_ids=st.lists(ids, min_size=1, max_size=6, unique=True), data=st.data())
def test_any_record_id_verifies_and_any_other_id_column_is_caught(record_ids: list[str], data: st.DataObject) -> None:
    records = [Record(id=r, stream="s", timestamp=1 + i, payload={"v": r}) for i, r in enumerate(record_ids)]
    rows = chain(records)
    ok_rows, ok_entries = both(rows)
    assert ok_rows == ok_entries
    assert ok_rows.ok and ok_rows.entries_checked == len(records)
    i = data.draw(st.integers(0, len(rows) - 1))
    near = [record_ids[i] + '"', '"' + record_ids[i], record_ids[i][:-1], record_ids[i] + '","meta']
    forged_id = data.draw(st.one_of(ids, st.sampled_from(near)))
    if forged_id == record_ids[i]:
        return
    seq, h, p, _rid, stream, ts, canonical = rows[i]
    rows[i] = (seq, h, p, forged_id, stream, ts, canonical)
    report, reference = both(rows)
    assert report == reference
    assert report.first_bad_seq == i + 1
    assert report.reason == "record id column does not match the stored bytes"


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("stream", "t", "stream column does not match the stored bytes"),
        ("stream", 's","timestamp":5}', "stream column does not match the stored bytes"),
        ("stream", None, "stream column does not match the stored bytes"),
        ("timestamp", 3, "timestamp column does not match the stored bytes"),
        ("timestamp", True, "timestamp column does not match the stored bytes"),
        ("timestamp", 2.0, "timestamp column does not match the stored bytes"),
        ("record_id", 7, "record id column does not match the stored bytes"),
    ],
)
def test_wrong_derived_columns_are_named(column: str, value: object, reason: str) -> None:
    records = [Record(id=f"r{i}", stream="s", timestamp=2, payload={}) for i in range(3)]
    rows = chain(records)
    row = list(rows[1])
    row[ENTRY_FIELDS.index(column)] = value
    rows[1] = tuple(row)
    report, reference = both(rows)
    assert report == reference
    assert (report.first_bad_seq, report.reason) == (2, reason)


def test_bytes_like_canonical_columns_verify_and_other_types_are_refused() -> None:
    rows = chain([Record(id=f"r{i}", stream="s", timestamp=5, payload={"i": i}) for i in range(3)])
    as_views = [(*row[:6], memoryview(row[6])) for row in rows]
    as_arrays = [(*row[:6], bytearray(row[6])) for row in rows]
    assert verify_rows(LEDGER, as_views).ok
    assert verify_rows(LEDGER, as_arrays).ok
    rows[1] = (*rows[1][:6], rows[1][6].decode())
    report = verify_rows(LEDGER, rows)
    assert (report.ok, report.first_bad_seq, report.reason) == (False, 2, "stored bytes are not a record")


def test_bytes_that_are_not_utf8_or_not_a_record_fail_even_with_a_forged_hash_chain() -> None:
    rows = chain([Record(id=f"r{i}", stream="s", timestamp=5, payload={"i": i}) for i in range(3)])
    good = rows[1][6]
    assert isinstance(good, bytes)
    for bad_bytes in (good.replace(b'"i":1', b'"i":"\xff"'), good[:-1], b"[]", b'{"id":"r1",'):
        forged = rehash([*rows[:1], (*rows[1][:6], bad_bytes), *rows[2:]])
        report, reference = both(forged)
        assert report == reference
        assert (report.ok, report.first_bad_seq) == (False, 2)
        assert report.reason == "stored bytes are not a record"


def test_more_streams_than_the_suffix_cache_holds() -> None:
    records = [Record(id=f"r{i}", stream=f"s{i}", timestamp=1 + i, payload={}) for i in range(5000)]
    rows = chain(records)
    assert verify_rows(LEDGER, rows).ok
    seq, h, p, rid, _stream, ts, canonical = rows[4500]
    rows[4500] = (seq, h, p, rid, "s1", ts, canonical)  # a stream name seen (and cached) long before
    report = verify_rows(LEDGER, rows)
    assert (report.first_bad_seq, report.reason) == (4501, "stream column does not match the stored bytes")


def test_progress_is_reported_every_n_entries() -> None:
    rows = chain([Record(id=f"r{i}", stream="s", timestamp=5, payload={}) for i in range(7)])
    seen: list[int] = []
    assert verify_rows(LEDGER, rows, progress=seen.append, progress_every=3).ok
    assert seen == [3, 6]


def test_entry_rows_match_iter_entries_on_memory_and_sqlite(tmp_path: Path) -> None:
    from nucleus_storage_sqlite import SqliteStorage

    records = [Record(id=f"r{i}", stream="s", timestamp=5, payload={"i": i}) for i in range(30)]
    for storage in (MemoryStorage(), SqliteStorage(tmp_path / "rows.db", iter_batch_size=7)):
        with create_ledger(id=LEDGER, storage=storage) as ledger:
            ledger.append_batch(records, CTX)
            expected = [tuple(getattr(e, f) for f in ENTRY_FIELDS) for e in storage.iter_entries(4)]
            assert [tuple(r) for r in entry_rows(storage, 4)] == expected
            assert [r[0] for r in entry_rows(storage)] == list(range(1, 31))
            assert ledger.verify().entries_checked == 30
