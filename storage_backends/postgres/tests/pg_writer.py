"""A writer process for the concurrency and crash tests (run as a script, never imported by pytest).

Usage: ``python pg_writer.py DSN SCHEMA LEDGER_ID PREFIX COUNT ACK_FILE [BATCH]``

Opens the ledger (verifying it), then appends ``COUNT`` records (``BATCH`` per call, default 1).
With ``NUCLEUS_TEST_GATE`` set to a path, it waits after opening until that file exists, so that
writers whose opens took different times start appending together.
After each append returns, the acknowledged ``record_id seq hash`` lines are written to ACK_FILE
unbuffered, so a parent that kills this process knows exactly what was acknowledged.
"""

from __future__ import annotations

import os
import sys
import time

from nucleus_storage_postgres import postgres_storage

from nucleus_core import Record, create_ledger
from nucleus_core.context import RequestContext

T0 = 1_700_000_000_000


def main(argv: list[str]) -> int:
    dsn, schema, ledger_id, prefix, count, ack_path = argv[:6]
    batch = int(argv[6]) if len(argv) > 6 else 1
    ctx = RequestContext(oid="oid:test:service:writer", source="service")
    fd = os.open(ack_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with create_ledger(id=ledger_id, storage=postgres_storage(dsn, schema=schema, pool_size=2)) as ledger:
        os.write(fd, b"# opened\n")
        gate = os.environ.get("NUCLEUS_TEST_GATE")
        deadline = time.monotonic() + 240
        while gate and not os.path.exists(gate):
            if time.monotonic() > deadline:
                raise SystemExit(f"gate {gate} never opened")
            time.sleep(0.01)
        n = int(count)
        i = 0
        while i < n:
            records = [
                Record(id=f"{prefix}-{j}", stream="w", timestamp=T0 + j, payload={"writer": prefix, "j": j})
                for j in range(i, min(i + batch, n))
            ]
            entries = ledger.append_batch(records, ctx)
            os.write(fd, "".join(f"{e.record.id} {e.seq} {e.hash}\n" for e in entries).encode())
            i += len(records)
    os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
