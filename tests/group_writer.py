"""Child process of tests/test_group_commit.py: THREADS threads append to one SQLite ledger file
forever, one record per call, with group commit on.

Usage: python group_writer.py PATH THREADS PREFIX

Prints ``ready`` once open, then ``ack <seq> <id>`` after each append returned (acknowledged),
flushed, until killed.
"""

from __future__ import annotations

import itertools
import sys
import threading

from nucleus_storage_sqlite import sqlite_storage

from nucleus_core import Record, RequestContext, create_ledger


def main() -> None:
    path, threads, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    ctx = RequestContext(oid="oid:test:user:writer", source="dev")
    out = threading.Lock()
    ledger = create_ledger(id="crash", storage=sqlite_storage(path, durability="full"))

    def worker(t: int) -> None:
        for i in itertools.count():
            record = Record(id=f"{prefix}-{t}-{i}", stream="events", timestamp=1, payload={"t": t, "i": i})
            entry = ledger.append(record, ctx)
            with out:
                print(f"ack {entry.seq} {record.id}", flush=True)

    print("ready", flush=True)
    pool = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()


if __name__ == "__main__":
    main()
