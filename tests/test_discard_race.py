"""A failed create_ledger removes only what it wrote: another process's acknowledged entries (and
the file it has open) survive (finding 2 of the issue 11 review). Real processes, real SQLite file
and real PostgreSQL."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nucleus_core import create_ledger, hookimpl, open_ledger
from nucleus_core.testing import make_context
from nucleus_core.testing.postgres import drop_schema, temporary_database

SCRIPT = str(Path(__file__).with_name("discard_race.py"))


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    with temporary_database("nucleus_race") as dsn:
        yield dsn


def race(tmp_path: Path, url: str, schema: str | None) -> list[str]:
    env = {**os.environ, "RACE_DIR": str(tmp_path)}
    extra = [schema] if schema else []
    flaky = subprocess.Popen(
        [sys.executable, SCRIPT, "flaky", url, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    writer = subprocess.Popen(
        [sys.executable, SCRIPT, "append", url, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    out_w, err_w = writer.communicate(timeout=120)
    out_f, err_f = flaky.communicate(timeout=120)
    assert writer.returncode == 0, err_w
    assert flaky.returncode == 0 and out_f.startswith("failed"), err_f
    acked = [line.split()[2] for line in out_w.splitlines() if line.startswith("ack ")]
    assert len(acked) == 3
    return acked


def check_kept(acked: list[str], storage: object) -> None:
    ctx = make_context()
    with open_ledger(id="main", storage=storage) as ledger:  # opening verifies the chain
        for rid in acked:
            assert ledger.get_by_id(rid, ctx) is not None


def test_sqlite_failed_open_keeps_another_process_entries(tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    acked = race(tmp_path, f"sqlite:///{path}", None)
    assert path.exists()
    check_kept(acked, f"sqlite:///{path}")


@pytest.mark.postgres
def test_postgres_failed_open_keeps_another_process_entries(tmp_path: Path, pg_dsn: str) -> None:
    from nucleus_storage_postgres import postgres_storage

    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        acked = race(tmp_path, pg_dsn, schema)
        storage = postgres_storage(pg_dsn, schema=schema, pool_size=2)
        check_kept(acked, storage)
    finally:
        drop_schema(pg_dsn, schema)


class HoldsTheFile:
    """Opens its own connection to the new file (as another process would), then fails the open."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.con: sqlite3.Connection | None = None

    @hookimpl
    def nucleus_ledger_opened(self, ledger: Any) -> None:
        self.con = sqlite3.connect(str(self.path))
        self.con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        raise RuntimeError("refused after opening")


def test_sqlite_file_another_connection_has_open_is_never_unlinked(tmp_path: Path) -> None:
    path = tmp_path / "held.db"
    holder = HoldsTheFile(path)
    with pytest.raises(RuntimeError):
        create_ledger(id="main", storage=f"sqlite:///{path}", plugins=[holder])
    assert holder.con is not None
    try:
        assert path.exists()  # emptied, but the other connection still writes to this very file
        assert holder.con.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)
    finally:
        holder.con.close()
    with create_ledger(id="main", storage=f"sqlite:///{path}") as ledger:  # the empty file is usable
        assert ledger.verify().ok
