"""Handle operations: the read-only queries of a module, described from their signatures.

A module marks a method with :func:`handle_operation`; its signature and type hints are the one
typed place of the operation: the positional-or-keyword parameters before ``context:
RequestContext`` are the required arguments, the keyword-only parameters after it (each with a
default) the optional ones, and the return annotation is the result type::

    class TokenModule(StatefulModule[TokenEvent]):
        @handle_operation
        def balance(self, token_id: str, holder: str, context: RequestContext) -> int:
            \"\"\"``holder``'s balance of ``token_id``.\"\"\"

:func:`operations_of` describes them as :class:`HandleOperation` records: JSON Schemas of the
arguments and the result, strict parsing of arguments from query items, and encoding/decoding of
results (entries through a given encoder and decoder), which is what a server needs to serve
them and a client to call them (``nucleus_server``), with no module-specific code in either.

The set of types is closed and checked when the operations are described (the ledger describes
each module's when it registers it): arguments are ``str``, ``int`` (non-negative, at most
2**53-1), ``bool`` and ``X | None`` of them (keyword-only, default None); results are ``None``,
``str``, ``int``, ``bool``, an :class:`enum.Enum` with string values, an attrs class whose fields
are results, :class:`~nucleus_core.records.Entry`, ``list[T]``, ``tuple[T, ...]``,
``dict[str, T]`` and ``T | None``. Anything else is a :class:`~nucleus_core.errors.ModuleError`
naming the module, the method and the parameter.
"""

from __future__ import annotations

import builtins
import enum
import inspect
import re
import sys
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar, overload, runtime_checkable

import attrs

from .context import RequestContext
from .errors import ModuleError, QueryError, ValidationError
from .module_base import Module, ModuleMetadata
from .records import Entry

__all__ = [
    "ENTRY_REF",
    "MAX_ARGUMENT_INT",
    "MAX_RESULT_INT",
    "OPERATION_NAME",
    "HandleOperation",
    "HandleParam",
    "ModuleRuntime",
    "ResultSchema",
    "handle_operation",
    "handle_types",
    "operations_of",
    "qualified_name",
]

MAX_ARGUMENT_INT = 2**53 - 1
"""The largest integer argument (I-JSON's safe integers); integer arguments are never negative."""

MAX_RESULT_INT = 2**53 - 1
"""The largest magnitude of an integer in a result: beyond it a JSON client (JavaScript's numbers,
I-JSON) cannot hold the value exactly, so a module answering more is refused when encoding."""

ENTRY_REF = "#/components/schemas/Entry"
"""Where an entry's schema is, as result schemas refer to it (the server's OpenAPI components)."""

OPERATION_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
"""Names of handle operations: a route segment and part of an OpenAPI name as they are, so ASCII."""

MAX_SCHEMA_DEPTH = 32
"""The deepest result schema :class:`ResultSchema` reads (a result type nests far less)."""

_MARK = "__nucleus_handle_operation__"
_DECIMAL = re.compile(r"(0|[1-9][0-9]{0,15})")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_ARGUMENT_TYPES = (str, int, bool)

M = TypeVar("M", bound=Module)
F = TypeVar("F", bound=Callable[..., Any])


@attrs.frozen
class _Mark:
    summary: str | None


@overload
def handle_operation(fn: F, /) -> F: ...
@overload
def handle_operation(*, summary: str | None = None) -> Callable[[F], F]: ...
def handle_operation(fn: F | None = None, /, *, summary: str | None = None) -> F | Callable[[F], F]:
    """Mark a module method as a read-only handle operation (bare, or with ``summary=``; the
    summary defaults to the docstring's first line). See the module docstring for the signature
    it must have."""

    def mark(f: F) -> F:
        if not callable(f) or isinstance(f, (staticmethod, classmethod)):
            raise TypeError("handle_operation marks a plain method")
        setattr(f, _MARK, _Mark(summary))
        return f

    return mark(fn) if fn is not None else mark


def qualified_name(cls: type) -> str:
    """``"<module>.<qualname>"`` of a class, as module documents list it."""
    return f"{cls.__module__}.{cls.__qualname__}"


def handle_types(cls: type[Module]) -> tuple[str, ...]:
    """Qualified names of the classes of ``cls``'s MRO that are Module subclasses, most derived first."""
    return tuple(qualified_name(c) for c in cls.__mro__ if isinstance(c, type) and issubclass(c, Module))


# --- the type model ----------------------------------------------------------------------------
def _optional_inner(tp: Any) -> Any | None:
    """``T`` for ``T | None`` (or ``Optional[T]``), else None."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        rest = [a for a in args if a is not type(None)]
        if len(args) == 2 and len(rest) == 1:
            return rest[0]
    return None


def _type_name(tp: Any) -> str:
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _is_str_enum(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, enum.Enum) and all(isinstance(m.value, str) for m in tp)


def _attrs_hints(cls: type) -> dict[str, Any]:
    module = sys.modules.get(cls.__module__)
    return typing.get_type_hints(cls, vars(module) if module is not None else None)


Fields = dict[type, dict[str, Any]]
"""The resolved field types of each attrs class in a result type (resolved once, when described)."""


def _fields_of(tp: type, fields: Mapping[type, Mapping[str, Any]]) -> Mapping[str, Any]:
    found = fields.get(tp)
    return found if found is not None else _attrs_hints(tp)


def _check_result_type(tp: Any, where: str, fields: Fields, seen: frozenset[type] = frozenset()) -> None:
    """Raise TypeError naming ``where`` unless ``tp`` is a supported result type; the field types
    of the attrs classes in it are put in ``fields``."""
    if tp is None or tp is type(None) or tp in _ARGUMENT_TYPES or tp is Entry or _is_str_enum(tp):
        return
    inner = _optional_inner(tp)
    if inner is not None:
        _check_result_type(inner, where, fields, seen)
        return
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is list and len(args) == 1:
        _check_result_type(args[0], f"{where}[]", fields, seen)
        return
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        _check_result_type(args[0], f"{where}[]", fields, seen)
        return
    if origin is dict and len(args) == 2 and args[0] is str:
        _check_result_type(args[1], f"{where}{{}}", fields, seen)
        return
    if isinstance(tp, type) and attrs.has(tp):
        if tp in seen:
            raise TypeError(f"{where}: {tp.__name__} refers to itself")
        try:
            hints = _attrs_hints(tp)
        except (NameError, TypeError) as err:
            raise TypeError(f"{where}: the fields of {tp.__name__} cannot be resolved ({err})") from None
        for field in attrs.fields(tp):
            if not field.init:
                raise TypeError(f"{where}: field {field.name!r} of {tp.__name__} is not an __init__ argument")
            _check_result_type(hints.get(field.name), f"{where}.{field.name}", fields, seen | {tp})
        fields[tp] = {f.name: hints[f.name] for f in attrs.fields(tp)}
        return
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        raise TypeError(f"{where}: enum {tp.__name__} has values that are not strings")
    raise TypeError(f"{where}: {_type_name(tp)} is not a supported handle type")


def _schema(tp: Any, entry: Mapping[str, Any], fields: Mapping[type, Mapping[str, Any]]) -> dict[str, Any]:
    """The JSON Schema of a (checked) result type; ``entry`` is the schema of an Entry."""
    if tp is None or tp is type(None):
        return {"type": "null"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer", "minimum": -MAX_RESULT_INT, "maximum": MAX_RESULT_INT}
    if tp is str:
        return {"type": "string"}
    if tp is Entry:
        return dict(entry)
    if _is_str_enum(tp):
        return {"type": "string", "enum": [m.value for m in tp]}
    inner = _optional_inner(tp)
    if inner is not None:
        return {"anyOf": [_schema(inner, entry, fields), {"type": "null"}]}
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (list, tuple):
        return {"type": "array", "items": _schema(args[0], entry, fields)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _schema(args[1], entry, fields)}
    hints = _fields_of(tp, fields)
    names = [f.name for f in attrs.fields(tp)]
    return {
        "type": "object",
        "title": tp.__name__,
        "required": names,
        "additionalProperties": False,
        "properties": {name: _schema(hints[name], entry, fields) for name in names},
    }


def _encode(tp: Any, value: Any, entry: Callable[[Entry], Any], where: str, fields: Mapping[type, Any]) -> Any:
    """``value`` (of result type ``tp``) as a JSON-able value; TypeError naming ``where`` when it
    is not of that type."""
    if tp is None or tp is type(None):
        if value is not None:
            raise TypeError(f"{where}: expected None, got {type(value).__name__}")
        return None
    inner = _optional_inner(tp)
    if inner is not None:
        return None if value is None else _encode(inner, value, entry, where, fields)
    if tp is bool or tp is str:
        if type(value) is not tp:
            raise TypeError(f"{where}: expected {tp.__name__}, got {type(value).__name__}")
        return value
    if tp is int:
        if type(value) is not int:
            raise TypeError(f"{where}: expected int, got {type(value).__name__}")
        if not -MAX_RESULT_INT <= value <= MAX_RESULT_INT:
            raise TypeError(f"{where}: {value} is outside -(2**53-1)..2**53-1, which JSON clients cannot hold exactly")
        return value
    if tp is Entry:
        if not isinstance(value, Entry):
            raise TypeError(f"{where}: expected an Entry, got {type(value).__name__}")
        return entry(value)
    if _is_str_enum(tp):
        if not isinstance(value, tp):
            raise TypeError(f"{where}: expected {tp.__name__}, got {type(value).__name__}")
        return value.value
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{where}: expected a {origin.__name__}, got {type(value).__name__}")
        return [_encode(args[0], v, entry, f"{where}[{i}]", fields) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise TypeError(f"{where}: expected a dict with str keys, got {type(value).__name__}")
        return {k: _encode(args[1], v, entry, f"{where}.{k}", fields) for k, v in value.items()}
    if not isinstance(value, tp):
        raise TypeError(f"{where}: expected {tp.__name__}, got {type(value).__name__}")
    return {
        name: _encode(hint, getattr(value, name), entry, f"{where}.{name}", fields)
        for name, hint in _fields_of(tp, fields).items()
    }


def _decode(tp: Any, doc: Any, entry: Callable[[Any], Entry], where: str, fields: Mapping[type, Any]) -> Any:
    """The Python value of result type ``tp`` encoded as ``doc``; ValidationError naming ``where``
    (the path inside the result) when ``doc`` is not such a value."""

    def bad(expected: str) -> ValidationError:
        return ValidationError(f"expected {expected}, got {type(doc).__name__}", field=where)

    if tp is None or tp is type(None):
        if doc is not None:
            raise bad("null")
        return None
    inner = _optional_inner(tp)
    if inner is not None:
        return None if doc is None else _decode(inner, doc, entry, where, fields)
    if tp is bool or tp is str or tp is int:
        if type(doc) is not tp:
            raise bad({"bool": "a boolean", "str": "a string", "int": "an integer"}[tp.__name__])
        if type(doc) is int and not -MAX_RESULT_INT <= doc <= MAX_RESULT_INT:
            raise ValidationError("is outside -(2**53-1)..2**53-1", field=where)
        return doc
    if tp is Entry:
        return entry(doc)
    if _is_str_enum(tp):
        try:
            return tp(doc)
        except ValueError:
            raise ValidationError(f"{str(doc)[:64]!r} is not a {tp.__name__}", field=where) from None
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (list, tuple):
        if not isinstance(doc, list):
            raise bad("an array")
        items = [_decode(args[0], v, entry, f"{where}[{i}]", fields) for i, v in enumerate(doc)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(doc, dict):
            raise bad("an object")
        return {k: _decode(args[1], v, entry, f"{where}.{k}", fields) for k, v in doc.items()}
    if not isinstance(doc, dict):
        raise bad(f"a {tp.__name__} object")
    hints = _fields_of(tp, fields)
    if set(doc) != set(hints):
        extra, missing = sorted(set(doc) - set(hints)), sorted(set(hints) - set(doc))
        raise ValidationError(f"a {tp.__name__} has fields {sorted(hints)} (extra {extra}, missing {missing})",
                              field=where)
    return tp(**{
        f.alias: _decode(hints[f.name], doc[f.name], entry, f"{where}.{f.name}", fields) for f in attrs.fields(tp)
    })


def _argument_schema(tp: Any) -> dict[str, Any]:
    base = _optional_inner(tp) or tp
    if base is bool:
        return {"type": "boolean"}
    if base is int:
        return {"type": "integer", "minimum": 0, "maximum": MAX_ARGUMENT_INT}
    return {"type": "string"}


# --- operations --------------------------------------------------------------------------------
@attrs.frozen(kw_only=True)
class HandleParam:
    """One argument of a handle operation: its name, type (``str``, ``int``, ``bool`` or ``X |
    None`` of them), whether it is required, and its default (optional arguments only)."""

    name: str
    type: Any
    required: bool
    default: Any = None

    def schema(self) -> dict[str, Any]:
        """The argument's JSON Schema (with its default when it has one other than None)."""
        schema = _argument_schema(self.type)
        if not self.required and self.default is not None:
            schema["default"] = self.default
        return schema

    def parse(self, value: str) -> Any:
        """The value of this argument given as the query value ``value`` (QueryError naming it)."""
        base = _optional_inner(self.type) or self.type
        if base is str:
            return value
        if base is bool:
            if value not in ("true", "false"):
                raise QueryError("must be true or false", field=self.name)
            return value == "true"
        if _DECIMAL.fullmatch(value) is None or int(value) > MAX_ARGUMENT_INT:
            raise QueryError(f"must be a decimal integer from 0 to {MAX_ARGUMENT_INT}", field=self.name)
        return int(value)

    def unparse(self, value: Any) -> str:
        """``value`` as this argument's query value (ValidationError naming it when it is not of its type)."""
        base = _optional_inner(self.type) or self.type
        if type(value) is not base:
            raise ValidationError(f"must be {_type_name(self.type)}, got {type(value).__name__}", field=self.name)
        if base is bool:
            return "true" if value else "false"
        if base is int and not 0 <= value <= MAX_ARGUMENT_INT:
            raise ValidationError(f"must be from 0 to {MAX_ARGUMENT_INT}", field=self.name)
        return str(value)


@attrs.frozen(kw_only=True)
class HandleOperation:
    """A module's handle operation, described from its method (see the module docstring)."""

    name: str
    summary: str
    params: tuple[HandleParam, ...]
    result: Any
    """The result type (the method's return annotation, resolved)."""
    fields: Mapping[type, Mapping[str, Any]] = attrs.field(factory=dict, repr=False, eq=False)
    """The field types of the attrs classes in :attr:`result` (resolved when described; a class
    missing here is resolved on each use)."""

    def params_schema(self) -> dict[str, Any]:
        """The JSON Schema (2020-12) of the arguments as one object."""
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "additionalProperties": False,
            "required": [p.name for p in self.params if p.required],
            "properties": {p.name: p.schema() for p in self.params},
        }

    def result_schema(self, entry: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The JSON Schema (2020-12) of the encoded result; an entry is ``entry`` (default: a
        reference to the ``Entry`` schema of the server's OpenAPI components)."""
        return _schema(self.result, entry if entry is not None else {"$ref": ENTRY_REF}, self.fields)

    def encode(self, value: Any, *, entry: Callable[[Entry], Any]) -> Any:
        """``value`` (what the method returned) as a JSON-able value, each entry as ``entry(e)``.
        TypeError when the method returned something its hint does not allow."""
        return _encode(self.result, value, entry, "result", self.fields)

    def decode(self, doc: Any, *, entry: Callable[[Any], Entry]) -> Any:
        """The Python value ``doc`` encodes (attrs classes rebuilt, enums by value, tuples as
        tuples), each entry through ``entry(doc)``. ValidationError naming the path in the result
        when ``doc`` does not have the result's shape."""
        return _decode(self.result, doc, entry, "result", self.fields)

    def parse_args(self, query_items: Iterable[tuple[str, str]]) -> dict[str, Any]:
        """Keyword arguments from query items: each argument at most once, every required one
        present, values of the argument's type; anything else is a QueryError naming the field."""
        by_name = {p.name: p for p in self.params}
        out: dict[str, Any] = {}
        for key, value in query_items:
            param = by_name.get(key)
            if param is None:
                known = ", ".join(by_name) or "none"
                # Only a name-shaped key is echoed: a query key is never worth leaking a secret for.
                shown = key if _NAME.fullmatch(key) else "query"
                raise QueryError(f"unknown argument of {self.name} (arguments: {known})", field=shown)
            if key in out:
                raise QueryError("given more than once", field=key)
            out[key] = param.parse(value)
        for param in self.params:
            if param.required and param.name not in out:
                raise QueryError(f"is required by {self.name}", field=param.name)
        return out

    def query_items(self, args: Mapping[str, Any]) -> list[tuple[str, str]]:
        """The query items of ``args`` (the inverse of :meth:`parse_args`; an optional argument
        that is None is left out)."""
        items: list[tuple[str, str]] = []
        for param in self.params:
            if param.name not in args:
                if param.required:
                    raise ValidationError(f"is required by {self.name}", field=param.name)
                continue
            value = args[param.name]
            if value is None and not param.required:
                continue
            items.append((param.name, param.unparse(value)))
        return items


# --- result schemas read back ----------------------------------------------------------------
_ANNOTATIONS = frozenset({"title", "description", "$comment"})
_NULL = {"type": "null"}


class ResultSchema:
    """A result schema as :meth:`HandleOperation.result_schema` writes it, read back: what a client
    that does not have the module's types (a generic proxy) decodes a result with.

    Only the closed set of shapes the result types give is read: ``null``, ``boolean``,
    ``integer`` (within ``minimum``/``maximum`` and always within ``-(2**53-1)..2**53-1``),
    ``string`` (with ``enum``), an entry (``{"$ref": ENTRY_REF}``), ``{"anyOf": [S, null]}``,
    arrays, maps (``additionalProperties`` a schema) and records (``properties``, ``required``,
    ``additionalProperties: false``); ``title``, ``description`` and ``$comment`` are allowed
    anywhere. Anything else is a :class:`~nucleus_core.errors.ValidationError` naming the path in
    the schema, so a client never takes a construct it cannot check for "any value".
    """

    __slots__ = ("schema",)

    def __init__(self, schema: Any) -> None:
        _check_schema(schema, "result", 0)
        self.schema: Mapping[str, Any] = schema

    def decode(self, doc: Any, *, entry: Callable[[Any], Entry]) -> Any:
        """The JSON value ``doc`` checked against the schema, each entry through ``entry(doc)``
        (its value in the answer); records and maps are dicts, arrays lists, enums their string.
        ValidationError naming the path in the result when ``doc`` does not match."""
        return _decode_schema(self.schema, doc, entry, "result")


def _schema_kind(schema: Any, where: str) -> str:
    """Which shape ``schema`` is (``ref``, ``optional``, or its ``type``), its keys checked."""
    if not isinstance(schema, Mapping):
        raise ValidationError("is not a schema object", field=where)
    keys = set(schema) - _ANNOTATIONS
    if "$ref" in keys:
        kind, allowed = "ref", {"$ref"}
    elif "anyOf" in keys:
        kind, allowed = "optional", {"anyOf"}
    else:
        declared = schema.get("type")
        kind = declared if isinstance(declared, str) else ""
        allowed = {
            "null": {"type"}, "boolean": {"type"}, "integer": {"type", "minimum", "maximum"},
            "string": {"type", "enum"}, "array": {"type", "items"},
            "object": {"type", "properties", "required", "additionalProperties"},
        }.get(kind, set())
        if not allowed:
            raise ValidationError(f"type {str(schema.get('type'))[:32]!r} is not a result type", field=where)
    if not keys <= allowed:
        raise ValidationError(f"has keywords a result schema does not use: {sorted(keys - allowed)[:8]}", field=where)
    return kind


def _check_schema(schema: Any, where: str, depth: int) -> None:
    if depth > MAX_SCHEMA_DEPTH:
        raise ValidationError(f"nests deeper than {MAX_SCHEMA_DEPTH}", field=where)
    kind = _schema_kind(schema, where)
    if kind == "ref":
        if schema["$ref"] != ENTRY_REF:
            raise ValidationError(f"refers to {str(schema['$ref'])[:64]!r}, not to {ENTRY_REF}", field=where)
    elif kind == "optional":
        options = schema["anyOf"]
        if not isinstance(options, list) or len(options) != 2 or _NULL not in options or options == [_NULL, _NULL]:
            raise ValidationError("anyOf is [<schema>, {\"type\": \"null\"}] in a result schema", field=where)
        _check_schema(options[0] if options[1] == _NULL else options[1], where, depth + 1)
    elif kind == "integer":
        for bound in ("minimum", "maximum"):
            if bound in schema and type(schema[bound]) is not int:
                raise ValidationError(f"{bound} is not an integer", field=where)
    elif kind == "string":
        if "enum" in schema and not (
            isinstance(schema["enum"], list) and all(isinstance(v, str) for v in schema["enum"])
        ):
            raise ValidationError("enum is not a list of strings", field=where)
    elif kind == "array":
        _check_schema(schema.get("items"), f"{where}[]", depth + 1)
    elif kind == "object":
        _check_object_schema(schema, where, depth)


def _check_object_schema(schema: Mapping[str, Any], where: str, depth: int) -> None:
    extra = schema.get("additionalProperties")
    if "properties" not in schema:
        if "required" in schema or not isinstance(extra, Mapping):
            raise ValidationError("an object is a record (properties) or a map (additionalProperties)", field=where)
        _check_schema(extra, f"{where}{{}}", depth + 1)
        return
    properties, required = schema["properties"], schema.get("required", [])
    if extra is not False or not isinstance(properties, Mapping):
        raise ValidationError("a record has properties and additionalProperties false", field=where)
    names = required if isinstance(required, list) and all(isinstance(r, str) for r in required) else None
    if names is None or len(set(names)) != len(names) or not set(names) <= set(properties):
        raise ValidationError("required lists some of the properties, each once", field=where)
    for name, sub in properties.items():
        _check_schema(sub, f"{where}.{name}", depth + 1)


def _decode_schema(schema: Mapping[str, Any], doc: Any, entry: Callable[[Any], Entry], where: str) -> Any:
    """``doc`` checked against the (checked) ``schema`` (see :meth:`ResultSchema.decode`)."""

    def bad(expected: str) -> ValidationError:
        return ValidationError(f"expected {expected}, got {type(doc).__name__}", field=where)

    kind = _schema_kind(schema, where)
    if kind == "ref":
        return entry(doc)
    if kind == "optional":
        options = schema["anyOf"]
        return None if doc is None else _decode_schema(options[0] if options[1] == _NULL else options[1], doc,
                                                       entry, where)
    if kind == "null":
        if doc is not None:
            raise bad("null")
        return None
    if kind in ("boolean", "string", "integer"):
        if type(doc) is not {"boolean": bool, "string": str, "integer": int}[kind]:
            raise bad({"boolean": "a boolean", "string": "a string", "integer": "an integer"}[kind])
        if kind == "integer":
            low = max(-MAX_RESULT_INT, schema.get("minimum", -MAX_RESULT_INT))
            high = min(MAX_RESULT_INT, schema.get("maximum", MAX_RESULT_INT))
            if not low <= doc <= high:
                raise ValidationError(f"is outside {low}..{high}", field=where)
        if type(doc) is str and "enum" in schema and doc not in schema["enum"]:
            raise ValidationError(f"{doc[:64]!r} is not one of {schema['enum'][:16]}", field=where)
        return doc
    if kind == "array":
        if not isinstance(doc, list):
            raise bad("an array")
        return [_decode_schema(schema["items"], v, entry, f"{where}[{i}]") for i, v in enumerate(doc)]
    if not isinstance(doc, dict):
        raise bad("an object")
    if "properties" not in schema:
        return {k: _decode_schema(schema["additionalProperties"], v, entry, f"{where}.{k}") for k, v in doc.items()}
    properties, required = schema["properties"], set(schema.get("required", []))
    if not required <= set(doc) <= set(properties):
        extra, missing = sorted(set(doc) - set(properties))[:8], sorted(required - set(doc))[:8]
        raise ValidationError(f"has other fields than its schema (extra {extra}, missing {missing})", field=where)
    return {k: _decode_schema(properties[k], doc[k], entry, f"{where}.{k}") for k in properties if k in doc}


def _describe(cls: type, name: str, fn: Any, mark: _Mark) -> HandleOperation:
    where = f"{cls.__name__}.{name}"
    if OPERATION_NAME.fullmatch(name) is None:
        raise TypeError(f"{where}: the name of a handle operation is 1-64 ASCII letters, digits and '_', "
                        "starting with a letter (it is a route segment and part of an OpenAPI name)")
    try:
        hints = typing.get_type_hints(fn)
    except (NameError, TypeError) as err:
        raise TypeError(f"{where}: its type hints cannot be resolved ({err})") from None
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    if not params or params[0].name != "self":
        raise TypeError(f"{where}: a handle operation is a method taking self first")
    seen_context = False
    out: list[HandleParam] = []
    for p in params[1:]:
        if p.name == "context":
            if p.kind is not p.POSITIONAL_OR_KEYWORD or hints.get("context") is not RequestContext:
                raise TypeError(f"{where}: parameter 'context' must be a positional 'context: RequestContext'")
            seen_context = True
            continue
        tp = hints.get(p.name)
        if tp is None:
            raise TypeError(f"{where}: parameter {p.name!r} has no type hint")
        base = _optional_inner(tp) or tp
        if base not in _ARGUMENT_TYPES:
            raise TypeError(f"{where}: parameter {p.name!r}: {_type_name(tp)} is not a supported argument type "
                            "(str, int, bool or X | None of them)")
        if p.kind is p.POSITIONAL_OR_KEYWORD and not seen_context:
            if p.default is not p.empty or _optional_inner(tp) is not None:
                raise TypeError(f"{where}: parameter {p.name!r} comes before context, so it is required: "
                                "no default, not None-able (make it keyword-only after context)")
            out.append(HandleParam(name=p.name, type=tp, required=True))
        elif p.kind is p.KEYWORD_ONLY and seen_context:
            if p.default is p.empty:
                raise TypeError(f"{where}: keyword-only parameter {p.name!r} needs a default")
            if p.default is not None and type(p.default) is not base:
                raise TypeError(f"{where}: the default of {p.name!r} is not a {base.__name__}")
            if base is int and p.default is not None and not 0 <= p.default <= MAX_ARGUMENT_INT:
                raise TypeError(f"{where}: the default of {p.name!r} is outside 0..{MAX_ARGUMENT_INT}, "
                                "the range of integer arguments")
            out.append(HandleParam(name=p.name, type=tp, required=False, default=p.default))
        else:
            raise TypeError(f"{where}: parameter {p.name!r}: required arguments come before 'context', "
                            "optional ones are keyword-only after it (no *args, **kwargs)")
    if not seen_context:
        raise TypeError(f"{where}: a handle operation takes 'context: RequestContext'")
    if "return" not in hints:
        raise TypeError(f"{where}: no return annotation")
    fields: Fields = {}
    _check_result_type(hints["return"], f"{where} -> result", fields)
    doc = inspect.getdoc(fn) or ""
    summary = mark.summary if mark.summary is not None else (doc.strip().splitlines() or [name])[0]
    return HandleOperation(name=name, summary=summary, params=tuple(out), result=hints["return"], fields=fields)


def operations_of(module_class: type[Module]) -> tuple[HandleOperation, ...]:
    """The handle operations of ``module_class`` (its methods marked with
    :func:`handle_operation`, inherited ones included), sorted by name.

    :raises ModuleError: a marked method whose signature or types are not supported, naming the
        module, the method and the parameter.
    """
    if not (isinstance(module_class, type) and issubclass(module_class, Module)):
        raise TypeError(f"operations_of takes a Module subclass, got {module_class!r}")
    names = sorted({n for c in module_class.__mro__ for n in vars(c)})
    ops: list[HandleOperation] = []
    for name in names:
        fn = inspect.getattr_static(module_class, name, None)
        mark = getattr(fn, _MARK, None) if inspect.isfunction(fn) else None
        if not isinstance(mark, _Mark):
            continue
        try:
            ops.append(_describe(module_class, name, fn, mark))
        except TypeError as err:
            raise ModuleError(f"handle operation {err}", module_id=module_class.id or module_class.__name__) from None
    return tuple(ops)


@runtime_checkable
class ModuleRuntime(Protocol):
    """A ledger's modules, read-only: what :class:`~nucleus_core.modules.LedgerRuntime` (in
    process) and ``nucleus_server.client.RemoteModules`` (over HTTP) both offer."""

    def list(self) -> builtins.list[str]:
        """Ids of the ledger's modules."""

    def metadata(self) -> builtins.list[ModuleMetadata]:
        """Id, version, state, streams, dependencies and resource kind of every module."""

    @overload
    def get(self, module_id: str) -> Module: ...
    @overload
    def get(self, module_id: str, kind: type[M]) -> M: ...
    def get(self, module_id: str, kind: type[Module] | None = None) -> Module:
        """The module ``module_id`` (typed as ``kind`` when given); ModuleError for an unknown id
        or a module of another class."""
