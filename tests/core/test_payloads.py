"""nucleus_core.payloads: module events as attrs classes read by a private cattrs converter."""

from __future__ import annotations

import re
from typing import Any

import attrs
import pytest

from nucleus_core import Record, RecordRejectedError
from nucleus_core.payloads import PayloadSchema, identifier, integer, json_object, oid, text, texts

ALICE, BOB = "oid:test:user:alice", "oid:test:user:bob"


@attrs.frozen(kw_only=True)
class Moved:
    thing: str = identifier()
    sender: str = oid(key="from")
    to: str = oid()
    amount: int = integer(minimum=1, maximum=100)
    note: str | None = text(max_length=8, optional=True)


@attrs.frozen(kw_only=True)
class Tagged:
    thing: str = identifier()
    tags: tuple[str, ...] = texts(pattern=re.compile(r"[a-z]+"), max_items=3)
    data: dict[str, Any] | None = json_object(optional=True)  # noqa: RUF009 - an attrs field


def schema() -> PayloadSchema[Moved | Tagged]:
    return PayloadSchema("things", {"moved": Moved, "tagged": Tagged})


def rec(payload: object) -> Record:
    return Record(id="r1", stream="things", timestamp=1, payload=payload)  # type: ignore[arg-type]


MOVED = {"type": "moved", "thing": "t1", "from": ALICE, "to": BOB, "amount": 5}


def test_reads_each_type_into_its_class() -> None:
    s = schema()
    assert s.read(rec(MOVED)) == Moved(thing="t1", sender=ALICE, to=BOB, amount=5)
    assert s.read(rec({**MOVED, "note": None})).note is None  # null counts as absent
    tagged = s.read(rec({"type": "tagged", "thing": "t2", "tags": ["b", "a"], "data": {"k": [1]}}))
    assert tagged == Tagged(thing="t2", tags=("a", "b"))
    assert isinstance(tagged, Tagged) and tagged.data == {"k": [1]}


REFUSALS = [
    ([1], "payload", "must be a JSON object"),
    ({"thing": "t1"}, "type", "is required"),
    ({**MOVED, "type": "copied"}, "type", "must be one of moved, tagged; got 'copied'"),
    ({**MOVED, "type": 3}, "type", "must be one of moved, tagged"),
    ({**MOVED, "extra": 1, "sender": ALICE}, "payload", "unknown field(s) ['extra', 'sender']; allowed: "),
    ({k: v for k, v in MOVED.items() if k != "from"}, "from", "is required"),
    ({**MOVED, "from": None}, "from", "is required"),
    ({**MOVED, "from": "alice"}, "from", "'alice' is not an OID"),
    ({**MOVED, "amount": "5"}, "amount", "must be an integer, got str"),
    ({**MOVED, "amount": 5.0}, "amount", "must be an integer, got float"),
    ({**MOVED, "amount": True}, "amount", "must be an integer, got bool"),
    ({**MOVED, "amount": 101}, "amount", "must be from 1 to 100; got 101"),
    ({**MOVED, "thing": 7}, "thing", "must be a non-empty string"),
    ({**MOVED, "thing": "bad id"}, "thing", "'bad id' does not match"),
    ({**MOVED, "note": "123456789"}, "note", "is 9 characters; at most 8 allowed"),
    ({"type": "tagged", "thing": "t", "tags": []}, "tags", "must be a non-empty list of strings"),
    ({"type": "tagged", "thing": "t", "tags": "abc"}, "tags", "must be a non-empty list of strings"),
    ({"type": "tagged", "thing": "t", "tags": ["a", 3]}, "tags", "item '3' does not match"),
    ({"type": "tagged", "thing": "t", "tags": ["a", "a"]}, "tags", "items must be distinct"),
    ({"type": "tagged", "thing": "t", "tags": ["a", "b", "c", "d"]}, "tags", "holds 4 items; at most 3"),
    ({"type": "tagged", "thing": "t", "tags": ["a"], "data": [1]}, "data", "must be a JSON object, got list"),
]


@pytest.mark.parametrize(("payload", "field", "reason"), REFUSALS, ids=[f"{r[1]}-{i}" for i, r in enumerate(REFUSALS)])
def test_refusals_name_the_module_record_and_payload_key(payload: object, field: str, reason: str) -> None:
    with pytest.raises(RecordRejectedError) as info:
        schema().read(rec(payload))
    assert (info.value.module_id, info.value.record_id, info.value.field) == ("things", "r1", field)
    assert f"record 'r1' refused: {field}: {reason}" in str(info.value)


def test_the_allowed_keys_are_the_payload_keys_of_the_type() -> None:
    with pytest.raises(RecordRejectedError) as info:
        schema().read(rec({**MOVED, "sender": ALICE}))
    assert "allowed: ['amount', 'from', 'note', 'thing', 'to', 'type']" in str(info.value)


def test_a_single_type_schema_reads_too() -> None:
    s: PayloadSchema[Moved] = PayloadSchema("things", {"moved": Moved})
    assert s.read(rec(MOVED)).amount == 5
    with pytest.raises(RecordRejectedError, match="must be one of moved; got 'tagged'"):
        s.read(rec({**MOVED, "type": "tagged"}))


def test_each_schema_has_its_own_converter() -> None:
    one, two = schema(), schema()
    assert one._converter is not two._converter
