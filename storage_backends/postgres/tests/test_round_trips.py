"""Round trips of an append on PostgreSQL, counted on the wire (libpq's protocol trace).

A single append is two round trips: ``BEGIN``, the append lock and the head with the tree size in
one, the entry row, the tree's size (and nodes) and ``COMMIT`` in the other. The Merkle frontier is
kept in memory between appends and used only while it is still the stored tree's: after another
writer appended, it is read again and the chain and the tree stay right. A duplicate record id is
one :class:`~nucleus_core.errors.DuplicateRecordError`, nothing written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from nucleus_storage_postgres import PostgresStorage

from nucleus_core import Ledger, create_ledger, open_ledger
from nucleus_core.errors import DuplicateRecordError
from nucleus_core.testing import make_context, make_record
from nucleus_core.testing.tree import reference_root

CTX = make_context()


def round_trips(trace: str) -> int:
    """Round trips in a libpq trace: the times the client waited for the server, i.e. the server's
    ReadyForQuery answers (one per Sync of a pipeline or extended query, one per simple Query).
    Counting runs of client messages answered by the server instead miscounts a pipeline whose
    early error the client happened to read (without waiting) between two of its own messages."""
    return sum(1 for line in trace.splitlines() if line.startswith("B\t") and "\tReadyForQuery" in line)


@contextlib.contextmanager
def traced(ledger: Ledger, path: Path) -> Iterator[list[int]]:
    """Trace the protocol of the connection the ledger's appends in this thread use; yields a list
    that holds the round trip count once the block ended."""
    storage = ledger.storage
    assert isinstance(storage, PostgresStorage)
    counted: list[int] = []
    with storage.connection(), path.open("w") as out:
        pgconn = storage.database.connection().pgconn
        pgconn.trace(out.fileno())
        pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS | psycopg.pq.Trace.REGRESS_MODE)
        try:
            yield counted
        finally:
            pgconn.untrace()
    counted.append(round_trips(path.read_text()))


def _root(ledger: Ledger) -> bytes:
    """The root of the ledger's entries, computed here from their hashes (RFC 9162, by its definition)."""
    return reference_root([bytes.fromhex(e.hash) for e in ledger.iter_entries(CTX)])


def test_a_single_append_is_two_round_trips(make_storage: Callable[..., PostgresStorage], tmp_path: Path) -> None:
    with create_ledger(id="rt", storage=make_storage()) as ledger:
        for i in range(40):  # past psycopg's prepare threshold and a few stored tree nodes
            ledger.append(make_record(i), CTX)
        for i in range(40, 60):  # every position in a block of 16 leaves, with and without new nodes
            with traced(ledger, tmp_path / "trace.txt") as counted:
                ledger.append(make_record(i), CTX)
            assert counted == [2], i
        with traced(ledger, tmp_path / "trace.txt") as counted:
            ledger.append_batch([make_record(100 + i) for i in range(50)], CTX)
        assert counted == [2]
        assert ledger.verify().ok
        assert ledger.root_hash() == _root(ledger)


def test_a_duplicate_id_is_refused_in_the_same_round_trips(
    make_storage: Callable[..., PostgresStorage], tmp_path: Path
) -> None:
    with create_ledger(id="dup", storage=make_storage()) as ledger:
        for i in range(10):
            ledger.append(make_record(i), CTX)
        root = ledger.root_hash()
        with traced(ledger, tmp_path / "trace.txt") as counted, pytest.raises(DuplicateRecordError) as info:
            ledger.append(make_record(3), CTX)
        assert info.value.__cause__ is None and "rec-000003" in str(info.value)
        # The two of the append, then the error path only: ROLLBACK, psycopg's DEALLOCATE ALL (it
        # forgets its prepared statements after an error in a pipeline) and the ledger's look-up of
        # the stored entry (may the requester know it exists?).
        assert counted[0] <= 5
        assert ledger.length() == 10 and ledger.root_hash() == root and ledger.storage.merkle_size() == 10
        # The frontier kept from before is still right: the next append extends the same tree.
        ledger.append(make_record(10), CTX)
        assert ledger.verify().ok and ledger.root_hash() == _root(ledger)


def test_the_frontier_is_read_again_after_another_writer(make_storage: Callable[..., PostgresStorage]) -> None:
    with (
        create_ledger(id="two", storage=make_storage()) as first,
        open_ledger(id="two", storage=make_storage()) as second,
    ):
        for i in range(0, 90, 3):
            first.append(make_record(i), CTX)
            second.append(make_record(i + 1), CTX)
            second.append(make_record(i + 2), CTX)
        assert first.length() == second.length() == 90
        assert first.storage.merkle_size() == 90
        assert first.root_hash() == second.root_hash() == _root(first)
        assert first.verify().ok and second.verify().ok
