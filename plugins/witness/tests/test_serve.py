"""``nucleus witness keygen`` and ``nucleus witness serve`` as a user runs them (subprocesses), and
the configuration file's checks."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from nucleus_witness.config import structure_config

from nucleus_core.checkpoint import CosignatureSigner, NoteSigner, read_signer_key_file
from nucleus_core.cosignature import parse_cosignature_vkey
from nucleus_core.errors import ConfigurationError
from nucleus_core.tlog_witness import WitnessClient, WitnessConflictError


def nucleus(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nucleus_core", *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )


def test_keygen_writes_a_private_key_and_prints_its_vkey(tmp_path: Path) -> None:
    path = tmp_path / "witness.key"
    result = nucleus("witness", "keygen", str(path), "--name", "witness.example.com/w1")
    assert result.returncode == 0, result.stderr
    vkey = result.stdout.strip()
    verifier = parse_cosignature_vkey(vkey)
    assert verifier.name == "witness.example.com/w1"
    signer = read_signer_key_file(path, CosignatureSigner)
    assert signer.verifier == verifier
    assert "PRIVATE" not in result.stdout + result.stderr
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_bytes()
    again = nucleus("witness", "keygen", str(path), "--name", "witness.example.com/w2")
    assert again.returncode != 0 and "already exists" in again.stderr
    assert path.read_bytes() == before
    as_json = nucleus("witness", "keygen", str(tmp_path / "second.key"), "--name", "w2.test", "--json")
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    assert parse_cosignature_vkey(document["vkey"]).key_id == int(document["key_id"], 16)
    bad = nucleus("witness", "keygen", str(tmp_path / "bad.key"), "--name", "has space")
    assert bad.returncode != 0 and "--name" in bad.stderr
    assert not (tmp_path / "bad.key").exists()
    assert nucleus("witness", "keygen", str(tmp_path / "x.key")).returncode != 0  # --name is required


def test_serve_cosigns_restarts_and_stops_cleanly(
    witness_key: CosignatureSigner, histories: Any, witness_config: Any, witness_process: Any, ref: ModuleType
) -> None:
    history = histories().grow(4)
    config = witness_config()
    process = witness_process(config)
    assert any(witness_key.vkey in line for line in process.lines)
    with WitnessClient(process.url, witness_key.verifier) as client:
        (first,) = client.add_checkpoint(history.checkpoint(), 0, [])
        history.grow(2)
        (second,) = client.add_checkpoint(history.checkpoint(), 4, history.proof(4))
    assert ref.cosignature_timestamps(history.checkpoint() + second.line(), witness_key.vkey) == [second.timestamp]
    assert process.stop() == 0
    assert any("stopped" in line for line in process.lines)

    restarted = witness_process(config)
    with WitnessClient(restarted.url, witness_key.verifier) as client:
        with pytest.raises(WitnessConflictError) as info:
            client.add_checkpoint(history.checkpoint(), 0, [])
        assert info.value.size == 6
    assert first.timestamp <= second.timestamp
    assert restarted.stop() == 0


def test_key_prints_the_configured_vkey(witness_config: Any, witness_key: CosignatureSigner) -> None:
    config = witness_config()
    result = nucleus("witness", "key", "--config", str(config))
    assert (result.returncode, result.stdout) == (0, witness_key.vkey + "\n"), result.stderr
    as_json = json.loads(nucleus("witness", "key", "--config", str(config), "--json").stdout)
    assert as_json == {"name": witness_key.name, "key_id": f"{witness_key.key_id:08x}", "vkey": witness_key.vkey}
    missing = nucleus("witness", "key", "--config", str(config.with_name("nope.toml")))
    assert missing.returncode != 0 and "does not exist" in missing.stderr


def test_serve_refuses_bad_configurations(tmp_path: Path, witness_config: Any) -> None:
    config = witness_config(extra="colour = 1")
    result = nucleus("witness", "serve", "--config", str(config))
    assert result.returncode != 0 and "colour" in result.stderr
    os.chmod(tmp_path / "witness.key", 0o644)
    config = witness_config()
    result = nucleus("witness", "serve", "--config", str(config))
    if os.name == "posix":
        assert result.returncode != 0 and "permissions" in result.stderr
        assert "PRIVATE" not in result.stderr


GOOD: dict[str, Any] = {
    "witness": {"key_file": "w.key", "state": "w.db"},
    "logs": [{"origin": "ledger.test/log", "vkeys": [NoteSigner.generate("ledger.test/log").vkey]}],
}


def _with(**changes: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(GOOD))
    for path, value in changes.items():
        section, _, key = path.partition("__")
        if key:
            target = data[section] if section == "witness" else data[section][0]
            target[key] = value
        else:
            data[section] = value
    return data


def test_configuration_defaults() -> None:
    config = structure_config(GOOD)
    assert (config.witness.host, config.witness.port, config.witness.prefix) == ("127.0.0.1", 8090, "")
    assert config.logs[0].verifiers()[0].name == "ledger.test/log"


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (_with(witness__state=":memory:"), "SQLite file path"),
        (_with(witness__state=""), "SQLite file path"),
        (_with(witness__key_file=""), "key_file"),
        (_with(witness__port=70000), "port"),
        (_with(witness__port="8090"), "port"),
        (_with(witness__prefix="witness"), "prefix"),
        (_with(witness__prefix="/witness/"), "prefix"),
        (_with(witness__log_level="loud"), "log_level"),
        (_with(witness__colour="blue"), "colour"),
        (_with(logs=[]), "no \\[\\[logs\\]\\]"),
        (_with(logs__origin=""), "origin"),
        (_with(logs__origin="a\nb"), "control character"),
        (_with(logs__vkeys=[]), "no vkeys"),
        (_with(logs__vkeys=["not a vkey"]), "vkeys entry 1"),
        (_with(logs__vkeys=[CosignatureSigner.generate("w").vkey]), "type 0x01"),
        ({**GOOD, "logs": GOOD["logs"] * 2}, "listed twice"),
        (_with(logs__vkeys=GOOD["logs"][0]["vkeys"] * 2), "a second key named"),
        ({"logs": GOOD["logs"]}, "witness"),
    ],
)
def test_configuration_errors(data: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        structure_config(data)
