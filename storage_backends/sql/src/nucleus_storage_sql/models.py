"""Peewee models of the entries table and the schema-version table, created per database.

Binding is class-level state in peewee, so the model classes are built by a factory for each
backend instance (:func:`make_models`) and bound to that instance's database only. Two ledgers on
two different databases in one process therefore never share a model class.

The entries table (version 1 as created from :class:`EntryModels.entries`, later versions by the
migrations in :mod:`nucleus_storage_sql.schema`):

=========== ============== ==================================================================
column      type           meaning
=========== ============== ==================================================================
ledger_id   VARCHAR(128)   the ledger the row belongs to (many ledgers may share one database)
seq         BIGINT         sequence number, 1, 2, 3, ... per ledger: the only order there is
hash        VARCHAR(64)    the entry hash, lowercase hex
prev_hash   VARCHAR(64)    the previous entry's hash (64 zeros for seq 1)
record_id   TEXT           derived from ``canonical``, for lookups (unique per ledger)
stream      VARCHAR(64)    derived from ``canonical``, for stream queries
timestamp   BIGINT         derived from ``canonical`` (Unix ms; data, never order)
canonical   BLOB / bytea   the record's canonical bytes, verbatim
=========== ============== ==================================================================

Primary key (ledger_id, seq); unique (ledger_id, hash); unique (ledger_id, record_id);
index (ledger_id, stream, seq); index (ledger_id, timestamp) (schema version 2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import peewee

from nucleus_core.storage import StoredEntry

ENTRIES_TABLE = "nucleus_entries"
"""Default name of the entries table."""

SCHEMA_TABLE = "nucleus_schema_version"
"""Default name of the schema-version table (one row per component)."""

ENTRY_COLUMNS = ("seq", "hash", "prev_hash", "record_id", "stream", "timestamp", "canonical")
"""The columns of a :class:`~nucleus_core.storage.StoredEntry`, in the order every raw select uses."""


@attrs.frozen
class EntryModels:
    """The model classes of one backend instance, bound to its database."""

    entries: type[peewee.Model]
    schema_version: type[peewee.Model]


def make_models(
    database: peewee.Database, *, entries_table: str = ENTRIES_TABLE, schema_table: str = SCHEMA_TABLE
) -> EntryModels:
    """Build fresh model classes bound to ``database`` (and only to it)."""

    class Entry(peewee.Model):
        ledger_id = peewee.CharField(max_length=128)
        seq = peewee.BigIntegerField()
        hash = peewee.CharField(max_length=64)
        prev_hash = peewee.CharField(max_length=64)
        record_id = peewee.TextField()
        stream = peewee.CharField(max_length=64)
        timestamp = peewee.BigIntegerField()
        canonical = peewee.BlobField()

        class Meta:
            table_name = entries_table
            primary_key = peewee.CompositeKey("ledger_id", "seq")

    # Version-1 indexes, named after the table. Later indexes are added by migrations (see
    # schema.py), so a new database and a migrated old one end up identical.
    Entry.add_index(Entry.index(Entry.ledger_id, Entry.hash, unique=True, name=f"{entries_table}_ledger_hash"))
    Entry.add_index(
        Entry.index(Entry.ledger_id, Entry.record_id, unique=True, name=f"{entries_table}_ledger_record_id")
    )
    Entry.add_index(Entry.index(Entry.ledger_id, Entry.stream, Entry.seq, name=f"{entries_table}_ledger_stream_seq"))

    class SchemaVersion(peewee.Model):
        component = peewee.CharField(max_length=64, primary_key=True)
        version = peewee.IntegerField()

        class Meta:
            table_name = schema_table

    database.bind([Entry, SchemaVersion], bind_refs=False, bind_backrefs=False)
    return EntryModels(entries=Entry, schema_version=SchemaVersion)


def _slot_setters() -> tuple[Callable[[Any, Any], None], ...] | None:
    """The slot setters of :class:`StoredEntry`, when it is a plain slotted attrs class whose fields
    are exactly :data:`ENTRY_COLUMNS` with no validator or converter (else None)."""
    fields = attrs.fields(StoredEntry)
    if tuple(f.name for f in fields) != ENTRY_COLUMNS or any(f.validator or f.converter for f in fields):
        return None
    slots = [StoredEntry.__dict__.get(name) for name in ENTRY_COLUMNS]
    if not all(hasattr(slot, "__set__") for slot in slots):
        return None
    return tuple(slot.__set__ for slot in slots)  # type: ignore[union-attr]


def _as_bytes(value: Any) -> Any:
    """Blobs as bytes (drivers may return memoryview or bytearray); anything else (a TEXT value, say,
    after tampering) unchanged, so that reading the entry names it instead of failing here."""
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return value


def _make_row_to_entry() -> Callable[[tuple[Any, ...] | list[Any]], StoredEntry]:
    setters = _slot_setters()

    def via_init(row: tuple[Any, ...] | list[Any]) -> StoredEntry:
        seq, entry_hash, prev_hash, record_id, stream, timestamp, canonical = row
        return StoredEntry(
            seq=seq,
            hash=entry_hash,
            prev_hash=prev_hash,
            record_id=record_id,
            stream=stream,
            timestamp=timestamp,
            canonical=canonical if type(canonical) is bytes else _as_bytes(canonical),
        )

    if setters is None:
        return via_init
    s_seq, s_hash, s_prev, s_id, s_stream, s_ts, s_canonical = setters
    new = object.__new__

    def via_slots(row: tuple[Any, ...] | list[Any]) -> StoredEntry:
        # The hot path of verification: filling the slots directly takes half the time of the
        # attrs __init__ (frozen classes set every field through object.__setattr__). Used only
        # when StoredEntry has no validators or converters, so the result is the same object.
        seq, entry_hash, prev_hash, record_id, stream, timestamp, canonical = row
        entry = new(StoredEntry)
        s_seq(entry, seq)
        s_hash(entry, entry_hash)
        s_prev(entry, prev_hash)
        s_id(entry, record_id)
        s_stream(entry, stream)
        s_ts(entry, timestamp)
        s_canonical(entry, canonical if type(canonical) is bytes else _as_bytes(canonical))
        return entry

    return via_slots


row_to_entry = _make_row_to_entry()
"""A stored entry from a row of :data:`ENTRY_COLUMNS` (drivers may return memoryview for blobs)."""


def entry_to_row(ledger_id: str, entry: StoredEntry) -> tuple[Any, ...]:
    """The insert parameters of ``entry``: ``ledger_id`` followed by :data:`ENTRY_COLUMNS`."""
    return (
        ledger_id,
        entry.seq,
        entry.hash,
        entry.prev_hash,
        entry.record_id,
        entry.stream,
        entry.timestamp,
        entry.canonical,
    )
