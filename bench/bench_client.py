"""What a verifying RemoteLedger adds to a query: a page of 50 over loopback, with and without
verification, in the same run.

    python bench/bench_client.py [--backend sqlite|postgres] [--entries 20000] [--requests 300] [--rounds 3]

(PostgreSQL: the database in ``NUCLEUS_BENCH_POSTGRES_DSN``; a schema of its own, dropped after.)

The server is ``nucleus_server.create_app`` under uvicorn in a subprocess (so the client does not
share its interpreter), on a ledger of ``--entries`` records (~300 bytes canonical, 20 streams, as
bench_sqlite.py) signed by a checkpoint key made for the run; no writes while measuring, so the
verifying client's trusted checkpoint covers every page after its first request. Two clients in
one process, each with its own keep-alive connection: a plain ``RemoteLedger`` and one given the
verifier key. Their requests are interleaved (who goes first alternating) over the same random
pages, two kinds:

* ``all``: ``query({"limit": 50, "cursor": ...})``, 50 consecutive entries;
* ``stream``: ``query({"stream": "stream-7", "limit": 50, "cursor": ...})``, 50 entries 20 seqs
  apart (the proofs' entries are read one by one on the server).

Printed per kind: p50 and mean of each client's request time and the ratio (verifying / plain);
goal: verification adds < 25 % (ratio < 1.25). A verifying query asks for the page's proof in the
query itself (``proof_tree_size``); for comparison, the batch request other reads use
(``POST /proof/inclusion`` for the page's 50 seqs) is timed alone.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_sqlite import CTX, record  # the same records (~300 bytes canonical) and requester

from nucleus_core import create_ledger
from nucleus_core.checkpoint import NoteSigner, default_origin

LEDGER_ID = "bench-client"
KEY_ENV = "NUCLEUS_BENCH_CHECKPOINT_KEY"
TOKEN = f"dev:{CTX.oid}"
PAGE = 50


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def storage(backend: str, work: Path, schema: str) -> Any:
    if backend == "sqlite":
        from nucleus_storage_sqlite import sqlite_storage

        return sqlite_storage(work / "ledger.db")
    from nucleus_storage_postgres import postgres_storage

    return postgres_storage(os.environ["NUCLEUS_BENCH_POSTGRES_DSN"], schema=schema)


def open_ledger(backend: str, work: Path, schema: str) -> Any:
    return create_ledger(
        id=LEDGER_ID,
        storage=storage(backend, work, schema),
        plugins=["auth.dev"],
        checkpoint={"key_env": KEY_ENV, "interval": 0},
    )


# --- the server (run with --serve) -----------------------------------------------------------
def serve(backend: str, work: Path, schema: str, port: int) -> None:
    import uvicorn
    from nucleus_server import create_app

    app = create_app(open_ledger(backend, work, schema), owns_ledger=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")


# --- the measurement ---------------------------------------------------------------------------
def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(url: str, vkey: str, entries: int, requests: int, rounds: int) -> dict[str, Any]:
    from nucleus_server.client import RemoteLedger

    plain = RemoteLedger(url, token=TOKEN, ledger_id=LEDGER_ID)
    verifying = RemoteLedger(url, token=TOKEN, ledger_id=LEDGER_ID, checkpoint_vkeys=[vkey])
    rng = random.Random(7)
    kinds = {
        "all": lambda start: {"limit": PAGE, "cursor": f"s{start}"},
        "stream": lambda start: {"stream": "stream-7", "limit": PAGE, "cursor": f"s{start}"},
    }
    results: dict[str, Any] = {}
    try:
        verifying.refresh()  # the first checkpoint: trusted on its signature, then no more refreshes
        for kind, filters in kinds.items():
            span = PAGE if kind == "all" else PAGE * 20
            starts = [rng.randrange(0, entries - span) for _ in range(requests)]
            for client in (plain, verifying):  # warm both connections and the server's caches
                for start in starts[:20]:
                    client.query(filters(start))
            times: dict[str, list[float]] = {"plain": [], "verifying": []}
            for _ in range(rounds):
                for i, start in enumerate(starts):
                    pair = [("plain", plain), ("verifying", verifying)]
                    for name, client in pair if i % 2 else reversed(pair):
                        page = filters(start)
                        times[name].append(timed(lambda c=client, p=page: c.query(p)))
            # For comparison: the same page's proofs from POST /proof/inclusion, the path of
            # reads other than a query (get, get_by_id, ...), one request more.
            size = verifying.trusted_checkpoint.size  # type: ignore[union-attr]
            pages = [plain.query(filters(start)).entries for start in starts[:100]]
            proof_times = [
                timed(lambda p=p, n=size: verifying._inclusion_batch([e.seq for e in p], n, TOKEN)) for p in pages
            ]
            results[kind] = {"plain": times["plain"], "verifying": times["verifying"], "proofs": proof_times}
    finally:
        plain.close()
        verifying.close()
    return results


def ms(values: list[float]) -> str:
    return f"p50 {statistics.median(values) * 1000:.2f} ms, mean {statistics.fmean(values) * 1000:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", nargs=3, metavar=("WORK", "SCHEMA", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.backend, Path(args.serve[0]), args.serve[1], int(args.serve[2]))
        return
    signer = NoteSigner.generate(default_origin(LEDGER_ID))
    env = {**os.environ, KEY_ENV: signer.skey, "NUCLEUS_ENV": "development"}
    os.environ.update({KEY_ENV: signer.skey, "NUCLEUS_ENV": "development"})
    schema = f"bench_client_{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="bench-client-") as tmp:
        work = Path(tmp)
        ledger = open_ledger(args.backend, work, schema)
        for start in range(0, args.entries, 1000):
            ledger.append_batch([record(i) for i in range(start, min(start + 1000, args.entries))], CTX)
        ledger.close()
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, __file__, "--backend", args.backend, "--serve", str(work), schema, str(port)], env=env
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit("the server did not start") from None
                    time.sleep(0.1)
            results = measure(url, signer.vkey, args.entries, args.requests, args.rounds)
        finally:
            server.terminate()
            server.wait(30)
            if args.backend == "postgres":
                from nucleus_core.testing.postgres import drop_schema

                drop_schema(os.environ["NUCLEUS_BENCH_POSTGRES_DSN"], schema)
    print(f"{args.backend}, {args.entries} entries, pages of {PAGE}, {args.requests} x {args.rounds} requests each")
    for kind, figures in results.items():
        plain, verifying = figures["plain"], figures["verifying"]
        ratio = statistics.median(verifying) / statistics.median(plain)
        mean_ratio = statistics.fmean(verifying) / statistics.fmean(plain)
        print(f"  {kind:6}  plain {ms(plain)} | verifying {ms(verifying)} | "
              f"ratio p50 {ratio:.3f}, mean {mean_ratio:.3f}")
        print(f"          for comparison, POST /proof/inclusion for the page's 50 seqs alone: {ms(figures['proofs'])}")


if __name__ == "__main__":
    main()
