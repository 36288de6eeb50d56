"""Canonicalize + hash of typical ~300-byte records, against json.dumps(sort_keys=True) + BLAKE3.

Every figure is measured in the same run as its baseline, interleaved round by round, and reported
as a ratio (higher is better; 1.0 means as fast as the baseline). The baseline is what the issue
names: ``blake3(json.dumps(record, sort_keys=True).encode()).hexdigest()``, which is not canonical
(no I-JSON checks, Python number and key-order rules) but is the floor of "serialize + hash".

Run:  python bench/bench_canonical.py [--records 20000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import rfc8785
from blake3 import blake3

from nucleus_core.canonical import canonical_json
from nucleus_core.hashing import GENESIS_HASH, entry_hash_with_prefix, preimage_prefix
from nucleus_core.records import Record

WORDS = ["alpha", "bravo", "delta", "échelle", "kilo", "größe", "oscar", "tango", "zulu", "東京"]


def typical_record(i: int, rng: random.Random, *, with_floats: bool) -> dict[str, Any]:
    """A record like an order or an event: nested object, a small array, strings, ints, a bool."""
    payload: dict[str, Any] = {
        "customer": f"oid:acme:user:u{rng.randrange(10_000)}",
        "items": [
            {"sku": f"SKU-{rng.randrange(1000):04d}", "qty": rng.randrange(1, 5)} for _ in range(rng.randrange(1, 4))
        ],
        "total_cents": rng.randrange(100, 1_000_000),
        "currency": rng.choice(["EUR", "USD", "GBP"]),
        "note": " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 5))),
        "paid": rng.random() < 0.5,
    }
    if with_floats:
        payload["rate"] = rng.uniform(0, 2)
        payload["weight_kg"] = round(rng.uniform(0.1, 40), 3)
    return {
        "id": f"ord-{i:08d}",
        "stream": "orders",
        "timestamp": 1_700_000_000_000 + i,
        "payload": payload,
        "meta": {"source": rng.choice(["web", "app", "pos"]), "country": "NL"},
    }


def measure(fns: dict[str, Callable[[], object]], n: int, rounds: int) -> dict[str, float]:
    """Median records/s of each function over ``rounds`` interleaved rounds."""
    rates: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            rates[name].append(n / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in rates.items()}


def run(n: int, rounds: int, *, with_floats: bool) -> None:
    rng = random.Random(2)
    docs = [typical_record(i, rng, with_floats=with_floats) for i in range(n)]
    records = [Record(**d) for d in docs]
    sizes = [r.size for r in records]
    prefix = preimage_prefix("bench")
    dumps = json.dumps

    def baseline() -> None:
        for d in docs:
            blake3(dumps(d, sort_keys=True).encode()).hexdigest()

    def prevalidated() -> None:
        prev = GENESIS_HASH
        for seq, r in enumerate(records, 1):
            prev = entry_hash_with_prefix(prefix, seq, prev, r.canonical)

    def from_dict() -> None:
        prev = GENESIS_HASH
        for seq, d in enumerate(docs, 1):
            prev = entry_hash_with_prefix(prefix, seq, prev, Record(**d).canonical)

    def canonical_only() -> None:
        for d in docs:
            blake3(canonical_json(d)).hexdigest()

    def reference() -> None:
        for d in docs:
            blake3(rfc8785.dumps(d)).hexdigest()

    rates = measure(
        {
            "baseline": baseline,
            "prevalidated": prevalidated,
            "from_dict": from_dict,
            "canonical_json": canonical_only,
            "rfc8785": reference,
        },
        n,
        rounds,
    )
    base = rates["baseline"]
    label = "with 2 non-integral floats each" if with_floats else "no floats"
    print(f"\nrecords: {n}, {label}, canonical size {min(sizes)}-{max(sizes)} B (mean {sum(sizes) / n:.0f})")
    rows = [
        ("baseline", "json.dumps(sort_keys=True) + blake3 (not canonical)"),
        ("prevalidated", "entry hash of an already-built Record (canonical bytes cached)"),
        ("from_dict", "Record(**dict): validate + canonicalize, then entry hash"),
        ("canonical_json", "canonical_json(dict) + blake3 (I-JSON check + JCS, no record fields)"),
        ("rfc8785", "rfc8785.dumps(dict) + blake3 (reference package)"),
    ]
    for key, text in rows:
        print(f"  {text:70s} {rates[key]:>10,.0f} rec/s  ratio {rates[key] / base:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    run(args.records, args.rounds, with_floats=False)
    run(args.records, args.rounds, with_floats=True)


if __name__ == "__main__":
    main()
