"""``nucleus backup`` / ``nucleus restore`` on SQLite: copies taken while writer processes append all
verify; a copy or a restore that does not verify changes nothing."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from nucleus_storage_sqlite import sqlite_storage

from nucleus_core import Ledger, Record, create_ledger
from nucleus_core.cli import EXIT_CONFIGURATION, EXIT_INTEGRITY, EXIT_NOT_FOUND, EXIT_STORAGE, make_cli
from nucleus_core.errors import ConfigurationError, IntegrityError, LedgerNotFoundError
from nucleus_core.testing import make_context, make_record

CTX = make_context()
WRITER = str(Path(__file__).with_name("sqlite_writer.py"))


def run(*args: str) -> Result:
    return CliRunner().invoke(make_cli(), list(args), catch_exceptions=False)


def live_hash(path: Path, ledger_id: str, seq: int) -> str:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        sql = "SELECT hash FROM nucleus_entries WHERE ledger_id = ? AND seq = ?"
        row = db.execute(sql, (ledger_id, seq)).fetchone()
    return str(row[0])


def live_length(path: Path, ledger_id: str) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        row = db.execute("SELECT max(seq) FROM nucleus_entries WHERE ledger_id = ?", (ledger_id,)).fetchone()
    return int(row[0] or 0)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial" in p.name)


@pytest.fixture
def writers(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Two writer processes appending to ``tmp_path/live.db`` (ledger ``live``) until stopped."""
    path = tmp_path / "live.db"
    create_ledger(id="live", storage=sqlite_storage(path)).close()
    procs: list[subprocess.Popen[bytes]] = []
    outs = []
    for name in ("w0", "w1"):
        out = (tmp_path / f"{name}.out").open("wb")
        outs.append(out)
        procs.append(subprocess.Popen([sys.executable, WRITER, str(path), "live", name, "0", "normal"],
                                      stdout=out, stderr=subprocess.STDOUT))
    try:
        deadline = time.monotonic() + 60
        while live_length(path, "live") < 50:  # both started and appending
            assert all(p.poll() is None for p in procs), [(tmp_path / f"w{i}.out").read_text() for i in (0, 1)]
            assert time.monotonic() < deadline, "writers did not start"
            time.sleep(0.05)
        yield procs
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        for out in outs:
            out.close()


@pytest.mark.slow
def test_twenty_backups_taken_while_writer_processes_append_all_verify(
    tmp_path: Path, writers: list[subprocess.Popen[bytes]]
) -> None:
    path = tmp_path / "live.db"
    url = f"sqlite:///{path}"
    lengths = []
    for round_ in range(20):
        before = live_length(path, "live")
        dest = tmp_path / f"copy-{round_}.db"
        result = run("backup", str(dest), "--json", "--ledger", url, "--ledger-id", "live")
        assert result.exit_code == 0, result.output
        assert all(p.poll() is None for p in writers)  # still appending: the copy was taken mid-write
        report = json.loads(result.output)
        copied = report["ledgers"]["live"]
        assert copied["entries"] >= before
        # Each copy is opened and verified on its own, and is a prefix of the live chain.
        with create_ledger(id="live", storage=sqlite_storage(dest)) as copy:
            assert copy.verify().ok and copy.length() == copied["entries"]
            assert copy.latest_hash() == copied["head"] == live_hash(path, "live", copied["entries"])
        assert not any(dest.with_name(dest.name + s).exists() for s in ("-wal", "-shm", "-journal"))  # one file
        lengths.append(copied["entries"])
    assert len(set(lengths)) > 10 and lengths == sorted(lengths)  # the ledger kept growing between copies
    assert leftovers(tmp_path) == []


@pytest.fixture
def ledger_file(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    with create_ledger(id="main", storage=sqlite_storage(path)) as ledger:
        ledger.append_batch([make_record(i) for i in range(20)], CTX)
    with create_ledger(id="other", storage=sqlite_storage(path)) as ledger:
        ledger.append_batch([make_record(i) for i in range(3)], CTX)
    return path


def tamper(path: Path, seq: int) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("UPDATE nucleus_entries SET canonical = replace(canonical, 'n', 'm') "
                   "WHERE ledger_id = 'main' AND seq = ?", (seq,))
        db.commit()


def test_backup_of_a_ledger_that_does_not_verify_fails_and_leaves_nothing(ledger_file: Path) -> None:
    tamper(ledger_file, 7)
    dest = ledger_file.with_name("copy.db")
    result = run("backup", str(dest), "--ledger", f"sqlite:///{ledger_file}", "--ledger-id", "main")
    assert result.exit_code == EXIT_INTEGRITY, result.output
    assert "does not verify at entry 7" in result.output
    assert not dest.exists() and leftovers(ledger_file.parent) == []


def test_backup_destination_rules(ledger_file: Path) -> None:
    url = f"sqlite:///{ledger_file}"
    dest = ledger_file.with_name("copy.db")
    dest.write_bytes(b"precious")
    result = run("backup", str(dest), "--ledger", url, "--ledger-id", "main")
    assert result.exit_code == EXIT_CONFIGURATION and "exists" in result.output
    assert dest.read_bytes() == b"precious"
    result = run("backup", str(dest), "--overwrite", "--ledger", url, "--ledger-id", "main")
    assert result.exit_code == 0, result.output
    assert "'main': 20 entries" in result.output and "'other': 3 entries" in result.output  # the whole file
    result = run("backup", str(ledger_file), "--overwrite", "--ledger", url, "--ledger-id", "main")
    assert result.exit_code == EXIT_CONFIGURATION and "own file" in result.output
    result = run("backup", str(ledger_file.parent / "missing" / "x.db"), "--ledger", url, "--ledger-id", "main")
    assert result.exit_code == EXIT_CONFIGURATION and "does not exist" in result.output
    result = run("backup", str(dest), "--overwrite", "--ledger", url, "--ledger-id", "nobody")
    # A ledger the file does not hold: nothing is created, and the ledgers it does hold are named.
    assert result.exit_code == EXIT_NOT_FOUND and "no ledger 'nobody'" in result.output, result.output
    assert "'main', 'other'" in result.output
    assert leftovers(ledger_file.parent) == []


def test_restore_checks_the_backup_before_it_replaces_anything(ledger_file: Path) -> None:
    url = f"sqlite:///{ledger_file}"
    good = ledger_file.with_name("good.db")
    assert run("backup", str(good), "--ledger", url, "--ledger-id", "main").exit_code == 0
    with create_ledger(id="main", storage=sqlite_storage(ledger_file)) as ledger:
        ledger.append_batch([make_record(i) for i in range(100, 105)], CTX)
        state = (ledger.length(), ledger.latest_hash())
    bad = ledger_file.with_name("bad.db")
    bad.write_bytes(good.read_bytes())
    tamper(bad, 3)
    result = run("restore", str(bad), "--ledger", url, "--ledger-id", "main")
    assert result.exit_code == EXIT_INTEGRITY and "does not verify at entry 3" in result.output
    not_sqlite = ledger_file.with_name("junk.db")
    not_sqlite.write_bytes(b"not a database at all, just some bytes" * 100)
    result = run("restore", str(not_sqlite), "--ledger", url, "--ledger-id", "main")
    assert result.exit_code == EXIT_CONFIGURATION and "not an SQLite database" in result.output
    result = run("restore", str(good), "--ledger", url, "--ledger-id", "absent")
    assert result.exit_code == EXIT_CONFIGURATION and "holds no entries of ledger 'absent'" in result.output
    with create_ledger(id="main", storage=sqlite_storage(ledger_file)) as ledger:  # untouched by the failures
        assert (ledger.length(), ledger.latest_hash()) == state and ledger.verify().ok
    assert leftovers(ledger_file.parent) == []

    result = run("restore", str(good), "--json", "--ledger", url, "--ledger-id", "main")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["ledgers"]["main"]["entries"] == 20
    with create_ledger(id="main", storage=sqlite_storage(ledger_file)) as ledger:
        assert ledger.length() == 20 and ledger.verify().ok
        assert ledger.append(make_record(200), CTX).seq == 21  # and it goes on from the restored head
    with create_ledger(id="other", storage=sqlite_storage(ledger_file)) as other:
        assert other.length() == 3 and other.verify().ok
    assert leftovers(ledger_file.parent) == [] and good.exists()


def test_restore_into_a_new_file(ledger_file: Path) -> None:
    good = ledger_file.with_name("good.db")
    assert run("backup", str(good), "--ledger", f"sqlite:///{ledger_file}", "--ledger-id", "main").exit_code == 0
    fresh = ledger_file.with_name("fresh.db")
    result = run("restore", str(good), "--ledger", f"sqlite:///{fresh}", "--ledger-id", "main")
    assert result.exit_code == 0, result.output
    with create_ledger(id="main", storage=sqlite_storage(fresh)) as ledger:
        assert ledger.length() == 20 and ledger.verify().ok


@pytest.mark.parametrize("command", ["backup", "restore"])
@pytest.mark.parametrize(
    ("url", "says"),
    [("postgresql://nobody@127.0.0.1:1/nowhere", "pg_dump"), ("memory://", "nothing to")],
)
def test_storage_that_cannot_copy_itself_is_refused_with_what_to_do(
    tmp_path: Path, command: str, url: str, says: str
) -> None:
    src = tmp_path / "some.db"
    src.write_bytes(b"")
    result = run(command, str(src), "--ledger", url)
    assert result.exit_code == EXIT_CONFIGURATION, result.output  # never a connection attempt (that would be 9)
    assert says in result.output


@pytest.mark.slow
def test_a_restore_killed_midway_leaves_the_old_ledger_or_the_restored_one(tmp_path: Path) -> None:
    """SIGKILL while the backup is being written into the ledger file (its WAL growing): the file
    then holds the old ledger, verifying, never a mix."""
    target = tmp_path / "target.db"
    with create_ledger(id="main", storage=sqlite_storage(target)) as ledger:
        ledger.append_batch([make_record(i) for i in range(10)], CTX)
        old = (ledger.length(), ledger.latest_hash())
    big = tmp_path / "big.db"
    with create_ledger(id="main", storage=sqlite_storage(big, durability="normal")) as ledger:
        for start in range(0, 6000, 1000):
            ledger.append_batch(
                [Record(id=f"b{i}", stream="s", timestamp=1 + i, payload={"pad": "p" * 4000})
                 for i in range(start, start + 1000)],
                CTX,
            )
        new = (ledger.length(), ledger.latest_hash())
    backup_file = tmp_path / "backup.db"
    assert run("backup", str(backup_file), "--ledger", f"sqlite:///{big}", "--ledger-id", "main").exit_code == 0
    wal = target.with_name(target.name + "-wal")
    outcomes: list[str] = []
    for _ in range(3):
        base = wal.stat().st_size if wal.exists() else 0
        proc = subprocess.Popen(
            [sys.executable, "-m", "nucleus_core", "restore", str(backup_file), "--ledger", f"sqlite:///{target}",
             "--ledger-id", "main"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        while proc.poll() is None and (wal.stat().st_size if wal.exists() else 0) < base + 4_000_000:
            time.sleep(0.001)
        proc.kill()
        proc.wait()
        with create_ledger(id="main", storage=sqlite_storage(target)) as ledger:
            assert ledger.verify().ok
            state = (ledger.length(), ledger.latest_hash())
        assert state in (old, new)
        outcomes.append("old" if state == old else "new")
    for leftover in leftovers(tmp_path):  # a killed restore may leave its temporary copy behind
        (tmp_path / leftover).unlink()
    assert run("restore", str(backup_file), "--ledger", f"sqlite:///{target}", "--ledger-id", "main").exit_code == 0
    with create_ledger(id="main", storage=sqlite_storage(target)) as ledger:
        assert (ledger.length(), ledger.latest_hash()) == new and ledger.verify().ok


def test_backup_into_a_directory_it_cannot_write_is_a_storage_error(ledger_file: Path) -> None:
    folder = ledger_file.parent / "locked"
    folder.mkdir()
    if os.geteuid() == 0:  # root writes through modes: make the directory immutable instead
        chattr = shutil.which("chattr")
        if chattr is None or subprocess.run([chattr, "+i", str(folder)], capture_output=True).returncode:
            pytest.skip("running as root without chattr +i")
        undo = [chattr, "-i", str(folder)]
    else:
        folder.chmod(0o555)
        undo = ["chmod", "755", str(folder)]
    try:
        result = run("backup", str(folder / "copy.db"), "--ledger", f"sqlite:///{ledger_file}", "--ledger-id", "main")
    finally:
        subprocess.run(undo, check=True)
    assert result.exit_code == EXIT_STORAGE, result.output
    assert "failed" in result.output and "Traceback" not in result.output
    assert list(folder.iterdir()) == []


# Backup and restore work on the storage alone: no plugin of the ledger is loaded, none of their
# secrets is needed, and a restore needs nothing of the target file (review of issue 11, items 6-7).

ADMIN = "oid:test:user:root"
PEPPER = "backup-test-pepper-0123456789abcdefghij"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``nucleus ARGS`` in a real process, with no pepper (nor any NUCLEUS_ setting) in its environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUCLEUS_")}
    return subprocess.run([sys.executable, "-m", "nucleus_core", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def guarded_ledger(path: Path) -> tuple[str, int, str]:
    """A ledger that needs the UAL and the API key parser (with its pepper) to open: returns an
    API key, the length and the head."""
    settings = {"auth.api_key": {"pepper": PEPPER}}
    admin = make_context(ADMIN)
    with create_ledger(id="main", storage=sqlite_storage(path), plugins=["ual", "auth.api_key"],
                       admins=[ADMIN], settings=settings) as ledger:
        ledger.append_batch([make_record(i) for i in range(12)], admin)
        key, _ = ledger.auth.parser("auth.api_key").create_key(ADMIN, scopes=["read"])
        return key, ledger.length(), str(ledger.latest_hash())


def open_guarded(path: Path) -> Ledger:
    return create_ledger(id="main", storage=sqlite_storage(path), plugins=["ual", "auth.api_key"],
                         admins=[ADMIN], settings={"auth.api_key": {"pepper": PEPPER}})


def test_backup_needs_neither_the_ledgers_plugins_nor_their_secrets(tmp_path: Path) -> None:
    path = tmp_path / "guarded.db"
    key, length, head = guarded_ledger(path)
    dest = tmp_path / "b.db"
    done = cli("backup", str(dest), "--json", "--ledger", f"sqlite:///{path}", "--ledger-id", "main")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ledgers"]["main"] == {"entries": length, "head": head}
    # A configuration naming the plugins changes nothing: they are not loaded, no pepper is asked for.
    config = tmp_path / "nucleus.toml"
    config.write_text(f'[ledger]\nid = "main"\nstorage = "sqlite:///{path}"\n\n[plugins.ual]\n\n'
                      '[plugins."auth.api_key"]\npepper_env = "NUCLEUS_API_KEY_PEPPER"\n')
    dest2 = tmp_path / "b2.db"
    done = cli("backup", str(dest2), "--config", str(config), "--plugin", "ual")
    assert done.returncode == 0, done.stderr
    with open_guarded(dest2) as copy:
        assert (copy.length(), copy.latest_hash()) == (length, head) and copy.verify().ok
        assert copy.auth.authenticate(key).oid == ADMIN
    # Read-only: the ledger file is not written (no WAL mode switch, no schema work).
    before = path.read_bytes()
    url = f"sqlite:///{path}"
    assert cli("backup", str(tmp_path / "b3.db"), "--ledger", url, "--ledger-id", "main").returncode == 0
    assert path.read_bytes() == before


def _zero(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[100:4096] = bytes(4096 - 100)
    path.write_bytes(bytes(data))


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(20_000))


def _stale_wal(path: Path) -> None:
    _zero(path)
    path.with_name(path.name + "-wal").write_bytes(os.urandom(8192))  # a WAL that is not the backup's
    path.with_name(path.name + "-shm").write_bytes(os.urandom(32768))


def _missing(path: Path) -> None:
    path.unlink()


@pytest.mark.parametrize(
    "damage", [_zero, _garbage, _stale_wal, _missing], ids=["zeroed", "garbage", "stale-wal", "missing"]
)
def test_restore_repairs_a_damaged_file_without_the_ledgers_plugins(tmp_path: Path, damage: Any) -> None:
    path = tmp_path / "guarded.db"
    key, length, head = guarded_ledger(path)
    backup_file = tmp_path / "b.db"
    assert cli("backup", str(backup_file), "--ledger", f"sqlite:///{path}", "--ledger-id", "main").returncode == 0
    path.chmod(0o640)
    damage(path)
    if path.exists():
        with pytest.raises(Exception):  # noqa: B017 - the damage is real: the ledger cannot open
            open_guarded(path).close()
    done = cli("restore", str(backup_file), "--json", "--ledger", f"sqlite:///{path}", "--ledger-id", "main")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ledgers"]["main"] == {"entries": length, "head": head}
    if damage is not _missing:
        assert stat.S_IMODE(path.stat().st_mode) == 0o640  # the file keeps its permissions
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # nothing left aside
    with open_guarded(path) as ledger:
        assert (ledger.length(), ledger.latest_hash()) == (length, head) and ledger.verify().ok
        assert ledger.auth.authenticate(key).oid == ADMIN
        assert ledger.append(make_record(99), make_context(ADMIN)).seq == length + 1


def test_the_storage_api_restores_and_backs_up_without_opening(tmp_path: Path) -> None:
    path = tmp_path / "guarded.db"
    _, length, head = guarded_ledger(path)
    storage = sqlite_storage(path)  # never opened
    report = storage.backup(str(tmp_path / "b.db"), ledger_id="main").to_dict()
    assert report["ledgers"]["main"] == {"entries": length, "head": head}
    with pytest.raises(LedgerNotFoundError, match="no ledger 'nobody'"):
        storage.backup(str(tmp_path / "c.db"), ledger_id="nobody")
    with pytest.raises(ConfigurationError, match="ledger_id"):
        storage.backup(str(tmp_path / "c.db"))
    _zero(path)
    with pytest.raises(IntegrityError):
        storage.backup(str(tmp_path / "c.db"), ledger_id="main")
    assert not (tmp_path / "c.db").exists()
    restored = sqlite_storage(path).restore(str(tmp_path / "b.db"), ledger_id="main").to_dict()
    assert restored["ledgers"]["main"] == {"entries": length, "head": head}
    with open_guarded(path) as ledger:
        assert ledger.verify().ok and ledger.length() == length


def test_a_restore_that_fails_its_checks_leaves_a_damaged_target_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "guarded.db"
    guarded_ledger(path)
    backup_file = tmp_path / "b.db"
    assert cli("backup", str(backup_file), "--ledger", f"sqlite:///{path}", "--ledger-id", "main").returncode == 0
    tamper(backup_file, 3)
    _garbage(path)
    damaged = path.read_bytes()
    done = cli("restore", str(backup_file), "--ledger", f"sqlite:///{path}", "--ledger-id", "main")
    assert done.returncode == EXIT_INTEGRITY and "does not verify at entry 3" in done.stderr, done.stderr
    assert path.read_bytes() == damaged and leftovers(tmp_path) == []
