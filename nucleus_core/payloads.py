"""Module event payloads: attrs classes read by a private cattrs converter.

A module describes each kind of record it accepts as an attrs class whose fields say what they
hold (:func:`text`, :func:`oid`, :func:`integer`, ...), and reads payloads with one
:class:`PayloadSchema` per module instance: a tagged union on the payload's ``type``, unknown keys
refused, and every problem a :class:`~nucleus_core.errors.RecordRejectedError` naming the module,
the record and the field.

>>> @attrs.frozen(kw_only=True)
... class Moved:
...     sender: str = oid(key="from")        # the payload key differs from the attribute name
...     to: str = oid()
...     amount: int = integer(minimum=1)
>>> schema = PayloadSchema("things", {"moved": Moved})
>>> event = schema.read(record)              # a Moved, or RecordRejectedError

Strings, integers, objects and lists are taken as they are, never coerced (``"5"`` is not an
integer, ``true`` is not 1); the field's validator decides. A field is required unless declared
``optional=True``, and ``null`` counts as absent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override
from cattrs.strategies import configure_tagged_union

from .errors import RecordRejectedError
from .modules import IDENTIFIER_PATTERN, MAX_SAFE_INT, rejection
from .oid import is_oid
from .records import Record

E = TypeVar("E")

TAG = "type"
"""The payload key that says which kind of event a record is."""


class _Invalid(Exception):  # an internal signal: never leaves this module
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def _key(attr: attrs.Attribute[Any]) -> str:
    return str(attr.metadata.get("key", attr.name))


def _field(check: Callable[[Any], str | None], *, key: str | None, optional: bool, **kwargs: Any) -> Any:
    """An attrs field whose validator refuses what ``check`` finds wrong (``check`` returns the
    reason, or None for a good value); the payload key is looked up only for a refusal."""

    def validate(_inst: object, attr: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            if not optional:
                raise _Invalid(_key(attr), "is required")
            return
        reason = check(value)
        if reason is not None:
            raise _Invalid(_key(attr), reason)

    metadata = {"key": key} if key is not None else {}
    if optional:
        kwargs.setdefault("default", None)
    return attrs.field(validator=validate, metadata=metadata, **kwargs)


def text(
    *, pattern: re.Pattern[str] | None = None, max_length: int = 256, key: str | None = None, optional: bool = False
) -> Any:
    """A non-empty string of at most ``max_length`` characters matching ``pattern`` (if any)."""

    def check(value: Any) -> str | None:
        if not isinstance(value, str) or not value:
            return "must be a non-empty string"
        if len(value) > max_length:
            return f"is {len(value)} characters; at most {max_length} allowed"
        if pattern is not None and pattern.fullmatch(value) is None:
            return f"{value[:80]!r} does not match {pattern.pattern}"
        return None

    return _field(check, key=key, optional=optional)


def identifier(*, key: str | None = None, optional: bool = False) -> Any:
    """An id in :data:`~nucleus_core.modules.IDENTIFIER_PATTERN` syntax."""
    return text(pattern=IDENTIFIER_PATTERN, max_length=128, key=key, optional=optional)


def oid(*, key: str | None = None, optional: bool = False) -> Any:
    """An OID (see :mod:`nucleus_core.oid`)."""

    def check(value: Any) -> str | None:
        if not is_oid(value):
            shown = value[:80] if isinstance(value, str) else type(value).__name__
            return f"{shown!r} is not an OID (oid:<namespace>:<type>:<id>)"
        return None

    return _field(check, key=key, optional=optional)


def integer(*, minimum: int, maximum: int = MAX_SAFE_INT, key: str | None = None, optional: bool = False) -> Any:
    """An integer (never a bool or float) from ``minimum`` to ``maximum``."""

    def check(value: Any) -> str | None:
        if type(value) is not int:
            return f"must be an integer, got {type(value).__name__}"
        if not minimum <= value <= maximum:
            return f"must be from {minimum} to {maximum}; got {value}"
        return None

    return _field(check, key=key, optional=optional)


def json_object(*, key: str | None = None, optional: bool = False) -> Any:
    """A JSON object (kept as given; left out of the event's equality)."""

    def check(value: Any) -> str | None:
        if type(value) is not dict:
            return f"must be a JSON object, got {type(value).__name__}"
        return None

    return _field(check, key=key, optional=optional, eq=False)


def _sorted_if_strings(value: Any) -> Any:
    if type(value) is list and all(isinstance(item, str) for item in value):
        return tuple(sorted(value))
    return value


def texts(*, pattern: re.Pattern[str], max_items: int = 64, key: str | None = None, optional: bool = False) -> Any:
    """A non-empty list of distinct strings matching ``pattern``, held as a sorted tuple."""

    def check(value: Any) -> str | None:
        # A JSON list of strings arrives here as a tuple (sorted by the field's converter).
        if type(value) is list:
            bad = next(item for item in value if not isinstance(item, str))
            return f"item {str(bad)[:40]!r} does not match {pattern.pattern}"
        if type(value) is not tuple or not value:
            return "must be a non-empty list of strings"
        if len(value) > max_items:
            return f"holds {len(value)} items; at most {max_items} allowed"
        for item in value:
            if pattern.fullmatch(item) is None:
                return f"item {item[:40]!r} does not match {pattern.pattern}"
        if len(set(value)) != len(value):
            return "items must be distinct"
        return None

    return _field(check, key=key, optional=optional, converter=_sorted_if_strings)


class PayloadSchema(Generic[E]):
    """How one module reads its payloads: ``events`` maps each ``type`` value to its attrs class.

    Holds a private :class:`cattrs.Converter` (``forbid_extra_keys=True``, values never coerced);
    build one per module instance, never share it between ledgers."""

    def __init__(self, module_id: str, events: Mapping[str, type[E]]) -> None:
        self.module_id = module_id
        self._classes: dict[str, type[Any]] = dict(events)
        self._tags = {cls: tag for tag, cls in self._classes.items()}
        self._choices = ", ".join(self._classes)
        self._allowed = {
            cls: sorted({TAG, *(_key(a) for a in attrs.fields(cls))}) for cls in self._classes.values()
        }
        classes = tuple(self._classes.values())
        union: Any = classes[0]
        for cls in classes[1:]:
            union = union | cls
        self._union = union
        # Without detailed validation cattrs raises the first problem as it is (a KeyError naming
        # the missing key, ForbiddenExtraKeysError, a field validator's error) and its generated
        # code is smaller and faster: one problem, named, is what a refusal reports anyway.
        converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=False)
        # Values are taken as they are: each field's validator checks its type (cattrs would turn
        # 5 into "5" for a str field and "5" into 5 for an int one).
        def as_given(value: Any, _type: Any) -> Any:
            return value

        converter.register_structure_hook_func(lambda t: t != union and not attrs.has(t), as_given)
        for primitive in (str, int):  # cattrs' own hooks for these take precedence over the predicate
            converter.register_structure_hook(primitive, as_given)
        for cls in classes:
            renames: dict[str, Any] = {
                a.name: override(rename=_key(a)) for a in attrs.fields(cls) if "key" in a.metadata
            }
            converter.register_structure_hook(cls, make_dict_structure_fn(cls, converter, **renames))
        if len(classes) > 1:
            configure_tagged_union(union, converter, tag_generator=self._tags.__getitem__, tag_name=TAG)
        self._converter = converter

    def read(self, record: Record) -> E:
        """The event ``record``'s payload describes.

        :raises RecordRejectedError: the payload is not an object, its ``type`` is missing or
            unknown, it has a key its type does not allow, or a field is missing or invalid
            (``field`` names the payload key).
        """
        payload = record.payload
        if not isinstance(payload, dict):
            raise self._reject(record, "must be a JSON object", "payload")
        kind = payload.get(TAG)
        cls = self._classes.get(kind) if isinstance(kind, str) else None
        if cls is None:
            if kind is None:
                raise self._reject(record, "is required", TAG)
            raise self._reject(record, f"must be one of {self._choices}; got {str(kind)[:40]!r}", TAG)
        try:
            if len(self._classes) > 1:
                event: E = self._converter.structure(payload, self._union)
            else:
                event = self._converter.structure({k: v for k, v in payload.items() if k != TAG}, cls)
        except cattrs.ForbiddenExtraKeysError as err:
            reason = f"unknown field(s) {sorted(err.extra_fields)}; allowed: {self._allowed[cls]}"
            raise self._reject(record, reason, "payload") from None
        except _Invalid as err:
            raise self._reject(record, err.reason, err.field) from None
        except KeyError as err:
            raise self._reject(record, "is required", str(err.args[0])) from None
        return event

    def _reject(self, record: Record, reason: str, field: str) -> RecordRejectedError:
        return rejection(self.module_id, record, reason, field)
