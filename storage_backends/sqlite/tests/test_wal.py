"""The WAL is bounded: a long-lived reader in another process makes it grow (nothing can shrink it
while that snapshot is held), and once the reader is gone the next commits bring it back under
``wal_size_limit`` while the ledger stays open."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from nucleus_storage_sqlite import sqlite_storage
from nucleus_storage_sqlite.backend import DEFAULT_WAL_SIZE_LIMIT, _switch_journal_mode

from nucleus_core import ConfigurationError, Record, create_ledger
from nucleus_core.testing import make_context, make_record

CTX = make_context()
MIB = 1024 * 1024

READER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN")
print(db.execute("SELECT count(*) FROM nucleus_entries").fetchone()[0], flush=True)
sys.stdin.readline()  # hold the read transaction (its snapshot) until told to stop
db.execute("COMMIT")
"""


class Reader:
    """Another process holding a read transaction on the file."""

    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", READER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.seen = int(self.proc.stdout.readline())

    def leave(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("done\n")
        self.proc.stdin.close()
        assert self.proc.wait(timeout=60) == 0
        self.close()

    def close(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()


@pytest.fixture
def reader_factory() -> Iterator[type[Reader]]:
    made: list[Reader] = []

    class Tracked(Reader):
        def __init__(self, path: Path) -> None:
            super().__init__(path)
            made.append(self)

    yield Tracked
    for r in made:
        if r.proc.poll() is None:
            r.proc.kill()
            r.proc.wait()
        r.close()


def wal_size(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def batch(prefix: str, n: int, size: int) -> list[Record]:
    return [Record(id=f"{prefix}-{i}", stream="s", timestamp=1 + i, payload={"pad": "w" * size}) for i in range(n)]


@pytest.mark.parametrize("durability", ["full", "normal"])
def test_wal_shrinks_under_its_limit_after_a_long_reader_leaves(
    tmp_path: Path, reader_factory: type[Reader], durability: str
) -> None:
    path = tmp_path / "wal.db"
    limit = MIB
    with create_ledger(id="wal", storage=sqlite_storage(path, durability=durability, wal_size_limit=limit)) as ledger:
        ledger.append_batch([make_record(i) for i in range(10)], CTX)
        reader = reader_factory(path)
        assert reader.seen == 10
        for round_ in range(40):  # ~4 MiB written while the reader holds its snapshot
            ledger.append_batch(batch(f"r{round_}", 25, 4000), CTX)
            ledger.append(make_record(1000 + round_), CTX)
        held = wal_size(path)
        assert held > 3 * limit  # the reader's snapshot pins every frame written since it began
        reader.leave()
        for i in range(3):  # a few more appends, the ledger staying open
            ledger.append(make_record(2000 + i), CTX)
        assert wal_size(path) <= limit, (held, wal_size(path))
        assert ledger.length() == 10 + 40 * 26 + 3 and ledger.verify().ok
        # Without readers the WAL stays within the limit from now on.
        for round_ in range(20):
            ledger.append_batch(batch(f"after{round_}", 25, 4000), CTX)
            assert wal_size(path) <= limit + 200 * 1024  # at most one transaction over, truncated after it
    with create_ledger(id="wal", storage=sqlite_storage(path)) as again:
        assert again.length() == 10 + 40 * 26 + 3 + 20 * 25 and again.verify().ok


def test_default_limit_and_journal_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "default.db"
    with create_ledger(id="d", storage=f"sqlite:///{path}") as ledger:
        db = ledger.storage.database
        assert db.execute_sql("pragma journal_size_limit").fetchone()[0] == DEFAULT_WAL_SIZE_LIMIT == 64 * MIB
        ledger.append(make_record(1), CTX)
        assert db.execute_sql("pragma busy_timeout").fetchone()[0] == 30_000  # restored after checkpoints
    with create_ledger(id="d", storage=f"sqlite:///{path}?wal_size_limit={2 * MIB}") as ledger:
        assert ledger.storage.database.execute_sql("pragma journal_size_limit").fetchone()[0] == 2 * MIB


def test_truncation_never_waits_for_a_reader_and_keeps_the_busy_timeout(
    tmp_path: Path, reader_factory: type[Reader]
) -> None:
    path = tmp_path / "busy.db"
    storage = sqlite_storage(path, busy_timeout=7, wal_size_limit=MIB)
    with create_ledger(id="b", storage=storage) as ledger:
        ledger.append_batch(batch("a", 50, 30_000), CTX)
        reader = reader_factory(path)
        ledger.append_batch(batch("b", 50, 30_000), CTX)  # would wait 7 s per commit if the checkpoint waited
        assert storage.truncate_wal() is False  # the reader is in the way: refused at once
        assert storage.database.execute_sql("pragma busy_timeout").fetchone()[0] == 7000
        reader.leave()
        assert storage.truncate_wal() is True and wal_size(path) == 0
        assert ledger.verify().ok


@pytest.mark.parametrize("bad", ["1k", "-1", "1000", str(2**41), "1.5e6", "", "true"])
def test_bad_wal_size_limit_is_refused(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "bad.db"
    with pytest.raises(ConfigurationError, match="wal_size_limit"):
        create_ledger(id="x", storage=f"sqlite:///{path}?wal_size_limit={bad}")
    with pytest.raises(ConfigurationError, match="wal_size_limit"):
        sqlite_storage(path, wal_size_limit=True)  # type: ignore[arg-type]
    assert not path.exists()


class _ContendedConnection:
    """A real connection whose first ``busy`` journal-mode switches answer SQLITE_BUSY, as SQLite
    does (without its busy handler) to the loser of two openers switching one new file."""

    def __init__(self, path: Path, busy: int) -> None:
        self.real = sqlite3.connect(str(path), isolation_level=None)
        self.busy = busy
        self.switches = 0

    def execute(self, sql: str) -> sqlite3.Cursor:
        if sql.startswith("PRAGMA journal_mode ="):
            self.switches += 1
            if self.switches <= self.busy:
                raise sqlite3.OperationalError("database is locked")
        return self.real.execute(sql)


def test_switching_to_wal_waits_out_a_busy_answer(tmp_path: Path) -> None:
    conn = _ContendedConnection(tmp_path / "new.db", busy=3)
    _switch_journal_mode(conn, "wal", timeout=5.0)  # type: ignore[arg-type]
    assert conn.switches == 4
    assert conn.real.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.real.close()


def test_switching_to_wal_gives_up_at_the_busy_timeout(tmp_path: Path) -> None:
    conn = _ContendedConnection(tmp_path / "new.db", busy=10**9)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        _switch_journal_mode(conn, "wal", timeout=0.2)  # type: ignore[arg-type]
    assert 2 < conn.switches < 100  # retried with a growing pause, not spun
    conn.real.close()


def test_an_existing_wal_file_is_not_switched_again(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    create_ledger(id="l", storage=sqlite_storage(path)).close()  # a new ledger file, in WAL mode
    conn = _ContendedConnection(path, busy=10**9)  # any switch would fail
    _switch_journal_mode(conn, "wal", timeout=0.0)  # type: ignore[arg-type]
    assert conn.switches == 0
    conn.real.close()
