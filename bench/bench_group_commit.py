"""Group commit: durable appends from many threads of one process, against raw one-row commits.

    python bench/bench_group_commit.py [--threads 16] [--per-thread 60] [--rounds 3] [--backend sqlite|postgres|both]

Every contender runs ``--threads`` threads that each make ``--per-thread`` single appends, one
record per call, each call returning only once its record is durable; records are built in the
thread from the same dicts (~300 bytes, 10 fields). Contenders, rounds interleaved and the order
rotating each round:

SQLite (WAL, ``synchronous=FULL``, a file of its own per contender and round):

- raw ``sqlite3``: each thread has its own connection and commits one ``INSERT`` per transaction
  (``BEGIN IMMEDIATE``; the baseline of the goal: group commit >= 5x it); the writers wait for
  each other in SQLite's busy handler (sleeps), which is slow;
- raw ``sqlite3`` with one connection shared by the threads under a lock: the same commits without
  the busy waits, the fastest that one-row-per-transaction allows (one fsync each);
- Nucleus, one ledger, group commit on (the defaults), and without the window (``group_commit_window=0``);
- Nucleus, one ledger, group commit off (``group_commit_max_calls=1``): one call per transaction.

PostgreSQL (``NUCLEUS_BENCH_POSTGRES_DSN``; a database of its own, dropped at the end):

- raw psycopg: each thread its own autocommit connection, one ``INSERT`` per transaction;
- Nucleus, one ledger, group commit on, without the window, and off;
- Nucleus, one ledger, one thread (the single-append rate of one ledger: the goal's "today").

For each: entries/s over the whole run of the threads, the latency of one call (p50, p99), and for
Nucleus with group commit the mean number of calls per transaction.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_peers import documents  # the same ~300-byte, 10-field records

from nucleus_core import Record, RequestContext, create_ledger

CTX = RequestContext(oid="oid:bench:user:runner", source="dev")


def run_threads(threads: int, per: int, prefix: str, call: Callable[[int, dict[str, Any]], None]) -> dict[str, float]:
    """``threads`` threads each appending ``per`` documents with ``call(thread, doc)``; rates and latencies."""
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    start = threading.Barrier(threads + 1)

    def worker(t: int) -> None:
        mine = latencies[t]
        docs = documents(per, f"{prefix}-t{t}")
        start.wait()
        try:
            for doc in docs:
                began = time.perf_counter()
                call(t, doc)
                mine.append(time.perf_counter() - began)
        except BaseException as err:  # reported after the run
            errors.append(err)

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise errors[0]
    flat = sorted(x for mine in latencies for x in mine)
    return {
        "rate": len(flat) / elapsed,
        "p50": flat[len(flat) // 2] * 1000,
        "p99": flat[min(len(flat) - 1, int(len(flat) * 0.99))] * 1000,
    }


# SQLite -------------------------------------------------------------------------------------------
def commit_one(conn: sqlite3.Connection, doc: dict[str, Any]) -> None:
    body = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO entries VALUES (?, ?, ?)", (doc["id"], doc["stream"], body))
    conn.execute("COMMIT")


def raw_sqlite(path: Path, threads: int, per: int, prefix: str) -> dict[str, float]:
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE IF NOT EXISTS entries (id TEXT PRIMARY KEY, stream TEXT NOT NULL, body TEXT NOT NULL)")
    setup.close()
    conns = []
    for _ in range(threads):
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
        conn.execute("PRAGMA synchronous=FULL")
        conns.append(conn)

    def call(t: int, doc: dict[str, Any]) -> None:
        commit_one(conns[t], doc)

    try:
        return run_threads(threads, per, prefix, call)
    finally:
        for conn in conns:
            conn.close()


def raw_sqlite_shared(path: Path, threads: int, per: int, prefix: str) -> dict[str, float]:
    """One connection for every thread, a lock around each transaction: no busy waits, the
    fastest one-row-per-transaction commits the file allows (one fsync each)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS entries (id TEXT PRIMARY KEY, stream TEXT NOT NULL, body TEXT NOT NULL)")
    lock = threading.Lock()

    def call(_t: int, doc: dict[str, Any]) -> None:
        with lock:
            commit_one(conn, doc)

    try:
        return run_threads(threads, per, prefix, call)
    finally:
        conn.close()


def nucleus(storage: Any, threads: int, per: int, prefix: str, **config: Any) -> dict[str, float]:
    with create_ledger(id="bench", storage=storage, **config) as ledger:
        out = run_threads(threads, per, prefix, lambda _t, doc: ledger.append(Record(**doc), CTX))
        stats = ledger.group_commit_stats()
        if stats is not None and stats.groups:
            out["group"] = stats.calls / stats.groups
        assert ledger.length() >= threads * per
    return out


def sqlite_contenders(folder: Path, threads: int) -> dict[str, Callable[[str, int, int], dict[str, float]]]:
    from nucleus_storage_sqlite import sqlite_storage

    def path(prefix: str) -> Path:
        return folder / f"{prefix}.db"

    return {
        "raw sqlite3, one row per transaction": lambda p, n, k: raw_sqlite(path(p), n, k, p),
        "raw sqlite3, one row per transaction, one shared connection": lambda p, n, k: raw_sqlite_shared(
            path(p), n, k, p
        ),
        "Nucleus, group commit": lambda p, n, k: nucleus(sqlite_storage(path(p), durability="full"), n, k, p),
        "Nucleus, group commit, no window": lambda p, n, k: nucleus(
            sqlite_storage(path(p), durability="full"), n, k, p, group_commit_window=0
        ),
        "Nucleus, group commit off": lambda p, n, k: nucleus(
            sqlite_storage(path(p), durability="full"), n, k, p, group_commit_max_calls=1
        ),
    }


# PostgreSQL ---------------------------------------------------------------------------------------
def raw_psycopg(dsn: str, threads: int, per: int, prefix: str) -> dict[str, float]:
    import psycopg

    table = f"raw_{prefix.replace('-', '_')}"
    with psycopg.connect(dsn, autocommit=True) as setup:
        setup.execute(f"CREATE TABLE {table} (id TEXT PRIMARY KEY, stream TEXT NOT NULL, body TEXT NOT NULL)")
    conns = [psycopg.connect(dsn, autocommit=True) for _ in range(threads)]
    insert = f"INSERT INTO {table} VALUES (%s, %s, %s)"

    def call(t: int, doc: dict[str, Any]) -> None:
        body = json.dumps(doc, sort_keys=True, separators=(",", ":"))
        conns[t].execute(insert, (doc["id"], doc["stream"], body))

    try:
        return run_threads(threads, per, prefix, call)
    finally:
        for conn in conns:
            conn.close()


def postgres_contenders(dsn: str, threads: int) -> dict[str, Callable[[str, int, int], dict[str, float]]]:
    from nucleus_storage_postgres import postgres_storage

    def storage(prefix: str) -> Any:
        return postgres_storage(dsn, schema=prefix.replace("-", "_"), pool_size=max(4, threads + 2))

    return {
        "raw psycopg, one row per transaction": lambda p, n, k: raw_psycopg(dsn, n, k, p),
        "Nucleus, group commit": lambda p, n, k: nucleus(storage(p), n, k, p),
        "Nucleus, group commit, no window": lambda p, n, k: nucleus(storage(p), n, k, p, group_commit_window=0),
        "Nucleus, group commit off": lambda p, n, k: nucleus(storage(p), n, k, p, group_commit_max_calls=1),
        "Nucleus, one thread": lambda p, _n, k: nucleus(storage(p), 1, k * 4, p),
    }


# the run ------------------------------------------------------------------------------------------
def measure(
    title: str,
    contenders: dict[str, Callable[[str, int, int], dict[str, float]]],
    threads: int,
    per: int,
    rounds: int,
    baselines: tuple[str, ...],
) -> None:
    """Run the contenders in interleaved rounds; one table row each, with its rate over each
    baseline's in the same round."""
    names = list(contenders)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            prefix = f"r{r}-{names.index(name)}-{uuid.uuid4().hex[:6]}"
            results[name].append(contenders[name](prefix, threads, per))
    print(f"\n{title}: {threads} threads x {per} single durable appends, {rounds} rounds (interleaved)")
    print("| contender | entries/s (min-max) | p50 ms | p99 ms | calls per transaction | "
          + " | ".join(f"x {b} (per round)" for b in baselines) + " |")
    print("|---|---|---|---|---|" + "---|" * len(baselines))
    for name in names:
        rows = results[name]
        rates = [row["rate"] for row in rows]
        ratios = [
            ", ".join(f"{row['rate'] / base['rate']:.2f}" for row, base in zip(rows, results[b], strict=True))
            for b in baselines
        ]
        group = f"{statistics.mean(row['group'] for row in rows):.1f}" if all("group" in row for row in rows) else "-"
        print(
            f"| {name} | {min(rates):,.0f}-{max(rates):,.0f} | {statistics.median(row['p50'] for row in rows):.2f} "
            f"| {statistics.median(row['p99'] for row in rows):.2f} | {group} | " + " | ".join(ratios) + " |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--per-thread", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument(
        "--dsn", default=os.environ.get("NUCLEUS_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    )
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}, python {sys.version.split()[0]}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as folder:
            contenders = sqlite_contenders(Path(folder), args.threads)
            measure("SQLite, synchronous=FULL", contenders, args.threads, args.per_thread, args.rounds,
                    baselines=tuple(list(contenders)[:2]))
    if args.backend in ("postgres", "both"):
        from bench_postgres import bench_database  # a database of its own, dropped at the end

        with bench_database(args.dsn) as dsn:
            contenders = postgres_contenders(dsn, args.threads)
            measure("PostgreSQL", contenders, args.threads, args.per_thread, args.rounds,
                    baselines=(next(iter(contenders)), "Nucleus, one thread"))
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
