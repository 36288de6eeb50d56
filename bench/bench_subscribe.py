"""Subscription throughput: entries/s delivered to 1 and 20 subscribers, in process
(``Ledger.subscribe``) and over HTTP (``GET /entries/stream``, Server-Sent Events), against two
baselines measured in the same run on the same SQLite ledger:

* scan: a plain query scan of the same entries (``Ledger.query`` pages of 1000, the requester's
  access path), what a poller would do;
* append: the rate the ledger takes the entries in (``append_batch`` of ``--batch`` records).

Two scenarios per transport:

* catch-up: the subscribers start at seq 0 of a ledger already holding ``--entries`` entries and
  read them all (pages of 1000): the rate a consumer that fell behind catches up at;
* live: the subscribers follow while this process appends ``--entries`` entries in batches of
  ``--batch``; the time from the first append to the last entry received by every subscriber.

The server runs under uvicorn in a thread of this process (as the tests run it); the SSE clients
are threads with httpx streams (so on a 2-core machine they compete with the server for the GIL:
the SSE figures are a floor).

    python bench/bench_subscribe.py [--entries 20000] [--batch 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import itertools
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from nucleus_server import ServerSettings, create_app

from nucleus_core import Ledger, Record, RequestContext, create_ledger

ALICE = RequestContext(oid="oid:bench:user:alice", source="auth.dev")
TOKEN = "dev:oid:bench:user:alice"
_SUBSCRIBERS = itertools.count(1)
"""Each SSE subscriber is a principal of its own (a server allows one principal
``max_streams_per_principal`` streams, 16 by default; 20 subscribers are 20 users here)."""


def records(prefix: str, count: int) -> list[Record]:
    return [Record(id=f"{prefix}-{i}", stream="bench", timestamp=1, payload={"i": i, "pad": "x" * 64})
            for i in range(count)]


def append_all(ledger: Ledger, items: list[Record], batch: int) -> None:
    for start in range(0, len(items), batch):
        ledger.append_batch(items[start:start + batch], ALICE)


class Server:
    def __init__(self, ledger: Ledger) -> None:
        self.app = create_app(ledger, ServerSettings(stream_keepalive=5, threads=8))
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, lifespan="on", log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)

    def stop(self) -> None:
        self.app.begin_shutdown()
        self.server.should_exit = True
        self.thread.join(60)
        self.sock.close()


def in_process(ledger: Ledger, after: int, count: int) -> Callable[[], None]:
    def run() -> None:
        got = 0
        with ledger.subscribe(after, {"stream": "bench", "limit": 1000}, ALICE, poll_interval=0.05) as sub:
            for _ in sub:
                got += 1
                if got == count:
                    return

    return run


def over_sse(url: str, after: int, count: int) -> Callable[[], None]:
    token = f"{TOKEN}{next(_SUBSCRIBERS)}"

    def run() -> None:
        got = 0
        with httpx.stream("GET", f"{url}/entries/stream", params={"after": after, "stream": "bench", "limit": 1000},
                          headers={"authorization": f"Bearer {token}"}, timeout=60) as response:
            for line in response.iter_lines():
                if line == "event: entry":
                    got += 1
                    if got == count:
                        return

    return run


def run_subscribers(make: Callable[[], Callable[[], None]], n: int, during: Callable[[], None] | None) -> float:
    """Seconds until ``n`` subscribers (threads) received what they wait for (``during`` runs meanwhile)."""
    threads = [threading.Thread(target=make()) for _ in range(n)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    if during is not None:
        during()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start


def follow(ledger: Ledger, url: str, tag: str, n: int, batch: int, keep: Callable[[str, float, int], None]) -> None:
    """One round of the subscriber scenarios on ``ledger`` (served at ``url``)."""
    for subs in (1, 20):
        secs = run_subscribers(lambda: in_process(ledger, 0, n), subs, None)
        keep(f"catch-up, in process, {subs} subscriber(s)", secs, n * subs)
        secs = run_subscribers(lambda: over_sse(url, 0, n), subs, None)
        keep(f"catch-up, SSE, {subs} subscriber(s)", secs, n * subs)
    for subs in (1, 20):
        for transport, make in (("in process", in_process), ("SSE", None)):
            head = ledger.length()
            live = records(f"l{tag}-{subs}-{transport[0]}", n)

            def subscriber(head: int = head, make: Any = make) -> Callable[[], None]:
                return make(ledger, head, n) if make is not None else over_sse(url, head, n)

            secs = run_subscribers(subscriber, subs, lambda live=live: append_all(ledger, live, batch))
            keep(f"live, {transport}, {subs} subscriber(s)", secs, n * subs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ["NUCLEUS_ENV"] = "development"
    n = args.entries
    results: dict[str, list[float]] = {}

    def keep(name: str, seconds: float, entries: int) -> None:
        results.setdefault(name, []).append(entries / seconds)

    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.rounds):
            path = Path(tmp) / f"bench-{rnd}.db"
            ledger = create_ledger(id="bench", storage=f"sqlite:///{path}", plugins=["auth.dev"])
            items = records(f"c{rnd}", n)
            t = time.perf_counter()
            append_all(ledger, items, args.batch)
            keep("append (baseline)", time.perf_counter() - t, n)
            t = time.perf_counter()
            cursor, seen = None, 0
            while True:
                page = ledger.query({"stream": "bench", "limit": 1000, **({"cursor": cursor} if cursor else {})}, ALICE)
                seen += len(page)
                cursor = page.next_cursor
                if cursor is None:
                    break
            keep("query scan (baseline)", time.perf_counter() - t, seen)
            server = Server(ledger)
            try:
                follow(ledger, server.url, f"{rnd}", n, args.batch, keep)
            finally:
                server.stop()
                ledger.close()
    scan = statistics.median(results["query scan (baseline)"])
    append = statistics.median(results["append (baseline)"])
    print(f"{n} entries per subscriber, median of {args.rounds} rounds (entries/s delivered, all subscribers)")
    for name, rates in results.items():
        rate = statistics.median(rates)
        base = append if name.startswith("live") else scan
        label = "append" if name.startswith("live") else "scan"
        print(f"{name:42s} {rate:>12,.0f}/s  = {rate / base:5.2f} x {label}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
