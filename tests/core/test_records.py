"""Record and Entry: validation with field names, canonical bytes, round trips."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from nucleus_core import IntegrityError, Record, RecordValidationError
from nucleus_core.records import MAX_RECORD_ID_LENGTH

BASE: dict[str, Any] = {"id": "r1", "stream": "events", "timestamp": 1, "payload": {"a": 1}}


def make(**changes: Any) -> Record:
    return Record(**{**BASE, **changes})


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"id": ""}, "id"),
        ({"id": " r1"}, "id"),
        ({"id": "r1 "}, "id"),
        ({"id": "r\x001"}, "id"),
        ({"id": "r\n1"}, "id"),
        ({"id": "r\x851"}, "id"),
        ({"id": "r\ud8001"}, "id"),
        ({"id": "x" * (MAX_RECORD_ID_LENGTH + 1)}, "id"),
        ({"id": 5}, "id"),
        ({"id": None}, "id"),
        ({"stream": ""}, "stream"),
        ({"stream": "Events"}, "stream"),
        ({"stream": "1events"}, "stream"),
        ({"stream": "ev ents"}, "stream"),
        ({"stream": "e" * 65}, "stream"),
        ({"stream": "_"}, "stream"),
        ({"stream": None}, "stream"),
        ({"timestamp": 0}, "timestamp"),
        ({"timestamp": -1}, "timestamp"),
        ({"timestamp": 2**53}, "timestamp"),
        ({"timestamp": 1.0}, "timestamp"),
        ({"timestamp": True}, "timestamp"),
        ({"timestamp": "1"}, "timestamp"),
        ({"payload": "text"}, "payload"),
        ({"payload": 1}, "payload"),
        ({"payload": None}, "payload"),
        ({"payload": (1,)}, "payload"),
        ({"payload": {"x": float("nan")}}, "payload.x"),
        ({"payload": {"x": [1, float("-inf")]}}, "payload.x[1]"),
        ({"payload": {"n": -(2**53)}}, "payload.n"),
        ({"payload": {2: "x"}}, "payload"),
        ({"payload": {"s": "\udc00"}}, "payload.s"),
        ({"payload": {"b": b"x"}}, "payload.b"),
        ({"payload": {"s": {1}}}, "payload.s"),
        ({"meta": []}, "meta"),
        ({"meta": "m"}, "meta"),
        ({"meta": {"k": float("nan")}}, "meta.k"),
        ({"meta": {"k\ud800": 1}}, 'meta["k\\ud800"]'),
    ],
)
def test_invalid_records_name_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(RecordValidationError) as info:
        make(**changes)
    assert info.value.field == field
    assert str(info.value).startswith(field + ": ")


def test_valid_edges() -> None:
    assert make(id="x" * MAX_RECORD_ID_LENGTH).id
    assert make(id="é ü 東京 \U0001f600").id
    assert make(stream="e" * 64, timestamp=2**53 - 1).timestamp == 2**53 - 1
    assert make(stream="_system").stream == "_system"  # a Record may name a system stream; the ledger decides
    assert make(stream="a.b-c_d9").stream
    assert make(payload=[]).payload == []
    assert make(meta={}).meta == {}


def test_canonical_bytes_and_meta_omitted() -> None:
    r = make(payload={"b": 1, "a": [True, None, 0.5]})
    assert r.canonical == b'{"id":"r1","payload":{"a":[true,null,0.5],"b":1},"stream":"events","timestamp":1}'
    assert r.size == len(r.canonical)
    with_meta = make(meta={"z": 1})
    assert with_meta.canonical == b'{"id":"r1","meta":{"z":1},"payload":{"a":1},"stream":"events","timestamp":1}'
    assert "meta" not in r.to_dict() and with_meta.to_dict()["meta"] == {"z": 1}


def test_record_is_immutable_and_compares_by_value() -> None:
    r = make()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        r.id = "other"  # type: ignore[misc]
    assert make() == r and make(id="r2") != r


def test_from_dict_refuses_unknown_and_missing_fields() -> None:
    assert Record.from_dict(dict(BASE)) == make()
    with pytest.raises(RecordValidationError, match="unknown"):
        Record.from_dict({**BASE, "extra": 1})
    with pytest.raises(RecordValidationError, match="missing"):
        Record.from_dict({"id": "r1", "stream": "events", "payload": {}})
    with pytest.raises(RecordValidationError):
        Record.from_dict(["not", "a", "dict"])


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[1,2]",
        b'{"id":"r1","payload":{"a":1},"stream":"events","timestamp":1} ',  # trailing space
        b'{"payload":{"a":1},"id":"r1","stream":"events","timestamp":1}',  # key order
        b'{"id":"r1","meta":null,"payload":{"a":1},"stream":"events","timestamp":1}',  # null meta
        b'{"id":"r1","payload":{"a":1.0},"stream":"events","timestamp":1}',  # number form
        b'{"id":"r1","payload":{"a":1},"stream":"Bad","timestamp":1}',  # invalid record
        b'{"id":"r1","payload":{"a":"\\u00e9"},"stream":"events","timestamp":1}',  # needless escape
        b'{"id":"r1","payload":{"a":1},"stream":"events","timestamp":1,"x":2}',
        b"\xff\xfe",
    ],
)
def test_from_canonical_refuses_anything_not_canonical(data: bytes) -> None:
    with pytest.raises(IntegrityError) as info:
        Record.from_canonical(data, seq=7)
    assert info.value.seq == 7


ids_ = st.text(st.characters(exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1, max_size=20)
json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53) + 1, 2**53 - 1), st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=10),
)
json_obj = st.dictionaries(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=8),
    st.recursive(json_leaf, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=5), c, max_size=4),
                 max_leaves=12),
    max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(rid=ids_, payload=json_obj, meta=st.none() | json_obj, ts=st.integers(1, 2**53 - 1))
def test_canonical_round_trip_and_reference(rid: str, payload: dict[str, Any], meta: Any, ts: int) -> None:
    r = Record(id=rid, stream="s", timestamp=ts, payload=payload, meta=meta)
    doc = {"id": rid, "payload": payload, "stream": "s", "timestamp": ts}
    if meta is not None:
        doc["meta"] = meta
    assert r.canonical == rfc8785.dumps(doc)
    back = Record.from_canonical(r.canonical)
    assert back.canonical == r.canonical
    assert json.loads(r.canonical)["id"] == rid


@settings(max_examples=100, deadline=None)
@given(payload=json_obj)
def test_hash_stability(payload: dict[str, Any]) -> None:
    """The same record always has the same bytes, whatever the key insertion order."""
    from nucleus_core.hashing import entry_hash

    a = Record(id="x", stream="s", timestamp=1, payload=payload)
    b = Record(id="x", stream="s", timestamp=1, payload=dict(reversed(list(payload.items()))))
    assert a.canonical == b.canonical
    assert entry_hash("L", 1, "0" * 64, a.canonical) == entry_hash("L", 1, "0" * 64, b.canonical)
