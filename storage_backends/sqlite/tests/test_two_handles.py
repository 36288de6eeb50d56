"""Two ledger handles on one file (as two processes would have): each sees the other's appends."""

from __future__ import annotations

from pathlib import Path

from nucleus_storage_sqlite import sqlite_storage

from nucleus_core import create_ledger
from nucleus_core.testing import make_context, make_record

CTX = make_context()


def test_each_handle_chains_on_the_others_entries(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    a = create_ledger(id="two", storage=sqlite_storage(path))
    b = create_ledger(id="two", storage=sqlite_storage(path))
    with a, b:
        e1 = a.append(make_record(1), CTX)
        e2 = b.append(make_record(2), CTX)  # b re-reads the head inside its write transaction
        assert (e2.seq, e2.prev_hash) == (2, e1.hash)
        e3 = a.append_batch([make_record(3), make_record(4)], CTX)
        assert e3[0].prev_hash == e2.hash
        assert a.length() == b.length() == 4
        assert b.get_by_id(make_record(4).id, CTX) == e3[1]
        assert a.verify().ok and b.verify().ok
