"""Cost of modules on the append path and of rebuilding derived state on open.

Prints, for SQLite in a temp dir: appends/s of token transfers with the token module enabled vs
the same records appended to a ledger without modules (baseline, same run), the time to open
(verify + rebuild balances) vs opening the same file without the module, and the time the token
module takes to read one transfer's payload (``parse``, no storage; best of 5 passes).

    python bench/bench_modules.py [N]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from nucleus_module_token import TokenModule

from nucleus_core import Record, RequestContext, create_ledger

ALICE = RequestContext(oid="oid:bench:user:alice", source="service")
BOB = "oid:bench:user:bob"


def records(n: int, stream: str = "token") -> list[Record]:
    out = [
        Record(
            id="c",
            stream=stream,
            timestamp=1,
            payload={"type": "created", "token_id": "T", "issuer": ALICE.oid, "symbol": "T", "decimals": 0},
        ),
        Record(
            id="m",
            stream=stream,
            timestamp=1,
            payload={"type": "minted", "token_id": "T", "tx_id": "m", "to": ALICE.oid, "amount": n},
        ),
    ]
    out += [
        Record(
            id=f"t{i}",
            stream=stream,
            timestamp=1,
            payload={
                "type": "transferred",
                "token_id": "T",
                "tx_id": f"x{i}",
                "from": ALICE.oid,
                "to": BOB,
                "amount": 1,
            },
        )
        for i in range(n)
    ]
    return out


def run(path: Path, plugins: list[str], recs: list[Record]) -> float:
    ledger = create_ledger(id="bench", storage=f"sqlite:///{path}", plugins=plugins)
    start = time.perf_counter()
    for r in recs:
        ledger.append(r, ALICE)
    elapsed = time.perf_counter() - start
    ledger.close()
    return elapsed


def reopen(path: Path, plugins: list[str]) -> float:
    start = time.perf_counter()
    ledger = create_ledger(id="bench", storage=f"sqlite:///{path}", plugins=plugins)
    elapsed = time.perf_counter() - start
    ledger.close()
    return elapsed


def parse_time(recs: list[Record]) -> float:
    """Seconds per record for the token module to read the payloads of ``recs`` (best of 5)."""
    module = TokenModule()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for r in recs:
            module.parse(r)
        best = min(best, time.perf_counter() - start)
    return best / len(recs)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    recs = records(n)
    with tempfile.TemporaryDirectory() as tmp:
        # The baseline appends the same payloads to a stream no module owns: a ledger whose chain
        # holds the module's stream does not open without the module.
        base = run(Path(tmp) / "plain.db", ["sqlite"], records(n, stream="plain"))
        with_mod = run(Path(tmp) / "token.db", ["sqlite", "token"], recs)
        open_plain = reopen(Path(tmp) / "plain.db", ["sqlite"])
        open_mod = reopen(Path(tmp) / "token.db", ["sqlite", "token"])
    total = len(recs)
    print(f"appends, {total} single-record appends on SQLite")
    print(f"  without modules (baseline): {total / base:10.0f} appends/s")
    print(f"  with the token module:      {total / with_mod:10.0f} appends/s   ratio {with_mod / base:.2f}x time")
    print(f"open with verification, {total} entries")
    print(f"  without modules (baseline): {open_plain * 1000:10.1f} ms")
    print(f"  with token rebuild:         {open_mod * 1000:10.1f} ms   ratio {open_mod / open_plain:.2f}x time")
    print(f"payload parse, {total} token records: {parse_time(recs) * 1e6:.1f} us/record")


if __name__ == "__main__":
    main()
