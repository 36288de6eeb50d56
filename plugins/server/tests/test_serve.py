"""``nucleus serve`` as a real subprocess, and its TOML configuration."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from nucleus_server.cli import apply_flags
from nucleus_server.client import RemoteLedger
from nucleus_server.config import ServeConfig, load_config, structure_config

from nucleus_core import Record
from nucleus_core.checkpoint import read_key_file
from nucleus_core.errors import ConfigurationError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUCLEUS_")}
    env.update(extra)
    return env


class Served:
    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nucleus_core", "serve", "--port", str(self.port), "--log-level", "warning", *args],
            cwd=cwd,
            env=env or clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_ready(self) -> None:
        for _ in range(600):
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: {self.proc.communicate()[1]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(0.05)
        raise AssertionError("server did not become ready")

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, err


@pytest.fixture
def processes() -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for served in started:
        if served.proc.poll() is None:
            served.proc.kill()
            served.proc.communicate()


def start(processes: list[Served], args: list[str], cwd: Path, env: dict[str, str] | None = None) -> Served:
    served = Served(args, cwd, env)
    processes.append(served)
    served.wait_ready()
    return served


def test_dev_mode_quickstart_and_restart(tmp_path: Path, processes: list[Served]) -> None:
    served = start(processes, ["--dev"], tmp_path)
    with RemoteLedger(served.url, token="dev:oid:dev:user:alice") as remote:
        entry = remote.append(Record(id="hello", stream="notes", timestamp=1, payload={"text": "hi"}))
        assert remote.id == "default"
    code, err = served.stop()
    assert code == 0
    assert "DEVELOPMENT MODE" in err and "NEVER use this in production" in err
    assert "closed" in err
    assert (tmp_path / "nucleus.db").exists()
    again = start(processes, ["--dev"], tmp_path)
    with RemoteLedger(again.url, token="dev:oid:dev:user:alice") as remote:
        assert remote.get_by_id("hello") == entry
        assert remote.verify().ok
    assert again.stop()[0] == 0


def test_serve_dev_makes_a_key_beside_its_database_and_keeps_it(tmp_path: Path, processes: list[Served]) -> None:
    served = start(processes, ["--dev"], tmp_path)
    key_file = tmp_path / "nucleus.db.checkpoint.key"
    signer = read_key_file(key_file)  # refused if others could read it
    assert signer.name == "nucleus.invalid/default"
    if os.name == "posix":
        assert key_file.stat().st_mode & 0o777 == 0o600
    assert httpx.get(f"{served.url}/checkpoint/key").text == f"{signer.vkey}\n"
    code, err = served.stop()
    assert code == 0 and f"checkpoint verifier key {signer.vkey}" in err and "made a development" in err
    assert signer.skey.split("+", 4)[4] not in err
    again = start(processes, ["--dev"], tmp_path)
    assert httpx.get(f"{again.url}/checkpoint/key").text == f"{signer.vkey}\n"  # the same key again
    code, err = again.stop()
    assert code == 0 and "made a development" not in err and signer.vkey in err


def test_config_file_and_flags(tmp_path: Path, processes: list[Served]) -> None:
    config = tmp_path / "nucleus.toml"
    config.write_text(
        f"""
[ledger]
id = "books"
storage = "sqlite:///{tmp_path / "books.db"}"
admins = ["oid:acme:user:root"]

[plugins."auth.dev"]
[plugins.ual]

[server]
host = "127.0.0.1"
port = 1
realm = "books"
"""
    )
    served = start(processes, ["--config", str(config)], tmp_path, clean_env(NUCLEUS_ENV="development"))
    with RemoteLedger(served.url, token="dev:oid:acme:user:root") as root:
        assert root.id == "books"
        root.append(Record(id="b1", stream="books", timestamp=1, payload={}))
    response = httpx.post(
        f"{served.url}/entries",
        json={"id": "b2", "stream": "books", "timestamp": 1, "payload": {}},
        headers={"authorization": "Bearer dev:oid:acme:user:eve"},
    )
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == 'Bearer realm="books", error="insufficient_scope"'
    assert served.stop()[0] == 0


def test_production_refuses_dev_tokens_at_startup(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nucleus_core", "serve", "--plugin", "auth.dev", "--port", str(free_port())],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    assert "development tokens are refused" in result.stderr


def test_unknown_config_key_refused(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[server]\nport = 8080\nprot = 1\n[ledger]\nid = "x"\n')
    result = subprocess.run(
        [sys.executable, "-m", "nucleus_core", "serve", "--config", str(config)],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    assert "prot" in result.stderr and "server" in result.stderr


def test_config_file_from_nucleus_config(tmp_path: Path) -> None:
    """NUCLEUS_CONFIG names the file for serve as for every other command: its bad key stops the start."""
    config = tmp_path / "bad.toml"
    config.write_text(f'[server]\nport = {free_port()}\nprot = 1\n[ledger]\nid = "x"\n')
    result = subprocess.run(
        [sys.executable, "-m", "nucleus_core", "serve"],
        cwd=tmp_path,
        env={**clean_env(), "NUCLEUS_CONFIG": str(config)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    assert "prot" in result.stderr and sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]
    assert not (tmp_path / "nucleus.db").exists()


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"extra": {}}, "extra"),
        ({"server": {"port": "8080"}}, "port"),
        ({"server": {"port": 70000}}, "port"),
        ({"ledger": {"verify_on_open": "false"}}, "verify_on_open"),
        ({"ledger": {"admins": "oid:a:b:c"}}, "admins"),
        ({"plugins": {"ual": True}}, "plugins"),
        ({"server": {"public_paths": ["health"]}}, "public path"),
        ({"server": {"max_batch_records": 0}}, "max_batch_records"),
        ({"server": {"log_level": "loud"}}, "log_level"),
        ({"server": {"stream_reauth_interval": 0}}, "stream_reauth_interval"),
        ({"server": {"stream_reauth_interval": "5"}}, "stream_reauth_interval"),
        ({"server": {"max_streams_per_principal": 0}}, "max_streams_per_principal"),
        ({"server": {"stream_keepalive": 3601}}, "stream_keepalive"),
        # One thread would be the streams' too: at least two, so one always stays for requests.
        ({"server": {"threads": 1}}, "'threads' must be an integer from 2 .* ordinary requests"),
        ({"server": {"threads": 257}}, "'threads'"),
    ],
)
def test_config_is_strict(data: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        structure_config(data)


def test_config_defaults_and_flag_precedence(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[ledger]\nid = "a"\nadmins = ["oid:x:user:a"]\n[plugins.ual]\n[plugins."auth.api_key"]\npepper_env = "P"\n'
        '[server]\nport = 9000\npublic_paths = ["/health"]\n'
    )
    loaded = load_config(config)
    assert list(loaded.plugins) == ["ual", "auth.api_key"]
    assert loaded.plugins["auth.api_key"] == {"pepper_env": "P"}
    merged = apply_flags(loaded, port=9100, ledger_id="b", admins=("oid:x:user:b",), plugins=("proof",), dev=True)
    assert (merged.server.port, merged.ledger.id) == (9100, "b")
    assert merged.ledger.admins == ("oid:x:user:a", "oid:x:user:b")
    assert list(merged.plugins) == ["ual", "auth.api_key", "proof", "auth.dev"]
    assert merged.ledger.storage == "sqlite:///nucleus.db"
    assert merged.server.public_paths == ("/health",)
    assert ServeConfig().server.port == 8080
    streams = structure_config({"server": {"stream_reauth_interval": 0.5, "max_streams_per_principal": 4}})
    assert (streams.server.settings().stream_reauth_interval, streams.server.settings().max_streams_per_principal) == (
        0.5, 4
    )
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    (tmp_path / "broken.toml").write_text("[server\n")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        load_config(tmp_path / "broken.toml")
