"""An embedded ledger on a SQLite file: append, read, query with a cursor, verify, reopen.

pip install nucleus-core nucleus-storage-sqlite
python examples/embedded_sqlite.py [path/to/ledger.db]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from nucleus_core import DuplicateRecordError, Record, RequestContext, create_ledger

alice = RequestContext(oid="oid:example:user:alice", source="service")
path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "embedded.db"
storage = f"sqlite:///{path.resolve()}"

with create_ledger(id="embedded", storage=storage) as ledger:
    entries = ledger.append_batch(
        [Record(id=f"note-{i}", stream="notes", timestamp=1_763_942_400_000 + i, payload={"n": i}) for i in range(5)],
        alice,
    )
    print("appended", [e.seq for e in entries], "head", ledger.latest_hash())
    page = ledger.query({"stream": "notes", "limit": 2}, alice)
    while True:
        print("page", [e.record.id for e in page], "next", page.next_cursor)
        if page.next_cursor is None:
            break
        page = ledger.query({"stream": "notes", "limit": 2, "cursor": page.next_cursor}, alice)
    found = ledger.get_by_id("note-3", alice)
    assert found is not None and found.record.payload == {"n": 3}

# Reopening verifies the stored chain; record ids are unique and never overwritten.
with create_ledger(id="embedded", storage=storage) as ledger:
    report = ledger.verify()
    print("verified", report.ok, report.entries_checked, "entries")
    try:
        ledger.append(Record(id="note-0", stream="notes", timestamp=1, payload={}), alice)
    except DuplicateRecordError as err:
        print("refused:", err)
    assert report.ok and ledger.length() == 5
