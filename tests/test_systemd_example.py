"""examples/nucleus.service and examples/nucleus.toml (docs/OPERATIONS.md, "Running under systemd").

The unit is parsed (and checked by ``systemd-analyze verify`` and ``systemd-analyze security
--offline`` where systemd is installed), its settings are held against the example configuration,
and its ExecStart command runs for real on that configuration moved into a temporary folder: the
server answers ``/health``, keeps its SQLite file under the state directory with the unit's umask,
and the unit's KillSignal stops it cleanly within TimeoutStopSec.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import pytest
from nucleus_server.config import load_config

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "examples" / "nucleus.service"
CONFIG = ROOT / "examples" / "nucleus.toml"

Unit = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> Unit:
    """A systemd unit file's sections and keys (a key may repeat: every value is kept, in order)."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), f"line {number}: continuation lines are not used here"
        header = re.fullmatch(r"\[([A-Za-z]+)\]", line)
        if header is not None:
            assert header.group(1) not in unit, f"line {number}: section [{header.group(1)}] repeated"
            section = unit.setdefault(header.group(1), {})
            continue
        assert section is not None, f"line {number}: a setting before any section"
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", key), f"line {number}: not a key=value setting: {raw!r}"
        section.setdefault(key, []).append(value)
    return unit


@pytest.fixture(scope="module")
def unit() -> Unit:
    return parse_unit(UNIT.read_text(encoding="utf-8"))


def one(unit: Unit, section: str, key: str) -> str:
    values = unit[section].get(key, [])
    assert len(values) == 1, f"[{section}] {key}: expected one value, found {values}"
    return values[0]


def exec_start(unit: Unit) -> list[str]:
    return shlex.split(one(unit, "Service", "ExecStart"))


def test_unit_runs_nucleus_serve_hardened(unit: Unit) -> None:
    assert set(unit) == {"Unit", "Service", "Install"}
    command = exec_start(unit)
    assert Path(command[0]).is_absolute() and Path(command[0]).name == "nucleus"
    assert command[1:] == ["serve", "--config", "/etc/nucleus/nucleus.toml"]
    expected = {
        "Type": "exec", "User": "nucleus", "Group": "nucleus", "StateDirectory": "nucleus",
        "WorkingDirectory": "/var/lib/nucleus", "Restart": "on-failure", "KillSignal": "SIGTERM",
        "KillMode": "mixed", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
        "PrivateTmp": "yes", "PrivateDevices": "yes", "CapabilityBoundingSet": "", "UMask": "0077",
    }
    assert {key: one(unit, "Service", key) for key in expected} == expected
    assert one(unit, "Install", "WantedBy") == "multi-user.target"
    # Configuration, plugin and integrity errors stop the service instead of looping.
    assert set(one(unit, "Service", "RestartPreventExitStatus").split()) >= {"3", "4"}


def test_example_config_fits_the_unit(unit: Unit) -> None:
    config = load_config(CONFIG)  # the server's own loader: unknown keys and bad values fail here
    state = Path("/var/lib") / one(unit, "Service", "StateDirectory")
    storage = config.ledger.storage
    assert isinstance(storage, str) and storage.startswith(f"sqlite:///{state}/")
    # systemd sends SIGKILL after TimeoutStopSec: it must leave the server's graceful shutdown room.
    assert int(one(unit, "Service", "TimeoutStopSec")) > config.server.shutdown_timeout
    pepper_env = tomllib.loads(CONFIG.read_text(encoding="utf-8"))["plugins"]["auth.api_key"]["pepper_env"]
    assert pepper_env == "NUCLEUS_API_KEY_PEPPER"
    assert one(unit, "Service", "EnvironmentFile") == "/etc/nucleus/nucleus.env"


def _nucleus_program() -> str:
    """This environment's ``nucleus`` command, standing in for ExecStart's /opt/nucleus/bin/nucleus."""
    program = shutil.which("nucleus", path=str(Path(sys.executable).parent))
    if program is None:
        pytest.fail(f"no nucleus command beside {sys.executable}: install the project into this environment")
    return program


def _runnable_unit(unit_text: str, tmp_path: Path) -> Path:
    """The unit with ExecStart naming this environment's ``nucleus`` (systemd checks it exists)."""
    path = tmp_path / "nucleus.service"
    path.write_text(unit_text.replace("/opt/nucleus/bin/nucleus", _nucleus_program()), encoding="utf-8")
    return path


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    path = _runnable_unit(UNIT.read_text(encoding="utf-8"), tmp_path)
    verified = subprocess.run(["systemd-analyze", "verify", "--man=no", str(path)],
                              capture_output=True, text=True, timeout=120, check=False)
    # Unknown keys and bad values are warnings on stderr with exit status 0: any output fails.
    assert (verified.returncode, verified.stdout, verified.stderr) == (0, "", "")
    security = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=20", str(path)],
                              capture_output=True, text=True, timeout=120, check=False)
    assert security.returncode == 0, security.stdout + security.stderr
    assert re.search(r"Overall exposure level for nucleus\.service: 1\.\d OK", security.stdout), security.stdout


def test_a_broken_unit_fails_verification(tmp_path: Path) -> None:
    """The checks above can fail: a misspelt key is caught by the parser's caller and by systemd."""
    broken = UNIT.read_text(encoding="utf-8").replace("ProtectSystem=strict", "ProtectSytem=strict")
    assert "ProtectSystem" not in parse_unit(broken)["Service"]
    if shutil.which("systemd-analyze") is not None:
        path = _runnable_unit(broken, tmp_path)
        verified = subprocess.run(["systemd-analyze", "verify", "--man=no", str(path)],
                                  capture_output=True, text=True, timeout=120, check=False)
        assert "Unknown key" in verified.stderr and "ProtectSytem" in verified.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_exec_start_serves_the_example_config(unit: Unit, tmp_path: Path) -> None:
    """What systemd would run, outside its sandbox: the paths of the state and configuration
    directories moved under a temporary folder, a free port instead of 8080."""
    state = tmp_path / "var-lib-nucleus"
    state.mkdir(mode=0o700)
    port = _free_port()
    text = CONFIG.read_text(encoding="utf-8")
    assert text.count("/var/lib/nucleus/") == 1 and text.count("port = 8080") == 1
    config = tmp_path / "etc-nucleus" / "nucleus.toml"
    config.parent.mkdir()
    config.write_text(text.replace("/var/lib/nucleus/", f"{state}/").replace("port = 8080", f"port = {port}"),
                      encoding="utf-8")
    command = exec_start(unit)
    args = [str(config) if arg == "/etc/nucleus/nucleus.toml" else arg for arg in command[1:]]
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUCLEUS_")}
    env["NUCLEUS_API_KEY_PEPPER"] = secrets.token_urlsafe(48)  # what EnvironmentFile= gives it
    umask = int(one(unit, "Service", "UMask"), 8)
    log = tmp_path / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen([_nucleus_program(), *args],
                                cwd=state, env=env, stdout=out, stderr=subprocess.STDOUT, umask=umask)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"server exited {proc.returncode}:\n{log.read_text()}"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"no /health answer:\n{log.read_text()}"
            time.sleep(0.1)
        # The API key parser is on: a protected route without a token is refused.
        assert httpx.get(f"http://127.0.0.1:{port}/ledger", timeout=5).status_code == 401
        database = state / "main.db"
        assert database.is_file() and stat.S_IMODE(database.stat().st_mode) & 0o077 == 0
        proc.send_signal(getattr(signal, one(unit, "Service", "KillSignal")))
        assert proc.wait(timeout=int(one(unit, "Service", "TimeoutStopSec"))) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
