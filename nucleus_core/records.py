"""Records (what callers append) and entries (what the ledger stores)."""

from __future__ import annotations

import json
import re
from typing import Any

import attrs

from .canonical import MAX_SAFE_INTEGER, check_ijson, encode_checked, parse_json
from .errors import IntegrityError, RecordValidationError, ValidationError

MAX_RECORD_ID_LENGTH = 256
"""Longest record id, in characters."""

STREAM_PATTERN = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
"""User streams: 1-64 characters of lowercase ASCII letters, digits, ``_ . -``; starts with a letter."""

SYSTEM_STREAM_PATTERN = re.compile(r"_[a-z][a-z0-9_.-]{0,62}")
"""System streams start with ``_`` and are written only by the ledger and its plugins."""

_stream_match = STREAM_PATTERN.fullmatch

DEFAULT_MAX_RECORD_BYTES = 1024 * 1024
"""Default limit on a record's canonical encoding (configurable per ledger)."""

_ID_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f]")

SYSTEM_ID_PREFIX = "_"
"""Record ids starting with ``_`` are reserved for records in system streams: the ids plugins derive
for their chain state (``_api_keys:revoke:<key id>``, see :func:`system_record_id`) can never be
taken by a user record. The ledger refuses such an id in a user stream (:func:`validate_user_record_id`)."""


class _Required:
    """The default of a required :class:`Record` field: a call that leaves one out gets a
    :class:`RecordValidationError` naming every missing field, not a bare ``TypeError``."""

    def __repr__(self) -> str:
        return "<required>"


_REQUIRED: Any = _Required()
_REQUIRED_FIELDS = ("id", "stream", "timestamp", "payload")


def _check_id(value: object) -> None:
    if (
        type(value) is str
        and value.isascii()
        and value.isprintable()  # so no control characters
        and 0 < len(value) <= MAX_RECORD_ID_LENGTH
        and value[0] != " "
        and value[-1] != " "
    ):
        return  # the common case: printable ASCII, not padded
    if not isinstance(value, str):
        raise RecordValidationError(f"must be a string, got {type(value).__name__}", field="id")
    if not value:
        raise RecordValidationError("must not be empty", field="id")
    if len(value) > MAX_RECORD_ID_LENGTH:
        raise RecordValidationError(
            f"is {len(value)} characters; at most {MAX_RECORD_ID_LENGTH} allowed", field="id"
        )
    if value != value.strip():
        raise RecordValidationError("must not start or end with whitespace", field="id")
    if _ID_FORBIDDEN.search(value):
        raise RecordValidationError("must not contain control characters", field="id")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RecordValidationError("contains a lone surrogate", field="id") from None


def validate_stream(value: object, *, allow_system: bool = False) -> str:
    """Return ``value`` if it is a valid stream name; raise :class:`RecordValidationError` otherwise."""
    if not isinstance(value, str):
        raise RecordValidationError(f"must be a string, got {type(value).__name__}", field="stream")
    if STREAM_PATTERN.fullmatch(value):
        return value
    if SYSTEM_STREAM_PATTERN.fullmatch(value):
        if allow_system:
            return value
        raise RecordValidationError(
            f"{value!r} is a system stream (leading '_'); only the ledger writes there", field="stream"
        )
    raise RecordValidationError(
        f"{value[:80]!r} is not a stream name: 1-64 characters of a-z, 0-9, '_', '.', '-', "
        "starting with a letter",
        field="stream",
    )


def validate_user_record_id(value: str) -> str:
    """Return ``value`` if it may be the id of a record in a user stream; ids starting with
    :data:`SYSTEM_ID_PREFIX` are reserved for system streams (:class:`RecordValidationError` naming ``id``)."""
    if value.startswith(SYSTEM_ID_PREFIX):
        raise RecordValidationError(
            f"{value[:80]!r} starts with {SYSTEM_ID_PREFIX!r}: such ids are reserved for system streams", field="id"
        )
    return value


def system_record_id(stream: str, name: str) -> str:
    """The id a plugin derives for a record of its system stream ``stream``: ``<stream>:<name>``
    (e.g. ``_api_keys:revoke:<key id>``). It starts with the stream's ``_``, so no user record can
    hold it (see :data:`SYSTEM_ID_PREFIX`)."""
    validate_stream(stream, allow_system=True)
    if not stream.startswith("_"):
        raise RecordValidationError(f"{stream!r} is not a system stream", field="stream")
    record_id = f"{stream}:{name}"
    _check_id(record_id)
    return record_id


def _check_timestamp(value: object) -> None:
    if type(value) is not int:
        raise RecordValidationError(
            f"must be an integer (Unix milliseconds), got {type(value).__name__}", field="timestamp"
        )
    if not 0 < value <= MAX_SAFE_INTEGER:
        raise RecordValidationError("must be > 0 and at most 2**53-1 (Unix milliseconds)", field="timestamp")


@attrs.frozen(kw_only=True)
class Record:
    """One fact to append to a stream.

    ``id`` is unique in the ledger; ``stream`` names the stream; ``timestamp`` is Unix
    milliseconds (data, never order); ``payload`` is a JSON object or array; ``meta`` an optional
    JSON object. All of it is validated on construction: an invalid record cannot exist.
    The canonical bytes (RFC 8785) are computed once, on construction: they are what is hashed and
    stored, so do not mutate ``payload`` or ``meta`` afterwards (build a new record instead; a
    mutation would not reach the ledger, and entries read back hold the appended content).
    """

    id: str = _REQUIRED
    stream: str = _REQUIRED
    timestamp: int = _REQUIRED
    payload: dict[str, Any] | list[Any] = _REQUIRED
    meta: dict[str, Any] | None = None
    _canonical: bytes = attrs.field(init=False, repr=False, eq=False, hash=False, alias="_canonical")

    def __attrs_post_init__(self) -> None:
        try:
            _check_id(self.id)
            if type(self.stream) is not str or _stream_match(self.stream) is None:
                validate_stream(self.stream, allow_system=True)
            _check_timestamp(self.timestamp)
            if type(self.payload) not in (dict, list):
                raise RecordValidationError(
                    f"must be a JSON object or array, got {type(self.payload).__name__}", field="payload"
                )
        except RecordValidationError:
            # A left-out field fails its check: name every one that is missing instead.
            missing = [name for name in _REQUIRED_FIELDS if getattr(self, name) is _REQUIRED]
            if missing:
                raise RecordValidationError(f"missing field(s) {missing}", field="record") from None
            raise
        if self.meta is not None and type(self.meta) is not dict:
            raise RecordValidationError(f"must be a JSON object or None, got {type(self.meta).__name__}", field="meta")
        payload, meta = self.payload, self.meta
        # Strings are checked for lone surrogates by the final UTF-8 encoding (see canonical.py).
        exact = check_ijson(payload, field="payload", error=RecordValidationError, strings=False)
        # Keys in JCS order already (the encoder sorts anyway); meta is omitted when None.
        rid, stream, ts = self.id, self.stream, self.timestamp
        if meta is None:
            doc: dict[str, Any] = {"id": rid, "payload": payload, "stream": stream, "timestamp": ts}
        else:
            if check_ijson(meta, field="meta", error=RecordValidationError, strings=False):
                exact = True
            doc = {"id": rid, "meta": meta, "payload": payload, "stream": stream, "timestamp": ts}
        try:
            canonical = encode_checked(doc, exact)
        except UnicodeEncodeError:
            # Raises naming the field; the id was checked already, the stream is ASCII.
            check_ijson(payload, field="payload", error=RecordValidationError)
            if meta is not None:
                check_ijson(meta, field="meta", error=RecordValidationError)
            raise RecordValidationError("contains a lone surrogate", field="record") from None
        object.__setattr__(self, "_canonical", canonical)

    @property
    def canonical(self) -> bytes:
        """The RFC 8785 canonical UTF-8 bytes of this record (what is hashed and stored)."""
        return self._canonical

    @property
    def size(self) -> int:
        """Length of the canonical encoding in bytes."""
        return len(self._canonical)

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict (``meta`` omitted when None)."""
        doc: dict[str, Any] = {
            "id": self.id,
            "stream": self.stream,
            "timestamp": self.timestamp,
            "payload": self.payload,
        }
        if self.meta is not None:
            doc["meta"] = self.meta
        return doc

    @classmethod
    def from_dict(cls, data: object) -> Record:
        """Build a record from untrusted JSON-like data; unknown or missing fields are refused."""
        if type(data) is not dict:
            raise RecordValidationError(f"a record must be a JSON object, got {type(data).__name__}")
        unknown = set(data) - {"id", "stream", "timestamp", "payload", "meta"}
        if unknown:
            raise RecordValidationError(f"unknown field(s) {sorted(map(str, unknown))}", field="record")
        missing = [k for k in ("id", "stream", "timestamp", "payload") if k not in data]
        if missing:
            raise RecordValidationError(f"missing field(s) {missing}", field="record")
        return cls(
            id=data["id"],
            stream=data["stream"],
            timestamp=data["timestamp"],
            payload=data["payload"],
            meta=data.get("meta"),
        )

    @classmethod
    def from_canonical(cls, data: bytes, *, seq: int | None = None) -> Record:
        """Rebuild a record from stored canonical bytes.

        The bytes must parse to a valid record whose canonical form is exactly ``data``;
        anything else raises :class:`IntegrityError` (with ``seq`` when given).
        """
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as err:
            raise IntegrityError(
                f"entry {seq}: stored bytes are not JSON ({err})", seq=seq, reason="not JSON"
            ) from None
        if type(doc) is not dict:
            raise IntegrityError(f"entry {seq}: stored bytes are not a record object", seq=seq, reason="not a record")
        try:
            try:
                record = cls.from_dict(doc)
            except RecordValidationError:
                # Integers beyond 2**53-1 in canonical bytes are doubles JCS wrote (e.g. 1e16).
                record = cls.from_dict(parse_json(data))
        except ValidationError as err:
            raise IntegrityError(
                f"entry {seq}: stored record is invalid ({err})", seq=seq, reason="invalid record"
            ) from None
        if record.canonical != bytes(data):
            raise IntegrityError(
                f"entry {seq}: stored bytes are not in canonical form", seq=seq, reason="not canonical"
            )
        return record


@attrs.frozen(kw_only=True)
class Entry:
    """A record as stored in the chain: its sequence number, hash and the previous entry's hash.

    Hashes are lowercase hex BLAKE3-256 (see ``docs/FORMAT.md``). ``canonical`` holds the exact
    bytes that were hashed.
    """

    seq: int
    hash: str
    prev_hash: str
    record: Record
    canonical: bytes = attrs.field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: seq, hash, prev_hash and the record."""
        return {"seq": self.seq, "hash": self.hash, "prev_hash": self.prev_hash, "record": self.record.to_dict()}
