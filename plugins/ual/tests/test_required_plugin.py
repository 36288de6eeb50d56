"""A UAL ledger never opens without the UAL: access control is not bypassed by leaving out --plugin."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from nucleus_core import MemoryStorage, PluginError, Record, RequestContext, create_ledger, open_ledger
from nucleus_core.cli import EXIT_PLUGIN, make_cli

ADMIN = "oid:test:user:admin"
ALICE = "oid:test:user:alice"
MALLORY = "oid:test:user:mallory"


def ctx(oid: str) -> RequestContext:
    return RequestContext(oid=oid, source="auth.service")


def run(*args: str) -> Result:
    return CliRunner().invoke(make_cli(), list(args), catch_exceptions=False)


def rows(path: Path) -> list[tuple[int, str, str]]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.execute("SELECT seq, stream, record_id FROM nucleus_entries ORDER BY seq"))
    finally:
        conn.close()


@pytest.fixture
def ual_ledger(tmp_path: Path) -> str:
    """A UAL ledger in SQLite with a grant, an entry only alice may read, and its _acl trail."""
    url = f"sqlite:///{tmp_path / 'acl.db'}"
    with create_ledger(id="main", storage=url, plugins=["ual"], admins=[ADMIN]) as ledger:
        ledger.append(Record(id="secret-1", stream="docs", payload={"text": "alice only"}, timestamp=1), ctx(ADMIN))
        grant = {"resource_kind": "stream:docs", "resource_id": "*", "principal_oid": ALICE, "scope": "read"}
        ledger.acl.grant([grant], ctx(ADMIN))
    return url


def test_query_as_mallory_without_the_ual_is_refused(tmp_path: Path, ual_ledger: str) -> None:
    before = rows(tmp_path / "acl.db")
    result = run("query", "--ledger", ual_ledger, "--ledger-id", "main", "--as", MALLORY, "--json")
    assert result.exit_code == EXIT_PLUGIN, result.output
    assert result.stdout == ""
    message = json.loads(result.stderr)["error"]["message"]
    assert "'ual'" in message and "--plugin ual" in message and "nucleus-ual" in message
    assert rows(tmp_path / "acl.db") == before


@pytest.mark.parametrize("command", [["get", "--id", "secret-1"], ["export"], ["verify"]])
def test_every_read_without_the_ual_is_refused(tmp_path: Path, ual_ledger: str, command: list[str]) -> None:
    args = [*command, "--ledger", ual_ledger, "--ledger-id", "main"]
    if command[0] != "verify":
        args += ["--as", MALLORY]
    result = run(*args)
    assert result.exit_code == EXIT_PLUGIN, result.output
    assert "secret" not in result.stdout and "--plugin ual" in result.stderr


def test_append_as_mallory_without_the_ual_is_refused_and_writes_nothing(tmp_path: Path, ual_ledger: str) -> None:
    before = rows(tmp_path / "acl.db")
    record = json.dumps({"id": "forged", "stream": "docs", "payload": {}})
    result = run("append", record, "--ledger", ual_ledger, "--ledger-id", "main", "--as", MALLORY)
    assert result.exit_code == EXIT_PLUGIN, result.output
    assert rows(tmp_path / "acl.db") == before


def test_with_the_ual_enabled_the_same_commands_apply_access_control(ual_ledger: str) -> None:
    opts = ["--ledger", ual_ledger, "--ledger-id", "main", "--plugin", "ual"]
    mallory = run("query", *opts, "--as", MALLORY, "--json")
    assert mallory.exit_code == 0 and json.loads(mallory.stdout)["entries"] == []
    alice = run("query", *opts, "--as", ALICE, "--stream", "docs", "--json")
    assert [e["record"]["id"] for e in json.loads(alice.stdout)["entries"]] == ["secret-1"]


def test_a_ual_ledger_without_any_grant_yet_is_protected(tmp_path: Path) -> None:
    """Admins only from configuration: the chain holds no _acl entry, yet the ledger needs the UAL."""
    path = tmp_path / "fresh.db"
    create_ledger(id="main", storage=f"sqlite:///{path}", plugins=["ual"], admins=[ADMIN]).close()
    before = rows(path)
    assert [stream for _, stream, _ in before] == ["_ledger"]
    record = json.dumps({"id": "forged", "stream": "docs", "payload": {}})
    result = run("append", record, "--ledger", f"sqlite:///{path}", "--ledger-id", "main", "--as", MALLORY)
    assert result.exit_code == EXIT_PLUGIN, result.output
    assert rows(path) == before
    with pytest.raises(PluginError, match="'ual'"):
        open_ledger(id="main", storage=f"sqlite:///{path}")


def test_a_ledger_without_the_record_is_protected_by_its_acl_stream() -> None:
    """Memory storage records no _ledger entry (nothing outlives the process), like ledgers written
    before the record existed: the _acl entries in the chain are enough to require the UAL."""
    storage = MemoryStorage()
    with create_ledger(id="main", storage=storage, plugins=["ual"], admins=[ADMIN]) as ledger:
        grant = {"resource_kind": "stream:docs", "resource_id": "*", "principal_oid": ALICE, "scope": "read"}
        ledger.acl.grant([grant], ctx(ADMIN))
        assert [e.record.stream for e in ledger.iter_entries(ctx(ADMIN))] == ["_acl"]
    with pytest.raises(PluginError, match="holds entries of") as refused:
        create_ledger(id="main", storage=storage)
    assert "--plugin ual" in str(refused.value) and storage.count() == 1
