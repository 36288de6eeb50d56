"""Fixtures for the PostgreSQL backend tests: one fresh database per test session, one schema per test.

The server comes from ``NUCLEUS_TEST_POSTGRES_DSN`` (default
``postgresql://postgres@127.0.0.1:5432/test``). When it cannot be reached the tests are skipped with
the reason, unless ``NUCLEUS_REQUIRE_POSTGRES=1`` (CI), in which case they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from nucleus_storage_postgres import PostgresStorage, postgres_storage
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def _server_dsn() -> str:
    return os.environ.get("NUCLEUS_TEST_POSTGRES_DSN", DEFAULT_DSN)


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A conninfo string for a database created for this test session (dropped at the end)."""
    dsn = _server_dsn()
    try:
        admin = psycopg.connect(dsn, autocommit=True, connect_timeout=5)
    except psycopg.Error as err:
        params = conninfo_to_dict(dsn)
        where = f"{params.get('host', 'local socket')}:{params.get('port', 5432)}"
        reason = f"PostgreSQL is not reachable at {where} ({type(err).__name__}); set NUCLEUS_TEST_POSTGRES_DSN"
        if os.environ.get("NUCLEUS_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{reason} (NUCLEUS_REQUIRE_POSTGRES=1: PostgreSQL tests must not be skipped)")
        pytest.skip(reason)
    name = f"nucleus_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield make_conninfo(dsn, dbname=name)
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def pg_admin(pg_dsn: str) -> Iterator[psycopg.Connection]:
    """A plain autocommit connection to the session database, for SQL behind the ledger's back."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture
def pg_schema(pg_dsn: str) -> Iterator[str]:
    """A schema of its own for one test (created by the backend on open, dropped afterwards)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def make_storage(pg_dsn: str, pg_schema: str) -> Iterator[Callable[..., PostgresStorage]]:
    """Build unopened backends over this test's schema; every one built is closed at teardown."""
    made: list[PostgresStorage] = []

    def factory(**options: object) -> PostgresStorage:
        options.setdefault("schema", pg_schema)
        storage = postgres_storage(pg_dsn, **options)  # type: ignore[arg-type]
        made.append(storage)
        return storage

    yield factory
    for storage in made:
        storage.close()
