"""``nucleus import`` throughput: entries/s of an import against ``append_batch`` of the same records.

    python bench/bench_import.py [--entries 100000] [--rounds 3] [--batch 5000] [--backend sqlite|postgres]

The same ~300-byte, 10-field records as ``bench/bench_peers.py``. Per round and backend, on a
fresh ledger each:

1. baseline: ``append_batch`` of the records (built beforehand), ``--batch`` at a time: what
   writing the same entries through the ledger costs (hashing them, chaining, the Merkle tree, the
   storage writes, one commit per batch);
2. ``import_entries`` of the export of those entries (``nucleus export``'s lines, read from a file):
   parsing each line, verifying it (hash, link, format, strict record parse), the Merkle tree and
   the storage writes, in one transaction;
3. ``import_ledger`` of the same lines: what ``nucleus import`` runs, the entries as in 2, then
   the second step (the ledger opened in the rebuild mode, which verifies it on open, and a full
   ``verify()``), without plugins: the price of importing nothing that did not verify in full;
4. the import into ``memory://``: the same parse and verification without a database.

Rounds interleaved; the ratio is import / append_batch entries/s within the round, the median
first. PostgreSQL: the database in ``NUCLEUS_BENCH_POSTGRES_DSN`` (default
``postgresql://postgres@127.0.0.1:5432/test``), a schema of its own per ledger, dropped after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_peers import CTX, documents

from nucleus_core import MemoryStorage, Record, create_ledger
from nucleus_core.cli import _entry_json
from nucleus_core.importing import import_entries, import_ledger
from nucleus_core.ledger import storage_for_url
from nucleus_core.testing.postgres import drop_schema

LEDGER_ID = "bench"


def pg_dsn() -> str:
    return os.environ.get("NUCLEUS_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def places(backend: str, tmp: Path) -> Callable[[], tuple[str, dict[str, Any], Callable[[], None]]]:
    """A maker of fresh places for a ledger: (url, storage options, clean-up)."""

    def make() -> tuple[str, dict[str, Any], Callable[[], None]]:
        name = f"b{uuid.uuid4().hex[:10]}"
        if backend == "sqlite":
            return f"sqlite:///{tmp / (name + '.db')}", {}, lambda: None
        return pg_dsn(), {"schema": name}, lambda: drop_schema(pg_dsn(), name)

    return make


def append_rate(url: str, options: dict[str, Any], records: list[Record], batch: int) -> float:
    with create_ledger(id=LEDGER_ID, storage=url, storage_options=options) as ledger:
        start = time.perf_counter()
        for k in range(0, len(records), batch):
            ledger.append_batch(records[k : k + batch], CTX)
        return len(records) / (time.perf_counter() - start)


def import_rate(storage: Any, path: Path, batch: int) -> float:
    storage.open(LEDGER_ID)
    try:
        start = time.perf_counter()
        with path.open("rb") as lines:
            report = import_entries(storage, LEDGER_ID, lines, batch=batch)
        return report.entries / (time.perf_counter() - start)
    finally:
        storage.close()


def full_import_rate(url: str, options: dict[str, Any], path: Path, batch: int) -> float:
    start = time.perf_counter()
    with path.open("rb") as lines:
        report = import_ledger(lines, batch=batch, id=LEDGER_ID, storage=url, storage_options=options)
    return report.entries / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=5000, help="append_batch size and import --batch")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), action="append")
    args = parser.parse_args()
    backends = args.backend or ["sqlite", "postgres"]
    records = [Record(**d) for d in documents(args.entries, "imp")]  # type: ignore[arg-type]
    results: dict[str, dict[str, list[float]]] = {
        b: {"append": [], "import": [], "full": [], "memory": []} for b in backends
    }
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        export = tmp / "export.jsonl"
        with create_ledger(id=LEDGER_ID, storage=f"sqlite:///{tmp / 'source.db'}") as source:
            for k in range(0, len(records), args.batch):
                source.append_batch(records[k : k + args.batch], CTX)
            with export.open("w", encoding="utf-8") as out:
                for entry in source.iter_entries(CTX):
                    out.write(_entry_json(entry))
                    out.write("\n")
        for rnd in range(args.rounds):
            for backend in backends:
                make = places(backend, tmp)
                url, options, clean = make()
                try:
                    results[backend]["append"].append(append_rate(url, options, records, args.batch))
                finally:
                    clean()
                url, options, clean = make()
                try:
                    results[backend]["import"].append(import_rate(storage_for_url(url, options), export, args.batch))
                finally:
                    clean()
                url, options, clean = make()
                try:
                    results[backend]["full"].append(full_import_rate(url, options, export, args.batch))
                finally:
                    clean()
                results[backend]["memory"].append(import_rate(MemoryStorage(), export, args.batch))
            print(f"round {rnd + 1}/{args.rounds} done", file=sys.stderr)
    print(f"| {args.entries:,} entries, batch {args.batch} | append_batch entries/s | import entries/s | "
          "ratio import / append_batch (median; per round) | nucleus import (both steps) entries/s | "
          "ratio both steps / append_batch (median; per round) | import into memory:// entries/s |")
    print("|---|---|---|---|---|---|---|")
    for backend, rates in results.items():
        ratios = [i / a for i, a in zip(rates["import"], rates["append"], strict=True)]
        full = [f / a for f, a in zip(rates["full"], rates["append"], strict=True)]
        print(
            f"| {backend} | {statistics.median(rates['append']):,.0f} | {statistics.median(rates['import']):,.0f} | "
            f"**{statistics.median(ratios):.2f}** ({', '.join(f'{r:.2f}' for r in ratios)}) | "
            f"{statistics.median(rates['full']):,.0f} | "
            f"**{statistics.median(full):.2f}** ({', '.join(f'{r:.2f}' for r in full)}) | "
            f"{statistics.median(rates['memory']):,.0f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
