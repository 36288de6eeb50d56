"""Merkle tree over the in-memory node store: build, proof generation, proof verification.

Builds a tree of ``--leaves`` leaves (default 1,000,000) with ``build_node_writes`` into a
``MemoryNodeStore``, then times inclusion and consistency proofs at random (index, size) pairs
with p50/p99, and their verification by ``nucleus_core.tlog_verify``. Each figure is also given as
a ratio to a baseline measured in the same run: one RFC 9162 node hash (SHA-256 over 65 bytes),
and, for the scale, the same proofs over a tree of ``--small`` leaves (1,000): a ratio near
log(n)/log(small) means the cost grows with the tree's height only.

Run:  python bench/bench_merkle.py [--leaves 1000000] [--small 1000] [--proofs 20000]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import random
import statistics
import time
from collections.abc import Callable

from nucleus_core import merkle
from nucleus_core.tlog_verify import leaf_hash, node_hash, verify_consistency, verify_inclusion


def build(count: int) -> tuple[merkle.MemoryNodeStore, list[bytes], float]:
    hashes = [hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(count)]
    store = merkle.MemoryNodeStore()
    start = time.perf_counter()
    for chunk in merkle.build_node_writes(hashes):
        store.write(chunk)
    return store, hashes, time.perf_counter() - start


def timings(calls: list[Callable[[], object]]) -> list[float]:
    """Each call's time, with the garbage collector paused (its pauses are not the tree's)."""
    out = []
    gc.collect()
    gc.disable()
    try:
        for call in calls:
            t0 = time.perf_counter()
            call()
            out.append(time.perf_counter() - t0)
    finally:
        gc.enable()
    return out


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def measure(store: merkle.MemoryNodeStore, hashes: list[bytes], proofs: int, rng: random.Random) -> dict[str, float]:
    size = len(hashes)
    pairs = [(rng.randrange(size), rng.randrange(1, size + 1)) for _ in range(proofs)]
    pairs = [(min(i, n - 1), n) for i, n in pairs]
    firsts = [(rng.randrange(1, n + 1), n) for _, n in pairs]
    incl = timings([lambda i=i, n=n: merkle.inclusion_proof(store, i, n) for i, n in pairs])
    cons = timings([lambda m=m, n=n: merkle.consistency_proof(store, m, n) for m, n in firsts])
    roots = {n: merkle.root_hash(store, n) for _, n in pairs} | {m: merkle.root_hash(store, m) for m, _ in firsts}
    iproofs = [merkle.inclusion_proof(store, i, n) for i, n in pairs]
    cproofs = [merkle.consistency_proof(store, m, n) for m, n in firsts]
    vincl = timings([
        lambda i=i, n=n, p=p: verify_inclusion(leaf_hash(hashes[i]), i, n, p, roots[n])
        for (i, n), p in zip(pairs, iproofs, strict=True)
    ])
    vcons = timings([
        lambda m=m, n=n, p=p: verify_consistency(m, n, roots[m], roots[n], p)
        for (m, n), p in zip(firsts, cproofs, strict=True)
    ])
    return {
        "inclusion p50": statistics.median(incl), "inclusion p99": pct(incl, 0.99),
        "consistency p50": statistics.median(cons), "consistency p99": pct(cons, 0.99),
        "verify inclusion p50": statistics.median(vincl), "verify consistency p50": statistics.median(vcons),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--proofs", type=int, default=20_000)
    args = parser.parse_args()
    rng = random.Random(13)

    a, b = bytes(32), bytes(range(32))
    t0 = time.perf_counter()
    for _ in range(200_000):
        node_hash(a, b)
    hash_s = (time.perf_counter() - t0) / 200_000

    small_store, small_hashes, _ = build(args.small)
    small = measure(small_store, small_hashes, args.proofs, rng)
    store, hashes, build_s = build(args.leaves)
    big = measure(store, hashes, args.proofs, rng)

    print(f"node hash (baseline): {hash_s * 1e6:.2f} us")
    per_leaf = build_s / args.leaves
    print(f"build {args.leaves:,} leaves: {build_s:.2f} s, {per_leaf * 1e6:.2f} us/leaf "
          f"= {per_leaf / hash_s:.1f} node hashes/leaf")
    print(f"{'':24} {args.leaves:>10,} leaves   {'x node hash':>11}   {'x ' + format(args.small, ',') + ' leaves':>14}")
    for key, value in big.items():
        print(f"{key:24} {value * 1e6:>10.1f} us   {value / hash_s:>11.1f}   {value / small[key]:>14.2f}")


if __name__ == "__main__":
    main()
