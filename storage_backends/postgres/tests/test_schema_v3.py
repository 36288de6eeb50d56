"""Schema version 3 on PostgreSQL: a database of the previous schema (version 2, the unique index on
(ledger_id, hash)) is migrated on its next writable open to the index on the hash's first 16 hex
digits, and every guarantee holds after it: look-up by hash, duplicate ids refused, tampering found."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
from nucleus_storage_postgres import PostgresStorage
from psycopg import sql

from nucleus_core import DuplicateRecordError, IntegrityError, create_ledger
from nucleus_core.testing import make_context, make_record

pytestmark = pytest.mark.postgres

CTX = make_context()


def entry_indexes(pg_admin: psycopg.Connection, schema: str) -> dict[str, str]:
    rows = pg_admin.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = 'nucleus_entries'",
        (schema,),
    ).fetchall()
    return dict(rows)


def downgrade_to_version_2(pg_admin: psycopg.Connection, schema: str) -> None:
    """The previous release's schema (version 2): the unique index on (ledger_id, hash), no prefix index."""
    s = sql.Identifier(schema)
    pg_admin.execute(sql.SQL("DROP INDEX {}.nucleus_entries_ledger_hash_prefix").format(s))
    pg_admin.execute(
        sql.SQL("CREATE UNIQUE INDEX nucleus_entries_ledger_hash ON {}.nucleus_entries (ledger_id, hash)").format(s)
    )
    pg_admin.execute(
        sql.SQL("UPDATE {}.nucleus_schema_version SET version = 2 WHERE component = 'entries'").format(s)
    )


def test_version_2_database_is_migrated_and_keeps_every_guarantee(
    pg_schema: str, pg_admin: psycopg.Connection, make_storage: Callable[..., PostgresStorage]
) -> None:
    with create_ledger(id="v2", storage=make_storage()) as ledger:
        written = ledger.append_batch([make_record(i) for i in range(20)], CTX)
        assert ledger.storage.schema_version == 3
    downgrade_to_version_2(pg_admin, pg_schema)
    assert "nucleus_entries_ledger_hash" in entry_indexes(pg_admin, pg_schema)
    old = make_storage()
    old.open("v2", read_only=True, create=False)  # reads version 2 as it is (through the unique index)
    try:
        assert old.schema_version == 2
        found = old.get_by_hash(written[3].hash)
        assert found is not None and found.seq == written[3].seq
    finally:
        old.close()
    with create_ledger(id="v2", storage=make_storage()) as ledger:  # migrates, then verifies
        assert ledger.storage.schema_version == 3
        for entry in written[::7]:
            found = ledger.get(entry.hash, CTX)
            assert found is not None and found.seq == entry.seq and found.record == entry.record
        assert ledger.get(written[5].hash[:16] + "0" * 48, CTX) is None  # same prefix, other hash
        with pytest.raises(DuplicateRecordError):
            ledger.append(make_record(4), CTX)
        assert ledger.append(make_record(99), CTX).seq == 21
    indexes = entry_indexes(pg_admin, pg_schema)
    assert "nucleus_entries_ledger_hash" not in indexes
    assert "substr" in indexes["nucleus_entries_ledger_hash_prefix"]
    with psycopg.connect(pg_admin.info.dsn, autocommit=True) as conn:  # the look-up uses the index
        conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(pg_schema)))
        conn.execute("SET enable_seqscan = off")
        storage = make_storage()
        storage.open("v2", create=False)
        try:
            query = storage._sql["by_hash"]
        finally:
            storage.close()
        h = written[5].hash
        plan = " ".join(r[0] for r in conn.execute("EXPLAIN " + query, ("v2", h[:16], h)).fetchall())
        assert "nucleus_entries_ledger_hash_prefix" in plan
    pg_admin.execute(
        sql.SQL("UPDATE {}.nucleus_entries SET hash = %s WHERE ledger_id = 'v2' AND seq = 9").format(
            sql.Identifier(pg_schema)
        ),
        ("ab" * 32,),
    )
    with pytest.raises(IntegrityError) as info:
        create_ledger(id="v2", storage=make_storage())
    assert info.value.seq == 9
