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
version     SMALLINT       the entry format version (1 or 2; NOT NULL DEFAULT 1)
appender    TEXT           version 2: the appending principal's OID (NULL for version 1)
auth_source VARCHAR(64)    version 2: the parser that authenticated it (NULL for version 1)
committed_at BIGINT        version 2: when the ledger took it, Unix ms (NULL for version 1)
=========== ============== ==================================================================

The last four (:data:`APPENDER_COLUMNS`) are added in place to a table that lacks them on its next
writable open (:func:`nucleus_storage_sql.schema.ensure_appender_columns`); a read-only open of such
a table reads them as ``1, NULL, NULL, NULL``.

Primary key (ledger_id, seq); unique (ledger_id, record_id); index (ledger_id, stream, seq);
index (ledger_id, timestamp) (schema version 2); index (ledger_id, substr(hash, 1, 16)) (schema
version 3, replacing the version-1 unique index on (ledger_id, hash)).
"""

from __future__ import annotations

from typing import Any

import attrs
import peewee

from nucleus_core.records import ENTRY_FIELDS, Entry, entry_row

ENTRIES_TABLE = "nucleus_entries"
"""Default name of the entries table."""

SCHEMA_TABLE = "nucleus_schema_version"
"""Default name of the schema-version table (one row per component)."""

ENTRY_COLUMNS = ENTRY_FIELDS
"""The columns of an :class:`~nucleus_core.records.Entry`, in the order every raw select uses."""

APPENDER_COLUMNS = ("version", "appender", "auth_source", "committed_at")
"""The columns entry format version 2 added, and what a table without them reads as."""

APPENDER_DEFAULTS = {"version": "1", "appender": "NULL", "auth_source": "NULL", "committed_at": "NULL"}


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
        # Entry format version 2 (APPENDER_COLUMNS): the same DDL creates them in a new table and
        # adds them to an old one (schema.ensure_appender_columns).
        version = peewee.SmallIntegerField(constraints=[peewee.SQL("DEFAULT 1")])
        appender = peewee.TextField(null=True)
        auth_source = peewee.CharField(max_length=64, null=True)
        committed_at = peewee.BigIntegerField(null=True)

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


def entry_to_row(ledger_id: str, entry: Entry) -> tuple[Any, ...]:
    """The insert parameters of ``entry``: ``ledger_id`` followed by :data:`ENTRY_COLUMNS` (rows
    read back in that order become entries with :meth:`Entry.from_row
    <nucleus_core.records.Entry.from_row>`)."""
    return (ledger_id, *entry_row(entry))
