"""Scale curve: does the cost per entry stay flat as one ledger grows?

    python bench/bench_scale.py [--backend sqlite|postgres] [--sizes 10000,100000,1000000,10000000]
                                [--dir DIR] [--batches 15] [--singles 150] [--grow-batch 10000] [--profile]

(PostgreSQL: the database in ``NUCLEUS_BENCH_POSTGRES_DSN``; schemas of its own, dropped after.)

ONE ledger (the "big" one, Merkle tree on, durability="full") is grown through the sizes with
``append_batch(--grow-batch)``. At each size, against baselines measured in the same round so that
the machine's noise cancels:

1. ``append_batch(1000)`` x ``--batches`` into the big ledger, interleaved batch by batch (who goes
   first alternating) with the same into a fresh reference ledger (a new file / schema at each
   point, empty when the point starts): both rates and big / reference.
2. single durable ``append`` x ``--singles``, interleaved the same way: both rates and the ratio.
3. open + verify of the big ledger (exactly the point's size: measured before 1 and 2 add their
   entries) in a fresh subprocess with the default settings (parallel verification from 200,000
   entries), next to a raw read of the same rows in a subprocess in the same round (SQLite: the
   batched sqlite3 scan of bench_sqlite.py, after one warming scan; PostgreSQL: the named-cursor
   read of bench_postgres.py): entries/s, peak RSS and the ratio to raw.

``--profile`` then runs cProfile over a few more batches and singles into the big ledger and the
reference (outside the timed rounds) and prints the top functions of each, to see where a ratio
that is not flat goes; on SQLite also the pages one more append_batch(1000) commit writes into
each, by table and index (the frames of an emptied WAL, mapped with dbstat). Records are ~300
bytes canonical (those of bench_sqlite.py).
"""

from __future__ import annotations

import abc
import argparse
import contextlib
import cProfile
import io
import itertools
import os
import pstats
import shutil
import sqlite3
import struct
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_postgres import CHILD_OPEN
from bench_sqlite import CTX, LEDGER, OPEN_CHILD, SCAN_CHILD, child, record

from nucleus_core import Ledger, Record, create_ledger

SQLITE_SIZES = "10000,100000,1000000,10000000"
POSTGRES_SIZES = "1000000"


def stamp() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC, load {load}"


class Backend(abc.ABC):
    """Where the big ledger and each point's reference ledger live, and the open + verify children."""

    name = ""

    @abc.abstractmethod
    def storage(self, name: str) -> Any:
        """An unopened backend for the ledger called ``name`` (a file or a schema of its own)."""

    @abc.abstractmethod
    def discard(self, name: str) -> None:
        """Remove the (closed) ledger ``name``."""

    @abc.abstractmethod
    def verify(self, name: str) -> tuple[dict[str, float], dict[str, float]]:
        """(raw read, open + verify) of ledger ``name`` in fresh subprocesses: ``n``, ``seconds``,
        ``rss_mb`` (peak RSS of the child), and for the open ``workers_mb`` where known."""

    def describe(self) -> str:
        return ""

    def pages_written(self, name: str, work: Callable[[], object]) -> dict[str, int] | None:
        """Database pages ``work`` (one commit into ledger ``name``) wrote, by table or index, and
        their ``total``, where the backend can tell."""
        return None

    def close(self) -> None:
        return None


class SqliteBackend(Backend):
    name = "sqlite"

    def __init__(self, work: Path) -> None:
        self.work = work

    def path(self, name: str) -> Path:
        return self.work / f"scale_{name}.db"

    def storage(self, name: str) -> Any:
        from nucleus_storage_sqlite import sqlite_storage

        self.discard(name)  # a leftover of an interrupted run
        return sqlite_storage(self.path(name), durability="full")

    def discard(self, name: str) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path(name)}{suffix}").unlink(missing_ok=True)

    def verify(self, name: str) -> tuple[dict[str, float], dict[str, float]]:
        path = self.path(name)
        child(SCAN_CHILD, path)  # warm the page cache: both runs read from memory
        raw = child(SCAN_CHILD, path)
        opened = child(OPEN_CHILD, path)
        return raw, opened

    def pages_written(self, name: str, work: Callable[[], object]) -> dict[str, int] | None:
        # An emptied WAL restarts at frame 1, so after one commit its frames are that commit's
        # pages; dbstat says which table or index each page belongs to.
        path = self.path(name)
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
            if db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]:
                return None
            work()
            busy, frames, _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if busy:
                return None
            wal = Path(f"{path}-wal").read_bytes()
            page_size = struct.unpack(">I", wal[8:12])[0]
            pages = {struct.unpack(">I", wal[at : at + 4])[0]
                     for at in range(32, 32 + frames * (24 + page_size), 24 + page_size)}
            owners = Counter(name for name, pageno in db.execute("SELECT name, pageno FROM dbstat") if pageno in pages)
        owners["(other: freelist, header)"] = len(pages) - sum(owners.values())
        return dict(owners.most_common(), total=len(pages))

    def describe(self) -> str:
        usage = shutil.disk_usage(self.work)
        return f"sqlite {sqlite3.sqlite_version}, work dir {self.work} ({usage.free / 1e9:.0f} GB free)"

    def size_mb(self, name: str) -> float:
        files = (Path(f"{self.path(name)}{suffix}") for suffix in ("", "-wal"))
        return sum(f.stat().st_size for f in files if f.exists()) / 1e6


class PostgresBackend(Backend):
    name = "postgres"

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.schemas: set[str] = set()

    def schema(self, name: str) -> str:
        return f"bench_scale_{os.getpid()}_{name}"

    def storage(self, name: str) -> Any:
        from nucleus_storage_postgres import postgres_storage

        self.schemas.add(self.schema(name))
        return postgres_storage(self.dsn, schema=self.schema(name))

    def discard(self, name: str) -> None:
        from nucleus_core.testing.postgres import drop_schema

        drop_schema(self.dsn, self.schema(name))
        self.schemas.discard(self.schema(name))

    def verify(self, name: str) -> tuple[dict[str, float], dict[str, float]]:
        out = []
        for mode in ("raw", "raw", "nucleus"):  # the first raw read warms the server's cache
            run = child(CHILD_OPEN, self.dsn, mode, self.schema(name))  # type: ignore[arg-type]
            out.append(dict(run, rss_mb=run["maxrss_kib"] / 1024))
        return out[1], out[2]

    def describe(self) -> str:
        import psycopg

        with psycopg.connect(self.dsn) as conn:
            version = conn.execute("SELECT version()").fetchone()
        return f"{version[0].split(' on ')[0] if version else 'PostgreSQL'}, schemas bench_scale_{os.getpid()}_*"

    def close(self) -> None:
        for schema in sorted(self.schemas):
            from nucleus_core.testing.postgres import drop_schema

            drop_schema(self.dsn, schema)
        self.schemas.clear()


def interleaved(ledgers: dict[str, Ledger], rounds: int, step: Callable[[Ledger, int], None]) -> dict[str, float]:
    """Seconds each ledger spent in ``step(ledger, round)`` over ``rounds`` rounds, alternating
    which ledger goes first."""
    spent = dict.fromkeys(ledgers, 0.0)
    order = list(ledgers.items())
    for r in range(rounds):
        for name, ledger in order if r % 2 else order[::-1]:
            t0 = time.perf_counter()
            step(ledger, r)
            spent[name] += time.perf_counter() - t0
    return spent


def fresh(numbers: Iterator[int], count: int, prefix: str = "rec") -> list[Record]:
    """``count`` records numbered from ``numbers``: ids unique, timestamps rising through the run, as
    a ledger's are (a timestamp written again lands in the middle of the timestamp index)."""
    return [record(next(numbers), prefix) for _ in range(count)]


def grow(ledger: Ledger, numbers: Iterator[int], count: int, batch: int) -> float:
    """Append ``count`` records in batches of ``batch``; seconds taken (building the records
    included, as a writer from data would)."""
    t0 = time.perf_counter()
    for first in range(0, count, batch):
        ledger.append_batch(fresh(numbers, min(batch, count - first)), CTX)
    return time.perf_counter() - t0


def profile_top(work: Callable[[], object], lines: int = 10) -> str:
    profile = cProfile.Profile()
    profile.runcall(work)
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(lines)
    body = text.getvalue().splitlines()
    start = next((i for i, line in enumerate(body) if "ncalls" in line), 0)
    return "\n".join(line for line in body[start:] if line.strip())


def measure_point(
    backend: Backend, big: Ledger, point: int, numbers: Iterator[int], args: argparse.Namespace
) -> dict[str, Any]:
    size = big.length()
    raw, opened = backend.verify("big")
    assert opened["n"] == raw["n"] == size, (opened["n"], raw["n"], size)
    ref_name = f"ref{point}"
    batches = [fresh(numbers, 1000, f"p{point}b") for _ in range(args.batches)]
    singles = fresh(numbers, args.singles, f"p{point}s")
    with create_ledger(id=LEDGER, storage=backend.storage(ref_name)) as ref:
        ledgers = {"big": big, "ref": ref}
        batch_t = interleaved(ledgers, args.batches, lambda ledger, r: ledger.append_batch(batches[r], CTX))
        single_t = interleaved(ledgers, args.singles, lambda ledger, r: ledger.append(singles[r], CTX))
        if args.profile:
            extra = [fresh(numbers, 1000, f"p{point}x") for _ in range(3)]
            extra_singles = fresh(numbers, 50, f"p{point}y")
            for name, ledger in ledgers.items():
                for what, work in (
                    ("append_batch(1000) x3", lambda ledger=ledger: [ledger.append_batch(c, CTX) for c in extra]),
                    ("single append x50", lambda ledger=ledger: [ledger.append(r, CTX) for r in extra_singles]),
                ):
                    print(f"  profile, {name} ledger, {what}, by own time:\n{profile_top(work)}")
            for name, ledger in ledgers.items():
                chunk = fresh(numbers, 1000, f"p{point}z")
                pages = backend.pages_written("big" if ledger is big else ref_name,
                                              lambda ledger=ledger, chunk=chunk: ledger.append_batch(chunk, CTX))
                if pages is not None:
                    total = pages.pop("total")
                    where = ", ".join(f"{owner} {count:,}" for owner, count in pages.items() if count)
                    print(f"  pages one more append_batch(1000) commit wrote, {name} ledger: {total:,} ({where})")
    backend.discard(ref_name)
    nb, ns = args.batches * 1000, args.singles
    return {
        "size": size,
        "after": big.length(),
        "batch_big": nb / batch_t["big"], "batch_ref": nb / batch_t["ref"],
        "single_big": ns / single_t["big"], "single_ref": ns / single_t["ref"],
        "open_rate": opened["n"] / opened["seconds"], "open_s": opened["seconds"], "open_rss": opened["rss_mb"],
        "workers_rss": opened.get("workers_mb"), "raw_rate": raw["n"] / raw["seconds"], "raw_rss": raw["rss_mb"],
    }


def report(p: dict[str, Any]) -> str:
    workers = f", largest worker {p['workers_rss']:.0f} MB" if p.get("workers_rss") else ""
    return (
        f"  append_batch(1000): big {p['batch_big']:,.0f}/s ({1e6 / p['batch_big']:.1f} us/entry), reference "
        f"{p['batch_ref']:,.0f}/s, big/ref {p['batch_big'] / p['batch_ref']:.2f}\n"
        f"  single durable append: big {p['single_big']:,.0f}/s ({1e6 / p['single_big']:.0f} us), reference "
        f"{p['single_ref']:,.0f}/s, big/ref {p['single_big'] / p['single_ref']:.2f}\n"
        f"  open + verify {p['size']:,} entries: {p['open_rate']:,.0f} entries/s ({p['open_s']:.1f} s, "
        f"{1e6 / p['open_rate']:.2f} us/entry), peak RSS {p['open_rss']:.0f} MB{workers}; raw read "
        f"{p['raw_rate']:,.0f} rows/s (peak RSS {p['raw_rss']:.0f} MB); ratio to raw "
        f"{p['open_rate'] / p['raw_rate']:.2f}"
    )


def table(points: list[dict[str, Any]]) -> str:
    head = ("| entries | growth (append_batch(10000)) | append_batch(1000) big / ref (ratio) "
            "| single durable big / ref (ratio) | open + verify (peak RSS) | raw read | verify / raw |\n"
            "|---|---|---|---|---|---|---|")
    rows = [
        f"| {p['size']:,} | {p['grow_rate']:,.0f}/s | {p['batch_big']:,.0f} / {p['batch_ref']:,.0f}/s "
        f"(**{p['batch_big'] / p['batch_ref']:.2f}**) | {p['single_big']:,.0f} / {p['single_ref']:,.0f}/s "
        f"(**{p['single_big'] / p['single_ref']:.2f}**) | {p['open_rate']:,.0f}/s ({p['open_rss']:.0f} MB) | "
        f"{p['raw_rate']:,.0f}/s | **{p['open_rate'] / p['raw_rate']:.2f}** |"
        for p in points
    ]
    return "\n".join([head, *rows])


@contextlib.contextmanager
def open_backend(args: argparse.Namespace) -> Iterator[Backend]:
    backend: Backend
    if args.backend == "postgres":
        dsn = os.environ.get("NUCLEUS_BENCH_POSTGRES_DSN")
        if not dsn:
            raise SystemExit("--backend postgres needs NUCLEUS_BENCH_POSTGRES_DSN (a database this run may use)")
        backend = PostgresBackend(dsn)
        try:
            yield backend
        finally:
            backend.close()
        return
    with contextlib.ExitStack() as stack:
        work = args.dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench_scale_")))
        work.mkdir(parents=True, exist_ok=True)
        backend = SqliteBackend(work)
        try:
            yield backend
        finally:
            for name in ("big", *(f"ref{i}" for i in range(len(args.sizes)))):
                backend.discard(name)


def sizes(text: str) -> list[int]:
    try:
        values = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes: a comma-separated list of entry counts, got {text!r}") from None
    if not values or any(v < 1 for v in values) or values != sorted(set(values)):
        raise argparse.ArgumentTypeError(f"--sizes: positive, strictly increasing entry counts, got {text!r}")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--sizes", type=sizes, default=None,
                        help=f"entry counts to measure at (default sqlite {SQLITE_SIZES}, postgres {POSTGRES_SIZES})")
    parser.add_argument("--dir", type=Path, default=None,
                        help="SQLite: directory of the files (default: a temporary one; 10M entries take ~5 GB)")
    parser.add_argument("--batches", type=int, default=15, help="append_batch(1000) rounds per point")
    parser.add_argument("--singles", type=int, default=150, help="single durable appends per point")
    parser.add_argument("--grow-batch", type=int, default=10_000, help="batch size of the growth between points")
    parser.add_argument("--profile", action="store_true", help="cProfile a few more appends at each point")
    args = parser.parse_args()
    if args.sizes is None:
        args.sizes = sizes(POSTGRES_SIZES if args.backend == "postgres" else SQLITE_SIZES)
    if min(args.batches, args.singles, args.grow_batch) < 1:
        parser.error("--batches, --singles and --grow-batch must be positive")
    points: list[dict[str, Any]] = []
    with open_backend(args) as backend:
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {backend.describe()}, record "
              f"{record(1).size} bytes canonical; start {stamp()}", flush=True)
        numbers = itertools.count()  # of every record of the run (ids and timestamps)
        with create_ledger(id=LEDGER, storage=backend.storage("big")) as big:
            for point, size in enumerate(args.sizes):
                need = size - big.length()
                if need < 0:
                    print(f"skipping {size:,}: the measurements already took the ledger to {big.length():,}")
                    continue
                seconds = grow(big, numbers, need, args.grow_batch)
                extra = f", file {backend.size_mb('big'):,.0f} MB" if isinstance(backend, SqliteBackend) else ""
                print(f"{size:,} entries: grew by {need:,} in {seconds:.1f} s ({need / seconds:,.0f} entries/s"
                      f"{extra}); {stamp()}", flush=True)
                p = measure_point(backend, big, point, numbers, args)
                p["grow_rate"] = need / seconds
                points.append(p)
                print(report(p), flush=True)
        print(f"\n{args.backend}, end {stamp()}; ratios: big ledger / fresh reference (appends), open + verify / raw "
              f"read (verify); 1.00 = flat\n{table(points)}", flush=True)


if __name__ == "__main__":
    main()
