"""What the access log costs per request, in each log format, against no access log.

One app (``create_app``) serves an in-memory ledger (``auth.dev``, 1,000 entries) and is called in
process (no network, no server) with ``GET /records/{id}`` and a dev token, each request carrying
an ``X-Request-Id``. Three configurations, rounds interleaved (off, text, json, off, ...), the
median round reported with its ratio to ``off`` of the same run:

* ``off``: the access log below its level (WARNING): the request id is still read, made current
  and returned, but no line is formatted;
* ``text``: INFO, the ``nucleus serve`` text formatter (``RedactingFormatter``);
* ``json``: INFO, ``JsonFormatter``.

The handler writes to an in-memory buffer emptied each round, so the terminal is not measured.

    python bench/bench_logs.py [--n 3000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import os
import statistics
import time
from typing import Any

from nucleus_server import create_app
from nucleus_server.logs import JsonFormatter

from nucleus_core import Record, create_ledger
from nucleus_core.auth import RedactingFormatter

TOKEN = b"Bearer dev:oid:bench:user:logs"


async def _call(app: Any, path: str) -> int:
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"authorization", TOKEN), (b"x-request-id", b"bench-1")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def _round(app: Any, n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        if await _call(app, f"/records/r-{i % 1000}") != 200:
            raise AssertionError("the bench request failed")
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--n", type=int, default=3000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ["NUCLEUS_ENV"] = "development"
    ledger = create_ledger(id="bench-logs", storage="memory://", plugins=["auth.dev"])
    ctx = ledger.auth.authenticate(TOKEN.decode().split(" ", 1)[1])
    ledger.append_batch([Record(id=f"r-{i}", stream="s", timestamp=i + 1, payload={"i": i}) for i in range(1000)], ctx)
    app = create_app(ledger)
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    access = logging.getLogger("nucleus_server.access")
    access.addHandler(handler)
    access.propagate = False
    formats = {
        "off": None,
        "text": RedactingFormatter("%(levelname)s %(name)s: %(message)s"),
        "json": JsonFormatter(),
    }
    results: dict[str, list[float]] = {name: [] for name in formats}
    loop = asyncio.new_event_loop()
    try:
        for _ in range(args.rounds):
            for name, formatter in formats.items():
                access.setLevel(logging.WARNING if formatter is None else logging.INFO)
                if formatter is not None:
                    handler.setFormatter(formatter)
                results[name].append(loop.run_until_complete(_round(app, args.n)))
                buffer.seek(0)
                buffer.truncate()
    finally:
        loop.close()
        app.close()
        ledger.close()
    base = statistics.median(results["off"])
    print(f"GET /records/{{id}} in process, {args.n} requests x {args.rounds} rounds (median round)")
    for name, values in results.items():
        value = statistics.median(values)
        print(f"  {name:5s} {value:9,.0f} req/s  ratio to off {value / base:.2f}")


if __name__ == "__main__":
    main()
