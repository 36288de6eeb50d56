"""Failed writes surface as StorageError subclasses, write nothing, and leave the ledger as it was."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from nucleus_storage_sqlite import sqlite_storage

from nucleus_core import (
    ConflictError,
    ReadOnlyLedgerError,
    Record,
    StorageError,
    StorageUnavailableError,
    create_ledger,
)
from nucleus_core.ledger import Ledger
from nucleus_core.testing import make_context, make_record

CTX = make_context()


def big_records(start: int, count: int) -> list[Record]:
    return [
        Record(id=f"big-{i}", stream="big", timestamp=1 + i, payload={"pad": "y" * 3000})
        for i in range(start, start + count)
    ]


def state(ledger: Ledger) -> tuple[int, str | None, int]:
    return ledger.length(), ledger.latest_hash(), ledger.storage.count()


def rows_on_disk(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute("select count(*) from nucleus_entries").fetchone()[0])


@contextlib.contextmanager
def read_only_file(*paths: Path) -> Iterator[None]:
    """Make ``paths`` really unwritable for this process: immutable for root, mode 0444/0555 otherwise."""
    if os.geteuid() == 0:
        chattr = shutil.which("chattr")
        if chattr is None or subprocess.run([chattr, "+i", *map(str, paths)], capture_output=True).returncode:
            pytest.skip("running as root without chattr +i: cannot make a file read-only")
        try:
            yield
        finally:
            subprocess.run([chattr, "-i", *map(str, paths)], check=True)
    else:
        modes = [p.stat().st_mode for p in paths]
        for p in paths:
            p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            yield
        finally:
            for p, mode in zip(paths, modes, strict=True):
                p.chmod(mode)


def test_read_only_file_opens_for_reading_and_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    with create_ledger(id="ro", storage=sqlite_storage(path)) as ledger:
        first = ledger.append_batch([make_record(i) for i in range(5)], CTX)
    with read_only_file(path), create_ledger(id="ro", storage=sqlite_storage(path)) as ledger:
        assert ledger.storage.read_only
        before = state(ledger)
        assert ledger.get_by_id(first[2].record.id, CTX) == first[2]  # reads and verification work
        with pytest.raises(ReadOnlyLedgerError, match="read-only"):
            ledger.append(make_record(10), CTX)
        with pytest.raises(ReadOnlyLedgerError):
            ledger.append_batch([make_record(11), make_record(12)], CTX)
        assert state(ledger) == before
    assert rows_on_disk(path) == 5
    with create_ledger(id="ro", storage=sqlite_storage(path)) as ledger:  # writable again
        assert ledger.append(make_record(10), CTX).seq == 6


def test_read_only_wal_file_in_a_read_only_directory_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    path = folder / "ro.db"
    create_ledger(id="ro", storage=sqlite_storage(path)).close()
    with read_only_file(path, folder), pytest.raises(StorageUnavailableError, match="cannot open"):
        create_ledger(id="ro", storage=sqlite_storage(path))  # WAL needs a -shm file it cannot create


def test_disk_full_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "full.db"
    with create_ledger(id="full", storage=sqlite_storage(path)) as ledger:
        ledger.append_batch(big_records(0, 10), CTX)
        before = state(ledger)
        pages = ledger.storage.database.execute_sql("pragma page_count").fetchone()[0]
        ledger.storage.database.execute_sql(f"pragma max_page_count = {pages + 5}")
        with pytest.raises(StorageError, match="full") as info:
            ledger.append_batch(big_records(100, 200), CTX)
        assert "disk" in str(info.value.__cause__)  # the engine's own error is kept as the cause
        assert state(ledger) == before
        assert ledger.get_by_id("big-100", CTX) is None
        # The ledger keeps working within the limit and continues the chain where it was.
        entry = ledger.append(make_record(1), CTX)
        assert entry.seq == before[0] + 1 and entry.prev_hash == before[1]
    assert rows_on_disk(path) == 11
    with create_ledger(id="full", storage=sqlite_storage(path)) as again:
        assert again.length() == 11 and again.verify().ok


def test_constraint_violation_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "constraint.db"
    with create_ledger(id="c", storage=sqlite_storage(path)) as ledger:
        ledger.append_batch([make_record(i) for i in range(3)], CTX)
        before = state(ledger)
        # A constraint the database enforces at insert (added behind the ledger's back): the
        # third record of the batch is refused after the first two were inserted.
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.execute(
                "create trigger refuse before insert on nucleus_entries when new.record_id = 'rec-000012' "
                "begin select raise(abort, 'refused by constraint'); end"
            )
            db.commit()
        with pytest.raises(StorageError, match="constraint") as info:
            ledger.append_batch([make_record(10), make_record(11), make_record(12), make_record(13)], CTX)
        assert info.value.code in {"conflict", "storage_error"}
        assert state(ledger) == before
        assert ledger.get_by_id(make_record(10).id, CTX) is None
        with pytest.raises(StorageError, match="constraint"):  # a single append (no savepoint on that path)
            ledger.append(make_record(12), CTX)
        assert state(ledger) == before
        entry = ledger.append(make_record(20), CTX)
        assert entry.seq == 4 and entry.prev_hash == before[1]
    assert rows_on_disk(path) == 4


def test_failure_in_a_later_step_rolls_back_the_insert(tmp_path: Path) -> None:
    path = tmp_path / "late.db"
    with create_ledger(id="late", storage=sqlite_storage(path)) as ledger:
        ledger.append(make_record(0), CTX)
        before = state(ledger)
        with pytest.raises(StorageError), ledger.storage.write() as tx:
            head = tx.head()
            assert head is not None
            ledger.storage.database.execute_sql("insert into nucleus_entries (ledger_id) values ('x')")
        assert state(ledger) == before
    assert rows_on_disk(path) == 1


def test_lock_held_by_another_writer_is_a_conflict(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    with create_ledger(id="lk", storage=sqlite_storage(path, busy_timeout=0.2)) as ledger:
        ledger.append(make_record(0), CTX)
        before = state(ledger)
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as other:
            other.execute("begin immediate")  # another process's write transaction
            with pytest.raises(ConflictError, match="locked by another writer"):
                ledger.append(make_record(1), CTX)
            other.execute("rollback")
        assert state(ledger) == before
        assert ledger.append(make_record(1), CTX).seq == 2
