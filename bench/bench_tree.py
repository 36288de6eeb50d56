"""The Merkle tree's costs, each next to a baseline measured in the same run.

    python bench/bench_tree.py [--backend sqlite|postgres] [--batches 30] [--build 1000000] [--proofs 2000]

(PostgreSQL: the database in ``NUCLEUS_BENCH_POSTGRES_DSN``; a schema of its own, dropped after.)

1. append_batch(1000), durability="full" on SQLite: the ledger keeping its tree vs the same build
   with the tree switched off (the ledger's private ``_keep_tree`` flag, used only here), two
   ledgers on two files (or two ledger ids in one PostgreSQL database), batches interleaved and
   alternating who goes first. Goal: ratio (without / with, in time) >= 0.9.
2. Building the tree for an existing ledger of ``--build`` entries (written with the tree off, as
   every ledger before the tree was), in a fresh subprocess: entries/s and peak RSS, next to a
   plain scan of the same (seq, hash) rows in the same subprocess.
3. Proofs on that ledger: p50 / p99 of ``inclusion_proof`` and ``consistency_proof`` generation
   (the ledger API, in process) and of their verification with ``nucleus_core.tlog_verify``, next
   to a raw driver select of one entry's hash by seq timed in the same loop (a loaded machine
   shows in both).

Records are ~300 bytes canonical, as in bench_sqlite.py.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_sqlite import CTX, record  # the same records (~300 bytes canonical) and requester

from nucleus_core import create_ledger
from nucleus_core.tlog_verify import leaf_hash, verify_consistency, verify_inclusion


def storage(backend: str, work: Path, name: str, durability: str = "full") -> Any:
    if backend == "sqlite":
        from nucleus_storage_sqlite import sqlite_storage

        return sqlite_storage(work / f"{name}.db", durability=durability)
    from nucleus_storage_postgres import postgres_storage

    return postgres_storage(os.environ["NUCLEUS_BENCH_POSTGRES_DSN"], schema=f"bench_tree_{os.getpid()}")


def bench_append(backend: str, work: Path, batches: int) -> float:
    records = [record(i) for i in range(batches * 1000)]
    ledgers = {
        "tree": create_ledger(id="with-tree", storage=storage(backend, work, "with_tree")),
        "none": create_ledger(id="without-tree", storage=storage(backend, work, "without_tree")),
    }
    ledgers["none"]._keep_tree = False
    times = {"tree": 0.0, "none": 0.0}
    try:
        order = list(ledgers.items())
        for b in range(batches):
            chunk = records[b * 1000 : (b + 1) * 1000]
            for name, ledger in order if b % 2 else order[::-1]:
                t0 = time.perf_counter()
                ledger.append_batch(chunk, CTX)
                times[name] += time.perf_counter() - t0
        assert ledgers["tree"].tree_size() == batches * 1000
        assert ledgers["tree"].verify().ok
    finally:
        for ledger in ledgers.values():
            ledger.close()
        if backend == "postgres":
            from nucleus_core.testing.postgres import drop_schema

            drop_schema(os.environ["NUCLEUS_BENCH_POSTGRES_DSN"], f"bench_tree_{os.getpid()}")
    n = batches * 1000
    ratio = times["none"] / times["tree"]
    print(f"{backend} append_batch(1000) x{batches}, durability=full: with the tree {n / times['tree']:,.0f}/s, "
          f"without {n / times['none']:,.0f}/s, ratio {ratio:.3f} (goal >= 0.9)")
    return ratio


BUILD_CHILD = """
import json, os, resource, sys, time
from nucleus_core import open_ledger
from nucleus_core.tree import build_tree
backend, where = sys.argv[1], sys.argv[2]

def make_storage(where):
    if backend == "sqlite":
        from nucleus_storage_sqlite import sqlite_storage
        return sqlite_storage(where)
    from nucleus_storage_postgres import postgres_storage
    return postgres_storage(os.environ["NUCLEUS_BENCH_POSTGRES_DSN"], schema=where)

storage = make_storage(where)
storage.open("bench", create=False)
t0 = time.perf_counter()
n = sum(1 for _ in storage.iter_entry_hashes(1))
scan = time.perf_counter() - t0
t0 = time.perf_counter()
size = build_tree(storage)
build = time.perf_counter() - t0
storage.close()
t0 = time.perf_counter()
with open_ledger(id="bench", storage=make_storage(where), verify_workers=1) as ledger:
    opened = time.perf_counter() - t0
hwm = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")]
print(json.dumps({"n": n, "size": size, "scan": scan, "build": build, "open": opened,
                  "hwm_mb": hwm[0] / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def build_storage(backend: str, work: Path) -> tuple[str, Any]:
    """Where the build / proof ledger lives (a file, or a PostgreSQL schema) and a factory of its storage."""
    if backend == "sqlite":
        from nucleus_storage_sqlite import sqlite_storage

        path = work / "build.db"
        return str(path), lambda: sqlite_storage(path)
    from nucleus_storage_postgres import postgres_storage

    schema = f"bench_build_{os.getpid()}"
    return schema, lambda: postgres_storage(os.environ["NUCLEUS_BENCH_POSTGRES_DSN"], schema=schema)


def bench_build(backend: str, work: Path, entries: int) -> tuple[str, Any]:
    where, make = build_storage(backend, work)
    if backend == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{where}{suffix}").unlink(missing_ok=True)
        first = storage("sqlite", work, "build", "normal")
    else:
        first = make()
    with create_ledger(id="bench", storage=first) as ledger:
        ledger._keep_tree = False  # as written before the tree existed
        for start in range(0, entries, 10_000):
            ledger.append_batch([record(i) for i in range(start, min(start + 10_000, entries))], CTX)
    out = subprocess.run(
        [sys.executable, "-c", BUILD_CHILD, backend, where], capture_output=True, text=True, check=True
    )
    r = json.loads(out.stdout)
    print(f"tree build for {r['n']:,} existing entries ({backend}): {r['n'] / r['build']:,.0f} entries/s "
          f"({r['build']:.1f} s), peak RSS {r['hwm_mb']:.0f} MB; plain scan of (seq, hash) {r['n'] / r['scan']:,.0f}"
          f" rows/s; then open + verify (chain and tree, 1 process) {r['open']:.1f} s")
    return where, make


def raw_lookup(backend: str, where: str) -> tuple[Any, Any]:
    """A driver connection of its own and ``lookup(seq)``: one plain select of an entry's hash by
    seq, the least a read can cost (the baseline of a proof, timed in the same loop)."""
    if backend == "sqlite":
        import sqlite3

        conn: Any = sqlite3.connect(where)
        sql = "SELECT hash FROM nucleus_entries WHERE ledger_id = ? AND seq = ?"
        return conn, lambda seq: conn.execute(sql, ("bench", seq)).fetchone()
    import psycopg

    conn = psycopg.connect(os.environ["NUCLEUS_BENCH_POSTGRES_DSN"], autocommit=True)
    sql = f'SELECT hash FROM "{where}".nucleus_entries WHERE ledger_id = %s AND seq = %s'
    return conn, lambda seq: conn.execute(sql, ("bench", seq)).fetchone()


def bench_proofs(backend: str, where: str, make: Any, samples: int) -> None:
    rng = random.Random(7)
    conn, lookup = raw_lookup(backend, where)
    with conn, create_ledger(id="bench", storage=make(), verify_on_open=False) as ledger:
        n = ledger.tree_size()
        gen_i, gen_c, ver_i, ver_c, raw = [], [], [], [], []
        root = ledger.root_hash(n)
        for _ in range(samples):
            seq = rng.randint(1, n)
            t0 = time.perf_counter()
            assert lookup(seq) is not None
            raw.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            proof = ledger.inclusion_proof(seq, n, CTX)
            t1 = time.perf_counter()
            assert proof is not None
            entry = ledger.storage.get_by_seq(seq)
            leaf = leaf_hash(bytes.fromhex(entry.hash))
            t2 = time.perf_counter()
            verify_inclusion(leaf, proof.leaf_index, n, list(proof.hashes), root)
            t3 = time.perf_counter()
            gen_i.append(t1 - t0)
            ver_i.append(t3 - t2)
            old = rng.randint(1, n)
            old_root = ledger.root_hash(old)
            t0 = time.perf_counter()
            c = ledger.consistency_proof(old, n, CTX)
            t1 = time.perf_counter()
            verify_consistency(old, n, old_root, root, list(c.hashes))
            t2 = time.perf_counter()
            gen_c.append(t1 - t0)
            ver_c.append(t2 - t1)

    def pct(xs: list[float]) -> str:
        xs = sorted(xs)
        return f"p50 {statistics.median(xs) * 1e3:.3f} ms, p99 {xs[int(len(xs) * 0.99)] * 1e3:.3f} ms"

    driver = ""
    if backend == "postgres":
        import psycopg

        driver = f", psycopg {psycopg.pq.__impl__}"
    print(f"proofs on {n:,} entries ({backend}{driver}, x{samples}): inclusion {pct(gen_i)} (verify {pct(ver_i)}); "
          f"consistency {pct(gen_c)} (verify {pct(ver_c)}); baseline, one raw select by seq in the same loop: "
          f"{pct(raw)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--build", type=int, default=0, help="entries of the build / proof ledger (0: skip)")
    parser.add_argument("--proofs", type=int, default=2000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if args.batches:
            bench_append(args.backend, work, args.batches)
        if args.build:
            where, make = bench_build(args.backend, work, args.build)
            try:
                bench_proofs(args.backend, where, make, args.proofs)
            finally:
                if args.backend == "postgres":
                    from nucleus_core.testing.postgres import drop_schema

                    drop_schema(os.environ["NUCLEUS_BENCH_POSTGRES_DSN"], f"bench_build_{os.getpid()}")


if __name__ == "__main__":
    main()
