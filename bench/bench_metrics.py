"""What metrics cost: appends with no observer, with an observer that does nothing, and with
nucleus-metrics (prometheus-client) counting, on the same ledger kind in the same run; plus what
prometheus-client costs to import and per observation.

Part 1: three ledgers of one kind (``memory://`` or a SQLite file), each ``--n`` single-record
appends per round, rounds interleaved (off, noop, metrics, off, ...); the median round's appends/s
and its ratio to ``off``. Part 2: the per-event cost, timed in a loop: the ledger's own check
when no observer is registered (``if not observers``), building and emitting an ``Appended`` event
to a no-op observer, and ``LedgerMetrics.observe`` of that event (a counter, a counter by the
batch's records, two histograms). Part 3: ``import prometheus_client`` (and ``nucleus_metrics``) in
a fresh interpreter, minus a bare interpreter's start, median of ``--imports`` runs.

    python bench/bench_metrics.py [--n 2000] [--rounds 5] [--imports 7] [--storage memory|sqlite]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

import nucleus_metrics
from prometheus_client import CollectorRegistry

from nucleus_core import Ledger, Record, RequestContext, create_ledger
from nucleus_core.observe import Appended, Event, Observers

CTX = RequestContext(oid="oid:bench:user:writer", source="bench")


class Noop:
    def observe(self, event: Event) -> None:
        pass


def make(kind: str, variant: str, folder: Path) -> Ledger:
    storage = "memory://" if kind == "memory" else f"sqlite:///{folder / f'{variant}.db'}?durability=normal"
    ledger = create_ledger(id=f"bench-{variant}", storage=storage)
    if variant == "noop":
        ledger.observers.add(Noop())
    elif variant == "metrics":
        nucleus_metrics.instrument(ledger, registry=CollectorRegistry())
    return ledger


def round_of(ledger: Ledger, start: int, n: int) -> float:
    began = time.perf_counter()
    for i in range(start, start + n):
        ledger.append(Record(id=f"r{i}", stream="s", timestamp=1, payload={"i": i}), CTX)
    return n / (time.perf_counter() - began)


def appends(kind: str, n: int, rounds: int) -> None:
    variants = ("off", "noop", "metrics")
    with tempfile.TemporaryDirectory() as tmp:
        ledgers = {v: make(kind, v, Path(tmp)) for v in variants}
        for v in variants:  # warm-up
            round_of(ledgers[v], 10**9, 200)
        rates: dict[str, list[float]] = {v: [] for v in variants}
        for r in range(rounds):
            for v in variants:
                rates[v].append(round_of(ledgers[v], r * n, n))
        for ledger in ledgers.values():
            ledger.close()
    base = statistics.median(rates["off"])
    print(f"\n## appends, {kind}, {n} per round, median of {rounds} interleaved rounds")
    print("| variant | appends/s | ratio to off |\n|---|---|---|")
    for v in variants:
        rate = statistics.median(rates[v])
        print(f"| {v} | {rate:,.0f} | {rate / base:.3f} |")


def per_event() -> None:
    empty = Observers()
    noop = Observers()
    noop.add(Noop())
    ledger = create_ledger(id="bench-event", storage="memory://")
    observer = nucleus_metrics.instrument(ledger, registry=CollectorRegistry())
    event = Appended(1, 0.0001)
    loops = 200_000

    def check() -> None:
        if empty:
            empty.emit(Appended(1, 0.0))

    def nothing() -> None:
        pass

    cases = {
        "(baseline: calling an empty function)": nothing,
        "no observer: `if not observers`": check,
        "Appended built + emitted to a no-op observer": lambda: noop.emit(Appended(1, 0.0001)),
        "LedgerMetrics.observe(Appended)": lambda: observer.observe(event),
    }
    print(f"\n## per event, best of 5 x {loops:,} calls")
    print("| what | ns per call |\n|---|---|")
    for name, fn in cases.items():
        best = min(timeit.repeat(fn, number=loops, repeat=5)) / loops
        print(f"| {name} | {best * 1e9:,.0f} |")
    ledger.close()


def imports(runs: int) -> None:
    def median_start(code: str) -> float:
        times = []
        for _ in range(runs):
            began = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            times.append(time.perf_counter() - began)
        return statistics.median(times)

    bare = median_start("pass")
    core = median_start("import nucleus_core")
    prom = median_start("import prometheus_client")
    plugin = median_start("import nucleus_core, nucleus_metrics")
    print(f"\n## import, median of {runs} fresh interpreters (bare start {bare * 1e3:.0f} ms subtracted)")
    print("| import | ms |\n|---|---|")
    print(f"| nucleus_core | {(core - bare) * 1e3:.0f} |")
    print(f"| prometheus_client | {(prom - bare) * 1e3:.0f} |")
    print(f"| nucleus_core + nucleus_metrics | {(plugin - bare) * 1e3:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--imports", type=int, default=7)
    parser.add_argument("--storage", choices=("memory", "sqlite", "both"), default="both")
    args = parser.parse_args()
    for kind in ("memory", "sqlite") if args.storage == "both" else (args.storage,):
        appends(kind, args.n, args.rounds)
    per_event()
    imports(args.imports)


if __name__ == "__main__":
    main()
