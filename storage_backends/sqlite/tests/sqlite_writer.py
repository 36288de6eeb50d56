"""Child process for the multi-process tests: appends to one SQLite ledger file.

Usage: python sqlite_writer.py PATH LEDGER_ID PREFIX COUNT [DURABILITY]

Appends COUNT records (ids PREFIX-0, PREFIX-1, ...) one at a time, printing ``ack <seq> <id>``
after each append returned (acknowledged), flushed. COUNT 0 means forever (until killed).
"""

from __future__ import annotations

import itertools
import sys

from nucleus_storage_sqlite import sqlite_storage

from nucleus_core import Record, RequestContext, create_ledger


def main() -> None:
    path, ledger_id, prefix, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    durability = sys.argv[5] if len(sys.argv) > 5 else "full"
    ctx = RequestContext(oid="oid:test:user:writer", source="dev")
    counter = range(count) if count else itertools.count()
    with create_ledger(id=ledger_id, storage=sqlite_storage(path, durability=durability)) as ledger:
        print("ready", flush=True)
        for i in counter:
            record = Record(id=f"{prefix}-{i}", stream="events", timestamp=1_700_000_000_000 + i,
                            payload={"writer": prefix, "i": i, "pad": "x" * 200})
            entry = ledger.append(record, ctx)
            print(f"ack {entry.seq} {record.id}", flush=True)


if __name__ == "__main__":
    main()
