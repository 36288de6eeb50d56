"""The PostgreSQL backup procedure of docs/DEPLOYMENT.md ("Backups", "Verifying a restored backup"),
followed as written: ``pg_dump --format=custom --schema=...`` while a writer appends, ``pg_restore``
into a scratch database, then every ledger in ``nucleus_ledgers`` opened read-only and verified,
its head an entry of the live chain."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from nucleus_storage_postgres import PostgresStorage, postgres_storage

from nucleus_core import create_ledger
from nucleus_core.testing import make_context, make_record
from nucleus_core.testing.postgres import temporary_database

pytestmark = pytest.mark.postgres


@pytest.mark.skipif(not (shutil.which("pg_dump") and shutil.which("pg_restore")), reason="needs pg_dump and pg_restore")
def test_documented_pg_dump_procedure_gives_verifiable_ledgers_while_writers_append(
    tmp_path: Path, pg_dsn: str, pg_schema: str, make_storage: Callable[..., PostgresStorage]
) -> None:
    ctx = make_context()
    with create_ledger(id="orders", storage=make_storage()) as orders, create_ledger(
        id="audit", storage=make_storage()
    ) as audit:
        audit.append_batch([make_record(i) for i in range(7)], ctx)
        orders.append_batch([make_record(i) for i in range(50)], ctx)
        stop = threading.Event()
        failures: list[BaseException] = []

        def writer() -> None:
            i = 1000
            try:
                while not stop.is_set():
                    orders.append(make_record(i), ctx)
                    i += 1
            except BaseException as err:  # reported below
                failures.append(err)

        thread = threading.Thread(target=writer)
        thread.start()
        dumps = []
        try:
            for round_ in range(3):
                dump = tmp_path / f"nucleus-{round_}.dump"
                subprocess.run(
                    ["pg_dump", "--format=custom", f"--schema={pg_schema}", f"--file={dump}", f"--dbname={pg_dsn}"],
                    check=True, capture_output=True,
                )
                dumps.append(dump)
        finally:
            stop.set()
            thread.join(timeout=60)
        assert not failures, failures
        live_orders = {e.seq: e.hash for e in orders.iter_entries(ctx)}
        assert len(live_orders) > 50  # the writer ran during the dumps

        for dump in dumps:
            with temporary_database("nucleus_restore_check") as restored:
                subprocess.run(["pg_restore", f"--dbname={restored}", str(dump)], check=True, capture_output=True)
                with psycopg.connect(restored) as conn:
                    ledger_ids = [r[0] for r in conn.execute(f"SELECT ledger_id FROM {pg_schema}.nucleus_ledgers")]
                assert sorted(ledger_ids) == ["audit", "orders"]
                for ledger_id in ledger_ids:
                    storage = postgres_storage(restored, schema=pg_schema)
                    with create_ledger(id=ledger_id, storage=storage, verify_on_open=False) as ledger:
                        report = ledger.verify()
                        assert report.ok, report
                        if ledger_id == "orders":
                            assert report.entries_checked >= 50
                            assert live_orders[report.entries_checked] == report.head_hash
                        else:
                            assert report.entries_checked == 7 and report.head_hash == audit.latest_hash()
