"""HTTP server cost: authenticated GET by record id and batch append, against a bare endpoint.

Two servers run as subprocesses under uvicorn on loopback:

* ``nucleus serve`` on a SQLite ledger with API-key authentication (``auth.api_key``: a keyed
  hash and a key lookup per request), and
* a bare pure-ASGI app (the same "framework": raw ASGI under uvicorn) answering the same paths
  with the same JSON bytes, with no authentication, no ledger and no validation.

The load comes from a third process (``--concurrency`` threads, one keep-alive connection each),
bounded by ``--requests`` and ``--seconds``. Printed per scenario: requests/s, p50 and p99 latency,
and the ratio to the bare endpoint measured in the same run. ``nucleus serve`` runs once per value
of ``--workers`` (``1,2``: one process, then two).

Two more scenarios compare HTTP with the same work done in process (a SQLite ledger of its own,
rounds interleaved with the HTTP ones):

* batch ingest: ``POST /entries/batch`` of ``--batch`` records against ``append_batch`` of the
  same dicts (``Record.from_dict`` each) in this process;
* concurrent single appends: ``--single-clients`` clients each posting one record per request
  (``POST /entries``) against as many threads calling ``append`` in this process; entries/s and
  p99 latency of both (what group commit, when there, shares between concurrent writers).

    python bench/bench_server.py [--requests 1000] [--seconds 10] [--concurrency 8] [--batch 100] [--rounds 3]
        [--workers 1,2] [--single-clients 32]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the bare endpoint (run with --bare) ---------------------------------------------------------
def run_bare(port: int, bodies_file: str) -> None:
    import uvicorn

    bodies = json.loads(Path(bodies_file).read_text())
    get_body = bodies["get"].encode()
    batch_body = bodies["batch"].encode()
    headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        if scope["type"] != "http":
            return
        more = True
        while more:  # read the request body as the real server does
            message = await receive()
            more = message.get("more_body", False)
        if scope["path"] == "/health":
            body, status = b'{"status":"ok"}', 200
        elif scope["method"] == "POST":
            body, status = batch_body, 201
        else:
            body, status = get_body, 200
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")


def run_threads(worker: Any, count: int, latencies: list[float], errors: list[int]) -> dict[str, Any]:
    """Run ``count`` threads of ``worker`` (which fill ``latencies`` and ``errors``); the figures."""
    import threading

    threads = [threading.Thread(target=worker) for _ in range(count)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors[0],
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


# --- the load generator (run with --load) -------------------------------------------------------
def run_load(url: str, token: str, kind: str, requests: int, seconds: float, concurrency: int, batch: int) -> None:
    """``concurrency`` threads, each with one keep-alive connection (http.client: the lightest
    client in the standard library, so the generator is not the bottleneck)."""
    import http.client
    import itertools
    import threading
    from urllib.parse import urlsplit

    target = urlsplit(url)
    latencies: list[float] = []
    errors = [0]
    counter = itertools.count()
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds
    run_id = secrets.token_hex(4)
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}

    def worker() -> None:
        conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port or 80, timeout=60)
        mine: list[float] = []
        failed = 0
        while True:
            with lock:
                n = next(counter)
            if n >= requests or time.perf_counter() > deadline:
                break
            if kind == "get":
                method, path, body = "GET", f"/records/seed-{n % 1000}", None
            elif kind == "single":
                record = {"id": f"s-{run_id}-{n}", "stream": "bench", "timestamp": 1, "payload": {"i": n}}
                method, path, body = "POST", "/entries", json.dumps(record).encode()
            else:
                records = [
                    {"id": f"b-{run_id}-{n}-{i}", "stream": "bench", "timestamp": 1, "payload": {"i": i}}
                    for i in range(batch)
                ]
                method, path, body = "POST", "/entries/batch", json.dumps({"records": records}).encode()
            start = time.perf_counter()
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - start)
            if response.status >= 300:
                failed += 1
        conn.close()
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    print(json.dumps(run_threads(worker, concurrency, latencies, errors)))


# --- the driver -----------------------------------------------------------------------------------
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


def load(url: str, token: str, kind: str, args: argparse.Namespace, concurrency: int | None = None) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--load",
            url,
            "--token",
            token,
            "--kind",
            kind,
            "--requests",
            str(args.requests),
            "--seconds",
            str(args.seconds),
            "--concurrency",
            str(concurrency or args.concurrency),
            "--batch",
            str(args.batch),
        ],
        check=True,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "NUCLEUS_API_KEY_PEPPER"},
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def in_process(ledger: Any, kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """The HTTP scenario's work in this process: batches of ``--batch`` dicts through
    ``Record.from_dict`` + ``append_batch`` (one thread), or ``--single-clients`` threads each
    appending one record per call; bounded like a load run."""
    import itertools
    import threading

    from nucleus_core import Record, RequestContext

    who = RequestContext(oid="oid:bench:user:loader", source="api_key")
    run_id = secrets.token_hex(4)
    counter = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    deadline = time.perf_counter() + args.seconds
    per_call = args.batch if kind == "batch" else 1

    def worker() -> None:
        mine = []
        while True:
            with lock:
                n = next(counter)
            if n >= args.requests or time.perf_counter() > deadline:
                break
            dicts = [
                {"id": f"p-{run_id}-{n}-{i}", "stream": "bench", "timestamp": 1, "payload": {"i": i}}
                for i in range(per_call)
            ]
            start = time.perf_counter()
            if kind == "batch":
                ledger.append_batch([Record.from_dict(d) for d in dicts], who)
            else:
                ledger.append(Record.from_dict(dicts[0]), who)
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    return run_threads(worker, 1 if kind == "batch" else args.single_clients, latencies, [0])


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]


def report(label: str, real: dict[str, Any], base: dict[str, Any], base_name: str, unit: int = 1) -> None:
    pad = " " * 40
    print(
        f"{label:40} nucleus {real['rps'] * unit:8.0f} /s  p50 {real['p50_ms']:6.1f} ms"
        f"  p99 {real['p99_ms']:6.1f} ms  ({real['requests']} requests)"
    )
    print(
        f"{pad} {base_name:7} {base['rps'] * unit:8.0f} /s  p50 {base['p50_ms']:6.1f} ms"
        f"  p99 {base['p99_ms']:6.1f} ms  ({base['requests']} requests)"
    )
    print(f"{pad} ratio   {real['rps'] / base['rps']:.2f}x throughput, {real['p99_ms'] / base['p99_ms']:.1f}x p99")


def drive(args: argparse.Namespace) -> None:
    import httpx

    from nucleus_core import Record, RequestContext, create_ledger

    workdir = Path(tempfile.mkdtemp(prefix="nucleus-bench-server-"))
    db = workdir / "bench.db"
    env = {**os.environ, "NUCLEUS_API_KEY_PEPPER": secrets.token_urlsafe(32)}
    os.environ["NUCLEUS_API_KEY_PEPPER"] = env["NUCLEUS_API_KEY_PEPPER"]
    settings = {"auth.api_key": {"pepper_env": "NUCLEUS_API_KEY_PEPPER"}}
    with create_ledger(id="bench", storage=f"sqlite:///{db}", plugins=["auth.api_key"], settings=settings) as ledger:
        token, _ = ledger.auth.parser("auth.api_key").create_key("oid:bench:user:loader", name="bench")
        who = RequestContext(oid="oid:bench:user:loader", source="api_key")
        ledger.append_batch(
            [
                Record(id=f"seed-{i}", stream="bench", timestamp=1, payload={"i": i, "text": "x" * 64})
                for i in range(1000)
            ],
            who,
        )
    config = workdir / "bench.toml"
    config.write_text(
        f'[ledger]\nid = "bench"\nstorage = "sqlite:///{db}"\n'
        '[plugins."auth.api_key"]\npepper_env = "NUCLEUS_API_KEY_PEPPER"\n'
        f"[server]\nmax_batch_records = {max(args.batch, 1)}\n"
    )
    bare_port = free_port()
    bare_url = f"http://127.0.0.1:{bare_port}"
    bare: subprocess.Popen[bytes] | None = None
    # The in-process baseline writes a ledger of its own (same backend, same durability).
    local = create_ledger(id="local", storage=f"sqlite:///{workdir / 'local.db'}")
    try:
        for workers in args.workers:
            nucleus_port = free_port()
            nucleus_url = f"http://127.0.0.1:{nucleus_port}"
            command = [sys.executable, "-m", "nucleus_core", "serve", "--config", str(config)]
            command += ["--port", str(nucleus_port), "--log-level", "warning", "--workers", str(workers)]
            server = subprocess.Popen(command, env=env, cwd=workdir, stderr=subprocess.DEVNULL)
            try:
                wait_ready(nucleus_url, server)
                if bare is None:
                    auth = {"authorization": f"Bearer {token}"}
                    get_body = httpx.get(f"{nucleus_url}/records/seed-1", headers=auth).text
                    probe = [
                        {"id": f"probe-{i}", "stream": "bench", "timestamp": 1, "payload": {"i": i}}
                        for i in range(args.batch)
                    ]
                    batch_body = httpx.post(f"{nucleus_url}/entries/batch", json={"records": probe}, headers=auth).text
                    bodies = workdir / "bodies.json"
                    bodies.write_text(json.dumps({"get": get_body, "batch": batch_body}))
                    bare_cmd = [sys.executable, __file__, "--bare", str(bare_port), "--bodies", str(bodies)]
                    bare = subprocess.Popen(bare_cmd)
                    wait_ready(bare_url, bare)
                run_scenarios(args, workers, token, nucleus_url, bare_url, local)
            finally:
                server.terminate()
                server.wait(60)
    finally:
        local.close()
        if bare is not None:
            bare.terminate()
            bare.wait(60)


def run_scenarios(
    args: argparse.Namespace, workers: int, token: str, nucleus_url: str, bare_url: str, local: Any
) -> None:
    print(
        f"\nnucleus serve --workers {workers} vs bare pure-ASGI endpoint (uvicorn, loopback, load from a separate "
        f"process; concurrency {args.concurrency}, {args.rounds} interleaved runs of at most {args.requests} "
        f"requests / {args.seconds:g} s; median run shown)"
    )
    for kind, label in (
        ("get", "GET /records/{id} (API key auth)"),
        ("batch", f"POST /entries/batch ({args.batch} records)"),
    ):
        # Interleaved rounds (bare, nucleus, [in process], ...) so load from other processes on the
        # machine hits all alike; the median round of each is reported.
        runs: dict[str, list[dict[str, Any]]] = {"bare": [], "nucleus": [], "local": []}
        for _ in range(args.rounds):
            runs["bare"].append(load(bare_url, token, kind, args))
            runs["nucleus"].append(load(nucleus_url, token, kind, args))
            if kind == "batch":
                runs["local"].append(in_process(local, kind, args))
        if any(r["errors"] for rs in runs.values() for r in rs):
            raise SystemExit(f"{label}: some requests failed")
        real = median_run(runs["nucleus"])
        report(label, real, median_run(runs["bare"]), "bare")
        if kind == "batch":
            print(f"{'':40} = {real['rps'] * args.batch:,.0f} records/s appended over HTTP")
            report(f"batch ingest, records ({args.batch}/call)", real, median_run(runs["local"]), "in-proc", args.batch)
    if args.single_clients:
        runs = {"nucleus": [], "local": []}
        for _ in range(args.rounds):
            runs["nucleus"].append(load(nucleus_url, token, "single", args, concurrency=args.single_clients))
            runs["local"].append(in_process(local, "single", args))
        if any(r["errors"] for r in runs["nucleus"]):
            raise SystemExit("POST /entries: some requests failed")
        report(
            f"{args.single_clients} clients, single appends",
            median_run(runs["nucleus"]),
            median_run(runs["local"]),
            "threads",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000, help="most requests per run")
    parser.add_argument("--seconds", type=float, default=10.0, help="longest run")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved runs per target; the median is shown")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument(
        "--workers",
        type=lambda v: [int(n) for n in v.split(",")],
        default=[1, 2],
        help="comma-separated worker counts of nucleus serve, one pass each (default 1,2)",
    )
    parser.add_argument(
        "--single-clients", type=int, default=32, help="clients (and in-process threads) of single appends; 0: skip"
    )
    parser.add_argument("--bare", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bodies", help=argparse.SUPPRESS)
    parser.add_argument("--load", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare is not None:
        run_bare(args.bare, args.bodies)
    elif args.load is not None:
        run_load(args.load, args.token, args.kind, args.requests, args.seconds, args.concurrency, args.batch)
    else:
        drive(args)


if __name__ == "__main__":
    main()
