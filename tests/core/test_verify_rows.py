"""Verification over plain row tuples (``verify_rows`` / ``entry_rows``), the fast path every ledger
open takes: it must reach exactly the verdicts of the object-based ``verify_entries``, whatever the
record ids and columns hold (quotes, backslashes, non-BMP text, non-UTF-8 bytes, wrong types)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nucleus_core import Entry, Record, RequestContext, create_ledger
from nucleus_core.hashing import GENESIS_HASH, entry_hash
from nucleus_core.storage import ENTRY_FIELDS, MemoryStorage, entry_rows
from nucleus_core.verify import VerificationReport, verify_entries, verify_rows

CTX = RequestContext(oid="oid:test:user:verify-rows", source="dev")
LEDGER = "rows"
V1 = (1, None, None, None)
"""The format columns of a version-1 entry (these rows are version 1; tests/test_format_v2.py: version 2)."""

ids = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x7f"), min_size=1, max_size=12
).filter(lambda s: s == s.strip() and not any("\x80" <= c <= "\x9f" for c in s))


def chain(records: list[Record], ledger_id: str = LEDGER) -> list[tuple[Any, ...]]:
    """Valid rows for ``records``, hashed with the reference function of ``hashing``."""
    out: list[tuple[Any, ...]] = []
    prev = GENESIS_HASH
    for seq, r in enumerate(records, 1):
        h = entry_hash(ledger_id, seq, prev, r.canonical)
        out.append((seq, h, prev, r.id, r.stream, r.timestamp, *V1, r.canonical))
        prev = h
    return out


def rehash(rows: list[tuple[Any, ...]], ledger_id: str = LEDGER) -> list[tuple[Any, ...]]:
    """The same rows with every hash and link recomputed over the stored bytes (a forger's chain)."""
    out: list[tuple[Any, ...]] = []
    prev = GENESIS_HASH
    for seq, _h, _p, rid, stream, ts, *_v1, canonical in rows:
        h = entry_hash(ledger_id, int(seq), prev, bytes(canonical))
        out.append((seq, h, prev, rid, stream, ts, *V1, canonical))
        prev = h
    return out


def both(rows: list[tuple[Any, ...]]) -> tuple[VerificationReport, VerificationReport]:
    """The reports of verify_rows and of verify_entries over the same rows."""
    entries = [Entry.from_row(row) for row in rows]
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
    seq, h, p, _rid, stream, ts, *v1, canonical = rows[i]
    rows[i] = (seq, h, p, forged_id, stream, ts, *v1, canonical)
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
    as_views = [(*row[:10], memoryview(row[10])) for row in rows]
    as_arrays = [(*row[:10], bytearray(row[10])) for row in rows]
    assert verify_rows(LEDGER, as_views).ok
    assert verify_rows(LEDGER, as_arrays).ok
    for value, kind in ((rows[1][10].decode(), "TEXT"), (None, "NULL"), (7, "INTEGER"), (1.5, "REAL")):
        bad = [rows[0], (*rows[1][:10], value), rows[2]]
        report, reference = both(bad)
        assert report == reference
        assert (report.ok, report.first_bad_seq, report.reason) == (
            False, 2, f"canonical bytes stored as {kind}, not bytes"
        )


def test_bytes_that_are_not_utf8_or_not_a_record_fail_even_with_a_forged_hash_chain() -> None:
    rows = chain([Record(id=f"r{i}", stream="s", timestamp=5, payload={"i": i}) for i in range(3)])
    good = rows[1][10]
    assert isinstance(good, bytes)
    cases = [
        (good.replace(b'"i":1', b'"i":"\xff"'), "stored bytes are not UTF-8 (invalid start byte at byte 27)"),
        (good[:-1], "stored bytes are not JSON (Expecting ',' delimiter: line 1 column 56 (char 55))"),
        (b"[]", "stored bytes are not a record object"),
        (b'{"id":"r1",', "stored bytes are not JSON (Expecting property name enclosed in double quotes: "
         "line 1 column 12 (char 11))"),
    ]
    for bad_bytes, reason in cases:
        forged = rehash([*rows[:1], (*rows[1][:10], bad_bytes), *rows[2:]])
        report, reference = both(forged)
        assert report == reference
        assert (report.ok, report.first_bad_seq, report.reason) == (False, 2, reason)


def test_more_streams_than_the_suffix_cache_holds() -> None:
    records = [Record(id=f"r{i}", stream=f"s{i}", timestamp=1 + i, payload={}) for i in range(5000)]
    rows = chain(records)
    assert verify_rows(LEDGER, rows).ok
    seq, h, p, rid, _stream, ts, *v1, canonical = rows[4500]
    rows[4500] = (seq, h, p, rid, "s1", ts, *v1, canonical)  # a stream name seen (and cached) long before
    report = verify_rows(LEDGER, rows)
    assert (report.first_bad_seq, report.reason) == (4501, "stream column does not match the stored bytes")


def test_progress_is_reported_every_n_entries() -> None:
    rows = chain([Record(id=f"r{i}", stream="s", timestamp=5, payload={}) for i in range(7)])
    seen: list[int] = []
    assert verify_rows(LEDGER, rows, progress=seen.append, progress_every=3).ok
    assert seen == [3, 6]


@pytest.mark.needs_distribution("nucleus-storage-sqlite")
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


# -- the strict parse: verify_rows' shortcut against the reference parse ---------------------------

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**60), 2**60), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6), st.sampled_from(["\U0001f600", "\uff61", "\\", '"', "\x00\x1f\x7f", "/", "\u2028"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=4) | st.sampled_from(["\U0001f600", "\uff61", "a"]), inner, max_size=3),
    max_leaves=10,
)


def lenient_encodings(doc: dict[str, Any]) -> list[bytes]:
    """Encodings of ``doc`` that are valid JSON of the same data but need not be RFC 8785."""
    import json

    return [
        json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass"),
        json.dumps(doc, sort_keys=True, separators=(",", ":")).encode(),
        json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass"),
        json.dumps(doc, sort_keys=True, ensure_ascii=False).encode("utf-8", "surrogatepass"),
    ]


@settings(max_examples=400, deadline=None)
@given(payload=st.dictionaries(st.text(max_size=4), json_values, max_size=4) | st.lists(json_values, max_size=3),
       meta=st.none() | st.dictionaries(st.text(max_size=3), json_values, max_size=2))
def test_shortcut_never_accepts_what_the_reference_parse_refuses(payload: Any, meta: Any) -> None:
    from nucleus_core.records import parse_stored_record
    from nucleus_core.verify import _fast_record

    doc: dict[str, Any] = {"id": "r1", "payload": payload, "stream": "s", "timestamp": 5}
    if meta is not None:
        doc["meta"] = meta
    for data in lenient_encodings(doc):
        record, _reason = parse_stored_record(data)
        fast = _fast_record(data, {})
        if fast is not None:
            assert record is not None, data
            assert fast == record.to_dict()
        report = verify_rows(LEDGER, rehash([(1, "", "", "r1", "s", 5, data)]))
        assert report.ok == (record is not None)
    try:
        valid = Record.from_dict(doc)
    except ValueError:
        return
    assert _fast_record(valid.canonical, {}) in (None, valid.to_dict())
    assert verify_rows(LEDGER, chain([valid])).ok


# -- what the shortcut assumes of orjson (docstring of nucleus_core.verify._fast_record) ----------


@settings(max_examples=2000, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_orjson_writes_every_float_with_a_digit_then_a_point_or_a_signed_exponent(value: float) -> None:
    import re

    import orjson

    assert re.search(rb"[0-9](\.[0-9]|e[-+][0-9])", orjson.dumps(value))


def test_orjson_strict_integer_is_exactly_the_safe_range() -> None:
    import orjson

    option = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER
    for ok in (2**53 - 1, -(2**53 - 1), 0):
        assert orjson.dumps(ok, option=option) == str(ok).encode()
    for big in (2**53, -(2**53), 2**63):
        with pytest.raises(TypeError):
            orjson.dumps(big, option=option)


no_float_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.text(st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs",)), max_size=6),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs",)), max_size=4), inner,
                      max_size=4),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None)
@given(no_float_values)
def test_orjson_sorted_output_is_compact_code_point_ordered_and_escapes_as_jcs(value: Any) -> None:
    import json

    import orjson

    from nucleus_core.canonical import canonical_json

    out = orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER)
    assert out == json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert out == canonical_json(value)  # BMP keys, no floats: RFC 8785 exactly


@pytest.mark.parametrize(
    "doc",
    [
        {"id": "r1", "payload": {}, "stream": [], "timestamp": 5},
        {"id": "r1", "payload": {}, "stream": "s", "x": 5},
        {"id": "r1", "meta": {}, "stream": "s", "timestamp": 5},
        {"id": "r1", "payload": {}, "stream": "s", "timestamp": 5, "x": {}},
        {"id": "r1", "meta": [], "payload": {}, "stream": "s", "timestamp": 5},
        {"id": 1, "payload": {}, "stream": "s", "timestamp": 5},
        {"id": "r1", "payload": 3, "stream": "s", "timestamp": 5},
        {"id": "r1", "payload": {}, "stream": "S", "timestamp": 5},
        {"id": "r1", "payload": {}, "stream": "s", "timestamp": 0},
        {"id": " r1", "payload": {}, "stream": "s", "timestamp": 5},
    ],
)
def test_compact_sorted_json_that_breaks_a_record_rule_is_refused_with_a_reason(doc: dict[str, Any]) -> None:
    import json

    from nucleus_core.verify import _fast_record

    data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    assert _fast_record(data, {}) is None
    report = verify_rows(LEDGER, rehash([(1, "", "", "r1", "s", 5, data)]))
    assert (report.ok, report.first_bad_seq) == (False, 1)
    assert report.reason is not None and report.reason.startswith("stored")


@pytest.mark.parametrize(
    ("rid", "stream", "payload", "fast"),
    [
        ("re-1", "stre-am", {"x": "one-e-two"}, True),  # a "-" outside id and stream, no digit before "e-"
        ("re-1", "stre-am", {"x": "1e-5"}, False),  # looks like a float: the reference parse decides
        ("re-1", "stre-am", {"x": "plain"}, True),  # every "-" is in the id or the stream
        ("re-1", "stre-am", {"x": 1e-7}, False),  # orjson writes 1e-07 as 1e-7: no "." and no "+"
        ("r1", "s", {"x": -5e-324}, False),
        ("r1", "s", {"x": -3, "y": [-1]}, True),  # negative integers are no floats
    ],
)
def test_hyphens_outside_id_and_stream_reach_the_float_screen(rid: str, stream: str, payload: Any, fast: bool) -> None:
    import orjson

    from nucleus_core.records import parse_stored_record
    from nucleus_core.verify import _fast_record

    doc = {"id": rid, "payload": payload, "stream": stream, "timestamp": 5}
    data = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)  # floats in orjson's form, not RFC 8785's
    record, _ = parse_stored_record(data)
    result = _fast_record(data, {})
    assert (result is not None) == fast
    if result is not None:
        assert record is not None and result == record.to_dict()
    report = verify_rows(LEDGER, rehash([(1, "", "", rid, stream, 5, data)]))
    assert report.ok == (record is not None)


@settings(max_examples=300, deadline=None)
@given(payload=st.dictionaries(st.text(max_size=4), json_values, max_size=4), rid=st.sampled_from(["e-1", "1e-", "r1"]),
       stream=st.sampled_from(["e-e", "s", "x1e-"]))
def test_shortcut_with_hyphens_in_id_and_stream_never_accepts_what_the_reference_parse_refuses(
    payload: Any, rid: str, stream: str
) -> None:
    """The float screen skips its "e-" search when every "-" is in the id or the stream string."""
    import orjson

    from nucleus_core.records import parse_stored_record
    from nucleus_core.verify import _fast_record

    doc = {"id": rid, "payload": payload, "stream": stream, "timestamp": 5}
    for data in [*lenient_encodings(doc), orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)]:
        record, _reason = parse_stored_record(data)
        fast = _fast_record(data, {})
        if fast is not None:
            assert record is not None, data
            assert fast == record.to_dict()


def test_the_shortcut_is_used_only_when_orjson_writes_as_it_assumes() -> None:
    """orjson before 3.12 wrote ``1e16`` (no exponent sign): bytes holding that form would round-trip
    through such an orjson unchanged and pass the float screen. The import-time check refuses such
    an encoder, and verification then parses every entry with the reference parse."""
    import orjson

    from nucleus_core import verify

    assert verify.orjson_writes_as_assumed()
    assert verify._FAST is verify._fast_record

    def unsigned_exponents(value: object, option: int = 0) -> bytes:
        return orjson.dumps(value, option=option).replace(b"e+", b"e")

    assert not verify.orjson_writes_as_assumed(unsigned_exponents)
    assert not verify.orjson_writes_as_assumed(lambda value, option=0: b"")  # any other difference
    assert verify._reference_only(b'{"id":"x","payload":{},"stream":"s","timestamp":1}', {}) is None


def test_an_unsigned_exponent_is_refused_whatever_the_shortcut() -> None:
    """``1e16`` is not RFC 8785's form of 10**16: verification refuses it, with the hashes right."""
    from nucleus_core import verify

    canonical = b'{"id":"x","payload":{"n":1e16},"stream":"s","timestamp":1}'
    assert verify._fast_record(canonical, {}) is None
    row = (1, entry_hash("l", 1, GENESIS_HASH, canonical), GENESIS_HASH, "x", "s", 1, *V1, canonical)
    report = verify_rows("l", [row], expected_count=1)
    assert not report.ok and report.first_bad_seq == 1 and "canonical" in (report.reason or "")
