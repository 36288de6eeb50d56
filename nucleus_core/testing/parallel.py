"""Tamper cases for parallel verification: a backend's tests run each on a fresh copy of a small
ledger and check that :func:`~nucleus_core.verify_parallel.verify_parallel` (small chunks, two
workers) reports exactly what the serial :func:`~nucleus_core.verify.verify_rows` reports.

Cases are SQL run behind the ledger's back on the ``nucleus_entries`` table, written with ``?``
placeholders (a PostgreSQL caller swaps them for ``%s``). With :data:`ENTRIES` entries and chunks
of :data:`CHUNK`, chunk boundaries fall before seqs 26, 51 and 76: most cases hit one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..hashing import entry_hash
from ..records import Record
from ..storage import SeqRangeStorage, entry_rows
from ..verify import VerificationReport, verify_rows
from ..verify_parallel import verify_parallel
from .conformance import make_record

LEDGER = "parallel"
ENTRIES = 100
CHUNK = 25

Execute = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
"""Run one SQL statement (``?`` placeholders) on the ledger's tables; the rows it returns."""


def records() -> list[Record]:
    """The ledger every case starts from (floats in every payload: the reference parse runs too)."""
    return [make_record(i, stream="s" if i % 3 else "t") for i in range(1, ENTRIES + 1)]


def _set(column: str, value: object, seq: int) -> Callable[[Execute], None]:
    def run(execute: Execute) -> None:
        execute(f"UPDATE nucleus_entries SET {column} = ? WHERE ledger_id = ? AND seq = ?", (value, LEDGER, seq))  # noqa: S608

    return run


def _delete(*seqs: int) -> Callable[[Execute], None]:
    def run(execute: Execute) -> None:
        for seq in seqs:
            execute("DELETE FROM nucleus_entries WHERE ledger_id = ? AND seq = ?", (LEDGER, seq))

    return run


def _forge(seq: int, edit: Callable[[bytes], bytes]) -> Callable[[Execute], None]:
    """Replace entry ``seq``'s bytes by ``edit(bytes)`` and recompute every hash from there on."""

    def run(execute: Execute) -> None:
        ((prev,),) = execute("SELECT hash FROM nucleus_entries WHERE ledger_id = ? AND seq = ?", (LEDGER, seq - 1))
        rows = execute(
            "SELECT seq, canonical FROM nucleus_entries WHERE ledger_id = ? AND seq >= ? ORDER BY seq", (LEDGER, seq)
        )
        for s, canonical in rows:
            data = edit(bytes(canonical)) if s == seq else bytes(canonical)
            h = entry_hash(LEDGER, s, prev, data)
            execute(
                "UPDATE nucleus_entries SET canonical = ?, hash = ?, prev_hash = ? WHERE ledger_id = ? AND seq = ?",
                (data, h, prev, LEDGER, s),
            )
            prev = h

    return run


def _swap(one: int, other: int) -> Callable[[Execute], None]:
    def run(execute: Execute) -> None:
        select = "SELECT canonical FROM nucleus_entries WHERE ledger_id = ? AND seq = ?"
        ((a,),) = execute(select, (LEDGER, one))
        ((b,),) = execute(select, (LEDGER, other))
        _set("canonical", bytes(b), one)(execute)
        _set("canonical", bytes(a), other)(execute)

    return run


def _both(*steps: Callable[[Execute], None]) -> Callable[[Execute], None]:
    def run(execute: Execute) -> None:
        for step in steps:
            step(execute)

    return run


CASES: dict[str, Callable[[Execute], None]] = {
    "untouched": lambda execute: None,
    "hash of a chunk's first entry": _set("hash", "0" * 64, 26),
    "hash of a chunk's last entry": _set("hash", "f" * 64, 25),
    "prev_hash of a chunk's first entry": _set("prev_hash", "1" * 64, 51),
    "prev_hash of a chunk's first entry, not hex": _set("prev_hash", "not a hash", 51),
    "prev_hash of a chunk's second entry": _set("prev_hash", "1" * 64, 52),
    "bytes of a chunk's first entry": _set("canonical", b'{"id":"x"}', 76),
    "record id column at a chunk end": _set("record_id", "other", 50),
    "stream column of a chunk's first entry": _set("stream", "u", 26),
    "deleted chunk's first entry": _delete(26),
    "deleted chunk's last entry": _delete(25),
    "deleted across a boundary": _delete(25, 26),
    "deleted last entry": _delete(ENTRIES),
    "deleted whole chunk": _delete(*range(26, 51)),
    "two tampers, the later chunk first in the table": _both(_set("hash", "a" * 64, 90), _set("hash", "b" * 64, 40)),
    "non-canonical bytes at a boundary, hashes recomputed": _forge(51, lambda b: b.replace(b",", b", ", 1)),
    "bytes swapped across a boundary": _swap(25, 26),
}


def serial_and_parallel(
    storage: SeqRangeStorage, opener: Callable[[], SeqRangeStorage], count: int
) -> tuple[VerificationReport, VerificationReport]:
    """The serial report over ``storage`` (open) and the parallel one (two workers, chunks of
    :data:`CHUNK`, each opening ``opener()`` itself)."""
    serial = verify_rows(LEDGER, entry_rows(storage, 1), expected_count=count)  # type: ignore[arg-type]
    parallel = verify_parallel(LEDGER, opener, count, workers=2, chunk_size=CHUNK)
    return serial, parallel
