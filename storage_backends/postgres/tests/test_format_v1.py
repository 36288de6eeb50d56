"""A PostgreSQL ledger from before entry format version 2 (the old entries table, version-1 entries,
built here as the previous release wrote it) opens read-only unchanged, gets the appender columns on
its first writable open, verifies, and continues with version-2 entries."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
from nucleus_storage_postgres import PostgresStorage

from nucleus_core import IntegrityError, create_ledger, open_ledger
from nucleus_core.testing import make_context, make_record
from nucleus_core.verify import verify_rows

pytestmark = pytest.mark.postgres

CTX = make_context()
LEDGER = "old-pg"
V2_COLUMNS = ("version", "appender", "auth_source", "committed_at")


def columns(conn: psycopg.Connection, schema: str) -> list[str]:
    rows = conn.execute(
        "select column_name from information_schema.columns where table_schema = %s "
        "and table_name = 'nucleus_entries' order by ordinal_position",
        (schema,),
    ).fetchall()
    return [name for (name,) in rows]


def build_old_ledger(make_storage: Callable[..., PostgresStorage], conn: psycopg.Connection, schema: str) -> None:
    """Version-1 entries in the entries table of the previous release (without the four columns)."""
    with create_ledger(id=LEDGER, storage=make_storage()) as ledger:
        ledger._format_version = 1
        ledger.append_batch([make_record(i) for i in range(20)], CTX)
    conn.execute(
        f'ALTER TABLE "{schema}".nucleus_entries ' + ", ".join(f"DROP COLUMN {c}" for c in V2_COLUMNS)
    )
    assert columns(conn, schema)[-1] == "canonical"


def test_old_ledger_opens_verifies_and_continues_with_version_2(
    make_storage: Callable[..., PostgresStorage], pg_admin: psycopg.Connection, pg_schema: str
) -> None:
    build_old_ledger(make_storage, pg_admin, pg_schema)
    # A read-only open of the storage (what a parallel-verification worker does) changes nothing;
    # the rows read as version 1.
    backend = make_storage()
    backend.open(LEDGER, read_only=True, create=False)
    assert verify_rows(LEDGER, backend.iter_entry_rows(), expected_count=20).ok
    entry = backend.get_by_id(make_record(3).id)
    assert entry is not None and (entry.version, entry.appender, entry.committed_at) == (1, None, None)
    assert entry.to_dict()["appender"] is None
    backend.close()
    assert columns(pg_admin, pg_schema)[-1] == "canonical"
    # Writable: the columns are added in place, the old chain verifies, new entries are version 2.
    with open_ledger(id=LEDGER, storage=make_storage()) as ledger:
        assert columns(pg_admin, pg_schema)[-4:] == list(V2_COLUMNS)
        new = ledger.append_batch([make_record(i) for i in range(20, 25)], CTX)
        assert {(e.version, e.appender, e.auth_source) for e in new} == {(2, CTX.oid, CTX.source)}
        assert ledger.verify().ok and ledger.length() == 25
    with open_ledger(id=LEDGER, storage=make_storage()) as again:  # opening verifies
        assert again.get_by_id(make_record(22).id, CTX).appender == CTX.oid  # type: ignore[union-attr]
        assert again.get_by_id(make_record(2).id, CTX).version == 1  # type: ignore[union-attr]
    # The rule along the chain: a version-1 entry after version-2 ones fails at its seq.
    pg_admin.execute(f'UPDATE "{pg_schema}".nucleus_entries SET version = 1 WHERE seq = 23')
    with pytest.raises(IntegrityError) as info:
        open_ledger(id=LEDGER, storage=make_storage())
    assert info.value.seq == 23 and "version-1 entry after a version-2 entry" in str(info.value)


def test_adding_the_columns_is_idempotent(
    make_storage: Callable[..., PostgresStorage], pg_admin: psycopg.Connection, pg_schema: str
) -> None:
    build_old_ledger(make_storage, pg_admin, pg_schema)
    for _ in range(2):
        open_ledger(id=LEDGER, storage=make_storage()).close()
    assert columns(pg_admin, pg_schema).count("appender") == 1
    defaults = pg_admin.execute(f'SELECT DISTINCT version FROM "{pg_schema}".nucleus_entries').fetchall()
    assert defaults == [(1,)]
