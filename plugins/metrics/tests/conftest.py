"""``nucleus serve`` as a real subprocess on loopback, configured by a TOML file, and a scraper
that parses ``GET /metrics`` with prometheus_client's own text parser."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from nucleus_core.checkpoint import NoteSigner, write_key_file

ROOT_TOKEN = "dev:oid:acmecorp:user:rootadm-r5"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Served:
    """``nucleus serve --config FILE`` on a free loopback port (stdout and stderr kept)."""

    def __init__(self, config: Path, env: dict[str, str], args: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nucleus_core", "serve", "--config", str(config), "--port", str(self.port),
             "--log-level", "warning", *args],
            cwd=config.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
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

    def client(self, token: str | None = ROOT_TOKEN) -> httpx.Client:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.communicate()


def write_config(
    tmp_path: Path, *, plugins: tuple[str, ...] = ("metrics",), server: str = "", storage: str = "",
    checkpoints: bool = False,
) -> Path:
    """A TOML file: a SQLite ledger with auth.dev and the UAL (root is admin), ``plugins`` enabled,
    ``server`` lines appended under ``[server]`` (one worker unless they say otherwise: each worker
    process counts on its own); with ``checkpoints`` a signing key (a checkpoint
    after every commit)."""
    sections = "".join(f"[plugins.{name}]\n" for name in plugins)
    checkpoint = ""
    if checkpoints:
        signer = NoteSigner.generate("test.invalid/observed")
        key = tmp_path / "checkpoint.key"
        write_key_file(key, signer)
        checkpoint = (
            f'[ledger.checkpoint]\norigin = "{signer.name}"\nkey_files = ["{key}"]\n'
            'key_env = ""\ninterval = 0\n'
        )
    storage = storage or f"sqlite:///{tmp_path / 'ledger.db'}"
    config = tmp_path / "nucleus.toml"
    config.write_text(
        f'[ledger]\nid = "observed"\nstorage = "{storage}"\n'
        f'admins = ["oid:acmecorp:user:rootadm-r5"]\n{checkpoint}'
        f'[plugins."auth.dev"]\n[plugins.ual]\n{sections}[server]\n{server}\n'
        f'{"" if "workers" in server else "workers = 1"}\n'
    )
    return config


def server_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUCLEUS_", "PROMETHEUS_"))}
    env["NUCLEUS_ENV"] = "development"
    env.update(extra)
    return env


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    """``serve(config, env=None, args=())``: a started server; all are stopped at teardown."""
    started: list[Served] = []

    def start(config: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> Served:
        served = Served(config, env or server_env(), args)
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape, by name and label set, parsed by prometheus_client's parser."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample ``name`` with exactly ``labels`` (0 when absent)."""
    return samples.get((name, frozenset(labels.items())), 0.0)
