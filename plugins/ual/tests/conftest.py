"""Fixtures of the UAL tests: every suite runs on memory://, a real SQLite file and the real PostgreSQL.

The PostgreSQL server comes from ``NUCLEUS_TEST_POSTGRES_DSN`` (default
``postgresql://postgres@127.0.0.1:5432/test``); each test session creates its own database and drops
it at the end, and each test gets its own schema in it. When the server cannot be reached those
tests are skipped with the reason, unless ``NUCLEUS_REQUIRE_POSTGRES=1`` (CI), where they fail.
"""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import psycopg
import pytest
from nucleus_storage_postgres import postgres_storage
from nucleus_ual import UalPlugin
from psycopg import sql

from nucleus_core import Ledger, MemoryStorage, create_ledger
from nucleus_core.testing import postgres

ADMIN = "oid:test:user:admin"

pg_dsn = postgres.pg_dsn
"""A database created for this test session (dropped at the end)."""


@attrs.define
class Clock:
    """A settable clock (Unix ms) injected into the UAL, so expiry is decided without waiting."""

    now: int = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now


@attrs.define
class Backend:
    """One place a ledger lives; :meth:`open` (re)opens a ledger there, :meth:`sql` runs SQL behind its back."""

    name: str
    make_storage: Callable[[str], Any]
    """A new storage for the ledger id (memory: the same MemoryStorage for the same id)."""
    run_sql: Callable[[str], list[tuple[Any, ...]]] | None
    clock: Clock = attrs.field(factory=Clock)
    admin: str = ADMIN
    opened: list[Ledger] = attrs.field(factory=list)

    def open(self, *, plugins: tuple[Any, ...] = (), ual: bool = True, **kwargs: Any) -> Ledger:
        kwargs.setdefault("admins", (self.admin,))
        enabled = (*plugins, UalPlugin(clock=self.clock)) if ual else plugins
        kwargs.setdefault("id", "acl")
        ledger = create_ledger(storage=self.make_storage(kwargs["id"]), plugins=enabled, **kwargs)
        self.opened.append(ledger)
        return ledger

    @property
    def is_sql(self) -> bool:
        return self.run_sql is not None

    def sql(self, statement: str) -> list[tuple[Any, ...]]:
        assert self.run_sql is not None, "memory ledgers have no SQL"
        return self.run_sql(statement)


def _sqlite_runner(path: Path) -> Callable[[str], list[tuple[Any, ...]]]:
    def run(statement: str) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(path)
        try:
            with conn:
                return conn.execute(statement).fetchall()
        finally:
            conn.close()

    return run


def _postgres_runner(dsn: str, schema: str) -> Callable[[str], list[tuple[Any, ...]]]:
    def run(statement: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            cur = conn.execute(statement.encode())
            return cur.fetchall() if cur.description else []

    return run


SQL_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
BACKENDS = ["memory", *SQL_BACKENDS]


@contextlib.contextmanager
def _backend(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    schema = f"u_{uuid.uuid4().hex[:12]}"
    dsn = ""
    if name == "memory":
        memory: dict[str, MemoryStorage] = {}
        made = Backend(name, lambda lid: memory.setdefault(lid, MemoryStorage()), None)
    elif name == "sqlite":
        path = tmp_path / "x.db"
        made = Backend(name, lambda _lid: f"sqlite:///{path}", _sqlite_runner(path))
    else:
        dsn = request.getfixturevalue("pg_dsn")
        made = Backend(name, lambda _lid: postgres_storage(dsn, schema=schema), _postgres_runner(dsn, schema))
    try:
        yield made
    finally:
        for ledger in made.opened:
            ledger.close()
        if dsn:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The same test on memory://, a SQLite file and PostgreSQL (a schema of its own)."""
    with _backend(request.param, request, tmp_path) as made:
        yield made


@pytest.fixture(params=SQL_BACKENDS)
def sql_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """SQLite and PostgreSQL only: tests that work on the tables behind the ledger's back."""
    with _backend(request.param, request, tmp_path) as made:
        yield made
