"""``nucleus serve --workers 2`` with PROMETHEUS_MULTIPROC_DIR: any worker answers the sum of all
(prometheus_client's multiprocess mode). Without it each worker answers its own counts (the other
tests run one worker for that reason)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from .conftest import ROOT_TOKEN, Served, parse, server_env, value, write_config

APPENDS = 12


def append_on_fresh_connections(served: Served) -> None:
    """Each append on a new connection, so that both workers take some."""
    for i in range(APPENDS):
        response = httpx.post(
            f"{served.url}/entries", json={"id": f"w{i}", "stream": "s", "timestamp": 1, "payload": {}},
            headers={"authorization": f"Bearer {ROOT_TOKEN}"}, timeout=30,
        )
        assert response.status_code == 201


def scrapes(served: Served, count: int) -> list[tuple[float, float]]:
    """``count`` scrapes, each on a new connection: the appends and open ledgers each one reports."""
    out = []
    for _ in range(count):
        text = httpx.get(f"{served.url}/metrics", headers={"authorization": f"Bearer {ROOT_TOKEN}"}, timeout=30).text
        samples = parse(text)
        out.append((value(samples, "nucleus_appends_total", ledger="observed", outcome="ok"),
                    value(samples, "nucleus_ledgers_open")))
    return out


def test_multiprocess_mode_sums_the_workers(tmp_path: Path, serve: Callable[..., Served]) -> None:
    folder = tmp_path / "prometheus"
    folder.mkdir()
    served = serve(write_config(tmp_path, server="workers = 2"), env=server_env(PROMETHEUS_MULTIPROC_DIR=str(folder)))
    append_on_fresh_connections(served)
    # Every scrape, whichever worker answers it, reports all appends and both workers' open ledger.
    assert set(scrapes(served, 8)) == {(APPENDS, 2)}
    pids = {path.stem.rsplit("_", 1)[1] for path in folder.glob("gauge_livesum_*.db")}
    assert len(pids) >= 2  # one file per worker process


def worker_pids(folder: Path, parent: int) -> set[int]:
    """The processes with a live-gauge file in ``folder`` other than the supervisor ``parent``
    (which opened the ledger once before starting the workers)."""
    return {int(path.stem.rsplit("_", 1)[1]) for path in folder.glob("gauge_livesum_*.db")} - {parent}


def until(check: Callable[[], bool], what: str) -> None:
    """Wait for ``check()`` to hold (the supervisor checks its workers every half second)."""
    deadline = time.monotonic() + 60
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_a_dead_worker_leaves_no_live_gauge(tmp_path: Path, serve: Callable[..., Served]) -> None:
    folder = tmp_path / "prometheus"
    folder.mkdir()
    served = serve(write_config(tmp_path, server="workers = 2"), env=server_env(PROMETHEUS_MULTIPROC_DIR=str(folder)))
    parent = served.proc.pid
    until(lambda: len(worker_pids(folder, parent)) == 2, "both workers opened the ledger")
    first = worker_pids(folder, parent)
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    # The supervisor starts a new worker and removes the dead one's live gauges (mark_process_dead).
    until(lambda: victim not in worker_pids(folder, parent) and len(worker_pids(folder, parent)) == 2,
          "the dead worker's live gauge file went and a new worker came")
    assert all(count == 2 for _, count in scrapes(served, 6))  # two live workers, not three
    served.stop()
    assert worker_pids(folder, parent) == set()  # the workers that stopped with the server too
