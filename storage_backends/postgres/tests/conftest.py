"""Fixtures for the PostgreSQL backend tests: one fresh database per test session, one schema per test.

The server comes from ``NUCLEUS_TEST_POSTGRES_DSN`` (default
``postgresql://postgres@127.0.0.1:5432/test``). When it cannot be reached the tests are skipped with
the reason, unless ``NUCLEUS_REQUIRE_POSTGRES=1`` (CI), in which case they fail.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from nucleus_storage_postgres import PostgresStorage, postgres_storage

from nucleus_core.testing import postgres
from nucleus_core.testing.postgres import drop_schema

pg_dsn = postgres.pg_dsn
"""A database created for this test session (dropped at the end)."""


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
    drop_schema(pg_dsn, name)


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
