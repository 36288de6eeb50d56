"""Module handle routes over HTTP against the plain entry read, in the same run.

``nucleus serve --dev`` (a subprocess, SQLite, the token module) serves a ledger holding one token
with ``--holders`` holders (a mint each). One keep-alive connection from this process sends,
in interleaved rounds of ``--requests`` each:

* the baseline, ``GET /records/{id}`` of the token's ``created`` entry (raw httpx), and
  ``RemoteLedger.get_by_id`` of it (the client checking the entry's hash);
* ``GET /modules/token/token?token_id=...`` (an attrs result), ``GET /modules/token/history?...``
  with ``holder`` (a list of one entry, read and filtered among the token's entries) (raw httpx), and
  ``RemoteLedger.modules.get("token", TokenModule).token(...)`` / ``.history(...)`` (the proxy:
  query items, decoding to TokenInfo, entries hash-checked).

Then the same three reads in this process on the same database file (``ledger.get_by_id``,
``runtime.get("token").token`` / ``.history``): what the module's own work costs, without HTTP.

Printed: calls/s of each (median round) and its ratio to the baseline of its kind (raw to raw,
client to client, in process to in process).

    python bench/bench_handles.py [--requests 1000] [--rounds 3] [--holders 50]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ISSUER = "oid:bench:user:issuer"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    import httpx

    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise SystemExit("server did not start")


def rate(fn: Callable[[], Any], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--holders", type=int, default=50)
    args = parser.parse_args()

    import httpx
    from nucleus_module_token import TokenModule
    from nucleus_server.client import RemoteLedger

    from nucleus_core import Record

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "NUCLEUS_ENV": "development"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "nucleus_core", "serve", "--dev", "--ledger", f"sqlite:///{Path(tmp) / 'h.db'}",
             "--plugin", "token", "--port", str(port), "--workers", "1", "--log-level", "warning"],
            env=env, cwd=tmp,
        )
        try:
            wait_ready(url, proc)
            token = f"dev:{ISSUER}"
            remote = RemoteLedger(url, token=token)
            holders = [f"oid:bench:user:h{i}" for i in range(args.holders)]

            def rec(rid: str, **payload: Any) -> Record:
                return Record(id=rid, stream="token", timestamp=1_700_000_000_000, payload=payload)

            remote.append(rec("created", type="created", token_id="EUR", issuer=ISSUER, symbol="EUR", decimals=2))
            remote.append_batch([
                rec(f"mint-{i}", type="minted", token_id="EUR", tx_id=f"tx{i}", to=h, amount=10)
                for i, h in enumerate(holders)
            ])
            tokens = remote.modules.get("token", TokenModule)
            holder = holders[len(holders) // 2]
            http = httpx.Client(base_url=url, headers={"authorization": f"Bearer {token}"})
            raw = {
                "GET /records/{id} (baseline)": lambda: http.get("/records/created").raise_for_status(),
                "GET /modules/token/token": lambda: http.get(
                    "/modules/token/token", params={"token_id": "EUR"}
                ).raise_for_status(),
                "GET /modules/token/history&holder": lambda: http.get(
                    "/modules/token/history", params={"token_id": "EUR", "holder": holder}
                ).raise_for_status(),
            }
            client = {
                "RemoteLedger.get_by_id (baseline)": lambda: remote.get_by_id("created"),
                "proxy .token(token_id)": lambda: tokens.token("EUR"),  # type: ignore[call-arg]
                "proxy .history(token_id, holder=)": lambda: tokens.history("EUR", holder=holder),  # type: ignore[call-arg]
            }
            assert len(tokens.history("EUR", holder=holder)) == 1  # type: ignore[call-arg]
            results: dict[str, list[float]] = {name: [] for name in (*raw, *client)}
            for fn in (*raw.values(), *client.values()):
                rate(fn, 50)  # warm-up
            for _ in range(args.rounds):
                for name, fn in (*raw.items(), *client.items()):
                    results[name].append(rate(fn, args.requests))
            http.close()
            remote.close()
        finally:
            proc.terminate()
            proc.wait(30)
        # The same calls in this process, on the same file: what the module itself costs.
        from nucleus_core import RequestContext, open_ledger

        ledger = open_ledger(id="default", storage=f"sqlite:///{Path(tmp) / 'h.db'}", plugins=["token"])
        who = RequestContext(oid=ISSUER, source="auth.dev")
        local = ledger.runtime.get("token", TokenModule)
        inproc = {
            "in process: get_by_id (baseline)": lambda: ledger.get_by_id("created", who),
            "in process: .token(token_id)": lambda: local.token("EUR", who),
            "in process: .history(token_id, holder=)": lambda: local.history("EUR", who, holder=holder),
        }
        results.update({name: [] for name in inproc})
        for fn in inproc.values():
            rate(fn, 50)
        for _ in range(args.rounds):
            for name, fn in inproc.items():
                results[name].append(rate(fn, args.requests))
        ledger.close()
    for group in (raw, client, inproc):
        names = list(group)
        base = statistics.median(results[names[0]])
        for name in names:
            value = statistics.median(results[name])
            print(f"{name:40} {value:8.0f} req/s  {value / base:5.2f} of the baseline")


if __name__ == "__main__":
    main()
