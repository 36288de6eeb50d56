"""In-memory ledger: append_batch and verify throughput, each against a same-run baseline.

* append_batch: pre-built records (validated and canonicalized at construction), appended in
  batches of ``--batch``. Baseline: computing the same hash chain over the same canonical bytes
  with nothing else (the least any append must do).
* verify: a ledger of ``--entries`` entries (default 1,000,000) re-verified from storage.
  Baseline: raw BLAKE3 over the same preimages (tag, ledger id, seq, prev hash, length, bytes),
  i.e. hashing alone without link, sequence and derived-column checks.

Figures are entries/s and the ratio to the baseline (1.0 = as fast as the baseline).

Run:  python bench/bench_memory.py [--entries 1000000] [--append-entries 200000] [--batch 1000]
"""

from __future__ import annotations

import argparse
import gc
import random
import struct
import sys
import time
from pathlib import Path

from blake3 import blake3

sys.path.insert(0, str(Path(__file__).parent))
from bench_canonical import typical_record

from nucleus_core import Record, RequestContext, create_ledger
from nucleus_core.hashing import GENESIS_HASH, entry_hash_with_prefix, preimage_prefix

CTX = RequestContext(oid="oid:bench:user:runner", source="dev")


def make_records(n: int) -> list[Record]:
    rng = random.Random(7)
    return [Record(**typical_record(i, rng, with_floats=i % 4 == 0)) for i in range(n)]


def chain_baseline(ledger_id: str, records: list[Record]) -> float:
    """Seconds to compute the hash chain of ``records`` and nothing else."""
    prefix = preimage_prefix(ledger_id)
    start = time.perf_counter()
    prev = GENESIS_HASH
    for seq, r in enumerate(records, 1):
        prev = entry_hash_with_prefix(prefix, seq, prev, r.canonical)
    return time.perf_counter() - start


def bench_append(n: int, batch: int) -> None:
    records = make_records(n)
    gc.collect()
    base = chain_baseline("bench-append", records)
    with create_ledger(id="bench-append", storage="memory://") as ledger:
        start = time.perf_counter()
        for i in range(0, n, batch):
            ledger.append_batch(records[i : i + batch], CTX)
        took = time.perf_counter() - start
        assert ledger.length() == n
    rate, base_rate = n / took, n / base
    print(f"append_batch ({batch}/batch, {n:,} pre-built records of ~{sum(r.size for r in records) // n} B)")
    print(f"  baseline: hash chain only            {base_rate:>12,.0f} entries/s")
    print(f"  Ledger.append_batch (memory://)      {rate:>12,.0f} entries/s  ratio {rate / base_rate:5.2f}")


def bench_verify(n: int) -> None:
    distinct = make_records(min(n, 50_000))
    with create_ledger(id="bench-verify", storage="memory://") as ledger:
        start = time.perf_counter()
        for i in range(0, n, 10_000):
            chunk = []
            for j in range(i, min(i + 10_000, n)):
                r = distinct[j % len(distinct)]
                chunk.append(Record(id=f"v{j}", stream=r.stream, timestamp=r.timestamp, payload=r.payload, meta=r.meta))
            ledger.append_batch(chunk, CTX)
        print(f"\nverify ({n:,} entries; built in {time.perf_counter() - start:.1f} s)")
        rows = list(ledger.storage.iter_entries(1))
        gc.collect()
        # Baseline: BLAKE3 over exactly the preimages verify() hashes, with nothing else.
        prefix = preimage_prefix("bench-verify")
        pack = struct.Struct(">Q").pack
        start = time.perf_counter()
        for row in rows:
            c = row.canonical
            blake3(prefix + pack(row.seq) + bytes.fromhex(row.prev_hash) + pack(len(c)) + c).hexdigest()
        base = time.perf_counter() - start
        del rows
        start = time.perf_counter()
        report = ledger.verify()
        took = time.perf_counter() - start
        assert report.ok and report.entries_checked == n, report
    rate, base_rate = n / took, n / base
    print(f"  baseline: raw blake3 of the preimages {base_rate:>12,.0f} entries/s")
    print(f"  Ledger.verify()                       {rate:>12,.0f} entries/s  ratio {rate / base_rate:5.2f}"
          f"  ({took:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="entries to verify")
    parser.add_argument("--append-entries", type=int, default=200_000, help="entries to append")
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    bench_append(args.append_entries, args.batch)
    bench_verify(args.entries)


if __name__ == "__main__":
    main()
