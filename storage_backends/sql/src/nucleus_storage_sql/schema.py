"""Schema versions and the migration runner (``playhouse.migrate``).

A database records its schema version in the schema-version table (component ``entries``). A new
database is created by running every migration from version 1, so a new database and a migrated
old one go through the same steps and end up identical. The runner must be called inside a
transaction that excludes other writers (the backend's schema transaction), so two processes
opening one new database at the same time cannot both create or migrate it.

Versions:

1. the entries table with its primary key (ledger_id, seq) and indexes by hash, by record id
   and by (stream, seq); the schema-version table.
2. an index on (ledger_id, timestamp), for time-range queries.
3. the unique index on (ledger_id, hash) replaced by an index on (ledger_id, the first 16 hex
   digits of hash) (:data:`HASH_PREFIX_LENGTH`): a look-up by hash reads the few rows of that
   prefix and compares the whole hash, and each insert writes a 16-character key, not a
   64-character one (``append_batch`` of 1000 records 10-15% faster on SQLite, see BENCHMARKS.md).
   Hashes were never unique by the index's doing: they cover the seq, and verification recomputes
   every one.

Beside the versions, :func:`ensure_appender_columns` adds the columns of entry format version 2
(:data:`~nucleus_storage_sql.models.APPENDER_COLUMNS`) to an entries table without them, on every
writable open: idempotent, by the columns the table has, so that it does not depend on (or
collide with) the numbered versions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import peewee
from playhouse.migrate import SchemaMigrator, migrate  # type: ignore[import-untyped]

from nucleus_core.errors import ConfigurationError

from .models import APPENDER_COLUMNS, EntryModels

SCHEMA_COMPONENT = "entries"
"""The key of the entries schema in the schema-version table."""


@attrs.frozen(kw_only=True)
class Migration:
    """One schema step: ``apply(models, migrator)`` brings a database at ``version - 1`` to ``version``."""

    version: int
    description: str
    apply: Callable[[EntryModels, SchemaMigrator], None]


def _create_v1(models: EntryModels, _migrator: SchemaMigrator) -> None:
    database = models.entries._meta.database
    database.create_tables([models.schema_version, models.entries], safe=True)


def _add_timestamp_index(models: EntryModels, migrator: SchemaMigrator) -> None:
    table = models.entries._meta.table_name
    migrate(migrator.add_index(table, ("ledger_id", "timestamp"), False, name=f"{table}_ledger_timestamp"))


HASH_PREFIX_LENGTH = 16
"""Hex digits of an entry hash the hash index keys on (schema version 3): 64 bits."""


def hash_prefix_sql(quote: Callable[[str], str]) -> str:
    """The indexed expression of schema version 3, as the look-up by hash must write it for the
    planner to use the index (SQLite matches the expression as written; PostgreSQL as parsed)."""
    return f"substr({quote('hash')}, 1, {HASH_PREFIX_LENGTH})"


def _hash_prefix_index(models: EntryModels, _migrator: SchemaMigrator) -> None:
    database = models.entries._meta.database
    table = models.entries._meta.table_name

    def quote(name: str) -> str:
        return f"{database.quote[0]}{name}{database.quote[1]}"

    # Identifiers: the checked table name (SqlStorageBackend) and fixed names.
    database.execute_sql(
        f"CREATE INDEX {quote(table + '_ledger_hash_prefix')} ON {quote(table)} "
        f"({quote('ledger_id')}, {hash_prefix_sql(quote)})"
    )
    database.execute_sql(f"DROP INDEX {quote(table + '_ledger_hash')}")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(version=1, description="entries table, lookups by hash, record id and stream", apply=_create_v1),
    Migration(
        version=2, description="index on (ledger_id, timestamp) for time-range queries", apply=_add_timestamp_index
    ),
    Migration(
        version=3,
        description="the hash index keyed on the hash's first 16 hex digits instead of unique on all 64",
        apply=_hash_prefix_index,
    ),
)

CURRENT_VERSION = MIGRATIONS[-1].version
"""The schema version this code writes."""

READABLE_VERSIONS = frozenset({2, CURRENT_VERSION})
"""The schema versions a read-only open reads as they are (it cannot migrate): versions 2 and 3
differ only in the hash index, and the look-up by hash (:func:`hash_prefix_sql` and the whole hash)
is answered through either index."""


def read_version(models: EntryModels) -> int:
    """The schema version stored in the database (0 for an empty database)."""
    database = models.entries._meta.database
    version_table = models.schema_version._meta.table_name
    entries_table = models.entries._meta.table_name
    if not database.table_exists(version_table):
        if database.table_exists(entries_table):
            raise ConfigurationError(
                f"the database has a table {entries_table!r} but no {version_table!r}: it was not written by Nucleus"
            )
        return 0
    sv: Any = models.schema_version
    row = sv.get_or_none(sv.component == SCHEMA_COMPONENT)
    return 0 if row is None else int(row.version)


def upgrade(models: EntryModels, *, target: int = CURRENT_VERSION) -> int:
    """Bring the database to schema ``target`` (default: current) and return the version it was at.

    Refuses a database whose version is newer than this code knows. Call it inside an exclusive
    transaction; every step and the version update then commit together.
    """
    if not 1 <= target <= CURRENT_VERSION:
        raise ConfigurationError(f"schema version must be 1..{CURRENT_VERSION}, got {target}")
    found = read_version(models)
    if found > CURRENT_VERSION:
        raise ConfigurationError(
            f"the database has schema version {found}, newer than this nucleus-storage-sql supports "
            f"({CURRENT_VERSION}); upgrade the Nucleus packages"
        )
    if found >= target:
        return found
    database = models.entries._meta.database
    migrator = SchemaMigrator.from_database(database)
    for step in MIGRATIONS:
        if found < step.version <= target:
            step.apply(models, migrator)
    sv: Any = models.schema_version
    (
        sv.insert(component=SCHEMA_COMPONENT, version=target)
        .on_conflict(conflict_target=[sv.component], preserve=[sv.version])
        .execute()
    )
    return found


def entry_table_columns(models: EntryModels) -> frozenset[str]:
    """The names of the columns the entries table has (by the database's own answer)."""
    database = models.entries._meta.database
    table = models.entries._meta.table_name
    quote = database.quote
    cursor = database.execute_sql(f"SELECT * FROM {quote[0]}{table}{quote[1]} WHERE 1 = 0")  # noqa: S608
    return frozenset(column[0] for column in cursor.description)


def ensure_appender_columns(models: EntryModels) -> frozenset[str]:
    """Add the entry format version 2 columns the entries table lacks (``ALTER TABLE ... ADD
    COLUMN``, with the DDL that creates them in a new table; rows stored before read as version 1
    with NULL appender columns). Call it inside the schema transaction; returns the columns the
    table has afterwards."""
    present = entry_table_columns(models)
    missing = [name for name in APPENDER_COLUMNS if name not in present]
    if missing:
        database = models.entries._meta.database
        migrator = SchemaMigrator.from_database(database)
        table = models.entries._meta.table_name
        fields = models.entries._meta.fields
        migrate(*(migrator.alter_add_column(table, name, fields[name], allow_not_null=True) for name in missing))
    return present | frozenset(missing)


def schema_indexes(database: peewee.Database, table: str) -> set[tuple[str, ...]]:
    """The column tuples of every index on ``table`` (for tests and diagnostics)."""
    return {tuple(ix.columns) for ix in database.get_indexes(table)}
