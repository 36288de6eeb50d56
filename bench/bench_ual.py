"""UAL benchmark: ``check`` and ``list(principal, kind, limit=50)`` on a large ledger, SQLite and PostgreSQL.

The ledger (default 1,000,000 entries, 10,000 principals, 200,000 grants) is built fast: an empty
ledger with the UAL creates the tables, then precomputed valid entries (a real hash chain), the
resource index, the grants and the ``_acl`` entries recording them are bulk-inserted with the driver
in one transaction, and the ledger is opened again (which verifies the chain and the UAL tables).

Figures, each against a baseline measured in the same run:

* ``check`` p50/p99 vs a primary-key read of one entry (``storage.get_by_seq``).
* ``list`` p50/p99 vs post-filtering: pages of the unfiltered query, keeping the entries ``check``
  allows until 50 are found (what the UAL must never do; measured on fewer principals, it is slow).

    python bench/bench_ual.py --backend sqlite --entries 1000000
    python bench/bench_ual.py --backend postgres --entries 1000000
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nucleus_ual import ACL_STREAM

from nucleus_core import Record, RequestContext, create_ledger
from nucleus_core.hashing import GENESIS_HASH, entry_hash_with_prefix, preimage_prefix

LEDGER = "bench"
ADMIN = "oid:bench:user:admin"
KIND = "stream:doc"
T0 = 1_700_000_000_000


def principal(i: int) -> str:
    return f"oid:bench:user:p{i}"


def build_rows(
    entries: int, principals: int, grants: int, seed: int, *, after: tuple[int, str] = (0, GENESIS_HASH)
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Entries (a valid chain after the head ``after`` = (seq, hash): user records, then _acl records
    of the grants), index rows, grant rows."""
    rng = random.Random(seed)
    grant_rows: dict[tuple[str, str], tuple[Any, ...]] = {}
    while len(grant_rows) < grants:
        who, rid = principal(rng.randrange(principals)), f"d{rng.randrange(1, entries + 1)}"
        grant_rows[(who, rid)] = (LEDGER, who, KIND, rid, 1, ADMIN, None)
    acl_batch = 1000
    users = entries - (grants + acl_batch - 1) // acl_batch
    prefix = preimage_prefix(LEDGER)
    base, prev = after
    out: list[tuple[Any, ...]] = []
    index: list[tuple[Any, ...]] = []
    for n in range(1, users + 1):
        seq = base + n
        rec = Record(id=f"d{n}", stream="doc", timestamp=T0 + n, payload={"n": n})
        h = entry_hash_with_prefix(prefix, seq, prev, rec.canonical)
        out.append((LEDGER, seq, h, prev, rec.id, rec.stream, rec.timestamp, rec.canonical))
        index.append((LEDGER, seq, KIND, rec.id))
        prev = h
    # Grants only on resources that exist.
    rows = [g for g in grant_rows.values() if int(g[3][1:]) <= users]
    seq = base + users
    for start in range(0, len(rows), acl_batch):
        seq += 1
        chunk = rows[start : start + acl_batch]
        payload = {
            "op": "grant",
            "by": ADMIN,
            "grants": [
                {
                    "resource_kind": KIND,
                    "resource_id": g[3],
                    "principal_oid": g[1],
                    "scope": "read",
                    "granted_by": ADMIN,
                    "expires_at": None,
                }
                for g in chunk
            ],
        }
        rec = Record(id=f"acl-{seq}", stream=ACL_STREAM, timestamp=T0 + seq, payload=payload)
        h = entry_hash_with_prefix(prefix, seq, prev, rec.canonical)
        out.append((LEDGER, seq, h, prev, rec.id, rec.stream, rec.timestamp, rec.canonical))
        prev = h
    return out, index, rows


INSERTS = {
    "nucleus_entries": "(ledger_id, seq, hash, prev_hash, record_id, stream, timestamp, canonical)",
    "nucleus_ual_resources": "(ledger_id, seq, kind, resource_id)",
    "nucleus_ual_grants": "(ledger_id, principal_oid, resource_kind, resource_id, scope, granted_by, expires_at)",
}


def bulk_sqlite(path: Path, tables: dict[str, list[tuple[Any, ...]]]) -> None:
    conn = sqlite3.connect(path)
    with conn:
        for table, rows in tables.items():
            marks = ", ".join("?" * len(rows[0]))
            conn.executemany(f"INSERT INTO {table} {INSERTS[table]} VALUES ({marks})", rows)
    conn.execute("ANALYZE")
    conn.close()


def bulk_postgres(dsn: str, schema: str, tables: dict[str, list[tuple[Any, ...]]]) -> None:
    import psycopg

    with psycopg.connect(dsn) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        with conn.cursor() as cur:
            for table, rows in tables.items():
                with cur.copy(f"COPY {table} {INSERTS[table]} FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
        conn.commit()
        conn.autocommit = True
        conn.execute("ANALYZE")


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def timed(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def report(name: str, samples: list[float], base: list[float], base_name: str) -> None:
    p50, p99, b50, b99 = pct(samples, 0.5), pct(samples, 0.99), pct(base, 0.5), pct(base, 0.99)
    print(
        f"  {name:<28} p50 {p50:8.3f} ms  p99 {p99:8.3f} ms   | {base_name}: p50 {b50:9.3f} ms  p99 {b99:9.3f} ms"
        f"  | ratio p99 {p99 / b99:6.3f}"
    )


def run(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed + 1)
    tmp = Path(tempfile.mkdtemp(prefix="bench_ual_"))
    schema = f"bench_ual_{uuid.uuid4().hex[:8]}"
    if args.backend == "sqlite":
        path = tmp / "ual.db"

        def storage() -> Any:
            return f"sqlite:///{path}"
    else:
        from nucleus_storage_postgres import postgres_storage

        dsn = os.environ.get("NUCLEUS_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")

        def storage() -> Any:
            return postgres_storage(dsn, schema=schema)

    # A new ledger already holds its first entries (the _ledger record of its plugins): the bulk
    # rows continue the chain from its head.
    with create_ledger(id=LEDGER, storage=storage(), plugins=["ual"], admins=(ADMIN,)) as fresh:
        head = (fresh.length(), fresh.latest_hash() or GENESIS_HASH)
    t = time.perf_counter()
    entries, index, grants = build_rows(args.entries, args.principals, args.grants, args.seed, after=head)
    print(
        f"{args.backend}: {len(entries):,} entries ({len(index):,} records, {len(entries) - len(index):,} _acl), "
        f"{args.principals:,} principals, {len(grants):,} grants; rows computed in {time.perf_counter() - t:.1f} s"
    )
    t = time.perf_counter()
    tables = {"nucleus_entries": entries, "nucleus_ual_resources": index, "nucleus_ual_grants": grants}
    if args.backend == "sqlite":
        bulk_sqlite(path, tables)
    else:
        bulk_postgres(dsn, schema, tables)
    print(f"  bulk insert {time.perf_counter() - t:.1f} s")
    del entries, tables
    t = time.perf_counter()
    ledger = create_ledger(id=LEDGER, storage=storage(), plugins=["ual"], admins=(ADMIN,))
    print(f"  open with verification (chain + resource index + grants vs _acl): {time.perf_counter() - t:.1f} s")
    try:
        acl, store = ledger.acl, ledger.storage
        users = len(index)
        granted = [(g[1], g[3]) for g in rng.sample(grants, args.samples // 2)]
        denied = [
            (principal(rng.randrange(args.principals)), f"d{rng.randrange(1, users + 1)}")
            for _ in range(args.samples // 2)
        ]
        pairs = granted + denied
        rng.shuffle(pairs)
        it = iter(pairs * 2)
        check = timed(lambda: acl.check(*_pair(next(it))), len(pairs))
        seqs = iter([rng.randrange(1, users + 1) for _ in range(len(pairs))])
        base = timed(lambda: store.get_by_seq(next(seqs)), len(pairs))
        report("check", check, base, "get_by_seq")
        who = [principal(rng.randrange(args.principals)) for _ in range(args.list_samples)]
        wit = iter(who)
        listing = timed(
            lambda: acl.list(RequestContext(oid=next(wit), source="service"), {"kind": KIND, "limit": 50}), len(who)
        )
        found = [len(acl.list(RequestContext(oid=w, source="service"), {"kind": KIND, "limit": 50})) for w in who[:20]]
        pit = iter(who[: args.postfilter_samples])
        post = timed(lambda: postfilter(ledger, next(pit)), args.postfilter_samples)
        report("list(kind, limit=50)", listing, post, f"post-filter (capped at {POSTFILTER_MAX:,} entries)")
        print(
            f"  (list returned {statistics.mean(found):.1f} entries on average: "
            f"each principal holds ~{len(grants) / args.principals:.0f} grants)"
        )
        wild = principal(0)
        acl.grant(
            [{"resource_kind": KIND, "resource_id": "*", "principal_oid": wild, "scope": "read"}],
            RequestContext(oid=ADMIN, source="service"),
        )
        wl = timed(
            lambda: acl.list(RequestContext(oid=wild, source="service"), {"kind": KIND, "limit": 50}), args.list_samples
        )
        wpost = timed(lambda: postfilter(ledger, wild), args.postfilter_samples)
        report("list, holder of '*'", wl, wpost, "post-filter")
    finally:
        ledger.close()
        if args.backend == "postgres":
            import psycopg

            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _pair(p: tuple[str, str]) -> tuple[str, str, tuple[str, str]]:
    return p[0], "read", (KIND, p[1])


POSTFILTER_MAX = 50_000
"""The post-filter baseline stops after this many entries (a bound: it would go on to the end)."""


def postfilter(ledger: Any, who: str) -> int:
    """The baseline: unfiltered pages (as an admin would see them), kept when ``check`` allows."""
    admin = RequestContext(oid=ADMIN, source="service")
    kept, cursor, seen = 0, None, 0
    while kept < 50 and seen < POSTFILTER_MAX:
        seen += 1000
        page = ledger.query({"stream": "doc", "limit": 1000, "cursor": cursor}, admin)
        for e in page.entries:
            if ledger.acl.check(who, "read", (KIND, e.record.id)):
                kept += 1
                if kept == 50:
                    break
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--principals", type=int, default=10_000)
    parser.add_argument("--grants", type=int, default=200_000)
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--list-samples", type=int, default=500)
    parser.add_argument("--postfilter-samples", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
