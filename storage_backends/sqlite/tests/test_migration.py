"""A file written at schema version 1 (checked in) opens, migrates to the current version, verifies."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from pathlib import Path

import pytest
from nucleus_storage_sql import CURRENT_VERSION
from nucleus_storage_sqlite import SqliteStorage, sqlite_storage

from nucleus_core import ConfigurationError, DuplicateRecordError, create_ledger
from nucleus_core.testing import make_context, make_record
from nucleus_core.verify import verify_rows

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


# -- entry format version 2: the fixture's entries are version 1 ---------------------------------

V2_COLUMNS = ["version", "appender", "auth_source", "committed_at"]


def entry_columns(path: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [r[1] for r in db.execute("pragma table_info(nucleus_entries)")]


def test_old_entries_stay_version_1_and_new_ones_are_version_2(v1_copy: Path) -> None:
    assert not set(V2_COLUMNS) & set(entry_columns(v1_copy))
    with create_ledger(id="fixture-a", storage=sqlite_storage(v1_copy)) as ledger:
        assert entry_columns(v1_copy)[-4:] == V2_COLUMNS  # added in place on the writable open
        old = ledger.get_by_id("fixture-a-7", CTX)
        assert old is not None
        assert (old.version, old.appender, old.auth_source, old.committed_at) == (1, None, None, None)
        new = ledger.append_batch([make_record(i) for i in range(3)], CTX)
        assert {(e.version, e.appender, e.auth_source) for e in new} == {(2, CTX.oid, CTX.source)}
        assert len({e.committed_at for e in new}) == 1
        assert ledger.verify().ok
    with create_ledger(id="fixture-a", storage=sqlite_storage(v1_copy)) as again:  # opening verifies again
        assert again.length() == 33 and again.verify().ok
    with contextlib.closing(sqlite3.connect(v1_copy)) as db:
        got = db.execute(
            "select version, count(*), count(appender) from nucleus_entries where ledger_id = 'fixture-a' "
            "group by version order by version"
        ).fetchall()
    assert got == [(1, 30, 0), (2, 3, 3)]


def test_database_without_the_appender_columns_opens_read_only_unchanged(v1_copy: Path) -> None:
    # The previous release's current schema (version 2): the timestamp index, no appender columns.
    with contextlib.closing(sqlite3.connect(v1_copy)) as db:
        db.execute("create index nucleus_entries_ledger_timestamp on nucleus_entries (ledger_id, timestamp)")
        db.execute("update nucleus_schema_version set version = 2 where component = 'entries'")
        db.commit()
    # A read-only open of the storage (what a parallel-verification worker does) changes nothing.
    backend = SqliteStorage(v1_copy)
    backend.open("fixture-a", read_only=True, create=False)
    try:
        assert verify_rows("fixture-a", backend.iter_entry_rows(), expected_count=30).ok
        entry = backend.get_by_id("fixture-a-7")
        assert entry is not None and entry.version == 1 and entry.appender is None
        assert {e.version for e in backend.range(1, 30)} == {1}
    finally:
        backend.close()
    assert not set(V2_COLUMNS) & set(entry_columns(v1_copy))


# -- schema version 3: the hash index keyed on the hash's first 16 hex digits --------------------


def downgrade_to_version_2(path: Path) -> None:
    """Put a current file back to schema version 2 as the previous release wrote it: the unique
    index on (ledger_id, hash), no prefix index."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("drop index nucleus_entries_ledger_hash_prefix")
        db.execute("create unique index nucleus_entries_ledger_hash on nucleus_entries (ledger_id, hash)")
        db.execute("update nucleus_schema_version set version = 2 where component = 'entries'")
        db.commit()


def by_hash_plan(path: Path, entry_hash: str) -> str:
    with contextlib.closing(sqlite3.connect(path)) as db:
        backend = SqliteStorage(path)
        backend.open("fixture-a", create=False)
        try:
            sql = backend._sql["by_hash"]
        finally:
            backend.close()
        rows = db.execute("explain query plan " + sql, ("fixture-a", entry_hash[:16], entry_hash)).fetchall()
        return " ".join(str(r[-1]) for r in rows)


def test_version_2_file_gets_the_hash_prefix_index_and_keeps_every_guarantee(v1_copy: Path) -> None:
    with create_ledger(id="fixture-a", storage=sqlite_storage(v1_copy)) as ledger:
        written = ledger.append_batch([make_record(i) for i in range(5)], CTX)
    downgrade_to_version_2(v1_copy)
    assert version(v1_copy) == 2 and "nucleus_entries_ledger_hash" in indexes(v1_copy)
    with create_ledger(id="fixture-a", storage=sqlite_storage(v1_copy)) as ledger:  # migrates, then verifies
        assert ledger.storage.schema_version == CURRENT_VERSION == 3
        for entry in (ledger.get_by_id("fixture-a-7", CTX), written[2]):  # a version-1 entry and a version-2 one
            assert entry is not None
            found = ledger.get(entry.hash, CTX)
            assert found is not None and found.seq == entry.seq and found.record == entry.record
        assert ledger.get(written[2].hash[:16] + "0" * 48, CTX) is None  # same prefix, other hash
        with pytest.raises(DuplicateRecordError):
            ledger.append(make_record(1), CTX)
        assert ledger.length() == 35
    got = indexes(v1_copy)
    assert "nucleus_entries_ledger_hash_prefix" in got and "nucleus_entries_ledger_hash" not in got
    assert "nucleus_entries_ledger_hash_prefix" in by_hash_plan(v1_copy, written[2].hash)
    with contextlib.closing(sqlite3.connect(v1_copy)) as db:  # tampering is still found
        db.execute("update nucleus_entries set hash = ? where ledger_id = 'fixture-a' and seq = 33", ("f" * 64,))
        db.commit()
    backend = SqliteStorage(v1_copy)
    backend.open("fixture-a", read_only=True, create=False)
    try:
        report = verify_rows("fixture-a", backend.iter_entry_rows(), expected_count=35)
        assert not report.ok and report.first_bad_seq == 33
    finally:
        backend.close()


def test_version_2_file_opened_read_only_finds_entries_by_hash_unchanged(v1_copy: Path) -> None:
    with create_ledger(id="fixture-a", storage=sqlite_storage(v1_copy)) as ledger:
        entry = ledger.append(make_record(1), CTX)
    downgrade_to_version_2(v1_copy)
    backend = SqliteStorage(v1_copy)
    backend.open("fixture-a", read_only=True, create=False)
    try:
        found = backend.get_by_hash(entry.hash)
        assert found is not None and found.seq == entry.seq
    finally:
        backend.close()
    assert version(v1_copy) == 2 and "nucleus_entries_ledger_hash" in indexes(v1_copy)
