"""Configuration: URLs, the embedded default, bad paths, durability, the data directory (SECURITY-TESTS 33)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

import pytest
from nucleus_storage_sqlite import SqliteStorage, parse_sqlite_url, sqlite_storage, storage_from_url

from nucleus_core import ConfigurationError, NucleusError, StorageError, create_ledger
from nucleus_core.testing import make_context, make_record

CTX = make_context()


# URLs and the entry point ----------------------------------------------------------------------
def test_relative_url_through_the_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    with create_ledger(id="rel", storage="sqlite:///data/rel.db") as ledger:
        ledger.append(make_record(1), CTX)
        assert ledger.has_storage()
        assert isinstance(ledger.storage, SqliteStorage)
    assert (tmp_path / "data" / "rel.db").is_file()


def test_absolute_url_and_options(tmp_path: Path) -> None:
    path = tmp_path / "abs.db"
    url = f"sqlite:///{path}?durability=normal"
    assert url.startswith("sqlite:////")
    with create_ledger(id="abs", storage=url) as ledger:
        assert ledger.storage.database.execute_sql("pragma synchronous").fetchone()[0] == 1  # NORMAL
        assert ledger.storage.database.execute_sql("pragma journal_mode").fetchone()[0] == "wal"
        ledger.append(make_record(1), CTX)
    with create_ledger(id="abs", storage=f"sqlite:///{path}", storage_options={"busy_timeout": 5}) as ledger:
        assert ledger.storage.database.execute_sql("pragma synchronous").fetchone()[0] == 2  # FULL, the default
        assert ledger.storage.busy_timeout == 5 and ledger.length() == 1


def test_data_dir_comes_from_options_never_from_the_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="data_dir"):
        storage_from_url(f"sqlite:///{tmp_path}/x.db?data_dir=/", {})
    backend = storage_from_url("sqlite:///x.db", {"data_dir": str(tmp_path)})
    assert backend.path == tmp_path.resolve() / "x.db"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://host/x.db", "names a host"),
        ("sqlite://", "no file path"),
        ("sqlite:///", "no file path"),
        ("sqlite:///x.db?mode=ro", "unknown"),
        ("sqlite:///x.db#frag", "fragment"),
        ("sqlite:///x.db?durability=fast", "durability"),
        ("sqlite:///x.db?busy_timeout=soon", "busy_timeout"),
        ("sqlite:///:memory:", "not accepted"),
        ("sqlite:///file:x.db", "not accepted"),
        ("sqlite:///FILE:/etc/passwd", "not accepted"),
        ("sqlite:///x%00y.db", "NUL"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        storage_from_url(url, {})


def test_url_parsing() -> None:
    assert parse_sqlite_url("sqlite:///rel/a.db") == ("rel/a.db", {})
    assert parse_sqlite_url("sqlite:////abs/a.db") == ("/abs/a.db", {})
    assert parse_sqlite_url("sqlite:///a%20b.db?durability=full") == ("a b.db", {"durability": "full"})


def test_conflicting_and_unknown_options(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="given twice"):
        storage_from_url("sqlite:///x.db?durability=normal", {"durability": "full"})
    with pytest.raises(ConfigurationError, match="unknown"):
        storage_from_url("sqlite:///x.db", {"journal": "off"})
    with pytest.raises(ConfigurationError, match="durability"):
        sqlite_storage(tmp_path / "x.db", durability="fast")  # type: ignore[arg-type]


# the embedded default ---------------------------------------------------------------------------
def test_embedded_default_is_nucleus_db_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with create_ledger(id="default", plugins=[]) as ledger:
        assert isinstance(ledger.storage, SqliteStorage)
        assert ledger.has_storage()
        first = ledger.append(make_record(1), CTX)
    assert (tmp_path / "nucleus.db").is_file()
    with create_ledger(id="default", plugins=[]) as again:  # persists across restarts
        assert again.get_by_id(first.record.id, CTX) == first


# bad configuration -----------------------------------------------------------------------------
def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        create_ledger(id="x", storage=sqlite_storage(tmp_path / "nope" / "x.db"))
    assert not (tmp_path / "nope").exists()


def test_path_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="is a directory"):
        create_ledger(id="x", storage=sqlite_storage(tmp_path))


NOT_SQLITE = [b"hello, not a database\n" * 10, b"SQLite format 2\x00" + b"\x00" * 200, b"\x00" * 4096]


@pytest.mark.parametrize("content", NOT_SQLITE)
def test_file_that_is_not_sqlite(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(ConfigurationError, match="not an SQLite database"):
        create_ledger(id="x", storage=sqlite_storage(path))
    assert path.read_bytes() == content  # untouched


def test_corrupt_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    with create_ledger(id="x", storage=sqlite_storage(path)) as ledger:
        ledger.append_batch([make_record(i) for i in range(50)], CTX)
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # wreck the schema page behind the header
    path.write_bytes(bytes(data))
    with pytest.raises(StorageError):
        create_ledger(id="x", storage=sqlite_storage(path))


def test_empty_file_becomes_a_ledger(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    with create_ledger(id="x", storage=sqlite_storage(path)) as ledger:
        assert ledger.append(make_record(1), CTX).seq == 1


def test_other_applications_tables_are_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("create table app_users (name text)")
        db.execute("insert into app_users values ('ann')")
        db.commit()
    with create_ledger(id="x", storage=sqlite_storage(path)) as ledger:
        ledger.append(make_record(1), CTX)
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("select name from app_users").fetchall() == [("ann",)]


# the data directory (SECURITY-TESTS 33) --------------------------------------------------------
@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    (d / "sub").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (d / "escape").symlink_to(outside, target_is_directory=True)
    (d / "link.db").symlink_to(outside / "target.db")
    return d


@pytest.mark.parametrize(
    "path",
    [
        "../outside/x.db",
        "sub/../../outside/x.db",
        "sub/../x.db",  # '..' is refused even when it would stay inside
        "escape/x.db",
        "link.db",
        "/etc/x.db",
        "file:x.db",
        "file:///etc/passwd",
        "file:x.db?mode=memory",
        ":memory:",
    ],
)
def test_data_dir_refuses_escapes(data_dir: Path, path: str) -> None:
    with pytest.raises(ConfigurationError):
        sqlite_storage(path, data_dir=data_dir)
    with pytest.raises(ConfigurationError):
        create_ledger(id="x", storage=f"sqlite:///{path}", storage_options={"data_dir": str(data_dir)})
    assert not (data_dir.parent / "outside" / "x.db").exists()
    assert not (data_dir.parent / "outside" / "target.db").exists()


def test_data_dir_accepts_paths_inside(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths are taken inside data_dir, not the working directory
    with create_ledger(id="x", storage="sqlite:///sub/in.db", storage_options={"data_dir": str(data_dir)}) as ledger:
        ledger.append(make_record(1), CTX)
    assert (data_dir / "sub" / "in.db").is_file()
    inside_abs = sqlite_storage(data_dir / "sub" / "abs.db", data_dir=data_dir)
    assert inside_abs.path == (data_dir / "sub" / "abs.db").resolve()
    with pytest.raises(ConfigurationError, match="data_dir"):
        sqlite_storage("x.db", data_dir=data_dir / "missing")


def test_errors_are_nucleus_errors_and_name_the_path(tmp_path: Path) -> None:
    target = tmp_path / "nope" / "x.db"
    with pytest.raises(NucleusError) as info:
        create_ledger(id="x", storage=f"sqlite:///{target}")
    assert str(target.parent) in str(info.value)
    assert os.fspath(target) in str(info.value)
