"""``nucleus keys create|list|revoke`` (from the api_key distribution, group ``nucleus.cli``) takes
the options, environment and exit codes of every ``nucleus`` command: in-process through the root
group with click's runner, and through the real ``nucleus`` console script."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from nucleus_token_api_key.cli import keys as keys_group

from nucleus_core import create_ledger
from nucleus_core.cli import (
    EXIT_CONFIGURATION,
    EXIT_INVALID,
    EXIT_NOT_FOUND,
    EXIT_PLUGIN,
    EXIT_USAGE,
    make_cli,
)
from nucleus_core.errors import TokenInvalidError

PEPPER = "cli-pepper-for-tests-only-0123456789abcdef"
ADMIN = "oid:acme:user:admin"
ALICE = "oid:acme:user:alice"


def _env(**extra: str) -> dict[str, str]:
    """The process environment without any NUCLEUS_* variable of the caller, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUCLEUS_")}
    return env | extra


@pytest.fixture
def url(tmp_path: Path) -> str:
    """An SQLite file holding the (empty) ledger ``books``: the keys commands never create one."""
    location = f"sqlite:///{tmp_path / 'books.db'}"
    create_ledger(id="books", storage=location).close()
    return location


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    """``nucleus keys ARGS`` through the root group; only the given NUCLEUS_* variables are set."""
    cleared: dict[str, str | None] = {k: None for k in os.environ if k.startswith("NUCLEUS_")}
    return CliRunner().invoke(make_cli(), ["keys", *args], env=cleared | (env or {}), catch_exceptions=False)


def opts(url: str, *extra: str) -> list[str]:
    return ["--ledger", url, "--ledger-id", "books", "--as", ADMIN, *extra]


def authenticate(url: str, key: str, ledger_id: str = "books") -> str:
    with create_ledger(
        id=ledger_id, storage=url, plugins=["auth.api_key"], settings={"auth.api_key": {"pepper": PEPPER}}
    ) as ledger:
        return ledger.auth.authenticate(key).source


def test_create_list_revoke_with_the_shared_options(url: str, tmp_path: Path) -> None:
    env = {"NUCLEUS_API_KEY_PEPPER": PEPPER}
    created = run("create", *opts(url, "--principal", ALICE, "--scope", "read", "--json"), env=env)
    assert created.exit_code == 0, created.output
    info = json.loads(created.stdout)
    key, key_id = info["key"], info["key_id"]
    assert info["principal"] == ALICE and info["scopes"] == ["read"] and info["status"] == "active"
    assert authenticate(url, key) == "auth.api_key"

    listed = run("list", *opts(url, "--json"), env=env)
    assert listed.exit_code == 0, listed.output
    assert [r["key_id"] for r in json.loads(listed.stdout)] == [key_id]
    text = run("list", *opts(url), env=env)
    assert text.exit_code == 0 and key_id in text.stdout and ALICE in text.stdout

    revoked = run("revoke", *opts(url, "--json"), key_id, env=env)
    assert revoked.exit_code == 0, revoked.output
    assert json.loads(revoked.stdout) == {"key_id": key_id, "revoked": True}
    with pytest.raises(TokenInvalidError, match="revoked"):
        authenticate(url, key)
    assert json.loads(run("list", *opts(url, "--json", "--active"), env=env).stdout) == []

    # The secret was printed by create only: no later output and no database row holds it.
    later = listed.output + text.output + revoked.output + run("list", *opts(url, "--json"), env=env).output
    assert key not in later and key.split("_")[2] not in later
    dump = "\n".join(sqlite3.connect(tmp_path / "books.db").iterdump())
    assert key_id in dump and key.split("_")[2] not in dump


def test_options_come_from_the_environment_like_every_command(url: str) -> None:
    env = {
        "NUCLEUS_API_KEY_PEPPER": PEPPER,
        "NUCLEUS_LEDGER": url,
        "NUCLEUS_LEDGER_ID": "books",
        "NUCLEUS_AS": ADMIN,
    }
    created = run("create", "--principal", ALICE, "--json", env=env)
    assert created.exit_code == 0, created.output
    key = json.loads(created.stdout)["key"]
    assert authenticate(url, key) == "auth.api_key"
    # Another ledger id in the same database sees none of the keys of "books".
    create_ledger(id="other", storage=env["NUCLEUS_LEDGER"]).close()
    other = run("list", "--json", env=env | {"NUCLEUS_LEDGER_ID": "other"})
    assert other.exit_code == 0 and json.loads(other.stdout) == []
    # NUCLEUS_PLUGINS / --plugin are honoured: a plugin that is not installed fails like elsewhere.
    missing = run("list", env=env | {"NUCLEUS_PLUGINS": "no-such-plugin"})
    assert missing.exit_code == EXIT_PLUGIN and "no-such-plugin" in missing.stderr
    flagged = run("list", "--plugin", "no-such-plugin", env=env)
    assert flagged.exit_code == EXIT_PLUGIN
    # Listing auth.api_key itself, or another parser, works.
    both = run(
        "list",
        "--json",
        "--plugin",
        "auth.api_key,auth.session",
        env=env | {"NUCLEUS_SESSION_SECRET": "cli-session-secret-for-tests-0123456789"},
    )
    assert both.exit_code == 0, both.output
    assert len(json.loads(both.stdout)) == 1


def test_exit_codes_are_those_of_every_command(url: str) -> None:
    env = {"NUCLEUS_API_KEY_PEPPER": PEPPER}
    no_requester = run("create", "--ledger", url, "--ledger-id", "books", "--principal", ALICE, env=env)
    assert no_requester.exit_code == EXIT_USAGE and "no requester" in no_requester.stderr
    bad_principal = run("create", *opts(url, "--principal", "alice"), env=env)
    assert bad_principal.exit_code == EXIT_INVALID and "principal" in bad_principal.stderr
    bad_scope = run("create", *opts(url, "--principal", ALICE, "--scope", "a b"), env=env)
    assert bad_scope.exit_code == EXIT_INVALID and "scopes" in bad_scope.stderr
    bad_id = run("revoke", *opts(url), "short", env=env)
    assert bad_id.exit_code == EXIT_INVALID and "key_id" in bad_id.stderr
    unknown = run("revoke", *opts(url, "--json"), "AAAAAAAAAAAA", env=env)
    assert unknown.exit_code == EXIT_NOT_FOUND
    assert json.loads(unknown.stderr) == {"error": {"code": "not_found", "message": "no active API key 'AAAAAAAAAAAA'"}}
    no_pepper = run("list", *opts(url, "--json"))
    assert no_pepper.exit_code == EXIT_CONFIGURATION
    assert "NUCLEUS_API_KEY_PEPPER" in json.loads(no_pepper.stderr)["error"]["message"]
    short = run("list", *opts(url, "--pepper-env", "MY_PEPPER"), env={"MY_PEPPER": "short"})
    assert short.exit_code == EXIT_CONFIGURATION and "short" not in short.stderr
    assert run("list", *opts(url, "--pepper-env", "MY_PEPPER"), env={"MY_PEPPER": PEPPER}).exit_code == 0


def test_the_group_maps_errors_to_exit_codes_on_its_own(url: str) -> None:
    """Used outside the root group (embedded in another click app), errors still get the codes."""
    result = CliRunner().invoke(keys_group, ["list", *opts(url)], env={"NUCLEUS_API_KEY_PEPPER": None})
    assert result.exit_code == EXIT_CONFIGURATION and "Traceback" not in result.output


def test_real_nucleus_command(tmp_path: Path, url: str) -> None:
    script = Path(sys.executable).with_name("nucleus")
    if not script.exists():
        pytest.skip("the nucleus console script is not installed next to this interpreter")
    env = _env(NUCLEUS_LEDGER=url, NUCLEUS_LEDGER_ID="books", NUCLEUS_AS=ADMIN, NUCLEUS_API_KEY_PEPPER=PEPPER)

    def nucleus(*args: str, command: tuple[str, ...] = (str(script),)) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*command, "keys", *args], env=env, capture_output=True, text=True, timeout=120)

    created = nucleus("create", "--principal", ALICE, "--role", "reader", "--name", "laptop")
    assert created.returncode == 0, created.stderr
    lines = dict(line.split(":", 1) for line in created.stdout.splitlines())
    key, key_id = lines["key"].strip(), lines["key id"].strip()
    assert "cannot be shown again" in created.stderr and key not in created.stderr
    assert authenticate(url, key) == "auth.api_key"

    listed = nucleus("list", "--json", command=(sys.executable, "-m", "nucleus_core"))
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert row["key_id"] == key_id and row["role"] == "reader" and row["name"] == "laptop"
    assert key not in listed.stdout and "secret" not in listed.stdout

    revoked = nucleus("revoke", key_id)
    assert revoked.returncode == 0 and revoked.stdout == f"revoked {key_id}\n"
    again = nucleus("revoke", key_id)
    assert again.returncode == EXIT_NOT_FOUND and "Traceback" not in again.stderr
    no_as = subprocess.run(
        [str(script), "keys", "list"],
        env={k: v for k, v in env.items() if k != "NUCLEUS_AS"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert no_as.returncode == EXIT_USAGE and "NUCLEUS_AS" in no_as.stderr
