"""Reading never creates: only ``init`` / ``create_ledger`` make a file or a ledger, and a ledger that
fails to open leaves nothing behind that its open created (SQLite)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from nucleus_storage_sqlite import sqlite_storage

from nucleus_core import (
    ConfigurationError,
    LedgerNotFoundError,
    Module,
    ModuleSpec,
    NucleusError,
    Record,
    RequestContext,
    create_ledger,
    hookimpl,
    open_ledger,
)
from nucleus_core.cli import EXIT_NOT_FOUND, make_cli

ALICE = "oid:test:user:alice"
CTX = RequestContext(oid=ALICE, source="auth.service")
V1_FIXTURE = Path(__file__).parent / "fixtures" / "ledger_v1.db"


def run(*args: str) -> Result:
    return CliRunner().invoke(make_cli(), list(args), catch_exceptions=False)


def tables(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    conn.close()
    return names


def dump(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


@pytest.mark.parametrize(
    "command",
    [
        ["verify"],
        ["query", "--as", ALICE],
        ["get", "--id", "x", "--as", ALICE],
        ["export", "--as", ALICE],
        ["append", '{"id": "a", "stream": "s", "payload": {}}', "--as", ALICE],
    ],
)
def test_commands_never_create_a_missing_file(tmp_path: Path, command: list[str]) -> None:
    typo = tmp_path / "typo.db"
    result = run(*command, "--ledger", f"sqlite:///{typo}")
    assert result.exit_code == EXIT_NOT_FOUND, result.output
    assert "no ledger 'default'" in result.stderr and "does not exist" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["verify"], ["query", "--as", ALICE], ["export", "--as", ALICE]])
def test_a_file_without_the_named_ledger_is_an_error_listing_its_ledgers(tmp_path: Path, command: list[str]) -> None:
    path = tmp_path / "ledger.db"
    url = f"sqlite:///{path}"
    for ledger_id in ("main", "books"):
        with create_ledger(id=ledger_id, storage=url) as ledger:
            ledger.append(Record(id=f"{ledger_id}-1", stream="s", payload={}, timestamp=1), CTX)
    before = dump(path)
    result = run(*command, "--ledger", url)  # the default ledger id, "default", is not in the file
    assert result.exit_code == EXIT_NOT_FOUND, result.output
    assert "no ledger 'default'" in result.stderr and "'books', 'main'" in result.stderr
    assert dump(path) == before
    assert run("verify", "--ledger", url, "--ledger-id", "main").exit_code == 0


def test_init_creates_and_then_every_command_opens(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    assert run("init", "--ledger", url).exit_code == 0
    verified = run("verify", "--ledger", url)
    assert verified.exit_code == 0 and "ok: 0 entries verified" in verified.stdout
    assert run("append", '{"id": "a", "stream": "s", "payload": {}}', "--ledger", url, "--as", ALICE).exit_code == 0


def test_open_ledger_never_creates_and_create_ledger_still_does(tmp_path: Path) -> None:
    path = tmp_path / "api.db"
    with pytest.raises(LedgerNotFoundError) as missing:
        open_ledger(id="main", storage=f"sqlite:///{path}")
    assert missing.value.ledger_ids == () and not path.exists()
    with create_ledger(id="main", storage=f"sqlite:///{path}") as ledger:
        assert ledger.length() == 0
    with open_ledger(id="main", storage=sqlite_storage(path)) as again:  # empty, but it exists
        assert again.length() == 0
    with pytest.raises(LedgerNotFoundError) as other:
        open_ledger(id="other", storage=f"sqlite:///{path}")
    assert other.value.ledger_ids == ("main",) and "'main'" in str(other.value)


def test_an_empty_sqlite_file_holds_no_ledger(tmp_path: Path) -> None:
    path = tmp_path / "blank.db"
    sqlite3.connect(path).close()  # a valid, table-less SQLite file
    with pytest.raises(LedgerNotFoundError, match="it holds no ledger"):
        open_ledger(id="main", storage=f"sqlite:///{path}")
    assert path.stat().st_size == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["blank.db"]


def test_a_file_written_before_the_ledgers_table_still_opens_its_ledgers(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    shutil.copyfile(V1_FIXTURE, path)
    with pytest.raises(LedgerNotFoundError) as missing:
        open_ledger(id="default", storage=f"sqlite:///{path}")
    assert missing.value.ledger_ids == ("fixture-a", "fixture-b")
    with open_ledger(id="fixture-a", storage=f"sqlite:///{path}") as ledger:
        assert ledger.length() == 30


def test_a_ledger_that_fails_to_open_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's first try: create_ledger with auth.api_key but no pepper fails; no nucleus.db stays."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match="pepper"):
        create_ledger(id="main", plugins=["auth.api_key"])
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ConfigurationError, match="pepper"):  # the UAL's tables were made first
        create_ledger(id="main", plugins=["ual", "auth.api_key"])
    assert list(tmp_path.iterdir()) == []


def test_a_failed_open_in_an_existing_file_removes_only_what_it_created(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    url = f"sqlite:///{path}"
    with create_ledger(id="main", storage=url) as ledger:
        ledger.append(Record(id="kept", stream="s", payload={}, timestamp=1), CTX)
    before = dump(path)
    with pytest.raises(ConfigurationError, match="pepper"):  # after the UAL created its tables
        create_ledger(id="second", storage=url, plugins=["ual", "auth.api_key"])
    assert dump(path) == before  # no row for "second", no API-key tables
    with pytest.raises(LedgerNotFoundError):
        open_ledger(id="second", storage=url)


class FailingModule(Module):
    id = "failing"
    streams = ("failing",)

    def init(self, ctx: Any) -> None:
        raise RuntimeError("this module cannot start")


class FailingPlugin:
    @hookimpl
    def nucleus_register_modules(self) -> list[ModuleSpec]:
        return [ModuleSpec(id="failing", factory=lambda _ctx: FailingModule())]


class FailingOpenedHook:
    @hookimpl
    def nucleus_ledger_opened(self, ledger: Any) -> None:
        raise RuntimeError("refused after opening")


@pytest.mark.parametrize("plugin", [FailingPlugin(), FailingOpenedHook()], ids=["module-init", "opened-hook"])
def test_a_failure_after_plugins_made_their_tables_leaves_nothing(tmp_path: Path, plugin: object) -> None:
    """The UAL creates its tables when it binds to the ledger; a module failing to start, or a plugin
    failing in nucleus_ledger_opened, comes later: the file goes, tables and all."""
    path = tmp_path / "late.db"
    with pytest.raises((NucleusError, RuntimeError)):  # a module's failure is a PluginError; the hook's raw
        create_ledger(id="main", storage=f"sqlite:///{path}", plugins=["ual", plugin])
    assert list(tmp_path.iterdir()) == []
    with create_ledger(id="other", storage=f"sqlite:///{path}") as ledger:
        ledger.append(Record(id="kept", stream="s", payload={}, timestamp=1), CTX)
    before = dump(path)
    with pytest.raises((NucleusError, RuntimeError)):  # a module's failure is a PluginError; the hook's raw
        create_ledger(id="main", storage=f"sqlite:///{path}", plugins=["ual", plugin])
    assert dump(path) == before
