"""The statements of one append on SQLite, counted with the connection's trace callback.

An append is ``BEGIN IMMEDIATE``, one read of the head with the tree size, the entry's insert, the
tree's size (and, when the entry completes a stored node, the nodes) and ``COMMIT``: the Merkle
frontier is kept in memory from the previous append, never read back while it is the stored
tree's, and read again once another writer appended.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from nucleus_storage_sqlite import sqlite_storage

from nucleus_core import Ledger, create_ledger, open_ledger
from nucleus_core.errors import DuplicateRecordError
from nucleus_core.testing import make_context, make_record
from nucleus_core.testing.tree import reference_root

CTX = make_context()


@contextlib.contextmanager
def statements(ledger: Ledger) -> Iterator[list[str]]:
    """The SQL statements this thread's connection runs in the block."""
    seen: list[str] = []
    conn = ledger.storage.database.connection()  # type: ignore[attr-defined]
    conn.set_trace_callback(seen.append)
    try:
        yield seen
    finally:
        conn.set_trace_callback(None)


def _root(ledger: Ledger) -> bytes:
    """The root of the ledger's entries, computed here from their hashes (RFC 9162, by its definition)."""
    return reference_root([bytes.fromhex(e.hash) for e in ledger.iter_entries(CTX)])


def test_a_single_append_runs_five_statements(tmp_path: Path) -> None:
    with create_ledger(id="st", storage=sqlite_storage(tmp_path / "st.db")) as ledger:
        ledger.append(make_record(0), CTX)
        for i in range(1, 40):
            with statements(ledger) as seen:
                ledger.append(make_record(i), CTX)
            seq = i + 1
            nodes = max(0, (seq & -seq).bit_length() - 1 - 3)  # stored nodes (levels >= 4) seq completes
            assert len(seen) == 5 + nodes, seen  # (the trace shows each row of an executemany)
            assert seen[0] == "BEGIN IMMEDIATE" and seen[-1] == "COMMIT", seen
            assert not any('"nucleus_merkle" WHERE' in s or "SELECT 1," in s for s in seen), seen  # no frontier read
        assert ledger.verify().ok and ledger.root_hash() == _root(ledger)


def test_the_frontier_is_read_again_after_another_writer(tmp_path: Path) -> None:
    path = tmp_path / "two.db"
    with create_ledger(id="two", storage=sqlite_storage(path)) as first, open_ledger(
        id="two", storage=sqlite_storage(path)
    ) as second:
        for i in range(0, 60, 3):
            first.append(make_record(i), CTX)
            second.append(make_record(i + 1), CTX)
            second.append_batch([make_record(i + 2)], CTX)
        assert first.storage.merkle_size() == 60  # type: ignore[attr-defined]
        assert first.root_hash() == second.root_hash() == _root(first)
        assert first.verify().ok and second.verify().ok


def test_a_refused_append_leaves_the_kept_frontier_right(tmp_path: Path) -> None:
    with create_ledger(id="dup", storage=sqlite_storage(tmp_path / "dup.db")) as ledger:
        for i in range(20):
            ledger.append(make_record(i), CTX)
        root = ledger.root_hash()
        with pytest.raises(DuplicateRecordError):
            ledger.append_batch([make_record(100), make_record(5)], CTX)
        assert ledger.length() == 20 and ledger.root_hash() == root
        for i in range(20, 40):
            ledger.append(make_record(i), CTX)
        assert ledger.verify().ok and ledger.root_hash() == _root(ledger)
