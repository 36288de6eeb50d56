"""Many clients at once, restart, and graceful shutdown against a real uvicorn."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from nucleus_server.client import RemoteLedger

from nucleus_core import Ledger, Module, ModuleSpec, Record, RequestContext, create_ledger, hookimpl

CLIENTS = 8
PER_CLIENT = 500


@pytest.mark.slow
def test_concurrent_clients_never_fork(open_ledger: Callable[..., Ledger], serve: Callable[..., Any]) -> None:
    ledger = open_ledger()
    server = serve(ledger, owns_ledger=False)
    errors: list[BaseException] = []
    barrier = threading.Barrier(CLIENTS)

    def client(n: int) -> None:
        try:
            with RemoteLedger(server.url, token=f"dev:oid:test:user:c{n}") as remote:
                barrier.wait()
                for i in range(PER_CLIENT):
                    entry = remote.append(Record(id=f"c{n}-{i}", stream="load", timestamp=1 + i, payload={"n": n}))
                    assert entry.record.id == f"c{n}-{i}"
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    total = CLIENTS * PER_CLIENT
    with RemoteLedger(server.url, token="dev:oid:test:user:check") as remote:
        assert remote.length() == total
        entries = list(remote.iter_entries())
        report = remote.verify()
    assert [e.seq for e in entries] == list(range(1, total + 1))
    assert {e.record.id for e in entries} == {f"c{n}-{i}" for n in range(CLIENTS) for i in range(PER_CLIENT)}
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    assert report.ok and report.entries_checked == total
    # Each client's own appends keep their order.
    for n in range(CLIENTS):
        mine = [e.record.id for e in entries if e.record.id.startswith(f"c{n}-")]
        assert mine == [f"c{n}-{i}" for i in range(PER_CLIENT)]


def test_restart_keeps_the_data(dev_env: None, tmp_path: Path, serve: Callable[..., Any]) -> None:
    storage = f"sqlite:///{tmp_path / 'restart.db'}"
    first = serve(create_ledger(id="restart", storage=storage, plugins=["auth.dev"]))
    with RemoteLedger(first.url, token="dev:oid:test:user:alice") as remote:
        written = remote.append_batch([Record(id=f"r{i}", stream="s", timestamp=1, payload={}) for i in range(20)])
    first.stop()
    second = serve(create_ledger(id="restart", storage=storage, plugins=["auth.dev"]))
    with RemoteLedger(second.url, token="dev:oid:test:user:alice") as remote:
        assert list(remote.iter_entries()) == written
        assert remote.verify().ok
        assert remote.append(Record(id="r20", stream="s", timestamp=1, payload={})).seq == 21


class _Gate(Module):
    """A module whose validation waits until the test opens the gate."""

    id = "gate"
    version = "1"
    streams = ("gated",)

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.stopped = False

    def validate(self, record: Record, context: RequestContext) -> None:
        self.entered.set()
        assert self.release.wait(30)

    def stop(self, ctx: Any) -> None:
        self.stopped = True


def test_graceful_shutdown_finishes_in_flight_requests(
    dev_env: None, tmp_path: Path, serve: Callable[..., Any]
) -> None:
    gate = _Gate()

    class GatePlugin:
        @hookimpl
        def nucleus_register_modules(self) -> list[ModuleSpec]:
            return [ModuleSpec(id="gate", factory=lambda _ctx: gate)]

    storage = f"sqlite:///{tmp_path / 'shutdown.db'}"
    ledger = create_ledger(id="shutdown", storage=storage, plugins=["auth.dev", GatePlugin()])
    server = serve(ledger)
    result: dict[str, Any] = {}

    def in_flight() -> None:
        record = {"id": "slow", "stream": "gated", "timestamp": 1, "payload": {}}
        result["response"] = httpx.post(
            f"{server.url}/entries", json=record, headers={"authorization": "Bearer dev:oid:test:user:a"}, timeout=60
        )

    request = threading.Thread(target=in_flight)
    request.start()
    assert gate.entered.wait(30)
    stopper = threading.Thread(target=server.stop)  # what SIGTERM triggers
    stopper.start()
    # Wait until the server is shutting down (it no longer accepts connections)...
    for _ in range(3000):
        try:
            httpx.get(f"{server.url}/health", timeout=5)
        except httpx.TransportError:
            break
        stopper.join(0.01)
    else:
        pytest.fail("the server kept accepting connections after it was told to stop")
    # ...while the append is still in flight: the ledger stays open until it finishes.
    assert not ledger.closed
    gate.release.set()
    request.join(60)
    stopper.join(60)
    assert result["response"].status_code == 201
    assert ledger.closed and gate.stopped  # lifespan shutdown: modules stopped, storage closed
    # The ledger recorded its module (seq 1): it reopens only with it.
    with create_ledger(id="shutdown", storage=storage, plugins=["auth.dev", GatePlugin()]) as reopened:
        entry = reopened.get_by_id("slow", RequestContext(oid="oid:test:user:a", source="dev"))
        assert entry is not None and entry.seq == 2
