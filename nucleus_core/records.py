"""Records (what callers append) and entries (what the ledger stores)."""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable
from typing import Any, NoReturn

import attrs

from .canonical import (
    MAX_SAFE_INTEGER,
    canonical_json,
    check_ijson,
    check_record_values,
    encode_checked,
    parse_int,
)
from .errors import IntegrityError, RecordValidationError, ValidationError
from .hashing import is_hash
from .oid import OID_PATTERN
from .specs import SPEC_NAME_PATTERN

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


def _plain_id(value: object) -> bool:
    """The common valid id: printable ASCII (so no control characters), not padded, not too long."""
    return (
        type(value) is str
        and value.isascii()
        and value.isprintable()
        and 0 < len(value) <= MAX_RECORD_ID_LENGTH
        and value[0] != " "
        and value[-1] != " "
    )


def _check_id(value: object) -> None:
    if _plain_id(value):
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


@attrs.frozen(kw_only=True, init=False)
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

    def __init__(
        self,
        *,
        id: str = _REQUIRED,
        stream: str = _REQUIRED,
        timestamp: int = _REQUIRED,
        payload: dict[str, Any] | list[Any] = _REQUIRED,
        meta: dict[str, Any] | None = None,
    ) -> None:
        # Written out instead of attrs' generated __init__ (which sets each field through
        # object.__setattr__ and then calls a post-init hook): this runs for every record built.
        rid, ts = id, timestamp
        _set_record_id(self, rid)
        _set_record_stream(self, stream)
        _set_record_timestamp(self, ts)
        _set_record_payload(self, payload)
        _set_record_meta(self, meta)
        # The common case in one expression (the checks of _check_fields, which runs otherwise and
        # names what is wrong): this runs on every record built.
        if not (
            _plain_id(rid)
            and type(stream) is str
            and _stream_match(stream) is not None
            and type(ts) is int
            and 0 < ts <= MAX_SAFE_INTEGER
            and (type(payload) is dict or type(payload) is list)
            and (meta is None or type(meta) is dict)
        ):
            self._check_fields()
        # Strings are checked for lone surrogates by the final UTF-8 encoding (see canonical.py).
        exact = check_record_values(payload, meta, RecordValidationError)
        # Keys in JCS order already (the encoder sorts anyway); meta is omitted when None.
        if meta is None:
            doc: dict[str, Any] = {"id": rid, "payload": payload, "stream": stream, "timestamp": ts}
        else:
            doc = {"id": rid, "meta": meta, "payload": payload, "stream": stream, "timestamp": ts}
        try:
            canonical = encode_checked(doc, exact)
        except UnicodeEncodeError:
            # Raises naming the field; the id was checked already, the stream is ASCII.
            check_ijson(payload, field="payload", error=RecordValidationError)
            if meta is not None:
                check_ijson(meta, field="meta", error=RecordValidationError)
            raise RecordValidationError("contains a lone surrogate", field="record") from None
        _set_record_canonical(self, canonical)

    def _check_fields(self) -> None:
        """Check id, stream, timestamp, the payload's and meta's types, raising
        :class:`RecordValidationError` for the first that is wrong (a left-out field: every one missing)."""
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
    def from_canonical(cls, data: object, *, seq: int | None = None) -> Record:
        """Rebuild a record from stored canonical bytes, parsing them strictly (``docs/FORMAT.md``
        section 5): UTF-8 only (no byte order mark, no UTF-16/32), one JSON object with no
        duplicate keys and no NaN or infinities, a valid record (section 2), and bytes exactly
        equal to the record's own canonical form.

        Anything else raises :class:`IntegrityError` (with ``seq`` when given) whose ``reason``
        says what is wrong, for example ``stored as TEXT, not bytes`` when the column holds a string.
        """
        record, reason = parse_stored_record(data)
        if record is None:
            raise IntegrityError(f"entry {seq}: {reason}", seq=seq, reason=reason)
        return record


(
    _set_record_id, _set_record_stream, _set_record_timestamp, _set_record_payload, _set_record_meta,
    _set_record_canonical,
) = (Record.__dict__[name].__set__ for name in ("id", "stream", "timestamp", "payload", "meta", "_canonical"))
"""Fill the frozen record's slots (what ``object.__setattr__`` does, without its look-up)."""

_UTF8_BOM = b"\xef\xbb\xbf"

_SQL_KINDS = {str: "TEXT", int: "INTEGER", float: "REAL", type(None): "NULL"}


def stored_bytes(data: object) -> tuple[bytes | None, str]:
    """``data`` as bytes when it is bytes-like (bytes, bytearray, memoryview); else None and the
    reason, which names what the column holds instead (``stored as TEXT, not bytes``)."""
    if type(data) is bytes:
        return data, ""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data), ""
    kind = _SQL_KINDS.get(type(data)) or type(data).__name__
    return None, f"canonical bytes stored as {kind}, not bytes"


class _DuplicateKey(ValueError):
    pass


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = dict(pairs)
    if len(doc) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(f"duplicate key {json.dumps(key)} in an object")
            seen.add(key)
    return doc


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


_STRICT_DECODER = json.JSONDecoder(
    object_pairs_hook=_unique_object, parse_constant=_no_constant, parse_int=parse_int
)
"""Stateless: every number text is read as RFC 8785 reads it (see :func:`~nucleus_core.canonical.parse_int`)."""


def parse_stored_record(data: object) -> tuple[Record | None, str]:
    """Parse stored canonical bytes strictly: ``(record, "")``, or ``(None, reason)`` naming the
    first rule of ``docs/FORMAT.md`` section 5 they break. Never raises for any input."""
    raw, reason = stored_bytes(data)
    if raw is None:
        return None, reason
    if raw.startswith(_UTF8_BOM):
        return None, "stored bytes start with a UTF-8 byte order mark"
    try:
        text = raw.decode("utf-8")  # strict: no other encoding is guessed, no surrogates
    except UnicodeDecodeError as err:
        return None, f"stored bytes are not UTF-8 ({err.reason} at byte {err.start})"
    try:
        doc = _STRICT_DECODER.decode(text)
    except _DuplicateKey as err:
        return None, f"stored bytes are not a record: {err}"
    except (ValueError, RecursionError) as err:
        return None, f"stored bytes are not JSON ({err})"
    if type(doc) is not dict:
        return None, "stored bytes are not a record object"
    if "meta" in doc and doc["meta"] is None:
        return None, "stored record is invalid (meta: null; a record without meta has no meta key)"
    try:
        record = Record.from_dict(doc)
    except ValidationError as err:
        return None, f"stored record is invalid ({err})"
    canonical = record.canonical
    if canonical != raw:
        pairs = enumerate(zip(canonical, raw, strict=False))
        at = next((i for i, (a, b) in pairs if a != b), min(len(canonical), len(raw)))
        return None, f"stored bytes are not in canonical form (RFC 8785): they differ from it at byte {at}"
    object.__setattr__(record, "_canonical", raw)  # the same bytes; keep the stored object
    return record, ""


ENTRY_FIELDS = (
    "seq", "hash", "prev_hash", "record_id", "stream", "timestamp",
    "version", "appender", "auth_source", "committed_at", "canonical",
)
"""The stored fields of an :class:`Entry`, in order: the layout of an :data:`EntryRow`."""

EntryRow = tuple[int, str, str, str, str, int, int, "str | None", "str | None", "int | None", bytes]
"""An entry as storage reads and writes it: a plain tuple in :data:`ENTRY_FIELDS` order. It is the
storage's wire form only: :meth:`Entry.from_row` and :data:`entry_row` convert, nothing else."""


@attrs.frozen(kw_only=True)
class Entry:
    """An entry of the chain: its sequence number, hash, the previous entry's hash, the exact bytes
    that were hashed (``canonical``) and the columns derived from them for indexes (``record_id``,
    ``stream``, ``timestamp``; verification checks they equal the values inside ``canonical``).

    ``version`` is the entry format (``docs/FORMAT.md``): 2 for every entry this code writes, 1 for
    entries written before the appender was bound into the hash. A version-2 entry also holds, all
    inside its hash: ``appender``, the OID of the principal whose request appended it;
    ``auth_source``, how that principal was authenticated (the token parser's spec name, ``cli``,
    or ``system`` for what the ledger writes by itself); ``committed_at``, the time the ledger took
    it, in Unix milliseconds (the same for every entry of one write, never decreasing along the
    chain). The three are None for a version-1 entry.

    The one entry type, from append to storage and back. Build it with :meth:`chained` (the ledger,
    appending a record) or :meth:`from_row` (a storage backend, reading a row). :attr:`record` is
    parsed from ``canonical`` on first use (strictly, see :meth:`Record.from_canonical`), so reading
    rows for an index or an access check never parses a record. Hashes are lowercase hex
    BLAKE3-256 (see ``docs/FORMAT.md``). Equality compares the stored fields.
    """

    seq: int
    hash: str
    prev_hash: str
    record_id: str
    stream: str
    timestamp: int
    version: int = 1
    appender: str | None = None
    auth_source: str | None = None
    committed_at: int | None = None
    canonical: bytes = attrs.field(repr=False)
    _record: Record | None = attrs.field(default=None, init=False, eq=False, repr=False)

    @classmethod
    def chained(
        cls,
        *,
        seq: int,
        hash: str,
        prev_hash: str,
        record: Record,
        version: int = 1,
        appender: str | None = None,
        auth_source: str | None = None,
        committed_at: int | None = None,
    ) -> Entry:
        """The entry of ``record`` at ``seq`` after ``prev_hash``, whose hash the caller computed
        over ``record.canonical`` in format ``version`` (see :mod:`~nucleus_core.hashing`), with the
        appender fields of a version-2 entry."""
        return chained_entry(seq, hash, prev_hash, record, version, appender, auth_source, committed_at)

    @classmethod
    def from_row(cls, row: EntryRow | tuple[Any, ...] | list[Any]) -> Entry:
        """The entry of a stored row (:data:`ENTRY_FIELDS` order). ``canonical`` may come as any
        bytes-like object (drivers return memoryview for blobs); anything else (a TEXT value, after
        tampering) is kept as it is, so that reading :attr:`record` names it instead of failing here."""
        (
            seq, entry_hash, prev_hash, record_id, stream, timestamp,
            version, appender, auth_source, committed_at, canonical,
        ) = row
        # Filling the slots directly takes half the time of the frozen attrs __init__ (which sets
        # every field through object.__setattr__): this is the read path of every query.
        entry = _new(cls)
        _set_seq(entry, seq)
        _set_hash(entry, entry_hash)
        _set_prev(entry, prev_hash)
        _set_id(entry, record_id)
        _set_stream(entry, stream)
        _set_ts(entry, timestamp)
        _set_version(entry, version)
        _set_appender(entry, appender)
        _set_source(entry, auth_source)
        _set_committed(entry, committed_at)
        _set_canonical(
            entry,
            canonical if type(canonical) is bytes or not isinstance(canonical, (bytearray, memoryview))
            else bytes(canonical),
        )
        _set_record(entry, None)
        return entry

    @property
    def record(self) -> Record:
        """The record, parsed from ``canonical`` on first use; :class:`IntegrityError` when the stored
        bytes are not a canonical record."""
        record = self._record
        if record is None:
            record = Record.from_canonical(self.canonical, seq=self.seq)
            _set_record(self, record)
        return record

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: seq, hash, prev_hash, the format version, the appender fields (null for
        a version-1 entry) and the record."""
        return {
            "seq": self.seq,
            "hash": self.hash,
            "prev_hash": self.prev_hash,
            "version": self.version,
            "appender": self.appender,
            "auth_source": self.auth_source,
            "committed_at": self.committed_at,
            "record": self.record.to_dict(),
        }


def _slot_setters() -> tuple[Callable[[Entry, Any], None], ...]:
    slots = [Entry.__dict__[name] for name in (*ENTRY_FIELDS, "_record")]
    return tuple(slot.__set__ for slot in slots)


_new = object.__new__
(
    _set_seq, _set_hash, _set_prev, _set_id, _set_stream, _set_ts,
    _set_version, _set_appender, _set_source, _set_committed, _set_canonical, _set_record,
) = _slot_setters()


def chained_entry(
    seq: int,
    entry_hash: str,
    prev_hash: str,
    record: Record,
    version: int,
    appender: str | None,
    auth_source: str | None,
    committed_at: int | None,
) -> Entry:
    """:meth:`Entry.chained` by position: the ledger's chaining loop calls it once per appended
    record (keyword arguments cost a third of the call)."""
    entry = _new(Entry)
    _set_seq(entry, seq)
    _set_hash(entry, entry_hash)
    _set_prev(entry, prev_hash)
    _set_id(entry, record.id)
    _set_stream(entry, record.stream)
    _set_ts(entry, record.timestamp)
    _set_version(entry, version)
    _set_appender(entry, appender)
    _set_source(entry, auth_source)
    _set_committed(entry, committed_at)
    _set_canonical(entry, record.canonical)
    _set_record(entry, record)
    return entry


def appender_problem(committed_at: object, appender: object, auth_source: object) -> str | None:
    """Why the appender columns of a version-2 entry are malformed (None when they are well formed):
    ``appender`` an OID, ``auth_source`` a spec name, ``committed_at`` an integer from 1 to 2**53-1."""
    if type(appender) is not str or OID_PATTERN.fullmatch(appender) is None:
        return "appender column is not an OID"
    if type(auth_source) is not str or SPEC_NAME_PATTERN.fullmatch(auth_source) is None:
        return "auth_source column is not a parser name (1-64 of a-z, 0-9, '_', '.', '-', starting with a letter)"
    if type(committed_at) is not int or not 0 < committed_at <= MAX_SAFE_INTEGER:
        return "committed_at column is not an integer from 1 to 2**53-1 (Unix milliseconds)"
    return None


def entry_columns_problem(entry: Entry) -> str | None:
    """Why the format columns of a stored entry are malformed (None when they are well formed): an
    unknown version, version-2 appender columns that :func:`appender_problem` refuses, or appender
    columns on a version-1 entry."""
    version = entry.version
    if version == 2 and type(version) is int:
        return appender_problem(entry.committed_at, entry.appender, entry.auth_source)
    if version == 1 and type(version) is int:
        if entry.appender is None and entry.auth_source is None and entry.committed_at is None:
            return None
        return "a version-1 entry holds appender columns (they are part of version-2 entries only)"
    return f"unknown entry format version {version!r} (this code knows versions 1 and 2)"


def parsed_entry(entry: Entry) -> Entry:
    """``entry`` with its record parsed and its format columns checked: what every read of the
    ledger hands out, so that stored bytes that are not a canonical record, or appender columns
    verification would refuse, raise :class:`IntegrityError` at the read, not later."""
    entry.record  # noqa: B018 (parses and keeps the record)
    why = entry_columns_problem(entry)
    if why is not None:
        raise IntegrityError(f"entry {entry.seq}: {why}", seq=entry.seq, reason=why)
    return entry


entry_row: Callable[[Entry], EntryRow] = operator.attrgetter(*ENTRY_FIELDS)
"""The :data:`EntryRow` of an entry (the inverse of :meth:`Entry.from_row`)."""


def loads_strict(data: bytes | str, *, what: str = "the JSON") -> Any:
    """Parse JSON strictly, as stored records are read: UTF-8 without a byte order mark, no
    duplicate keys, no NaN or infinities, numbers as RFC 8785 reads them. Raises
    :class:`ValidationError` naming ``what``."""
    if isinstance(data, bytes):
        if data.startswith(_UTF8_BOM):
            raise ValidationError(f"{what} starts with a UTF-8 byte order mark")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValidationError(f"{what} is not UTF-8 ({err.reason} at byte {err.start})") from None
    try:
        return _STRICT_DECODER.decode(data)
    except (ValueError, RecursionError) as err:
        raise ValidationError(f"{what} is not JSON ({err})") from None


_ENTRY_JSON_KEYS = frozenset(
    {"seq", "hash", "prev_hash", "version", "appender", "auth_source", "committed_at", "record"}
)


def entry_row_from_dict(doc: object, *, what: str = "the entry") -> EntryRow:
    """The :data:`EntryRow` of an entry in its JSON form (:meth:`Entry.to_dict`, an entry of the HTTP
    API), its canonical bytes re-encoded (RFC 8785) from the record object. Only the shape is
    checked here (:class:`ValidationError` naming ``what``); the hash, the link, the record and the
    appender fields are :func:`~nucleus_core.verify.verify_rows`'s to check, as for stored rows."""
    if not isinstance(doc, dict) or set(doc) != _ENTRY_JSON_KEYS:
        raise ValidationError(f"{what} is not an entry: a JSON object of exactly {', '.join(sorted(_ENTRY_JSON_KEYS))}")
    seq, entry_hash, prev_hash, record = doc["seq"], doc["hash"], doc["prev_hash"], doc["record"]
    if type(seq) is not int or seq < 1:
        raise ValidationError(f"{what}: seq is not a positive integer")
    if not is_hash(entry_hash) or not is_hash(prev_hash):
        raise ValidationError(f"{what} (seq {seq}): hash and prev_hash are 64 lowercase hex characters")
    if not isinstance(record, dict):
        raise ValidationError(f"{what} (seq {seq}): record is not a JSON object")
    canonical = canonical_json(record, field=f"{what} (seq {seq}): record")
    return (
        seq, entry_hash, prev_hash, record.get("id"), record.get("stream"), record.get("timestamp"),
        doc["version"], doc["appender"], doc["auth_source"], doc["committed_at"], canonical,
    )  # type: ignore[return-value]  # the other fields' types are verify_rows's to check
