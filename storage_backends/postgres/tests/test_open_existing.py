"""Reading never creates: opening an existing ledger in PostgreSQL creates no table, schema or ledger
row, lists the ledgers the database holds when the named one is missing, and a ledger that fails to
open leaves behind nothing its open created."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from nucleus_storage_postgres import PostgresStorage

from nucleus_core import (
    ConfigurationError,
    LedgerNotFoundError,
    Module,
    ModuleError,
    ModuleSpec,
    create_ledger,
    hookimpl,
    open_ledger,
)
from nucleus_core.cli import EXIT_NOT_FOUND, make_cli
from nucleus_core.testing import make_context, make_record

pytestmark = pytest.mark.postgres


def schema_tables(pg_admin: psycopg.Connection, schema: str) -> list[str]:
    rows = pg_admin.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1", (schema,)
    ).fetchall()
    return [r[0] for r in rows]


def test_open_ledger_on_an_empty_database_creates_nothing(
    pg_schema: str, pg_admin: psycopg.Connection, make_storage: Callable[..., PostgresStorage]
) -> None:
    with pytest.raises(LedgerNotFoundError, match="it holds no ledger"):
        open_ledger(id="main", storage=make_storage())
    assert schema_tables(pg_admin, pg_schema) == []


def test_a_missing_ledger_lists_the_ledgers_held_and_writes_nothing(
    pg_schema: str, pg_admin: psycopg.Connection, make_storage: Callable[..., PostgresStorage]
) -> None:
    for ledger_id in ("main", "books"):
        with create_ledger(id=ledger_id, storage=make_storage()) as ledger:
            ledger.append(make_record(1), make_context())
    with pytest.raises(LedgerNotFoundError) as missing:
        open_ledger(id="default", storage=make_storage())
    assert missing.value.ledger_ids == ("books", "main")
    rows = pg_admin.execute(f"SELECT ledger_id FROM {pg_schema}.nucleus_ledgers ORDER BY 1").fetchall()
    assert [r[0] for r in rows] == ["books", "main"]
    with open_ledger(id="main", storage=make_storage()) as ledger:
        assert ledger.length() == 1


def test_cli_read_commands_refuse_a_missing_ledger(pg_dsn: str, pg_schema: str, pg_admin: psycopg.Connection) -> None:
    params = psycopg.conninfo.conninfo_to_dict(pg_dsn)
    url = f"postgresql://{params['user']}@{params['host']}:{params.get('port', 5432)}/{params['dbname']}"
    env = {"NUCLEUS_LEDGER": url}
    create_ledger(id="main", storage=url, storage_options={"schema": pg_schema}).close()
    # The CLI reaches the schema through the search_path of the DSN's options.
    pg_admin.execute(f"ALTER ROLE {params['user']} IN DATABASE {params['dbname']} SET search_path = {pg_schema}")
    try:
        result = CliRunner().invoke(make_cli(), ["verify"], env=env, catch_exceptions=False)
    finally:
        pg_admin.execute(f"ALTER ROLE {params['user']} IN DATABASE {params['dbname']} RESET search_path")
    assert result.exit_code == EXIT_NOT_FOUND, result.output
    assert "no ledger 'default'" in result.stderr and "'main'" in result.stderr
    rows = pg_admin.execute(f"SELECT ledger_id FROM {pg_schema}.nucleus_ledgers").fetchall()
    assert [r[0] for r in rows] == ["main"]


def schema_exists(pg_admin: psycopg.Connection, schema: str) -> bool:
    return pg_admin.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is not None


def test_a_failed_first_open_drops_the_tables_it_created(
    pg_schema: str, pg_admin: psycopg.Connection, make_storage: Callable[..., PostgresStorage]
) -> None:
    # The UAL creates its tables before the API key parser fails for want of a pepper.
    with pytest.raises(ConfigurationError, match="pepper"):
        create_ledger(id="main", storage=make_storage(), plugins=["ual", "auth.api_key"])
    assert schema_tables(pg_admin, pg_schema) == []
    assert not schema_exists(pg_admin, pg_schema)


def test_a_failed_open_beside_other_ledgers_removes_only_its_own_row(
    pg_schema: str, pg_admin: psycopg.Connection, make_storage: Callable[..., PostgresStorage]
) -> None:
    with create_ledger(id="main", storage=make_storage()) as ledger:
        ledger.append(make_record(1), make_context())
    before = schema_tables(pg_admin, pg_schema)
    with pytest.raises(ConfigurationError, match="pepper"):
        create_ledger(id="second", storage=make_storage(), plugins=["ual", "auth.api_key"])
    assert schema_tables(pg_admin, pg_schema) == before
    rows = pg_admin.execute(f"SELECT ledger_id FROM {pg_schema}.nucleus_ledgers").fetchall()
    assert [r[0] for r in rows] == ["main"]


class FailingModule(Module):
    id = "failing"
    streams = ("failing",)

    def init(self, ctx: Any) -> None:
        raise RuntimeError("this module cannot start")


class FailingPlugin:
    @hookimpl
    def nucleus_register_modules(self) -> list[ModuleSpec]:
        return [ModuleSpec(id="failing", factory=lambda _ctx: FailingModule())]


def test_a_failure_after_the_ual_made_its_tables_leaves_nothing(
    pg_schema: str, pg_admin: psycopg.Connection, make_storage: Callable[..., PostgresStorage]
) -> None:
    with pytest.raises(ModuleError, match="failing"):
        create_ledger(id="main", storage=make_storage(), plugins=["ual", FailingPlugin()])
    assert not schema_exists(pg_admin, pg_schema)
    admin = make_context()
    with create_ledger(id="other", storage=make_storage(), plugins=["ual"], admins=[admin.oid]) as ledger:
        ledger.append(make_record(1), admin)
    before = schema_tables(pg_admin, pg_schema)
    with pytest.raises(ModuleError, match="failing"):
        create_ledger(id="main", storage=make_storage(), plugins=["ual", FailingPlugin()])
    assert schema_tables(pg_admin, pg_schema) == before
    rows = pg_admin.execute(f"SELECT DISTINCT ledger_id FROM {pg_schema}.nucleus_entries").fetchall()
    assert [r[0] for r in rows] == ["other"]
    grants = pg_admin.execute(f"SELECT count(*) FROM {pg_schema}.nucleus_ual_resources WHERE ledger_id = 'main'")
    assert grants.fetchone() == (0,)
