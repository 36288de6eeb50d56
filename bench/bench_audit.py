"""What ``nucleus audit`` costs on a database, next to ``nucleus verify``'s work measured in the same run.

    python bench/bench_audit.py [--entries 100000] [--runs 3]

A SQLite ledger of ``--entries`` entries (~300 bytes canonical, as in bench_sqlite.py) is written
with its tree and checkpoints; a checkpoint at half its size is kept. Then, alternating, each
``--runs`` times, on the storage opened read-only (:func:`nucleus_core.audit.open_read_only`):

1. baseline: ``verify_chain`` (the chain and the stored tree: what ``nucleus verify`` checks);
2. ``audit_storage`` against the kept checkpoint, the tree built (roots and proofs from the tree);
3. ``audit_storage`` on a copy of the file whose tree was removed (a ledger written before the
   tree existed): the roots and the consistency proof computed from the entries in one streaming
   pass (``merkle.PlannedNodes``).

Printed: the median seconds of each and the ratios 2/1 and 3/1. The audit adds the checkpoint
checks, O(log n) tree reads, to the verification: goal ratio 2/1 <= 1.1.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_sqlite import CTX, record  # the same records (~300 bytes canonical) and requester

from nucleus_core import create_ledger
from nucleus_core.audit import audit_storage, open_read_only
from nucleus_core.checkpoint import NoteSigner, default_origin
from nucleus_core.ledger import LedgerConfig, verify_chain

LEDGER = "bench-audit"


def build(path: Path, entries: int, signer: NoteSigner) -> bytes:
    config = {"signers": (signer,), "key_env": None, "interval": 3600}
    kept = b""
    with create_ledger(id=LEDGER, storage=f"sqlite:///{path}", checkpoint=config) as ledger:
        for start in range(0, entries, 1000):
            ledger.append_batch([record(i) for i in range(start, min(start + 1000, entries))], CTX)
            if not kept and ledger.length() >= entries // 2:
                kept = ledger.issue_checkpoint().encode("utf-8")
        ledger.issue_checkpoint()
    return kept


def timed(fn: object) -> float:
    start = time.perf_counter()
    result = fn()  # type: ignore[operator]
    elapsed = time.perf_counter() - start
    assert getattr(result, "ok", False), result
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    signer = NoteSigner.generate(default_origin(LEDGER))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        built, unbuilt = work / "built.db", work / "unbuilt.db"
        kept = build(built, args.entries, signer)
        shutil.copyfile(built, unbuilt)
        db = sqlite3.connect(unbuilt)
        with db:
            db.execute("DELETE FROM nucleus_merkle")
            db.execute("UPDATE nucleus_merkle_size SET size = 0")
        db.close()
        verifiers = [signer.verifier]
        origin = default_origin(LEDGER)
        times: dict[str, list[float]] = {"verify": [], "audit": [], "audit_unbuilt": []}

        def run(name: str, path: Path) -> None:
            storage = open_read_only(f"sqlite:///{path}", LEDGER)
            try:
                if name == "verify":
                    times[name].append(timed(lambda: verify_chain(LedgerConfig(id=LEDGER), storage)))
                else:
                    times[name].append(timed(lambda: audit_storage(
                        storage, ledger_id=LEDGER, kept_note=kept, verifiers=verifiers, origin=origin)))
            finally:
                storage.close()

        for i in range(args.runs):
            order = [("verify", built), ("audit", built), ("audit_unbuilt", unbuilt)]
            for name, path in order if i % 2 == 0 else list(reversed(order)):
                run(name, path)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(json.dumps({
        "entries": args.entries,
        "runs": args.runs,
        "median_s": {name: round(value, 3) for name, value in medians.items()},
        "audit_over_verify": round(medians["audit"] / medians["verify"], 3),
        "audit_unbuilt_over_verify": round(medians["audit_unbuilt"] / medians["verify"], 3),
    }, indent=2))


if __name__ == "__main__":
    sys.exit(main())
