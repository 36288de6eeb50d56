"""SQLite backend benchmarks: every figure next to a baseline measured in the same run.

    python bench/bench_sqlite.py [--entries 1000000] [--dir DIR]

1. append_batch of 1000 records (durability="full") vs raw sqlite3 executemany of the same
   precomputed rows into the same schema and indexes (same pragmas), batches interleaved.
2. single appends at durability="full" vs raw single-row commits at synchronous=FULL, interleaved.
3. open + verify of an N-entry file (default 1,000,000) in fresh subprocesses, serial
   (verify_workers=1) and with the default (parallel at this size), optionally with older code
   (--old-code DIR): entries/s and peak RSS, vs a raw sqlite3 batched rescan of the same rows
   with a BLAKE3 rehash of the same preimages (the baseline), and the bare scan, in subprocesses
   in the same round (--rounds N repeats; --open-only skips 1, 2 and 4).
4. get_by_id and query by stream (limit 50) on that file: p50 / p99 latency vs the same raw SQL.
5. (``--wal-only`` runs just this) the WAL bound's cost: single appends and append_batch(1000) on
   the backend as it is (a stat of the WAL after each commit, a truncating checkpoint past
   ``wal_size_limit``) vs the same backend with that after-commit step switched off (as before the
   bound), interleaved.

6. (``--fast-open [ENTRIES ...]`` runs just this) the open from a trusted checkpoint
   (``verify_from_trusted_checkpoint``) ``--tail`` entries before the head, on files of each size
   (default 100,000 and 1,000,000), sizes interleaved, next to one full open of each.

Records are ~300 bytes canonical throughout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from nucleus_storage_sql import entry_to_row
from nucleus_storage_sqlite import SqliteStorage, sqlite_storage

from nucleus_core import Ledger, MemoryStorage, Record, RequestContext, create_ledger
from nucleus_core.checkpoint import NoteSigner, default_origin, sign_checkpoint
from nucleus_core.merkle import root_hash

LEDGER = "bench"
CTX = RequestContext(oid="oid:bench:user:runner", source="dev")
STREAMS = 20
INSERT = "INSERT INTO nucleus_entries VALUES (?, ?, ?, ?, ?, ?, ?, ?)"


def record(i: int, prefix: str = "rec") -> Record:
    return Record(
        id=f"{prefix}-{i:08d}",
        stream=f"stream-{i % STREAMS}",
        timestamp=1_700_000_000_000 + i,
        payload={"n": i, "subject": f"oid:bench:user:u{i % 97}", "amount": i % 1000, "text": "lorem ipsum dolor " * 9},
        meta={"batch": i // 1000},
    )


def precomputed_rows(records: list[Record]) -> list[tuple[object, ...]]:
    """The rows the ledger writes for ``records`` (computed on a memory backend)."""
    memory = MemoryStorage()
    with create_ledger(id=LEDGER, storage=memory) as ledger:
        for start in range(0, len(records), 10_000):
            ledger.append_batch(records[start : start + 10_000], CTX)
        return [entry_to_row(LEDGER, e) for e in memory.iter_entries()]


def empty_schema_file(path: Path) -> None:
    """A file with exactly the backend's schema and indexes (created by the backend itself)."""
    create_ledger(id="schema-only", storage=sqlite_storage(path)).close()


def raw_connection(path: Path, synchronous: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("pragma journal_mode = wal")
    db.execute(f"pragma synchronous = {synchronous}")
    db.execute("pragma cache_size = -16000")
    return db


def paired(work: Path, name: str, records: list[Record]) -> tuple[list[tuple[object, ...]], sqlite3.Connection, Ledger]:
    """The rows the ledger will write, a raw connection to an empty file with the same schema and
    pragmas (synchronous=FULL), and a ledger on its own file at durability="full"."""
    rows = precomputed_rows(records)
    raw_path = work / f"{name}_raw.db"
    empty_schema_file(raw_path)
    ledger = create_ledger(id=LEDGER, storage=sqlite_storage(work / f"{name}_ledger.db", durability="full"))
    return rows, raw_connection(raw_path, "FULL"), ledger


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}/s"


def bench_batches(work: Path, batches: int) -> dict[str, float]:
    records = [record(i) for i in range(batches * 1000)]
    rows, raw, ledger = paired(work, "batch", records)
    t_ledger = t_raw = 0.0
    with ledger:
        for b in range(batches):
            chunk = records[b * 1000 : (b + 1) * 1000]
            t0 = time.perf_counter()
            ledger.append_batch(chunk, CTX)
            t1 = time.perf_counter()
            raw.execute("BEGIN IMMEDIATE")
            raw.executemany(INSERT, rows[b * 1000 : (b + 1) * 1000])
            raw.execute("COMMIT")
            t2 = time.perf_counter()
            t_ledger += t1 - t0
            t_raw += t2 - t1
    raw.close()
    n = batches * 1000
    print(f"append_batch(1000) x{batches}, durability=full: ledger {rate(n, t_ledger)}, "
          f"raw executemany {rate(n, t_raw)}, ratio {t_raw / t_ledger:.2f} (goal >= 0.6)")
    return {"batch_ledger": n / t_ledger, "batch_raw": n / t_raw}


def bench_single(work: Path, count: int) -> dict[str, float]:
    records = [record(i, "one") for i in range(count)]
    rows, raw, ledger = paired(work, "single", records)
    t_ledger = t_raw = 0.0
    with ledger:
        for rec, row in zip(records, rows, strict=True):
            t0 = time.perf_counter()
            ledger.append(rec, CTX)
            t1 = time.perf_counter()
            raw.execute(INSERT, row)  # autocommit: one commit (and WAL fsync) per row
            t2 = time.perf_counter()
            t_ledger += t1 - t0
            t_raw += t2 - t1
    raw.close()
    print(f"single append x{count}, durability=full: ledger {rate(count, t_ledger)}, raw single-row commits "
          f"{rate(count, t_raw)}, ratio {t_raw / t_ledger:.2f} (goal >= 0.8)")
    return {"single_ledger": count / t_ledger, "single_raw": count / t_raw}


class UnboundedWal(SqliteStorage):
    """The backend without the after-commit WAL check: the baseline of :func:`bench_wal`."""

    def _after_commit(self) -> None:
        return None


def bench_wal(work: Path, batches: int, singles: int) -> dict[str, float]:
    records = [record(i, "w") for i in range(batches * 1000 + singles)]
    times = {"bounded": [0.0, 0.0], "unbounded": [0.0, 0.0]}
    ledgers = {
        "bounded": create_ledger(id=LEDGER, storage=sqlite_storage(work / "wal_bounded.db", durability="full")),
        "unbounded": create_ledger(id=LEDGER, storage=UnboundedWal(work / "wal_unbounded.db", durability="full")),
    }
    try:
        order = list(ledgers.items())
        for i in range(singles):
            for name, ledger in order if i % 2 else order[::-1]:  # alternate who goes first
                t0 = time.perf_counter()
                ledger.append(records[batches * 1000 + i], CTX)
                times[name][0] += time.perf_counter() - t0
        for b in range(batches):
            for name, ledger in order if b % 2 else order[::-1]:
                t0 = time.perf_counter()
                ledger.append_batch(records[b * 1000 : (b + 1) * 1000], CTX)
                times[name][1] += time.perf_counter() - t0
    finally:
        for ledger in ledgers.values():
            ledger.close()
    (bs, bb), (us, ub) = times["bounded"], times["unbounded"]
    print(f"WAL bound, durability=full: single append x{singles} {rate(singles, bs)} vs without the after-commit "
          f"check {rate(singles, us)}, ratio {us / bs:.2f}; append_batch(1000) x{batches} "
          f"{rate(batches * 1000, bb)} vs {rate(batches * 1000, ub)}, ratio {ub / bb:.2f}")
    return {"wal_single_ratio": us / bs, "wal_batch_ratio": ub / bb}


def build_big(path: Path, entries: int) -> None:
    if path.exists():
        with contextlib.closing(sqlite3.connect(path)) as db:
            have = db.execute("select count(*) from nucleus_entries where ledger_id = ?", (LEDGER,)).fetchone()[0]
        if have == entries:
            print(f"reusing {path} ({entries:,} entries)")
            return
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    t0 = time.perf_counter()
    with create_ledger(id=LEDGER, storage=sqlite_storage(path, durability="normal")) as ledger:
        for start in range(0, entries, 10_000):
            ledger.append_batch([record(i) for i in range(start, min(start + 10_000, entries))], CTX)
    print(f"built {entries:,} entries with append_batch(10000), durability=normal, in {time.perf_counter() - t0:.1f}s "
          f"({path.stat().st_size / 1e6:.0f} MB)")


OPEN_CHILD = """
import json, resource, sys, time
from nucleus_core import create_ledger
from nucleus_storage_sqlite import SqliteStorage, sqlite_storage
options = {"verify_workers": int(sys.argv[3])} if sys.argv[3:] else {}  # none: the code's default
t0 = time.perf_counter()
with create_ledger(id=sys.argv[2], storage=sqlite_storage(sys.argv[1]), **options) as ledger:
    n = ledger.length()
seconds = time.perf_counter() - t0
hwm = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")]
print(json.dumps({"n": n, "seconds": seconds, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "hwm_mb": hwm[0] / 1024 if hwm else None,
                  "workers_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""

ITER_CHILD = """
import json, resource, sys, time
from nucleus_storage_sqlite import SqliteStorage
storage = SqliteStorage(sys.argv[1])
storage.open(sys.argv[2])
t0 = time.perf_counter()
n = sum(1 for _ in storage.iter_entries())
seconds = time.perf_counter() - t0
print(json.dumps({"n": n, "seconds": seconds, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

SCAN_CHILD = """
import json, resource, sqlite3, sys, time
t0 = time.perf_counter()
db = sqlite3.connect(sys.argv[1])
sql = ("select seq, hash, prev_hash, record_id, stream, timestamp, canonical from nucleus_entries "
       "where ledger_id = ? and seq >= ? order by seq limit 2000")
n, nxt = 0, 1
while True:
    rows = db.execute(sql, (sys.argv[2], nxt)).fetchall()
    n += len(rows)
    if len(rows) < 2000:
        break
    nxt = rows[-1][0] + 1
seconds = time.perf_counter() - t0
hwm = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")]
print(json.dumps({"n": n, "seconds": seconds, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "hwm_mb": hwm[0] / 1024 if hwm else None}))
"""

REHASH_CHILD = """
import json, resource, sqlite3, sys, time
from blake3 import blake3
from nucleus_core.hashing import appender_block, preimage_header, preimage_header_v2, preimage_prefix
t0 = time.perf_counter()
db = sqlite3.connect(sys.argv[1])
sql = ("select seq, hash, prev_hash, record_id, stream, timestamp, version, appender, auth_source, committed_at, "
       "canonical from nucleus_entries where ledger_id = ? and seq >= ? order by seq limit 2000")
prefix1, prefix2 = preimage_prefix(sys.argv[2]), preimage_prefix(sys.argv[2], 2)
pack1 = preimage_header(prefix1).pack
key, block, pack2 = None, b"", pack1
prev = bytes(32)
n, bad, nxt = 0, 0, 1
while True:
    rows = db.execute(sql, (sys.argv[2], nxt)).fetchall()
    for seq, h, _p, _r, _s, _t, version, appender, source, committed, canonical in rows:
        if version == 2:
            if (committed, appender, source) != key:
                key = (committed, appender, source)
                block = appender_block(committed, appender, source)
                pack2 = preimage_header_v2(prefix2, block).pack
            digest = blake3(pack2(prefix2, seq, prev, block, len(canonical)) + canonical).digest()
        else:
            digest = blake3(pack1(prefix1, seq, prev, len(canonical)) + canonical).digest()
        bad += digest.hex() != h
        prev = digest
    n += len(rows)
    if len(rows) < 2000:
        break
    nxt = rows[-1][0] + 1
seconds = time.perf_counter() - t0
assert bad == 0, bad
hwm = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")]
print(json.dumps({"n": n, "seconds": seconds, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "hwm_mb": hwm[0] / 1024 if hwm else None}))
"""

FAST_CHILD = """
import json, resource, sys, time
from nucleus_core import open_ledger
from nucleus_storage_sqlite import sqlite_storage
t0 = time.perf_counter()
with open_ledger(id=sys.argv[2], storage=sqlite_storage(sys.argv[1]), trusted_checkpoint=sys.argv[3],
                 trusted_checkpoint_vkeys=(sys.argv[4],), verify_from_trusted_checkpoint=True) as ledger:
    n = ledger.length()
seconds = time.perf_counter() - t0
print(json.dumps({"n": n, "seconds": seconds, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_checkpoint(storage: Any, size: int, path: Path) -> str:
    """Sign a checkpoint of the stored tree at ``size`` with a fresh key into ``path``; its vkey."""
    storage.open(LEDGER, read_only=True, create=False)
    try:
        signer = NoteSigner.generate(default_origin(LEDGER))
        note = sign_checkpoint(default_origin(LEDGER), size, root_hash(storage.merkle_store(), size), [signer])
    finally:
        storage.close()
    path.write_text(note, encoding="utf-8")
    return signer.vkey


def bench_fast_open(paths: list[Path], tail: int, rounds: int) -> None:
    """Open with ``verify_from_trusted_checkpoint`` (a checkpoint ``tail`` entries before the head)
    in fresh subprocesses, the sizes interleaved each round, next to the full open of the same file."""
    checkpoints = {}
    for path in paths:
        with contextlib.closing(sqlite3.connect(path)) as db:
            n = db.execute("select count(*) from nucleus_entries where ledger_id = ?", (LEDGER,)).fetchone()[0]
        cp = path.with_suffix(".checkpoint")
        checkpoints[path] = (n, cp, write_checkpoint(sqlite_storage(path), n - tail, cp))
    times: dict[Path, list[float]] = {path: [] for path in paths}
    full: dict[Path, list[float]] = {path: [] for path in paths}
    for r in range(rounds):
        for path in paths if r % 2 == 0 else paths[::-1]:
            n, cp, vkey = checkpoints[path]
            run = child(FAST_CHILD, path, str(cp), vkey)
            assert run["n"] == n
            times[path].append(run["seconds"])
            if r == 0:
                full[path].append(child(OPEN_CHILD, path, "1")["seconds"])
    for path in paths:
        n = checkpoints[path][0]
        print(f"open from a trusted checkpoint {tail:,} entries before the head of {n:,}: median "
              f"{statistics.median(times[path]) * 1000:.0f} ms (min {min(times[path]) * 1000:.0f}, max "
              f"{max(times[path]) * 1000:.0f}, {rounds} rounds); full open (verify_workers=1) of the same file "
              f"{full[path][0]:.2f} s")


def child(code: str, path: Path, *args: str, pythonpath: str | None = None) -> dict[str, float]:
    # Launched through a small intermediate interpreter: Linux carries ru_maxrss over fork+exec, so
    # a child forked straight from this (large) process would report this process's peak.
    launcher = "import subprocess, sys; sys.exit(subprocess.run(sys.argv[1:]).returncode)"
    env = None
    if pythonpath is not None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (pythonpath, os.environ.get("PYTHONPATH")) if p))
    out = subprocess.run(
        [sys.executable, "-c", launcher, sys.executable, "-c", code, str(path), LEDGER, *args],
        capture_output=True, text=True, check=True, env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def peak_rss_tree(opened: dict[str, float], workers: bool) -> str:
    text = f"peak RSS {opened['rss_mb']:.0f} MB (getrusage; VmHWM {opened['hwm_mb']:.0f} MB)"
    if workers:  # RUSAGE_CHILDREN: only meaningful when the run started worker processes
        text += f", largest worker process {opened['workers_mb']:.0f} MB"
    return text


def bench_open(path: Path, old_code: str | None = None, rounds: int = 1) -> dict[str, float]:
    """open + verify in fresh subprocesses: serial (verify_workers=1), the default (parallel at this
    size), optionally the code in ``old_code`` (a directory put first on PYTHONPATH), each next to a
    raw scan of the same rows in the same round."""
    child(SCAN_CHILD, path)  # warm the page cache so every run reads from memory
    out: dict[str, float] = {}
    for r in range(rounds):
        scan = child(SCAN_CHILD, path)
        rehash = child(REHASH_CHILD, path)
        serial = child(OPEN_CHILD, path, "1")
        default = child(OPEN_CHILD, path)
        old = child(OPEN_CHILD, path, pythonpath=old_code) if old_code else None
        n = default["n"]
        raw = scan["n"] / scan["seconds"]
        print(f"round {r + 1}: raw sqlite3 batched scan of the same rows: {raw:,.0f} rows/s, "
              f"peak RSS {scan['rss_mb']:.0f} MB; raw rescan + BLAKE3 rehash of the same preimages (the baseline): "
              f"{rehash['n'] / rehash['seconds']:,.0f} rows/s, peak RSS {rehash['rss_mb']:.0f} MB")
        for name, run in (("serial (verify_workers=1)", serial), ("default (parallel)", default), ("old code", old)):
            if run is None:
                continue
            line = (f"  open + verify {n:,.0f} entries, {name}: {run['n'] / run['seconds']:,.0f} entries/s "
                    f"({run['seconds']:.1f}s), {peak_rss_tree(run, run is default)}; "
                    f"ratio to rescan + rehash {rehash['seconds'] / run['seconds']:.2f} (goal >= 0.7), "
                    f"to the bare scan {scan['seconds'] / run['seconds']:.2f}")
            if old is not None and run is not old:
                line += f", to old code {old['seconds'] / run['seconds']:.2f}"
            print(line)
        print("  (goals: >= 0.7 x the rescan + rehash, peak RSS < 150 MB)")
        out = {"open_rate": n / default["seconds"], "serial_rate": n / serial["seconds"], "scan_rate": raw,
               "rehash_rate": rehash["n"] / rehash["seconds"]}
    iterated = child(ITER_CHILD, path)
    print(f"  storage.iter_entries() alone (rows -> Entry): {iterated['n'] / iterated['seconds']:,.0f}"
          f" entries/s ({iterated['seconds']:.1f}s)")
    return out


def percentiles(samples: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(samples, n=100)
    return q[49] * 1e6, q[98] * 1e6


def bench_reads(path: Path, entries: int, samples: int) -> dict[str, float]:
    rng = random.Random(7)
    ids = [f"rec-{rng.randrange(entries):08d}" for _ in range(samples)]
    starts = [rng.randrange(entries) for _ in range(samples)]
    raw = sqlite3.connect(path)
    raw_get = ("select seq, hash, prev_hash, record_id, stream, timestamp, canonical from nucleus_entries "
               "where ledger_id = ? and record_id = ? limit 1")
    raw_query = ("select seq, hash, prev_hash, record_id, stream, timestamp, canonical from nucleus_entries "
                 "where ledger_id = ? and stream = ? and seq > ? order by seq limit 51")
    t_get: list[float] = []
    t_get_raw: list[float] = []
    t_q: list[float] = []
    t_q_raw: list[float] = []
    with create_ledger(id=LEDGER, storage=sqlite_storage(path), verify_on_open=False) as ledger:
        for rid, start in zip(ids, starts, strict=True):
            stream = f"stream-{start % STREAMS}"
            t0 = time.perf_counter()
            entry = ledger.get_by_id(rid, CTX)
            t1 = time.perf_counter()
            row = raw.execute(raw_get, (LEDGER, rid)).fetchone()
            t2 = time.perf_counter()
            page = ledger.query({"stream": stream, "limit": 50, "cursor": f"s{start}"}, CTX)
            t3 = time.perf_counter()
            rows = raw.execute(raw_query, (LEDGER, stream, start)).fetchall()
            t4 = time.perf_counter()
            assert entry is not None and row is not None and len(page) == min(50, len(rows))
            t_get.append(t1 - t0)
            t_get_raw.append(t2 - t1)
            t_q.append(t3 - t2)
            t_q_raw.append(t4 - t3)
    raw.close()
    g50, g99 = percentiles(t_get)
    r50, r99 = percentiles(t_get_raw)
    q50, q99 = percentiles(t_q)
    s50, s99 = percentiles(t_q_raw)
    print(f"get_by_id x{samples} (ledger API, parses the record): p50 {g50:.0f} us, p99 {g99:.0f} us; "
          f"raw sqlite3 p50 {r50:.0f} us, p99 {r99:.0f} us")
    print(f"query stream limit 50 x{samples} (ledger API): p50 {q50:.0f} us, p99 {q99:.0f} us; "
          f"raw sqlite3 p50 {s50:.0f} us, p99 {s99:.0f} us")
    return {"get_p50": g50, "get_p99": g99, "query_p50": q50, "query_p99": q99}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000, help="size of the open/verify file")
    parser.add_argument("--batches", type=int, default=20, help="append_batch(1000) rounds")
    parser.add_argument("--singles", type=int, default=300, help="single appends")
    parser.add_argument("--samples", type=int, default=2000, help="lookups for the latency figures")
    parser.add_argument("--dir", type=Path, default=None, help="work directory (the big file is reused if present)")
    parser.add_argument("--wal-only", action="store_true", help="run only section 5 (the WAL bound's cost)")
    parser.add_argument("--open-only", action="store_true", help="only the open + verify figures")
    parser.add_argument("--rounds", type=int, default=1, help="open + verify rounds")
    parser.add_argument("--fast-open", type=int, nargs="*", default=None, metavar="ENTRIES",
                        help="only the open from a trusted checkpoint (verify_from_trusted_checkpoint), on files of "
                             "these sizes (built in --dir if missing), the checkpoint --tail entries before the head")
    parser.add_argument("--tail", type=int, default=1000, help="entries after the checkpoint for --fast-open")
    parser.add_argument("--old-code", default=None,
                        help="also open with the code in this directory first on PYTHONPATH (e.g. a git archive "
                             "of nucleus_core and the storage packages' src of an older commit)")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        work = args.dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench_sqlite_")))
        work.mkdir(parents=True, exist_ok=True)
        for name in ("batch_ledger.db", "batch_raw.db", "single_ledger.db", "single_raw.db", "wal_bounded.db",
                     "wal_unbounded.db"):
            for suffix in ("", "-wal", "-shm"):
                (work / f"{name}{suffix}").unlink(missing_ok=True)
        print(f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, canonical record size "
              f"{record(1).size} bytes, work dir {work}")
        if args.fast_open is not None:
            paths = []
            for size in args.fast_open or [100_000, 1_000_000]:
                paths.append(work / f"big_{size}.db")
                build_big(paths[-1], size)
            bench_fast_open(paths, args.tail, max(args.rounds, 5))
            return
        if args.wal_only:
            bench_wal(work, args.batches, args.singles)
            return
        if not args.open_only:
            bench_batches(work, args.batches)
            bench_single(work, args.singles)
        big = work / f"big_{args.entries}.db"
        build_big(big, args.entries)
        bench_open(big, args.old_code, args.rounds)
        if not args.open_only:
            bench_reads(big, args.entries, args.samples)
            bench_wal(work, args.batches, args.singles)


if __name__ == "__main__":
    main()
