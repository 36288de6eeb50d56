"""Parallel verification on SQLite reports exactly what serial verification reports.

Each case of :mod:`nucleus_core.testing.parallel` edits a copy of a 100-entry file with the
sqlite3 module; the serial and the parallel report (two worker processes, chunks of 25) must be
equal: ok, first bad seq, reason, entries checked and head hash. A ledger configured to verify in
parallel then refuses to open at that same entry.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from nucleus_storage_sqlite import SqliteStorage, sqlite_storage

from nucleus_core import IntegrityError, create_ledger, verify_parallel
from nucleus_core.testing import make_context
from nucleus_core.testing.parallel import CASES, LEDGER, records, serial_and_parallel
from nucleus_core.verify_parallel import chunk_bounds


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("parallel") / "base.db"
    with create_ledger(id=LEDGER, storage=sqlite_storage(path, durability="normal")) as ledger:
        ledger.append_batch(records(), make_context())
    return path


def tampered(base: Path, tmp_path: Path, case: str) -> Path:
    path = tmp_path / "copy.db"
    shutil.copy(base, path)
    db = sqlite3.connect(path)

    def execute(sql: str, params: Any) -> list[tuple[Any, ...]]:
        return db.execute(sql, params).fetchall()

    with db:
        CASES[case](execute)
    db.close()
    return path


@pytest.mark.parametrize("case", list(CASES))
def test_parallel_report_equals_serial(base: Path, tmp_path: Path, case: str) -> None:
    path = tampered(base, tmp_path, case)
    storage = SqliteStorage(path)
    storage.open(LEDGER, read_only=True)
    try:
        serial, parallel = serial_and_parallel(storage, storage.read_only_opener(), storage.count())
    finally:
        storage.close()
    assert parallel == serial
    assert serial.ok == (case == "untouched" or case.startswith("deleted last"))


@pytest.mark.parametrize("case", ["hash of a chunk's first entry", "deleted chunk's first entry", "untouched"])
def test_a_ledger_verifies_in_parallel_on_open(
    base: Path, tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verify_parallel, "MIN_CHUNK", 25)  # 100 entries: 4 chunks of 25
    path = tampered(base, tmp_path, case)
    seen: list[int] = []
    options: dict[str, Any] = {"verify_workers": 2, "verify_parallel_min_entries": 10}
    if case == "untouched":
        with create_ledger(id=LEDGER, storage=sqlite_storage(path), **options) as ledger:
            assert ledger.length() == 100
            report = ledger.verify(progress=seen.append)
        assert report.ok and report.entries_checked == 100
        assert seen == [25, 50, 75, 100]  # one call per chunk, in order
        return
    with pytest.raises(IntegrityError, match="at entry 26"):
        create_ledger(id=LEDGER, storage=sqlite_storage(path), **options)


def test_chunk_bounds_cover_the_range_and_leave_the_end_open() -> None:
    assert chunk_bounds(100, 2, 25) == [(1, 25), (26, 50), (51, 75), (76, None)]
    assert chunk_bounds(10, 2, 25) == [(1, None)]
    bounds = chunk_bounds(1_000_000, 2)
    assert bounds[0] == (1, 125_000) and bounds[-1] == (875_001, None) and len(bounds) == 8
