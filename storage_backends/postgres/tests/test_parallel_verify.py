"""Parallel verification on PostgreSQL reports exactly what serial verification reports.

Each case of :mod:`nucleus_core.testing.parallel` runs on its own copy of a 100-entry ledger's
tables (a fresh schema filled with ``INSERT ... SELECT``); the serial report and the parallel one
(two worker processes, chunks of 25, each connecting by itself) must be equal.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from nucleus_storage_postgres import PostgresStorage, postgres_storage
from psycopg import sql

from nucleus_core import IntegrityError, create_ledger, verify_parallel
from nucleus_core.testing import make_context
from nucleus_core.testing.parallel import CASES, LEDGER, records, serial_and_parallel

pytestmark = pytest.mark.postgres

TABLES = ("nucleus_schema_version", "nucleus_entries", "nucleus_ledgers")


@pytest.fixture(scope="module")
def base_schema(pg_dsn: str) -> Iterator[str]:
    name = f"parallel_base_{uuid.uuid4().hex[:8]}"
    with create_ledger(id=LEDGER, storage=postgres_storage(pg_dsn, schema=name)) as ledger:
        ledger.append_batch(records(), make_context())
    yield name
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def tampered(pg_dsn: str, base_schema: str) -> Iterator[Any]:
    made: list[str] = []

    def make(case: str) -> str:
        name = f"parallel_{uuid.uuid4().hex[:10]}"
        made.append(name)
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
            for table in TABLES:
                src, dst = sql.Identifier(base_schema, table), sql.Identifier(name, table)
                conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(dst, src))
                conn.execute(sql.SQL("INSERT INTO {} SELECT * FROM {}").format(dst, src))
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(name)))

            def execute(statement: str, params: Any) -> list[tuple[Any, ...]]:
                cur = conn.execute(statement.replace("?", "%s"), params)  # type: ignore[arg-type]
                return cur.fetchall() if cur.description else []

            CASES[case](execute)
        return name

    yield make
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for name in made:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


@pytest.mark.parametrize("case", list(CASES))
def test_parallel_report_equals_serial(pg_dsn: str, tampered: Any, case: str) -> None:
    storage = PostgresStorage(pg_dsn, schema=tampered(case))
    storage.open(LEDGER, read_only=True)
    try:
        serial, parallel = serial_and_parallel(storage, storage.read_only_opener(), storage.count())
    finally:
        storage.close()
    assert parallel == serial
    assert serial.ok == (case == "untouched" or case.startswith("deleted last"))


def test_a_ledger_verifies_in_parallel_on_open(pg_dsn: str, tampered: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify_parallel, "MIN_CHUNK", 25)  # 100 entries: 4 chunks of 25
    options: dict[str, Any] = {"verify_workers": 2, "verify_parallel_min_entries": 10}
    with pytest.raises(IntegrityError, match="at entry 51: prev_hash does not link"):
        schema = tampered("prev_hash of a chunk's first entry")
        create_ledger(id=LEDGER, storage=postgres_storage(pg_dsn, schema=schema), **options)
    seen: list[int] = []
    with create_ledger(id=LEDGER, storage=postgres_storage(pg_dsn, schema=tampered("untouched")), **options) as ledger:
        assert ledger.verify(progress=seen.append).ok
    assert seen == [25, 50, 75, 100]
