"""A real uvicorn on 127.0.0.1 (a free port bound by the test) serving a ledger in a thread."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvicorn
from nucleus_server import ServerSettings, create_app

from nucleus_core import Ledger, create_ledger


class ServerThread:
    """uvicorn serving ``app`` on a socket bound to 127.0.0.1:0, in a background thread."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning"))
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.server.run(sockets=[self.sock])

    def start(self) -> ServerThread:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            self.thread.join(0.01)
        return self

    def stop(self) -> None:
        """What SIGTERM does: end the entry streams, stop accepting, let in-flight requests finish,
        run the lifespan shutdown."""
        self.app.begin_shutdown()
        self.server.should_exit = True
        self.thread.join(60)
        self.sock.close()


@pytest.fixture
def dev_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUCLEUS_ENV", "development")


@pytest.fixture
def serve(dev_env: None) -> Iterator[Callable[..., ServerThread]]:
    """``serve(ledger, settings=None, owns_ledger=True)`` starts a server; all stop at teardown."""
    servers: list[ServerThread] = []

    def start(ledger: Ledger, settings: ServerSettings | None = None, *, owns_ledger: bool = True) -> ServerThread:
        server = ServerThread(create_app(ledger, settings, owns_ledger=owns_ledger)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def open_ledger(dev_env: None, tmp_path: Any) -> Callable[..., Ledger]:
    """``open_ledger(*plugins, **config)``: a ledger on a SQLite file in tmp_path with auth.dev."""

    def make(*plugins: str, name: str = "ledger.db", **config: Any) -> Ledger:
        config.setdefault("id", "http-test")
        config.setdefault("storage", f"sqlite:///{tmp_path / name}")
        return create_ledger(plugins=["auth.dev", *plugins], **config)

    return make
