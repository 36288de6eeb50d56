"""Benchmarks of the PostgreSQL backend, each against a baseline measured in the same run.

    python bench/bench_postgres.py [--dsn DSN] [--verify-entries 1000000] [--singles 1000]
                                   [--batches 20] [--per-writer 300]

1. ``append_batch`` of 1000 records and single ``append`` calls, entries/s, against raw psycopg
   inserting the same precomputed rows (one transaction per batch / per row).
2. Concurrent writer processes (1, 2, 4, 8) appending single records to one ledger: total
   entries/s and p99 append latency, against one raw psycopg process inserting single rows.
3. Open (with verification) of a ledger of ``--verify-entries`` entries, built by a bulk COPY of
   precomputed valid entries (then opened once, which builds its Merkle tree): entries/s and peak
   RSS of the opening process, against a raw psycopg named-cursor read of the same rows and
   columns (no verification) and that process's peak RSS.
4. (``--fast-open [ENTRIES ...]`` runs just this) the open from a trusted checkpoint
   (``verify_from_trusted_checkpoint``) ``--tail`` entries before the head, on ledgers of each size.

A fresh database is created for the run and dropped at the end. Figures go to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator

import psycopg
from nucleus_storage_postgres import postgres_storage
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from nucleus_core import Record, create_ledger
from nucleus_core.checkpoint import NoteSigner, default_origin, sign_checkpoint
from nucleus_core.context import RequestContext
from nucleus_core.hashing import GENESIS_HASH, entry_hash_with_prefix, preimage_prefix
from nucleus_core.merkle import root_hash

CTX = RequestContext(oid="oid:bench:service:writer", source="service")
T0 = 1_700_000_000_000
INSERT = (
    "INSERT INTO nucleus_entries (ledger_id, seq, hash, prev_hash, record_id, stream, timestamp, canonical) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)


def record(prefix: str, i: int) -> Record:
    return Record(
        id=f"{prefix}-{i:08d}",
        stream=("orders", "payments", "audit")[i % 3],
        timestamp=T0 + i,
        payload={"n": i, "customer": f"oid:bench:user:u{i % 977}", "amount": i % 10_000, "note": "benchmark entry"},
    )


def chain_rows(ledger_id: str, records: list[Record], start_seq: int = 1, prev: str = GENESIS_HASH) -> list[tuple]:
    """The exact rows the ledger would store for ``records``, hashes included."""
    prefix = preimage_prefix(ledger_id)
    rows = []
    seq = start_seq
    for r in records:
        h = entry_hash_with_prefix(prefix, seq, prev, r.canonical)
        rows.append((ledger_id, seq, h, prev, r.id, r.stream, r.timestamp, r.canonical))
        prev = h
        seq += 1
    return rows


def _options(dsn: str, extra: str) -> str:
    """The DSN's own ``options`` (``--synchronous-commit off``) and ``extra``."""
    own = conninfo_to_dict(dsn).get("options")
    return f"{own} {extra}" if own else extra


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


# 1. batches and single appends ---------------------------------------------------------------
def bench_appends(dsn: str, batches: int, singles: int) -> None:
    ledger_id, raw_id = "bench-appends", "bench-appends-raw"
    batch_records = [[record(f"b{b}", i) for i in range(1000)] for b in range(batches)]
    single_records = [record("s", i) for i in range(singles)]
    flat = [r for batch in batch_records for r in batch]
    raw_rows = chain_rows(raw_id, flat + single_records)
    with create_ledger(id=ledger_id, storage=postgres_storage(dsn, schema="bench")) as ledger:
        t = time.perf_counter()
        for batch in batch_records:
            ledger.append_batch(batch, CTX)
        nucleus_batch = time.perf_counter() - t
        t = time.perf_counter()
        for r in single_records:
            ledger.append(r, CTX)
        nucleus_single = time.perf_counter() - t
    with psycopg.connect(dsn, options=_options(dsn, "-c search_path=bench")) as conn:
        t = time.perf_counter()
        for b in range(batches):
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(INSERT, raw_rows[b * 1000 : (b + 1) * 1000])
        raw_batch = time.perf_counter() - t
        conn.autocommit = True
        t = time.perf_counter()
        for row in raw_rows[batches * 1000 :]:
            conn.execute(INSERT, row)
        raw_single = time.perf_counter() - t
    nb, rb = rate(batches * 1000, nucleus_batch), rate(batches * 1000, raw_batch)
    ns, rs = rate(singles, nucleus_single), rate(singles, raw_single)
    print(f"append_batch(1000) x{batches}: nucleus {nb:,.0f} entries/s, raw psycopg {rb:,.0f} entries/s, "
          f"ratio {nb / rb:.2f}")
    print(f"single append x{singles}: nucleus {ns:,.0f} entries/s, raw psycopg {rs:,.0f} entries/s, "
          f"ratio {ns / rs:.2f}")


# 2. concurrent writers -----------------------------------------------------------------------
def _writer(dsn: str, ledger_id: str, prefix: str, count: int, start: mp.synchronize.Event, out: mp.Queue) -> None:
    records = [record(prefix, i) for i in range(count)]
    latencies = []
    with create_ledger(id=ledger_id, storage=postgres_storage(dsn, schema="bench", pool_size=2)) as ledger:
        start.wait()
        for r in records:
            t = time.perf_counter()
            ledger.append(r, CTX)
            latencies.append(time.perf_counter() - t)
    out.put(latencies)


def _raw_writer(dsn: str, rows: list[tuple], start: mp.synchronize.Event, out: mp.Queue) -> None:
    latencies = []
    with psycopg.connect(dsn, options="-c search_path=bench", autocommit=True) as conn:
        start.wait()
        for row in rows:
            t = time.perf_counter()
            conn.execute(INSERT, row)
            latencies.append(time.perf_counter() - t)
    out.put(latencies)


def _run_processes(targets: list[tuple]) -> tuple[float, list[float]]:
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    out = ctx.Queue()
    procs = [ctx.Process(target=fn, args=(*args, start, out)) for fn, args in targets]
    for p in procs:
        p.start()
    time.sleep(3.0)  # let every process import and open its ledger before the clock starts
    t = time.perf_counter()
    start.set()
    latencies: list[float] = []
    for _ in procs:
        latencies += out.get()
    wall = time.perf_counter() - t
    for p in procs:
        p.join()
        assert p.exitcode == 0
    return wall, latencies


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def bench_writers(dsn: str, per_writer: int) -> None:
    raw_rows = chain_rows("bench-writers-raw", [record("raw", i) for i in range(per_writer)])
    wall, lat = _run_processes([(_raw_writer, (dsn, raw_rows))])
    base = rate(per_writer, wall)
    print(f"raw psycopg, 1 process, single-row inserts: {base:,.0f} entries/s, p99 {p99(lat) * 1000:.2f} ms")
    for n in (1, 2, 4, 8):
        ledger_id = f"bench-writers-{n}"
        targets = [(_writer, (dsn, ledger_id, f"w{w}", per_writer)) for w in range(n)]
        wall, lat = _run_processes(targets)
        total = rate(n * per_writer, wall)
        print(
            f"{n} writer process(es): {total:,.0f} entries/s total (ratio to raw 1 process {total / base:.2f}), "
            f"p99 append latency {p99(lat) * 1000:.2f} ms, median {statistics.median(lat) * 1000:.2f} ms"
        )
        with create_ledger(id=ledger_id, storage=postgres_storage(dsn, schema="bench")) as ledger:
            assert ledger.length() == n * per_writer


# 3. open + verify ----------------------------------------------------------------------------
def build_by_copy(dsn: str, ledger_id: str, n: int) -> float:
    with create_ledger(id=ledger_id, storage=postgres_storage(dsn, schema="bench")):
        pass  # creates the tables and registers the ledger
    prefix = preimage_prefix(ledger_id)
    t = time.perf_counter()
    with psycopg.connect(dsn, options="-c search_path=bench") as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY nucleus_entries (ledger_id, seq, hash, prev_hash, record_id, stream, timestamp, canonical) FROM STDIN"
        ) as copy:
            prev = GENESIS_HASH
            for i in range(n):
                r = record("v", i)
                h = entry_hash_with_prefix(prefix, i + 1, prev, r.canonical)
                copy.write_row((ledger_id, i + 1, h, prev, r.id, r.stream, r.timestamp, r.canonical))
                prev = h
        conn.commit()
        conn.autocommit = True
        conn.execute("ANALYZE nucleus_entries")
    return time.perf_counter() - t


CHILD_OPEN = """
import json, resource, sys, time
from nucleus_core import create_ledger
from nucleus_storage_postgres import postgres_storage
dsn, ledger_id, mode = sys.argv[1:4]
schema = sys.argv[4] if sys.argv[4:] and mode != "fast" else "bench"  # fast: argv 4-5 are the checkpoint and key
t = time.perf_counter()
if mode in ("nucleus", "serial"):
    options = {"verify_workers": 1} if mode == "serial" else {}  # default: parallel from 200,000 entries
    with create_ledger(id=ledger_id, storage=postgres_storage(dsn, schema=schema), **options) as ledger:
        n = ledger.length()
elif mode == "fast":
    from nucleus_core import open_ledger
    with open_ledger(id=ledger_id, storage=postgres_storage(dsn, schema="bench"), trusted_checkpoint=sys.argv[4],
                     trusted_checkpoint_vkeys=(sys.argv[5],), verify_from_trusted_checkpoint=True) as ledger:
        n = ledger.length()
else:
    import psycopg
    n = 0
    with psycopg.connect(dsn, options=f"-c search_path={schema}") as conn, conn.cursor(name="raw") as cur:
        # The columns verification reads, in one REPEATABLE READ READ ONLY transaction as it does.
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        cur.execute("SELECT seq, hash, prev_hash, record_id, stream, timestamp, version, appender, auth_source, "
                    "committed_at, canonical FROM nucleus_entries WHERE ledger_id = %s AND seq >= 1 ORDER BY seq",
                    (ledger_id,))
        while rows := cur.fetchmany(2000):
            n += len(rows)
print(json.dumps({"seconds": time.perf_counter() - t, "n": n,
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def _child(dsn: str, ledger_id: str, mode: str, *args: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD_OPEN, dsn, ledger_id, mode, *args], check=True, capture_output=True
    )
    return json.loads(out.stdout)


def build_ledger(dsn: str, n: int) -> str:
    """A ledger of ``n`` entries by COPY, then opened once (which builds its Merkle tree, so that no
    measured open pays for that); its id."""
    ledger_id = f"bench-verify-{n}"
    built = build_by_copy(dsn, ledger_id, n)
    t = time.perf_counter()
    create_ledger(id=ledger_id, storage=postgres_storage(dsn, schema="bench")).close()
    print(f"built {n:,} entries by COPY in {built:.1f} s, then the first open (verify + tree build) "
          f"{time.perf_counter() - t:.1f} s")
    return ledger_id


def bench_fast_open(dsn: str, sizes: list[int], tail: int, rounds: int, workdir: str) -> None:
    """Open with ``verify_from_trusted_checkpoint`` (a checkpoint ``tail`` entries before the head)
    in fresh subprocesses, the sizes interleaved each round."""
    ledgers = []
    for n in sizes:
        ledger_id = build_ledger(dsn, n)
        storage = postgres_storage(dsn, schema="bench")
        storage.open(ledger_id, read_only=True, create=False)
        try:
            signer = NoteSigner.generate(default_origin(ledger_id))
            note = sign_checkpoint(
                default_origin(ledger_id), n - tail, root_hash(storage.merkle_store(), n - tail), [signer]
            )
        finally:
            storage.close()
        path = os.path.join(workdir, f"{ledger_id}.checkpoint")
        with open(path, "w", encoding="utf-8") as f:
            f.write(note)
        ledgers.append((n, ledger_id, path, signer.vkey))
    times: dict[int, list[float]] = {n: [] for n in sizes}
    for r in range(rounds):
        for n, ledger_id, path, vkey in ledgers if r % 2 == 0 else ledgers[::-1]:
            run = _child(dsn, ledger_id, "fast", path, vkey)
            assert run["n"] == n
            times[n].append(run["seconds"])
    for n in sizes:
        print(f"open from a trusted checkpoint {tail:,} entries before the head of {n:,}: median "
              f"{statistics.median(times[n]) * 1000:.0f} ms (min {min(times[n]) * 1000:.0f}, "
              f"max {max(times[n]) * 1000:.0f}, {rounds} rounds)")


def bench_verify(dsn: str, n: int, rounds: int = 1) -> None:
    ledger_id = build_ledger(dsn, n)
    for _ in range(rounds):
        raw = _child(dsn, ledger_id, "raw")
        rr = rate(n, raw["seconds"])
        print(f"raw named-cursor read of the same rows and columns (baseline): {rr:,.0f} entries/s, "
              f"peak RSS {raw['maxrss_kib'] / 1024:.0f} MiB")
        for mode, name in (("serial", "serial (verify_workers=1)"), ("nucleus", "default (parallel)")):
            nuc = _child(dsn, ledger_id, mode)
            assert nuc["n"] == raw["n"] == n
            nr = rate(n, nuc["seconds"])
            print(f"  open+verify {n:,} entries, {name}: {nr:,.0f} entries/s ({nuc['seconds']:.1f} s), "
                  f"peak RSS {nuc['maxrss_kib'] / 1024:.0f} MiB (this process); ratio to raw {nr / rr:.2f} "
                  "(goal >= 0.7)")


@contextlib.contextmanager
def bench_database(server_dsn: str) -> Iterator[str]:
    name = f"nucleus_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield make_conninfo(server_dsn, dbname=name)
        finally:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=os.environ.get("NUCLEUS_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--singles", type=int, default=1000)
    parser.add_argument("--per-writer", type=int, default=300)
    parser.add_argument("--verify-entries", type=int, default=1_000_000)
    parser.add_argument("--verify-only", action="store_true", help="only the open + verify figures")
    parser.add_argument("--rounds", type=int, default=1, help="open + verify rounds")
    parser.add_argument("--fast-open", type=int, nargs="*", default=None, metavar="ENTRIES",
                        help="only the open from a trusted checkpoint (verify_from_trusted_checkpoint), on ledgers "
                             "of these sizes (default 100000 1000000), the checkpoint --tail entries before the head")
    parser.add_argument("--tail", type=int, default=1000, help="entries after the checkpoint for --fast-open")
    parser.add_argument("--appends-only", action="store_true", help="only the batch and single append figures")
    parser.add_argument(
        "--synchronous-commit", choices=("on", "off"), default="on",
        help="the server's synchronous_commit for the appends, Nucleus and raw alike (off: a commit does not wait "
        "for the WAL flush, which leaves the round trips and the work per statement)",
    )
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    with bench_database(args.dsn) as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            print(conn.execute("SELECT version()").fetchone()[0].split(" on ")[0])
        if args.fast_open is not None:
            with tempfile.TemporaryDirectory(prefix="bench_pg_") as workdir:
                bench_fast_open(dsn, args.fast_open or [100_000, 1_000_000], args.tail, max(args.rounds, 5), workdir)
            return
        if not args.verify_only:
            appends_dsn = dsn
            if args.synchronous_commit == "off":
                appends_dsn = make_conninfo(dsn, options="-c synchronous_commit=off")
            bench_appends(appends_dsn, args.batches, args.singles)
            if args.appends_only:
                return
            bench_writers(dsn, args.per_writer)
        bench_verify(dsn, args.verify_entries, args.rounds)


if __name__ == "__main__":
    main()
