"""A file written at schema version 1 (checked in) opens, migrates to the current version, verifies."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from pathlib import Path

import pytest
from nucleus_storage_sql import CURRENT_VERSION
from nucleus_storage_sqlite import SqliteStorage, sqlite_storage

from nucleus_core import ConfigurationError, create_ledger
from nucleus_core.testing import make_context, make_record

FIXTURE = Path(__file__).parent / "fixtures" / "ledger_v1.db"
CTX = make_context()


def indexes(path: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute("select name from sqlite_master where type = 'index' and sql is not null")
        return {name for (name,) in rows}


def version(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute("select version from nucleus_schema_version where component = 'entries'").fetchone()[0])


@pytest.fixture
def v1_copy(tmp_path: Path) -> Path:
    path = tmp_path / "old.db"
    shutil.copyfile(FIXTURE, path)
    return path


def test_fixture_is_small_and_really_version_1(v1_copy: Path) -> None:
    assert FIXTURE.stat().st_size < 200_000
    assert version(v1_copy) == 1 < CURRENT_VERSION
    assert "nucleus_entries_ledger_timestamp" not in indexes(v1_copy)


def test_old_file_is_migrated_on_open_and_verifies(v1_copy: Path) -> None:
    with create_ledger(id="fixture-a", storage=sqlite_storage(v1_copy)) as ledger:  # verification on open
        assert ledger.storage.schema_version == CURRENT_VERSION
        assert ledger.length() == 30
        assert ledger.verify().ok
        entry = ledger.get_by_id("fixture-a-7", CTX)
        assert entry is not None and entry.seq == 8 and entry.record.payload == {"i": 7, "text": "first version"}
        window = ledger.query({"since": 1_600_000_000_000 + 5000, "until": 1_600_000_000_000 + 8000}, CTX)
        assert [e.record.id for e in window] == ["fixture-a-5", "fixture-a-6", "fixture-a-7"]
        assert ledger.append(make_record(1), CTX).seq == 31
    assert version(v1_copy) == CURRENT_VERSION
    assert "nucleus_entries_ledger_timestamp" in indexes(v1_copy)
    with create_ledger(id="fixture-b", storage=sqlite_storage(v1_copy)) as other:  # the other ledger in the file
        assert other.length() == 12 and other.verify().ok


def test_migrated_file_matches_a_new_one(v1_copy: Path, tmp_path: Path) -> None:
    create_ledger(id="fixture-a", storage=sqlite_storage(v1_copy)).close()
    fresh = tmp_path / "fresh.db"
    create_ledger(id="fresh", storage=sqlite_storage(fresh)).close()

    def schema(path: Path) -> list[tuple[str, str]]:
        with contextlib.closing(sqlite3.connect(path)) as db:
            return sorted(db.execute("select name, sql from sqlite_master where sql is not null").fetchall())

    assert schema(v1_copy) == schema(fresh)


def test_old_file_opened_read_only_is_not_migrated(v1_copy: Path) -> None:
    backend = SqliteStorage(v1_copy)
    with pytest.raises(ConfigurationError, match="cannot be created or migrated"):
        backend.open("fixture-a", read_only=True)
    assert version(v1_copy) == 1
