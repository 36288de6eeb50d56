"""``nucleus checkpoint keygen`` and ``nucleus checkpoint key``, as real subprocesses; and the
checkpoint keys a ledger opened from a configuration file gets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nucleus_core import create_ledger
from nucleus_core.checkpoint import NoteSigner, read_key_file, write_key_file
from nucleus_core.cli import EXIT_CONFIGURATION
from nucleus_core.config import load_ledger_file
from nucleus_core.tlog_verify import parse_vkey


def nucleus(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NUCLEUS_")}
    return subprocess.run(
        [sys.executable, "-m", "nucleus_core", *args],
        env=clean | (env or {}),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_keygen_writes_a_private_key_and_prints_its_vkey(tmp_path: Path) -> None:
    path = tmp_path / "log.key"
    out = nucleus("checkpoint", "keygen", str(path), "--ledger-id", "main")
    assert out.returncode == 0, out.stderr
    vkey = out.stdout.strip()
    verifier = parse_vkey(vkey)
    assert verifier.name == "nucleus.invalid/main"  # named after the ledger's default origin
    signer = read_key_file(path)
    assert signer.vkey == vkey and signer.name == "nucleus.invalid/main"
    if os.name == "posix":
        assert path.stat().st_mode & 0o777 == 0o600
    seed = signer.skey.split("+", 4)[4]
    assert seed not in out.stdout and seed not in out.stderr
    again = nucleus("checkpoint", "keygen", str(path))
    assert again.returncode == EXIT_CONFIGURATION and "already exists" in again.stderr
    assert read_key_file(path) == signer  # untouched


def test_keygen_takes_the_origin_from_the_configuration(tmp_path: Path) -> None:
    config = tmp_path / "nucleus.toml"
    config.write_text('[ledger]\nid = "main"\n[ledger.checkpoint]\norigin = "ledger.example.com/main"\n')
    out = nucleus("checkpoint", "keygen", str(tmp_path / "a.key"), "--config", str(config), "--json")
    assert out.returncode == 0, out.stderr
    made = json.loads(out.stdout)
    assert made["name"] == "ledger.example.com/main" and parse_vkey(made["vkey"]).name == made["name"]
    named = nucleus("checkpoint", "keygen", str(tmp_path / "b.key"), "--name", "other.example/x")
    assert named.returncode == 0 and parse_vkey(named.stdout.strip()).name == "other.example/x"
    bad = nucleus("checkpoint", "keygen", str(tmp_path / "c.key"), "--name", "has space")
    assert bad.returncode == EXIT_CONFIGURATION and not (tmp_path / "c.key").exists()


def test_key_prints_the_configured_vkeys(tmp_path: Path) -> None:
    origin = "ledger.example.com/main"
    first = nucleus("checkpoint", "keygen", str(tmp_path / "old.key"), "--name", origin)
    second = nucleus("checkpoint", "keygen", str(tmp_path / "new.key"), "--name", origin)
    from_env = NoteSigner.generate(origin)
    config = tmp_path / "nucleus.toml"
    config.write_text(
        '[ledger]\nid = "main"\n[ledger.checkpoint]\n'
        f'origin = "{origin}"\nkey_files = ["{tmp_path / "old.key"}", "{tmp_path / "new.key"}"]\n'
    )
    out = nucleus("checkpoint", "key", "--config", str(config), env={"NUCLEUS_CHECKPOINT_KEY": from_env.skey})
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [first.stdout.strip(), second.stdout.strip(), from_env.vkey]
    assert from_env.skey.split("+", 4)[4] not in out.stdout + out.stderr
    as_json = json.loads(nucleus("checkpoint", "key", "--config", str(config), "--json").stdout)
    assert as_json == {"origin": origin, "vkeys": [first.stdout.strip(), second.stdout.strip()]}
    none = nucleus("checkpoint", "key", "--ledger-id", "main")
    assert none.returncode == EXIT_CONFIGURATION and "nucleus checkpoint keygen" in none.stderr
    if os.name == "posix":
        (tmp_path / "old.key").chmod(0o644)
        shared = nucleus("checkpoint", "key", "--config", str(config))
        assert shared.returncode == EXIT_CONFIGURATION and "chmod 600" in shared.stderr
        assert "Traceback" not in shared.stderr


def test_a_ledger_opened_from_the_file_gets_its_keys(tmp_path: Path) -> None:
    signer = NoteSigner.generate("ledger.example.com/main")
    write_key_file(tmp_path / "k.key", signer)
    config = tmp_path / "nucleus.toml"
    config.write_text(
        '[ledger]\nid = "main"\nstorage = "memory://"\n[ledger.checkpoint]\n'
        f'origin = "ledger.example.com/main"\nkey_files = ["{tmp_path / "k.key"}"]\nkey_env = ""\ninterval = 2\n'
    )
    kwargs = load_ledger_file(config).ledger_kwargs()
    with create_ledger(**kwargs) as ledger:
        assert ledger.checkpoint_signing.origin == "ledger.example.com/main"
        assert ledger.checkpoint_signing.signers == (signer,)
        assert ledger.config.checkpoint.interval == 2.0 and ledger.config.checkpoint.key_env is None
    with create_ledger(id="plain", storage="memory://") as plain:
        assert plain.checkpoint_signing.origin == "nucleus.invalid/plain" and plain.checkpoint_signing.signers == ()


@pytest.mark.parametrize(
    "table, message",
    [
        ('interval = "1"', "checkpoint.interval"),
        ("colour = 1", "colour"),
        ('origin = "a b"', "origin"),
        ('key_files = ["/nonexistent/k.key"]', "cannot be read"),
    ],
)
def test_bad_checkpoint_tables_are_refused(tmp_path: Path, table: str, message: str) -> None:
    config = tmp_path / "nucleus.toml"
    config.write_text(f'[ledger]\nid = "main"\nstorage = "memory://"\n[ledger.checkpoint]\n{table}\n')
    out = nucleus("checkpoint", "key", "--config", str(config))
    assert out.returncode == EXIT_CONFIGURATION and message in out.stderr, out.stderr
