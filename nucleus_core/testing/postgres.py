"""A throw-away PostgreSQL database for tests (needs psycopg 3 and pytest).

The server comes from ``NUCLEUS_TEST_POSTGRES_DSN`` (default
``postgresql://postgres@127.0.0.1:5432/test``). When it cannot be reached the calling test is
skipped with the reason, unless ``NUCLEUS_REQUIRE_POSTGRES=1`` (CI), in which case it fails.
A test suite takes the session fixture :func:`pg_dsn` into its ``conftest.py``::

    from nucleus_core.testing import postgres

    pg_dsn = postgres.pg_dsn

Tests that want isolation inside that database use a schema each (:func:`drop_schema` afterwards).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
DSN_ENV = "NUCLEUS_TEST_POSTGRES_DSN"
REQUIRE_ENV = "NUCLEUS_REQUIRE_POSTGRES"


def server_dsn() -> str:
    """The connection string of the test server (``NUCLEUS_TEST_POSTGRES_DSN`` or the default)."""
    return os.environ.get(DSN_ENV, DEFAULT_DSN)


@contextlib.contextmanager
def temporary_database(prefix: str = "nucleus_test") -> Iterator[str]:
    """Create a database named ``<prefix>_<pid>_<random>`` on the test server, yield a conninfo
    string for it, and drop it (closing any connection left) when the block ends."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    dsn = server_dsn()
    try:
        admin = psycopg.connect(dsn, autocommit=True, connect_timeout=5)
    except psycopg.Error as err:
        params = conninfo_to_dict(dsn)
        where = f"{params.get('host', 'local socket')}:{params.get('port', 5432)}"
        reason = f"PostgreSQL is not reachable at {where} ({type(err).__name__}); set {DSN_ENV}"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{reason} ({REQUIRE_ENV}=1: PostgreSQL tests must not be skipped)")
        pytest.skip(reason)
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield make_conninfo(dsn, dbname=name)
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A conninfo string for a database created for this test session (dropped at the end)."""
    with temporary_database() as dsn:
        yield dsn


def drop_schema(dsn: str, schema: str) -> None:
    """Drop ``schema`` (and everything in it) from the database at ``dsn``, if it exists."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
