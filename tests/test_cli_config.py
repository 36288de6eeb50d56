"""Every ``nucleus`` command takes ``--config FILE`` / ``NUCLEUS_CONFIG``: the TOML of ``nucleus serve``
(its ``[ledger]`` and ``[plugins.NAME]`` tables), with flags on top."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from nucleus_core import create_ledger
from nucleus_core.cli import EXIT_CONFIGURATION, EXIT_DENIED, EXIT_NOT_FOUND, make_cli

pytest.importorskip("nucleus_storage_sqlite")
pytest.importorskip("nucleus_token_api_key")
pytest.importorskip("nucleus_ual")

ADMIN = "oid:test:user:root"
MALLORY = "oid:test:user:mallory"
PEPPER = "a-test-pepper-of-more-than-32-characters!"


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(make_cli(), list(args), env=env, catch_exceptions=False)


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def record(i: int, stream: str = "docs") -> str:
    return json.dumps({"id": f"r{i}", "stream": stream, "timestamp": 1_700_000_000_000 + i, "payload": {"n": i}})


@pytest.fixture
def api_key_ledger(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    settings = {"auth.api_key": {"pepper": PEPPER}}
    create_ledger(id="main", storage=url, plugins=["auth.api_key"], settings=settings).close()
    return url


def test_verify_takes_plugin_settings_from_the_config_file(tmp_path: Path, api_key_ledger: str) -> None:
    config = write(
        tmp_path / "nucleus.toml",
        f'[ledger]\nid = "main"\nstorage = "{api_key_ledger}"\n\n'
        '[plugins."auth.api_key"]\npepper_env = "TEST_PEPPER"\n\n'
        '[server]\nport = 9999\n',  # the server's section is the server's: accepted, not read
    )
    without = run("verify", "--ledger", api_key_ledger, "--ledger-id", "main", "--plugin", "auth.api_key")
    assert without.exit_code == EXIT_CONFIGURATION and "pepper" in without.stderr
    result = run("verify", "--config", config, env={"TEST_PEPPER": PEPPER})
    assert result.exit_code == 0, result.output
    assert "ok: 1 entries verified" in result.stdout  # the _ledger record of its plugins
    from_env = run("verify", env={"NUCLEUS_CONFIG": config, "TEST_PEPPER": PEPPER})
    assert from_env.exit_code == 0, from_env.output


def test_keys_list_uses_the_files_pepper(tmp_path: Path, api_key_ledger: str) -> None:
    config = write(
        tmp_path / "c.toml",
        f'[ledger]\nid = "main"\nstorage = "{api_key_ledger}"\n[plugins."auth.api_key"]\npepper = "{PEPPER}"\n',
    )
    result = run("keys", "list", "--config", config, "--as", ADMIN, "--json", env={"NUCLEUS_API_KEY_PEPPER": ""})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []


def test_ual_admins_come_from_the_config_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'acl.db'}"
    config = write(
        tmp_path / "acl.toml", f'[ledger]\nid = "acl"\nstorage = "{url}"\nadmins = ["{ADMIN}"]\n[plugins.ual]\n'
    )
    assert run("init", "--config", config).exit_code == 0
    appended = run("append", record(1), "--config", config, "--as", ADMIN)
    assert appended.exit_code == 0, appended.output
    denied = run("append", record(2), "--config", config, "--as", MALLORY)
    assert denied.exit_code == EXIT_DENIED, denied.output
    seen = run("query", "--config", config, "--as", ADMIN, "--stream", "docs", "--json")
    assert [e["record"]["id"] for e in json.loads(seen.stdout)["entries"]] == ["r1"]
    hidden = run("query", "--config", config, "--as", MALLORY, "--json")
    assert json.loads(hidden.stdout)["entries"] == []


def test_flags_override_the_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'two.db'}"
    create_ledger(id="one", storage=url).close()
    config = write(tmp_path / "c.toml", f'[ledger]\nid = "one"\nstorage = "{url}"\n')
    assert run("verify", "--config", config).exit_code == 0
    other = run("verify", "--config", config, "--ledger-id", "two")
    assert other.exit_code == EXIT_NOT_FOUND and "'one'" in other.stderr
    elsewhere = run("verify", "--config", config, "--ledger", f"sqlite:///{tmp_path / 'none.db'}")
    assert elsewhere.exit_code == EXIT_NOT_FOUND and not (tmp_path / "none.db").exists()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[ledger]\nid = "x"\nstorge = "sqlite:///x.db"\n', "storge"),
        ("[ledgr]\n", "ledgr"),
        ("[ledger]\nverify_on_open = \"no\"\n", "verify_on_open"),
        ("[plugins]\nual = 1\n", "config.plugins"),
        ("[ledger\n", "not valid TOML"),
    ],
)
def test_a_bad_config_file_is_refused_naming_the_key(tmp_path: Path, text: str, problem: str) -> None:
    config = write(tmp_path / "bad.toml", text)
    result = run("verify", "--config", config, "--json")
    assert result.exit_code == EXIT_CONFIGURATION, result.output
    assert problem in json.loads(result.stderr)["error"]["message"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


def test_a_missing_config_file_is_a_configuration_error(tmp_path: Path) -> None:
    result = run("query", "--config", str(tmp_path / "nope.toml"), "--as", ADMIN)
    assert result.exit_code == EXIT_CONFIGURATION and "does not exist" in result.stderr


def test_an_explicit_pepper_env_overrides_the_files_settings(tmp_path: Path, api_key_ledger: str) -> None:
    config = write(
        tmp_path / "c.toml",
        f'[ledger]\nid = "main"\nstorage = "{api_key_ledger}"\n[plugins."auth.api_key"]\npepper_env = "UNSET_VAR"\n',
    )
    from_file = run("keys", "list", "--config", config, "--as", ADMIN)
    assert from_file.exit_code == EXIT_CONFIGURATION and "UNSET_VAR" in from_file.stderr
    flag = run("keys", "list", "--config", config, "--pepper-env", "GOOD_PEPPER", "--as", ADMIN,
               env={"GOOD_PEPPER": PEPPER})
    assert flag.exit_code == 0, flag.output
