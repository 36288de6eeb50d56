"""Many ledgers in one database, the plugin entry point, options, and plugins' own tables."""

from __future__ import annotations

from collections.abc import Callable

import peewee
import psycopg
import pytest
from nucleus_storage_postgres import PostgresStorage, postgres_storage

from nucleus_core import ConfigurationError, IntegrityError, ReadOnlyLedgerError, Record, create_ledger
from nucleus_core.storage import StorageQuery
from nucleus_core.testing import make_context, make_record

pytestmark = pytest.mark.postgres


def test_many_ledgers_are_isolated(
    pg_dsn: str, pg_schema: str, pg_admin: psycopg.Connection, make_storage: Callable[..., PostgresStorage]
) -> None:
    ctx = make_context()
    names = ["alpha", "beta", "gamma"]
    ledgers = {n: create_ledger(id=n, storage=make_storage()) for n in names}
    try:
        for i in range(40):
            for n, ledger in ledgers.items():
                # The same record ids in every ledger: ids are scoped per ledger.
                ledger.append(make_record(i, stream=n), ctx)
        for n, ledger in ledgers.items():
            assert ledger.length() == 40 and ledger.verify().ok
            rows = ledger.storage.query(StorageQuery(limit=1000))
            assert {r.stream for r in rows} == {n}
            assert ledger.get_by_id(make_record(3).id, ctx).record.stream == n  # type: ignore[union-attr]
        hashes = {n: ledgers[n].latest_hash() for n in names}
        assert len(set(hashes.values())) == 3  # the ledger id is part of every hash
    finally:
        for ledger in ledgers.values():
            ledger.close()
    pg_admin.execute(
        f"UPDATE {pg_schema}.nucleus_entries SET stream = 'x' WHERE ledger_id = 'beta' AND seq = 7"
    )
    with pytest.raises(IntegrityError) as info:
        create_ledger(id="beta", storage=make_storage())
    assert info.value.seq == 7
    for n in ("alpha", "gamma"):
        with create_ledger(id=n, storage=make_storage()) as ledger:
            assert ledger.length() == 40
            ledger.append(make_record(100, stream=n), ctx)
            assert ledger.verify().ok
    registered = pg_admin.execute(f"SELECT ledger_id FROM {pg_schema}.nucleus_ledgers ORDER BY 1").fetchall()
    assert [r[0] for r in registered] == names


def test_entry_point_handles_both_url_schemes(pg_dsn: str, pg_schema: str) -> None:
    params = psycopg.conninfo.conninfo_to_dict(pg_dsn)
    for scheme in ("postgresql", "postgres"):
        url = f"{scheme}://{params['user']}@{params['host']}:{params.get('port', 5432)}/{params['dbname']}"
        with create_ledger(id=f"via-{scheme}", storage=url, storage_options={"schema": pg_schema}) as ledger:
            assert type(ledger.storage) is PostgresStorage
            # The distribution declares an entry point per scheme; the URL loads the one named after it.
            assert ledger.plugin_manager.get_plugin(scheme) is not None
            assert ledger.storage.url.startswith("postgresql://")
            assert ledger.append(make_record(1), make_context()).seq == 1


def test_bad_options_are_refused_naming_the_field(pg_dsn: str) -> None:
    with pytest.raises(ConfigurationError, match="storage_options: unknown PostgreSQL option"):
        create_ledger(id="x", storage="postgresql://u@127.0.0.1/db", storage_options={"pool": 3})
    for kwargs, field in (
        ({"schema": "Bad-Name"}, "schema"),
        ({"schema": "x; DROP TABLE y"}, "schema"),
        ({"pool_size": 0}, "pool_size"),
        ({"connect_timeout": "5"}, "connect_timeout"),
        ({"pool_timeout": -1}, "pool_timeout"),
    ):
        with pytest.raises(ConfigurationError, match=field):
            postgres_storage(pg_dsn, **kwargs)
    with pytest.raises(ConfigurationError, match="dsn"):
        postgres_storage("host=127.0.0.1 nonsense")


def test_url_never_shows_the_password() -> None:
    storage = postgres_storage("postgresql://alice:s3cret-pw@db.example:6543/ledgers?sslmode=require", schema="app")
    assert storage.url == "postgresql://alice@db.example:6543/ledgers?schema=app"
    assert "s3cret" not in repr(storage.url)


def test_plugin_tables_share_the_write_transaction(make_storage: Callable[..., PostgresStorage]) -> None:
    ctx = make_context()
    with create_ledger(id="plugins", storage=make_storage()) as ledger:
        storage = ledger.storage
        assert isinstance(storage, PostgresStorage)

        class Grant(peewee.Model):
            principal = peewee.TextField()

            class Meta:
                table_name = "test_grants"

        storage.ensure_tables([Grant])

        def add_then_fail(_tx: object) -> None:
            Grant.create(principal="oid:test:user:bob")
            raise RuntimeError("plugin failed after writing")

        with pytest.raises(RuntimeError):
            ledger.append_system(
                [Record(id="g1", stream="_grants", timestamp=1, payload={})], ctx, within=add_then_fail
            )
        with storage.connection():
            assert Grant.select().count() == 0
        assert ledger.length() == 0

        def add(_tx: object) -> None:
            Grant.create(principal="oid:test:user:carol")

        ledger.append_system([Record(id="g2", stream="_grants", timestamp=1, payload={})], ctx, within=add)
        with storage.connection():
            assert [g.principal for g in Grant.select()] == ["oid:test:user:carol"]
        assert ledger.length() == 1 and ledger.verify().ok


def test_read_only_server_opens_read_only(
    pg_dsn: str, make_storage: Callable[..., PostgresStorage], pg_schema: str
) -> None:
    """A hot standby (read replica) refuses writes; a read-only session stands in for one here."""
    ctx = make_context()
    with create_ledger(id="replica", storage=make_storage()) as primary:
        entries = primary.append_batch([make_record(i) for i in range(10)], ctx)
    read_only_dsn = f"{pg_dsn} options='-c default_transaction_read_only=on'"
    with create_ledger(id="replica", storage=postgres_storage(read_only_dsn, schema=pg_schema)) as replica:
        assert replica.storage.read_only  # type: ignore[attr-defined]
        assert replica.length() == 10 and replica.verify().ok
        assert replica.get_by_id(entries[4].record.id, ctx) == entries[4]
        assert len(replica.query({"limit": 5}, ctx)) == 5
        assert replica.read_only
        with pytest.raises(ReadOnlyLedgerError, match=r"session is read-only \(default_transaction_read_only"):
            replica.append(make_record(99), ctx)
