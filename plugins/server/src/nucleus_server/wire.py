"""JSON on the wire: strict request parsing, entry encoding, and entry decoding in the client.

An entry travels as ``{"seq", "hash", "prev_hash", "version", "appender", "auth_source",
"committed_at", "record"}`` where ``record`` is the record's stored canonical bytes (RFC 8785 JSON)
copied verbatim, so the server never re-encodes a record and the client can recompute the entry
hash from what it received. The appender fields are always present, ``null`` for a version-1 entry.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from nucleus_core.errors import IntegrityError, ValidationError
from nucleus_core.hashing import entry_hash_of_version, is_hash
from nucleus_core.records import Entry, Record, entry_columns_problem

from .errors import MalformedRequestError

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON."""
    return _encoder.encode(value).encode("utf-8")


class RawJSON:
    """JSON bytes to be written as they are inside a document :func:`dumps_raw` encodes (an
    entry's :func:`entry_json`, whose record is its stored canonical bytes)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    @classmethod
    def entry(cls, entry: Entry) -> RawJSON:
        return cls(entry_json(entry))


def dumps_raw(value: Any) -> bytes:
    """Compact UTF-8 JSON of ``value`` (dicts, lists, JSON scalars), :class:`RawJSON` parts copied verbatim."""
    if isinstance(value, RawJSON):
        return value.data
    if isinstance(value, dict):
        return b"{" + b",".join(dumps(k) + b":" + dumps_raw(v) for k, v in value.items()) + b"}"
    if isinstance(value, list):
        return b"[" + b",".join(dumps_raw(v) for v in value) + b"]"
    return dumps(value)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise MalformedRequestError(f"duplicate key {key[:64]!r} in a JSON object", field="body")
            seen.add(key)
    return out


def _no_constant(name: str) -> Any:
    raise MalformedRequestError(f"{name} is not JSON", field="body")


def loads_body(raw: bytes) -> Any:
    """Parse a request body: UTF-8 JSON without duplicate keys, NaN or infinities.

    :raises MalformedRequestError: anything else, naming what is wrong.
    """
    if not raw:
        raise MalformedRequestError("the request needs a JSON body", field="body")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedRequestError("is not UTF-8", field="body") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except RecursionError:
        raise MalformedRequestError("JSON nested too deeply", field="body") from None
    except ValueError as err:
        if isinstance(err, ValidationError):
            raise
        raise MalformedRequestError(f"not JSON: {err}", field="body") from None


_ENTRY_KEYS = frozenset(
    {"seq", "hash", "prev_hash", "version", "appender", "auth_source", "committed_at", "record"}
)


def entry_json(entry: Entry) -> bytes:
    """One entry as JSON bytes, the record being its canonical bytes."""
    if entry.version == 1:
        appender = b'"version":1,"appender":null,"auth_source":null,"committed_at":null'
    else:
        appender = b'"version":%d,"appender":%s,"auth_source":%s,"committed_at":%d' % (
            entry.version, dumps(entry.appender), dumps(entry.auth_source), entry.committed_at or 0
        )
    return b'{"seq":%d,"hash":"%s","prev_hash":"%s",%s,"record":%s}' % (
        entry.seq,
        entry.hash.encode("ascii"),
        entry.prev_hash.encode("ascii"),
        appender,
        entry.canonical,
    )


def entries_json(
    entries: Iterable[Entry], *, next_cursor: str | None = None, paged: bool = False, proof: Any = None
) -> bytes:
    """``{"entries": [...]}`` and, when ``paged``, ``"next_cursor"``; ``"proof"`` when given."""
    body = b'{"entries":[' + b",".join(entry_json(e) for e in entries) + b"]"
    if paged:
        body += b',"next_cursor":' + dumps(next_cursor)
    if proof is not None:
        body += b',"proof":' + dumps(proof)
    return body + b"}"


def entry_from_json(doc: object, *, ledger_id: str) -> Entry:
    """Rebuild an entry the server sent and check its hash against ``ledger_id``.

    :raises IntegrityError: the document is not an entry, or its hash does not match its seq,
        previous hash and record (a server or proxy changed something).
    """
    if not isinstance(doc, dict) or set(doc) != _ENTRY_KEYS:
        raise IntegrityError("the server sent something that is not an entry")
    seq, digest, prev = doc["seq"], doc["hash"], doc["prev_hash"]
    if type(seq) is not int or seq < 1 or not is_hash(digest) or not is_hash(prev):
        raise IntegrityError("the server sent an entry with a malformed seq or hash")
    try:
        record = Record.from_dict(doc["record"])
    except ValidationError as err:
        raise IntegrityError(f"entry {seq}: the server sent an invalid record ({err})", seq=seq) from None
    version, appender, source, committed = doc["version"], doc["appender"], doc["auth_source"], doc["committed_at"]
    entry = Entry.chained(
        seq=seq, hash=digest, prev_hash=prev, record=record,
        version=version, appender=appender, auth_source=source, committed_at=committed,
    )
    why = entry_columns_problem(entry)
    if why is not None:
        raise IntegrityError(f"entry {seq}: the server sent malformed fields ({why})", seq=seq, reason=why)
    if entry_hash_of_version(ledger_id, seq, prev, record.canonical, version, appender, source, committed) != digest:
        raise IntegrityError(
            f"entry {seq}: hash does not match the record the server sent", seq=seq, reason="hash mismatch"
        )
    return entry
