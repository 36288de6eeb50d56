"""Tampering behind the ledger's back (with the sqlite3 module) makes opening fail at the right seq.

One 10,000-entry file is built per session; every case works on its own copy.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from nucleus_storage_sqlite import sqlite_storage

from nucleus_core import IntegrityError, Record, create_ledger, entry_hash
from nucleus_core.hashing import entry_hash_v2
from nucleus_core.testing import make_context

LEDGER = "tamper"
N = 10_000
T0 = 1_700_000_000_000

Tamper = Callable[[sqlite3.Connection], None]
COLUMNS_V1 = "(ledger_id, seq, hash, prev_hash, record_id, stream, timestamp, canonical)"


@pytest.fixture(scope="session")
def ten_thousand(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tamper") / "base.db"
    ctx = make_context()
    with create_ledger(id=LEDGER, storage=sqlite_storage(path, durability="normal")) as ledger:
        for start in range(0, N, 1000):
            ledger.append_batch(
                [
                    Record(id=f"r-{i}", stream=f"s{i % 5}", timestamp=T0 + i, payload={"i": i, "pad": "x" * 200})
                    for i in range(start, start + 1000)
                ],
                ctx,
            )
    return path  # closed: the WAL is checkpointed into the file, one file to copy


def row(db: sqlite3.Connection, seq: int) -> tuple:
    return db.execute(
        "select hash, prev_hash, record_id, stream, timestamp, canonical from nucleus_entries "
        "where ledger_id = ? and seq = ?",
        (LEDGER, seq),
    ).fetchone()


def flip_canonical_byte(db: sqlite3.Connection) -> None:
    canonical = bytearray(row(db, 5000)[5])
    canonical[len(canonical) // 2] ^= 0x01
    db.execute("update nucleus_entries set canonical = ? where seq = 5000", (bytes(canonical),))


def change_stream_column(db: sqlite3.Connection) -> None:
    db.execute("update nucleus_entries set stream = 's9' where seq = 4321")


def change_record_id_column(db: sqlite3.Connection) -> None:
    db.execute("update nucleus_entries set record_id = 'forged-id' where seq = 777")


def change_timestamp_column(db: sqlite3.Connection) -> None:
    db.execute("update nucleus_entries set timestamp = timestamp + 1 where seq = 8888")


def delete_row(db: sqlite3.Connection) -> None:
    db.execute("delete from nucleus_entries where seq = 6000")


def insert_forged_row(db: sqlite3.Connection) -> None:
    # A well-formed record linked to the real head, but its hash does not commit to this ledger's
    # preimage (computed for another ledger id): what a forger who skips the format would write.
    head_hash = row(db, N)[0]
    record = Record(id="forged", stream="s0", timestamp=1, payload={"i": -1})
    forged_hash = entry_hash("other-ledger", N + 1, head_hash, record.canonical)
    db.execute(
        "insert into nucleus_entries select ?, ?, ?, ?, ?, ?, ?, ?, version, appender, auth_source, committed_at "
        "from nucleus_entries where seq = ?",
        (LEDGER, N + 1, forged_hash, head_hash, "forged", "s0", 1, record.canonical, N),
    )


def insert_version_1_row(db: sqlite3.Connection) -> None:
    # A correctly hashed version-1 entry after version-2 ones: the format never goes back.
    head_hash = row(db, N)[0]
    record = Record(id="forged", stream="s0", timestamp=1, payload={"i": -1})
    db.execute(
        "insert into nucleus_entries (ledger_id, seq, hash, prev_hash, record_id, stream, timestamp, canonical) "
        "values (?, ?, ?, ?, ?, ?, ?, ?)",
        (LEDGER, N + 1, entry_hash(LEDGER, N + 1, head_hash, record.canonical), head_hash, "forged", "s0", 1,
         record.canonical),
    )


def change_appender_column(db: sqlite3.Connection) -> None:
    db.execute("update nucleus_entries set appender = 'oid:evil:user:mallory' where seq = 4444")


def change_auth_source_column(db: sqlite3.Connection) -> None:
    db.execute("update nucleus_entries set auth_source = 'auth.forged' where seq = 4444")


def move_committed_at_later(db: sqlite3.Connection) -> None:
    db.execute("update nucleus_entries set committed_at = committed_at + 1 where seq = 4444")


def move_committed_at_earlier(db: sqlite3.Connection) -> None:
    # Recompute the hash, as a forger would: the time still may not go back along the chain.
    seq = 5001  # the first entry of a batch: entry 5000 was committed earlier or at the same time
    (prev,) = db.execute("select hash from nucleus_entries where seq = ?", (seq - 1,)).fetchone()
    (canonical, appender, source) = db.execute(
        "select canonical, appender, auth_source from nucleus_entries where seq = ?", (seq,)
    ).fetchone()
    forged = entry_hash_v2(LEDGER, seq, prev, canonical, committed_at=1, appender=appender, auth_source=source)
    db.execute("update nucleus_entries set committed_at = 1, hash = ? where seq = ?", (forged, seq))


def appender_not_an_oid(db: sqlite3.Connection) -> None:
    db.execute("update nucleus_entries set appender = 'mallory' where seq = 4444")


def version_column_to_1(db: sqlite3.Connection) -> None:
    db.execute("update nucleus_entries set version = 1 where seq = 4444")


def insert_row_below_one(db: sqlite3.Connection) -> None:
    record = Record(id="zero", stream="s0", timestamp=1, payload={})
    db.execute(
        f"insert into nucleus_entries {COLUMNS_V1} values (?, ?, ?, ?, ?, ?, ?, ?)",
        (LEDGER, 0, "ab" * 32, "00" * 32, "zero", "s0", 1, record.canonical),
    )


def swap_two_rows(db: sqlite3.Connection) -> None:
    a, b = row(db, 2000), row(db, 3000)
    cols = "hash = ?, prev_hash = ?, record_id = ?, stream = ?, timestamp = ?, canonical = ?"
    db.execute(f"update nucleus_entries set {cols} where seq = 2000", ("t" * 64, "t", "tmp", "t", 0, b""))
    db.execute(f"update nucleus_entries set {cols} where seq = 3000", a)
    db.execute(f"update nucleus_entries set {cols} where seq = 2000", b)


def duplicate_row_under_new_seq(db: sqlite3.Connection) -> None:
    # The unique indexes would refuse an exact copy: an attacker with the file simply drops them.
    for (name,) in db.execute("select name from sqlite_master where type = 'index' and sql like '%UNIQUE%'").fetchall():
        db.execute(f'drop index "{name}"')
    db.execute(
        "insert into nucleus_entries select ledger_id, ?, hash, prev_hash, record_id, stream, timestamp, canonical, "
        "version, appender, auth_source, committed_at from nucleus_entries where seq = ?",
        (N + 1, 9000),
    )


CASES: list[tuple[Tamper, int, str]] = [
    (flip_canonical_byte, 5000, "hash mismatch"),
    (change_stream_column, 4321, "stream column"),
    (change_record_id_column, 777, "record id column"),
    (change_timestamp_column, 8888, "timestamp column"),
    (delete_row, 6000, "missing"),
    (insert_forged_row, N + 1, "hash mismatch"),
    (insert_version_1_row, N + 1, "a version-1 entry after a version-2 entry"),
    (change_appender_column, 4444, "hash mismatch"),
    (change_auth_source_column, 4444, "hash mismatch"),
    (move_committed_at_later, 4444, "hash mismatch"),
    (move_committed_at_earlier, 5001, "committed_at 1 is earlier than entry 5000"),
    (appender_not_an_oid, 4444, "appender column is not an OID"),
    (version_column_to_1, 4444, "a version-1 entry after a version-2 entry"),
    (insert_row_below_one, 0, "out of order"),
    (swap_two_rows, 2000, "prev_hash"),
    (duplicate_row_under_new_seq, N + 1, "prev_hash"),
]


@pytest.mark.parametrize(("tamper", "bad_seq", "reason"), CASES, ids=[c[0].__name__ for c in CASES])
def test_tampering_is_detected_at_the_right_seq(
    ten_thousand: Path, tmp_path: Path, tamper: Tamper, bad_seq: int, reason: str
) -> None:
    path = tmp_path / "copy.db"
    shutil.copyfile(ten_thousand, path)
    with sqlite3.connect(path) as db:
        tamper(db)
    db.close()
    with pytest.raises(IntegrityError) as info:
        create_ledger(id=LEDGER, storage=sqlite_storage(path))
    assert info.value.seq == bad_seq
    assert reason in info.value.reason
    assert f"entry {bad_seq}" in str(info.value)


def test_untouched_copy_opens(ten_thousand: Path, tmp_path: Path) -> None:
    path = tmp_path / "copy.db"
    shutil.copyfile(ten_thousand, path)
    with create_ledger(id=LEDGER, storage=sqlite_storage(path)) as ledger:
        assert ledger.length() == N


def test_tampered_file_opens_read_only_without_verification(ten_thousand: Path, tmp_path: Path) -> None:
    path = tmp_path / "copy.db"
    shutil.copyfile(ten_thousand, path)
    with sqlite3.connect(path) as db:
        delete_row(db)
    db.close()
    with create_ledger(id=LEDGER, storage=sqlite_storage(path), verify_on_open=False) as ledger:
        assert ledger.read_only
        report = ledger.verify()
        assert not report.ok and report.first_bad_seq == 6000
