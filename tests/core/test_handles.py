"""Handle operations described from their signatures: what is supported, what is refused, and the
codec (strict argument parsing, encoding and decoding of results). The server and the remote client
(nucleus-server) are tested against this in plugins/server/tests/test_handles.py."""

from __future__ import annotations

import enum
import json
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from nucleus_core import (
    Entry,
    LedgerRuntime,
    Module,
    ModuleError,
    ModuleRuntime,
    ModuleSpec,
    QueryError,
    Record,
    RequestContext,
    ValidationError,
    create_ledger,
    handle_operation,
    hookimpl,
    operations_of,
)
from nucleus_core.handles import ResultSchema

ALICE = "oid:core:user:alice"


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@attrs.frozen(kw_only=True)
class Item:
    name: str
    colour: Colour
    tags: tuple[str, ...]
    size: int | None
    entry: Entry | None


class Base(Module):
    id = "items"

    @handle_operation
    def item(self, name: str, context: RequestContext) -> Item | None:
        """One item.

        More text that is not the summary."""
        return None

    @handle_operation(summary="Items by colour")
    def by_colour(
        self, colour: str, context: RequestContext, *, limit: int | None = None, exact: bool = False
    ) -> tuple[Item, ...]:
        return ()

    @handle_operation
    def counts(self, context: RequestContext) -> dict[str, int]:
        """Counts."""
        return {}

    @handle_operation
    def overridden(self, context: RequestContext) -> int:
        """Marked here, overridden unmarked below."""
        return 0

    def plain(self, context: RequestContext) -> int:
        return 0


class Derived(Base):
    def overridden(self, context: RequestContext) -> int:
        return 1

    @handle_operation
    def colours(self, context: RequestContext) -> list[Colour]:
        """Every colour."""
        return list(Colour)


def _entry() -> Entry:
    with create_ledger(id="core-handles", storage="memory://") as ledger:
        return ledger.append(Record(id="r", stream="s", timestamp=1, payload={"n": 1}),
                             RequestContext(oid=ALICE, source="test"))


def test_operations_are_the_marked_methods_inherited_sorted_and_summarized() -> None:
    ops = operations_of(Derived)
    assert [op.name for op in ops] == ["by_colour", "colours", "counts", "item"]
    summaries = {op.name: op.summary for op in ops}
    assert summaries["item"] == "One item." and summaries["by_colour"] == "Items by colour"
    by_colour = next(op for op in ops if op.name == "by_colour")
    assert [(p.name, p.type, p.required, p.default) for p in by_colour.params] == [
        ("colour", str, True, None), ("limit", int | None, False, None), ("exact", bool, False, False),
    ]
    assert by_colour.params_schema() == {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "required": ["colour"],
        "properties": {
            "colour": {"type": "string"},
            "limit": {"type": "integer", "minimum": 0, "maximum": 2**53 - 1},
            "exact": {"type": "boolean", "default": False},
        },
    }


def test_result_schemas() -> None:
    item = next(op for op in operations_of(Base) if op.name == "item")
    schema = item.result_schema()
    inner = schema["anyOf"][0]
    assert schema["anyOf"][1] == {"type": "null"}
    assert inner["title"] == "Item" and inner["additionalProperties"] is False
    assert inner["required"] == ["name", "colour", "tags", "size", "entry"]
    assert inner["properties"]["colour"] == {"type": "string", "enum": ["red", "blue"]}
    assert inner["properties"]["tags"] == {"type": "array", "items": {"type": "string"}}
    assert inner["properties"]["entry"] == {"anyOf": [{"$ref": "#/components/schemas/Entry"}, {"type": "null"}]}
    assert item.result_schema(entry={"type": "object"})["anyOf"][0]["properties"]["entry"]["anyOf"][0] == {
        "type": "object"
    }
    counts = next(op for op in operations_of(Base) if op.name == "counts")
    assert counts.result_schema() == {
        "type": "object", "additionalProperties": {"type": "integer", "minimum": -(2**53 - 1), "maximum": 2**53 - 1},
    }


def test_parse_args_is_strict_and_names_the_field() -> None:
    by_colour = next(op for op in operations_of(Base) if op.name == "by_colour")
    assert by_colour.parse_args([("colour", "red"), ("limit", "0"), ("exact", "true")]) == {
        "colour": "red", "limit": 0, "exact": True,
    }
    assert by_colour.parse_args([("colour", "")]) == {"colour": ""}
    cases = [
        ([], "colour", "is required"),
        ([("colour", "red"), ("colour", "blue")], "colour", "more than once"),
        ([("colour", "red"), ("size", "1")], "size", "unknown argument"),
        ([("colour", "red"), ("context", ALICE)], "context", "unknown argument"),
        ([("colour", "red"), ("bad key!", "1")], "query", "unknown argument"),
        ([("colour", "red"), ("limit", "-1")], "limit", "decimal integer"),
        ([("colour", "red"), ("limit", "01")], "limit", "decimal integer"),
        ([("colour", "red"), ("limit", " 1")], "limit", "decimal integer"),
        ([("colour", "red"), ("limit", "9007199254740992")], "limit", "decimal integer"),
        ([("colour", "red"), ("limit", "\u0661")], "limit", "decimal integer"),
        ([("colour", "red"), ("exact", "True")], "exact", "true or false"),
    ]
    for items, field, text in cases:
        with pytest.raises(QueryError) as caught:
            by_colour.parse_args(items)
        assert caught.value.field == field, items
        assert text in str(caught.value), items
    assert by_colour.parse_args([("colour", "r"), ("limit", "9007199254740991")])["limit"] == 2**53 - 1
    assert by_colour.query_items({"colour": "r", "limit": None, "exact": True}) == [("colour", "r"), ("exact", "true")]
    with pytest.raises(ValidationError) as bad:
        by_colour.query_items({"colour": "r", "limit": True})
    assert bad.value.field == "limit"


def test_encode_and_decode_round_trip_with_entries_through_the_given_codec() -> None:
    entry = _entry()
    item_op = next(op for op in operations_of(Base) if op.name == "item")
    value = Item(name="a", colour=Colour.BLUE, tags=("x", "y"), size=None, entry=entry)
    encoded = item_op.encode(value, entry=lambda e: {"hash": e.hash})
    assert encoded == {"name": "a", "colour": "blue", "tags": ["x", "y"], "size": None, "entry": {"hash": entry.hash}}
    decoded = item_op.decode(json.loads(json.dumps(encoded)), entry=lambda doc: entry if doc["hash"] == entry.hash
                             else pytest.fail("another entry"))
    assert decoded == value and isinstance(decoded.tags, tuple)
    assert item_op.decode(None, entry=lambda d: entry) is None
    wrong = [
        ({**encoded, "colour": "green"}, "result.colour"),
        ({**encoded, "size": True}, "result.size"),
        ({**encoded, "tags": "x"}, "result.tags"),
        ({**encoded, "more": 1}, "result"),
        ({k: v for k, v in encoded.items() if k != "size"}, "result"),
        ([encoded], "result"),
    ]
    for doc, field in wrong:
        with pytest.raises(ValidationError) as caught:
            item_op.decode(doc, entry=lambda d: entry)
        assert caught.value.field == field, doc
    with pytest.raises(TypeError, match=r"result\.colour: expected Colour"):
        item_op.encode(attrs.evolve(value, colour="blue"), entry=lambda e: None)
    counts = next(op for op in operations_of(Base) if op.name == "counts")
    with pytest.raises(TypeError, match="expected int, got bool"):
        counts.encode({"a": True}, entry=lambda e: None)


def test_ledger_runtime_is_a_module_runtime() -> None:
    with create_ledger(id="core-handles", storage="memory://") as ledger:
        assert isinstance(ledger.runtime, LedgerRuntime) and isinstance(ledger.runtime, ModuleRuntime)


# --- describing operations: unsupported types refused clearly -----------------------------------
@attrs.frozen
class _Loose:
    value: Any


def _no_hint(self, x, context: RequestContext) -> None: ...  # type: ignore[no-untyped-def]
def _float_arg(self: Any, x: float, context: RequestContext) -> None: ...
def _set_result(self: Any, context: RequestContext) -> set[str]: ...
def _any_field(self: Any, context: RequestContext) -> _Loose: ...
def _optional_first(self: Any, x: str | None, context: RequestContext) -> None: ...
def _no_default(self: Any, context: RequestContext, *, y: int) -> None: ...
def _no_context(self: Any, x: str) -> None: ...
def _context_untyped(self: Any, context: str) -> None: ...


UNSUPPORTED: dict[str, Callable[..., Any]] = {
    "parameter 'x' has no type hint": _no_hint,
    "parameter 'x': float is not a supported argument type": _float_arg,
    "-> result: set[str] is not a supported handle type": _set_result,
    "-> result.value: Any is not a supported handle type": _any_field,
    "parameter 'x' comes before context, so it is required": _optional_first,
    "keyword-only parameter 'y' needs a default": _no_default,
    "a handle operation takes 'context: RequestContext'": _no_context,
    "parameter 'context' must be a positional 'context: RequestContext'": _context_untyped,
}


@pytest.mark.parametrize("problem", list(UNSUPPORTED))
def test_unsupported_signatures_are_refused_naming_module_method_and_parameter(problem: str) -> None:
    odd = type("Odd", (Module,), {"id": "odd", "op": handle_operation(UNSUPPORTED[problem])})
    with pytest.raises(ModuleError) as caught:
        operations_of(odd)
    assert str(caught.value).startswith("module 'odd': handle operation Odd.op")
    assert problem in str(caught.value)


def test_an_unsupported_module_does_not_open() -> None:
    class Bad(Module):
        id = "bad"

        @handle_operation
        def op(self, context: RequestContext) -> set[str]:
            return set()

    class BadPlugin:
        @hookimpl
        def nucleus_register_modules(self) -> list[ModuleSpec]:
            return [ModuleSpec(id="bad", factory=lambda _c: Bad())]

    with pytest.raises(ModuleError) as caught:
        create_ledger(id="odd", storage="memory://", plugins=[BadPlugin()])
    assert "module 'bad': handle operation Bad.op -> result: set[str] is not a supported" in str(caught.value)




# --- integers: the range JSON clients hold exactly ----------------------------------------------
def _big_default(self: Any, context: RequestContext, *, n: int = 2**53) -> None: ...
def _negative_default(self: Any, context: RequestContext, *, n: int = -1) -> None: ...


@pytest.mark.parametrize("method", [_big_default, _negative_default])
def test_an_integer_default_outside_the_argument_range_is_refused(method: Callable[..., Any]) -> None:
    odd = type("Odd", (Module,), {"id": "odd", "op": handle_operation(method)})
    with pytest.raises(ModuleError, match=r"Odd\.op: the default of 'n' is outside 0\.\.9007199254740991"):
        operations_of(odd)


def test_integer_results_are_within_plus_minus_2_53_minus_1() -> None:
    counts = next(op for op in operations_of(Base) if op.name == "counts")
    limit = 2**53 - 1
    assert counts.encode({"a": limit, "b": -limit}, entry=lambda e: None) == {"a": limit, "b": -limit}
    for value in (limit + 1, -limit - 1, 10**30):
        with pytest.raises(TypeError, match=r"result\.a: .* is outside -\(2\*\*53-1\)\.\.2\*\*53-1"):
            counts.encode({"a": value}, entry=lambda e: None)
        with pytest.raises(ValidationError) as caught:
            counts.decode({"a": value}, entry=lambda d: _entry())
        assert caught.value.field == "result.a"


@pytest.mark.parametrize("name", ["_hidden", "caf\u00e9", "x" * 65])
def test_an_operation_name_is_an_ascii_name(name: str) -> None:
    def op(self: Any, context: RequestContext) -> None: ...

    odd = type("Odd", (Module,), {"id": "odd", name: handle_operation(op)})
    with pytest.raises(ModuleError, match="the name of a handle operation is 1-64 ASCII letters"):
        operations_of(odd)


# --- result schemas read back (what a generic client decodes with) -------------------------------
def test_every_result_schema_reads_back_and_decodes_its_encoded_values() -> None:
    entry = _entry()
    entry_doc = {"hash": entry.hash}
    ops = {op.name: op for op in operations_of(Derived)}
    values = {
        "item": Item(name="a", colour=Colour.RED, tags=("x",), size=3, entry=entry),
        "by_colour": (Item(name="b", colour=Colour.BLUE, tags=(), size=None, entry=None),),
        "counts": {"a": 1, "b": -(2**53 - 1)},
        "colours": list(Colour),
    }
    for name, value in values.items():
        schema = ResultSchema(ops[name].result_schema())
        encoded = json.loads(json.dumps(ops[name].encode(value, entry=lambda e: entry_doc)))
        seen: list[Any] = []

        def received(doc: Any, seen: list[Any] = seen) -> Entry:
            seen.append(doc)
            return entry

        decoded = schema.decode(encoded, entry=received)
        assert json.loads(json.dumps(decoded, default=lambda e: entry_doc)) == encoded, name
        assert seen == ([entry_doc] if name == "item" else []), name
    assert ResultSchema(ops["item"].result_schema()).decode(None, entry=lambda d: entry) is None


@pytest.mark.parametrize(
    ("schema", "field"),
    [
        ({"type": "number"}, "result"),
        ([], "result"),
        ({"type": "array", "items": {"type": "string", "format": "date"}}, "result[]"),
        ({"type": "object", "additionalProperties": True}, "result"),
        ({"type": "object", "properties": {"a": {"type": "null"}}}, "result"),
        ({"type": "object", "properties": {"a": {"oneOf": []}}, "additionalProperties": False}, "result.a"),
        ({"anyOf": [{"type": "null"}, {"type": "null"}]}, "result"),
        ({"$ref": "#/components/schemas/Entry", "type": "object"}, "result"),
        ({"type": "integer", "minimum": 0.5}, "result"),
        ({"type": "string", "enum": [1]}, "result"),
    ],
)
def test_a_result_schema_outside_the_closed_set_is_refused(schema: Any, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ResultSchema(schema)
    assert caught.value.field == field


def test_a_result_schema_nesting_too_deep_is_refused() -> None:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(40):
        schema = {"type": "array", "items": schema}
    with pytest.raises(ValidationError, match="nests deeper than 32"):
        ResultSchema(schema)
