"""Batch append from dicts, piece by piece: what the record path and each index of the entries table cost.

    python bench/bench_batch.py [--batches 20] [--rounds 5] [--durability normal|full] [--part records|indexes]

Same ~300-byte, 10-field records as ``bench/bench_peers.py``.

1. ``records``: CPU time (``time.process_time``, so that other processes on the machine do not count)
   per record of ``Record(**dict)`` (validation, canonicalization), and of canonical encoding alone
   with the ``json`` C encoder against orjson, best of 15 passes over 20,000 records. The two
   encoders' outputs are compared byte for byte on every record.
2. ``indexes``: ``append_batch`` of 1000 built records (durability chosen, Merkle tree on) on the
   schema this code creates (version 3) and on variants made by changing the fresh file's indexes
   before the first append: schema version 2 (the unique index on ``(ledger_id, hash)``), and
   without each secondary index in turn (what each one costs; the ledger then lacks the look-up or
   query that index serves). Rounds interleaved, the order rotating; ratios are against schema 3 in
   the same round, the median first.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path

import orjson
from bench_peers import BATCH, CTX, documents
from nucleus_storage_sqlite import sqlite_storage

from nucleus_core import Record, create_ledger

ENTRIES = "nucleus_entries"
VARIANTS: dict[str, list[str]] = {
    "schema 3: index on (ledger_id, substr(hash, 1, 16))": [],
    "schema 2: unique index on (ledger_id, hash)": [
        f"DROP INDEX {ENTRIES}_ledger_hash_prefix",
        f"CREATE UNIQUE INDEX {ENTRIES}_ledger_hash ON {ENTRIES} (ledger_id, hash)",
    ],
    "without the hash index (no get by hash)": [f"DROP INDEX {ENTRIES}_ledger_hash_prefix"],
    "without (ledger_id, stream, seq) (no stream queries by index)": [f"DROP INDEX {ENTRIES}_ledger_stream_seq"],
    "without (ledger_id, timestamp) (no time ranges by index)": [f"DROP INDEX {ENTRIES}_ledger_timestamp"],
}


def cpu_per_item(run: Callable[[], object], count: int) -> float:
    """Microseconds of CPU per item, best of 15 runs of ``run`` over ``count`` items."""
    return min(timeit.repeat(run, number=1, repeat=15, timer=time.process_time)) / count * 1e6


def records_part() -> None:
    docs = documents(20_000, "c")
    records = [Record(**d) for d in docs]
    encoder = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    plain = [r.to_dict() for r in records]
    for record, doc in zip(records, plain, strict=True):
        canonical = record.canonical
        if orjson.dumps(doc, option=orjson.OPT_SORT_KEYS) != canonical or encoder.encode(doc).encode() != canonical:
            raise SystemExit(f"the encoders disagree on {record.id}")
    build = cpu_per_item(lambda: [Record(**d) for d in docs], len(docs))
    stdlib = cpu_per_item(lambda: [encoder.encode(d).encode() for d in plain], len(docs))
    fast = cpu_per_item(lambda: [orjson.dumps(d, option=orjson.OPT_SORT_KEYS) for d in plain], len(docs))
    print("| what | CPU per record |")
    print("|---|---|")
    print(f"| `Record(**dict)` (validate + canonicalize) | {build:.2f} us |")
    print(f"| canonical bytes with the `json` C encoder (sorted keys, compact) | {stdlib:.2f} us |")
    print(f"| canonical bytes with `orjson.dumps(OPT_SORT_KEYS)` | {fast:.2f} us |")


def indexes_part(batches: int, rounds: int, durability: str) -> None:
    docs = documents(batches * BATCH, "i")
    chunks = [[Record(**d) for d in docs[k : k + BATCH]] for k in range(0, len(docs), BATCH)]
    rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(rounds):
            names = list(VARIANTS)
            names = names[rnd % len(names) :] + names[: rnd % len(names)]
            for i, name in enumerate(names):
                storage = sqlite_storage(Path(tmp) / f"r{rnd}-{i}.db", durability=durability)  # type: ignore[arg-type]
                ledger = create_ledger(id="bench", storage=storage)
                for statement in VARIANTS[name]:
                    ledger.storage.database.execute_sql(statement)  # type: ignore[attr-defined]
                start = time.perf_counter()
                for chunk in chunks:
                    ledger.append_batch(chunk, CTX)
                rates[name].append(len(docs) / (time.perf_counter() - start))
                ledger.close()
            print(f"round {rnd + 1}/{rounds} done", file=sys.stderr)
    base = rates[next(iter(VARIANTS))]
    print(f"| `append_batch(1000)` of built records, {len(docs):,} entries, durability {durability} | "
          "entries/s | ratio to schema 3 (median; per round) |")
    print("|---|---|---|")
    for name, values in rates.items():
        ratios = [v / b for v, b in zip(values, base, strict=True)]
        per_round = ", ".join(f"{r:.2f}" for r in ratios)
        print(f"| {name} | {min(values) / 1000:.1f}-{max(values) / 1000:.1f}k | "
              f"{statistics.median(ratios):.2f} ({per_round}) |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=20, help="batches of 1,000 per variant per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--durability", choices=("normal", "full"), default="normal")
    parser.add_argument("--part", choices=("records", "indexes"), help="run only this part")
    args = parser.parse_args()
    if args.part in (None, "records"):
        records_part()
    if args.part in (None, "indexes"):
        indexes_part(args.batches, args.rounds, args.durability)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
