"""The ``nucleus`` command line: in-process through click's runner, and as real subprocesses.

Commands that must persist across invocations use the embedded SQLite backend
(``nucleus-storage-sqlite``, storage_backends/sqlite); those tests skip while it is not installed.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from nucleus_core import errors
from nucleus_core.cli import (
    EXIT_CONFIGURATION,
    EXIT_CONFLICT,
    EXIT_DENIED,
    EXIT_FAILURE,
    EXIT_INTEGRITY,
    EXIT_INVALID,
    EXIT_NOT_FOUND,
    EXIT_PLUGIN,
    EXIT_STORAGE,
    EXIT_USAGE,
    exit_code_for,
    make_cli,
)

ALICE = "oid:test:user:alice"
HAS_SQLITE = "sqlite" in {ep.name for ep in md.entry_points(group="nucleus")}
needs_sqlite = pytest.mark.skipif(not HAS_SQLITE, reason="needs nucleus-storage-sqlite (storage_backends/sqlite)")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("NUCLEUS_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def db(tmp_path: Path) -> str:
    """An SQLite ledger made by ``nucleus init`` (the only command that creates one)."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    assert run("init", "--ledger", url).exit_code == 0
    return url


def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(make_cli(), list(args), input=input, env=env, catch_exceptions=False)


def record(i: int, **extra: Any) -> str:
    return json.dumps(
        {"id": f"r{i}", "stream": "events", "timestamp": 1_700_000_000_000 + i, "payload": {"n": i}, **extra}
    )


def entries_in(url: str) -> list[dict[str, Any]]:
    out = run("export", "--ledger", url, "--as", ALICE)
    assert out.exit_code == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


# requester -------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", [["append", record(1)], ["get", "--id", "r1"], ["query"], ["export"]])
@pytest.mark.parametrize("as_oid", [None, "", "   "])
def test_reads_and_writes_refuse_without_requester(command: list[str], as_oid: str | None, tmp_path: Path) -> None:
    args = [*command, "--ledger", "memory://"] + (["--as", as_oid] if as_oid is not None else [])
    result = run(*args)
    assert result.exit_code == EXIT_USAGE
    assert "no requester: pass --as OID or set NUCLEUS_AS" in result.stderr
    assert "Traceback" not in result.output


def test_malformed_requester_is_a_usage_error() -> None:
    result = run("query", "--ledger", "memory://", "--as", "alice")
    assert result.exit_code == EXIT_USAGE and "--as: oid:" in result.stderr


@needs_sqlite
def test_refused_requester_touches_no_storage(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    assert run("append", record(1), "--ledger", db).exit_code == EXIT_USAGE
    assert not (tmp_path / "ledger.db").exists()


def test_requester_from_environment() -> None:
    result = run("append", record(1), "--ledger", "memory://", "--json", env={"NUCLEUS_AS": ALICE})
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["seq"] == 1


# round trip on SQLite --------------------------------------------------------------------------
@needs_sqlite
def test_init_append_get_query_export_verify(db: str) -> None:
    init = run("init", "--ledger", db, "--json")
    assert init.exit_code == 0, init.stderr
    assert json.loads(init.stdout) | {"storage": None} == {
        "ledger_id": "default",
        "storage": None,
        "persistent": True,
        "entries": 0,
        "head": None,
        "plugins": [],
    }
    first = run("append", record(1), "--ledger", db, "--as", ALICE, "--json")
    assert first.exit_code == 0, first.stderr
    entry = json.loads(first.stdout)
    assert entry["seq"] == 1 and entry["record"]["id"] == "r1" and len(entry["hash"]) == 64

    stdin = run("append", "--ledger", db, "--as", ALICE, input=record(2))
    assert stdin.exit_code == 0 and stdin.stdout.startswith("appended seq 2 ")

    by_hash = run("get", entry["hash"], "--ledger", db, "--as", ALICE, "--json")
    assert json.loads(by_hash.stdout) == entry
    by_id = run("get", "--id", "r2", "--ledger", db, "--as", ALICE, "--json")
    assert json.loads(by_id.stdout)["record"]["payload"] == {"n": 2}
    missing = run("get", "--id", "nope", "--ledger", db, "--as", ALICE)
    assert missing.exit_code == EXIT_NOT_FOUND and "no entry with record id 'nope'" in missing.stderr

    exported = entries_in(db)
    assert [e["seq"] for e in exported] == [1, 2] and exported[0] == entry
    assert exported[1]["prev_hash"] == entry["hash"]

    verify = run("verify", "--ledger", db)
    assert verify.exit_code == 0 and verify.stdout.startswith("ok: 2 entries verified")
    report = json.loads(run("verify", "--ledger", db, "--json").stdout)
    assert report["ok"] is True and report["entries_checked"] == 2 and report["head_hash"] == exported[1]["hash"]


@needs_sqlite
def test_ledger_and_id_from_environment(tmp_path: Path) -> None:
    env = {"NUCLEUS_LEDGER": f"sqlite:///{tmp_path / 'env.db'}", "NUCLEUS_LEDGER_ID": "books", "NUCLEUS_AS": ALICE}
    assert run("init", env=env).exit_code == 0
    assert run("append", record(1), env=env).exit_code == 0
    assert (tmp_path / "env.db").exists()
    other_id = run("query", "--json", env={**env, "NUCLEUS_LEDGER_ID": "other"})
    assert other_id.exit_code == EXIT_NOT_FOUND and "'books'" in other_id.stderr
    assert len(json.loads(run("query", "--json", env=env).stdout)["entries"]) == 1


@needs_sqlite
def test_default_ledger_is_sqlite_in_working_directory(tmp_path: Path) -> None:
    assert run("init").exit_code == 0
    assert (tmp_path / "nucleus.db").exists()


@needs_sqlite
def test_query_filters_and_cursor(db: str) -> None:
    lines = [record(i) for i in range(1, 8)] + [
        json.dumps({"id": "o1", "stream": "other", "timestamp": 1_700_000_000_004, "payload": []})
    ]
    batch = Path("batch.jsonl")
    batch.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert run("append", "--batch", str(batch), "--ledger", db, "--as", ALICE).exit_code == 0

    def ids(*args: str) -> tuple[list[str], str | None]:
        out = run("query", "--ledger", db, "--as", ALICE, "--json", *args)
        assert out.exit_code == 0, out.stderr
        data = json.loads(out.stdout)
        return [e["record"]["id"] for e in data["entries"]], data["next_cursor"]

    page1, cursor = ids("--stream", "events", "--limit", "3")
    assert page1 == ["r1", "r2", "r3"] and cursor is not None
    page2, cursor2 = ids("--stream", "events", "--limit", "3", "--cursor", cursor)
    assert page2 == ["r4", "r5", "r6"]
    assert ids("--stream", "events", "--limit", "3", "--cursor", cursor2 or "") == (["r7"], None)
    assert ids("--id", "o1", "--id", "r2")[0] == ["r2", "o1"]
    assert ids("--since", "1700000000003", "--until", "1700000000005")[0] == ["r3", "r4", "o1"]
    assert ids("--since", "2023-11-14T22:13:20.005Z")[0] == ["r5", "r6", "r7"]
    human = run("query", "--ledger", db, "--as", ALICE, "--stream", "other")
    assert human.stdout.split()[-2:] == ["other", "o1"]
    bad = run("query", "--ledger", db, "--as", ALICE, "--cursor", "' OR 1=1 --")
    assert bad.exit_code == EXIT_INVALID and "cursor" in bad.stderr


@needs_sqlite
def test_batch_is_all_or_nothing(db: str) -> None:
    assert run("append", record(1), "--ledger", db, "--as", ALICE).exit_code == 0
    batch = Path("b.jsonl")
    batch.write_text(f"{record(2)}\n{record(3)}\n{json.dumps({'id': 'x', 'stream': 'S!', 'payload': {}})}\n")
    bad_line = run("append", "--batch", str(batch), "--ledger", db, "--as", ALICE)
    assert bad_line.exit_code == EXIT_INVALID and "line 3: stream:" in bad_line.stderr
    batch.write_text(f"{record(2)}\n{record(1)}\n")  # r1 exists: nothing of the batch may land
    dup = run("append", "--batch", str(batch), "--ledger", db, "--as", ALICE, "--json")
    assert dup.exit_code == EXIT_CONFLICT
    assert json.loads(dup.stderr)["error"]["code"] == "duplicate_record"
    assert [e["record"]["id"] for e in entries_in(db)] == ["r1"]
    batch.write_text("\n\n")
    assert run("append", "--batch", str(batch), "--ledger", db, "--as", ALICE).exit_code == EXIT_INVALID


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "record: not JSON"),
        ('{"id": "a", "stream": "s", "payload": {"x": NaN}}', "payload"),
        ('{"id": "", "stream": "s", "payload": {}}', "id: must not be empty"),
        ('{"id": "a", "stream": "s", "payload": {}, "extra": 1}', "unknown field(s) ['extra']"),
        ('{"id": "a", "stream": "s", "payload": {"n": 9007199254740992}}', "payload"),
        ('["not", "a", "record"]', "a record must be a JSON object"),
    ],
)
def test_bad_records_are_refused_with_the_field(text: str, message: str) -> None:
    result = run("append", text, "--ledger", "memory://", "--as", ALICE)
    assert result.exit_code == EXIT_INVALID, result.output
    assert message in result.stderr and "Traceback" not in result.output


@needs_sqlite
def test_verify_names_first_bad_seq_of_a_tampered_ledger(tmp_path: Path, db: str) -> None:
    for i in range(1, 5):
        assert run("append", record(i), "--ledger", db, "--as", ALICE).exit_code == 0
    with sqlite3.connect(tmp_path / "ledger.db") as conn:
        row = conn.execute("SELECT canonical FROM nucleus_entries WHERE seq = 3").fetchone()
        conn.execute(
            "UPDATE nucleus_entries SET canonical = ? WHERE seq = 3", (bytes(row[0]).replace(b'"n":3', b'"n":9'),)
        )
    conn.close()
    result = run("verify", "--ledger", db)
    assert result.exit_code == EXIT_INTEGRITY
    assert "does not verify: first bad seq 3" in result.stderr
    as_json = run("verify", "--ledger", db, "--json")
    assert as_json.exit_code == EXIT_INTEGRITY
    report = json.loads(as_json.stdout)
    assert (report["ok"], report["first_bad_seq"], report["entries_checked"]) == (False, 3, 2)
    # Opening for reads or writes verifies first and refuses, naming the seq.
    refused = run("query", "--ledger", db, "--as", ALICE)
    assert refused.exit_code == EXIT_INTEGRITY and "entry 3" in refused.stderr
    assert run("query", "--ledger", db, "--as", ALICE, "--no-verify").exit_code == 0


def test_missing_storage_plugin_is_a_configuration_error() -> None:
    result = run("init", "--ledger", "nosuchscheme://x", "--json")
    assert result.exit_code == EXIT_CONFIGURATION
    assert "nosuchscheme://" in json.loads(result.stderr)["error"]["message"]


def test_listed_plugin_missing_is_a_plugin_error() -> None:
    result = run("init", "--ledger", "memory://", "--plugin", "no-such-plugin")
    assert result.exit_code == EXIT_PLUGIN and "plugin 'no-such-plugin'" in result.stderr
    via_env = run("init", "--ledger", "memory://", env={"NUCLEUS_PLUGINS": " ,no-such-plugin"})
    assert via_env.exit_code == EXIT_PLUGIN and "plugin 'no-such-plugin'" in via_env.stderr


def test_get_needs_exactly_one_of_hash_or_id() -> None:
    assert run("get", "--ledger", "memory://", "--as", ALICE).exit_code == EXIT_USAGE
    bad_hash = run("get", "ABC", "--ledger", "memory://", "--as", ALICE)
    assert bad_hash.exit_code == EXIT_INVALID and "hash: must be 64 lowercase hex" in bad_hash.stderr


def test_exit_codes_are_distinct_per_error_kind() -> None:
    cases = {
        errors.MissingRequesterError("x"): EXIT_USAGE,
        errors.TokenInvalidError("x"): EXIT_DENIED,
        errors.AccessDeniedError("x"): EXIT_DENIED,
        errors.IntegrityError("x", seq=1): EXIT_INTEGRITY,
        errors.DuplicateRecordError("x"): EXIT_CONFLICT,
        errors.PluginError("x", plugin_name="p"): EXIT_PLUGIN,
        errors.ConfigurationError("x"): EXIT_CONFIGURATION,
        errors.QueryError("x"): EXIT_INVALID,
        errors.RecordRejectedError("x", module_id="m"): EXIT_INVALID,
        errors.StorageUnavailableError("x"): EXIT_STORAGE,
        errors.LedgerClosedError("x"): EXIT_FAILURE,
    }
    assert {type(e).__name__: exit_code_for(e) for e in cases} == {type(e).__name__: c for e, c in cases.items()}
    assert len({EXIT_USAGE, EXIT_DENIED, EXIT_INTEGRITY, EXIT_CONFLICT, EXIT_PLUGIN, EXIT_CONFIGURATION}) == 6


# real processes --------------------------------------------------------------------------------
def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUCLEUS_")}
    return env | extra


@needs_sqlite
def test_console_script_and_module_share_one_ledger(tmp_path: Path, db: str) -> None:
    script = Path(sys.executable).with_name("nucleus")
    if not script.exists():
        pytest.skip("the nucleus console script is not installed next to this interpreter")
    env = _env(NUCLEUS_LEDGER=db, NUCLEUS_AS=ALICE)
    one = subprocess.run([str(script), "append", record(1)], env=env, capture_output=True, text=True, timeout=120)
    assert one.returncode == 0, one.stderr
    two = subprocess.run(
        [sys.executable, "-m", "nucleus_core", "append", "--json"],
        input=record(2),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert two.returncode == 0, two.stderr
    assert json.loads(two.stdout)["prev_hash"] == one.stdout.split()[3]
    dup = subprocess.run(
        [sys.executable, "-m", "nucleus_core", "append", record(1)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dup.returncode == EXIT_CONFLICT
    assert dup.stderr == "Error: record id 'r1' already exists in this ledger\n"


def test_subprocess_error_has_no_traceback() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "nucleus_core", "query", "--ledger", "memory://"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == EXIT_USAGE
    assert "Traceback" not in out.stderr and "no requester" in out.stderr
