"""Tamper detection on the memory backend: edit MemoryStorage's rows directly and check that
verify() names the first bad sequence number (integrity rule 1, SECURITY-TESTS 34)."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nucleus_core import Entry, Ledger, MemoryStorage, Record, RequestContext, create_ledger

CTX = RequestContext(oid="oid:test:user:tamper", source="dev")


def build(n: int) -> tuple[Ledger, MemoryStorage]:
    storage = MemoryStorage()
    ledger = create_ledger(id="tamper", storage=storage)
    ledger.append_batch(
        [
            Record(id=f"r{i}", stream="s" if i % 2 else "t", timestamp=100 + i, payload={"i": i, "x": "é" * (i % 3)})
            for i in range(n)
        ],
        CTX,
    )
    return ledger, storage


def rows(storage: MemoryStorage) -> list[Entry]:
    return storage._entries  # the backend's own list: editing it is editing the "database"


def assert_first_bad(ledger: Ledger, seq: int) -> None:
    report = ledger.verify()
    assert not report.ok
    assert report.first_bad_seq == seq, report
    assert report.entries_checked == seq - 1
    assert report.reason
    assert not ledger.verify_storage().ok


@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 12), data=st.data())
def test_any_byte_flip_in_canonical_bytes(n: int, data: st.DataObject) -> None:
    ledger, storage = build(n)
    i = data.draw(st.integers(0, n - 1))
    row = rows(storage)[i]
    pos = data.draw(st.integers(0, len(row.canonical) - 1))
    mask = data.draw(st.integers(1, 255))
    flipped = bytearray(row.canonical)
    flipped[pos] ^= mask
    rows(storage)[i] = attrs.evolve(row, canonical=bytes(flipped))
    assert_first_bad(ledger, i + 1)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 12), data=st.data())
def test_any_character_change_in_hash_or_prev_hash(n: int, data: st.DataObject) -> None:
    ledger, storage = build(n)
    i = data.draw(st.integers(0, n - 1))
    column = data.draw(st.sampled_from(["hash", "prev_hash"]))
    row = rows(storage)[i]
    old = getattr(row, column)
    pos = data.draw(st.integers(0, 63))
    new_char = data.draw(st.sampled_from("0123456789abcdefABCDEF").filter(lambda c: c != old[pos]))
    rows(storage)[i] = attrs.evolve(row, **{column: old[:pos] + new_char + old[pos + 1 :]})
    assert_first_bad(ledger, i + 1)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(2, 12), data=st.data())
def test_swapping_two_entries(n: int, data: st.DataObject) -> None:
    ledger, storage = build(n)
    i, j = sorted(data.draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=2, unique=True)))
    entries = rows(storage)
    if data.draw(st.booleans()):
        entries[i], entries[j] = entries[j], entries[i]  # rows change places, seq numbers travel along
    else:  # contents change places, each position keeps its seq number
        a, b = entries[i], entries[j]
        entries[i] = attrs.evolve(b, seq=a.seq)
        entries[j] = attrs.evolve(a, seq=b.seq)
    assert_first_bad(ledger, i + 1)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 12), data=st.data())
def test_deleting_an_entry(n: int, data: st.DataObject) -> None:
    ledger, storage = build(n)
    i = data.draw(st.integers(0, n - 2))  # see test_truncation_needs_an_anchor for the last one
    del rows(storage)[i]
    assert_first_bad(ledger, i + 1)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 12), data=st.data())
def test_inserting_an_entry(n: int, data: st.DataObject) -> None:
    ledger, storage = build(n)
    i = data.draw(st.integers(0, n - 1))
    forged = attrs.evolve(rows(storage)[i], record_id="forged")
    rows(storage).insert(i, forged)
    assert_first_bad(ledger, i + 1)


@pytest.mark.parametrize(
    ("column", "value"), [("record_id", "r-other"), ("stream", "other"), ("timestamp", 99999), ("seq", 7)]
)
def test_derived_columns_are_checked_against_the_bytes(column: str, value: object) -> None:
    ledger, storage = build(5)
    rows(storage)[2] = attrs.evolve(rows(storage)[2], **{column: value})
    assert_first_bad(ledger, 3)


def test_intact_ledger_verifies_and_reports_head() -> None:
    ledger, storage = build(9)
    report = ledger.verify()
    assert report.ok and report.entries_checked == 9 and report.first_bad_seq is None
    assert report.head_hash == ledger.latest_hash() == rows(storage)[-1].hash
    assert ledger.verify_storage().ok


def test_empty_ledger_verifies() -> None:
    with create_ledger(id="empty", storage="memory://") as ledger:
        report = ledger.verify()
        assert report.ok and report.entries_checked == 0 and report.head_hash is None


def test_truncation_needs_an_anchor() -> None:
    """Dropping the newest entries leaves a valid shorter chain (FORMAT.md section 5). The stored
    Merkle tree still covers them, so verification notices; with the tree cut back as well, only a
    latest hash (or a signed checkpoint) kept elsewhere reveals it."""
    ledger, storage = build(4)
    anchor = ledger.latest_hash()
    del rows(storage)[-1]
    report = ledger.verify()
    assert not report.ok and report.reason == "the Merkle tree covers 4 entries but the chain has 3"
    storage.merkle_store().truncate(3)
    assert ledger.verify().ok
    assert ledger.latest_hash() != anchor


def test_progress_callback_and_report_dict() -> None:
    ledger, _ = build(5)
    seen: list[int] = []
    from nucleus_core.verify import verify_entries

    report = verify_entries("tamper", ledger.storage.iter_entries(1), progress=seen.append, progress_every=2)
    assert seen == [2, 4]
    assert report.to_dict() == {
        "ok": True, "entries_checked": 5, "first_bad_seq": None, "reason": None, "head_hash": ledger.latest_hash()
    }
