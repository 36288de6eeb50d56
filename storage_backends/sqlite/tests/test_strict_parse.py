"""Stored bytes that are not a canonical record, in a real SQLite file, with every hash recomputed.

A forger with write access re-encodes one record (a byte order mark, UTF-16 or UTF-32, a repeated
key, whitespace, another number or escape form, another key order) and recomputes the hash chain
from there on with the sqlite3 module, so that only the strict parse of docs/FORMAT.md section 5
can tell. Opening must fail naming that entry and what is wrong; reads on a ledger opened without
verification must refuse the entry with an IntegrityError (never a bare TypeError); nothing is
changed in the file by either.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from nucleus_storage_sqlite import sqlite_storage

from nucleus_core import IntegrityError, Record, create_ledger
from nucleus_core.hashing import entry_hash_of_version
from nucleus_core.testing import make_context

LEDGER = "strict"
CTX = make_context()
BAD = 3  # the entry every case re-encodes
N = 5

Recode = Callable[[bytes], bytes]


def records() -> list[Record]:
    out = [Record(id=f"r{i}", stream="s", timestamp=1_700_000_000_000 + i, payload={"i": i}) for i in range(1, N + 1)]
    out[BAD - 1] = Record(
        id=f"r{BAD}",
        stream="s",
        timestamp=1_700_000_000_003,
        payload={"a": 1, "b": "A/B", "n": 100, "z": 0, "e": "é"},
        meta={"k": "v"},
    )
    return out


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("strict") / "base.db"
    with create_ledger(id=LEDGER, storage=sqlite_storage(path, durability="normal")) as ledger:
        ledger.append_batch(records(), CTX)
    return path


def table(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute("select * from nucleus_entries order by ledger_id, seq").fetchall()


def forge(path: Path, seq: int, value: bytes) -> None:
    """Store ``value`` as entry ``seq``'s canonical bytes and recompute every hash from there on."""
    db = sqlite3.connect(path)
    with db:
        db.execute("update nucleus_entries set canonical = ? where ledger_id = ? and seq = ?", (value, LEDGER, seq))
        (prev,) = db.execute(
            "select hash from nucleus_entries where ledger_id = ? and seq = ?", (LEDGER, seq - 1)
        ).fetchone()
        rows = db.execute(
            "select seq, canonical, version, appender, auth_source, committed_at from nucleus_entries "
            "where ledger_id = ? and seq >= ? order by seq",
            (LEDGER, seq),
        ).fetchall()
        for s, canonical, *columns in rows:
            h = entry_hash_of_version(LEDGER, s, prev, canonical, *columns)
            db.execute(
                "update nucleus_entries set hash = ?, prev_hash = ? where ledger_id = ? and seq = ?",
                (h, prev, LEDGER, s),
            )
            prev = h
    db.close()


def good_bytes() -> bytes:
    return records()[BAD - 1].canonical


CASES: dict[str, tuple[Recode, str]] = {
    "bom": (lambda b: b"\xef\xbb\xbf" + b, "stored bytes start with a UTF-8 byte order mark"),
    "utf-16": (lambda b: b.decode().encode("utf-16"), "stored bytes are not UTF-8"),
    "utf-16-le": (lambda b: b.decode().encode("utf-16-le"), "stored bytes are not UTF-8"),
    "utf-32": (lambda b: b.decode().encode("utf-32"), "stored bytes are not UTF-8"),
    "utf-32-be": (lambda b: b.decode().encode("utf-32-be"), "stored bytes are not UTF-8"),
    "duplicate-key": (lambda b: b.replace(b'"a":1,', b'"a":1,"a":1,'), 'duplicate key "a" in an object'),
    "space-after-colon": (lambda b: b.replace(b'"a":1', b'"a": 1'), "not in canonical form"),
    "trailing-newline": (lambda b: b + b"\n", "not in canonical form"),
    "leading-space": (lambda b: b" " + b, "not in canonical form"),
    "float-form": (lambda b: b.replace(b'"a":1', b'"a":1.0'), "not in canonical form"),
    "exponent-form": (lambda b: b.replace(b'"n":100', b'"n":1e2'), "not in canonical form"),
    "upper-exponent": (lambda b: b.replace(b'"n":100', b'"n":1E2'), "not in canonical form"),
    "negative-zero": (lambda b: b.replace(b'"z":0', b'"z":-0'), "not in canonical form"),
    "unicode-escape": (lambda b: b.replace(b'"A/B"', b'"\\u0041/B"'), "not in canonical form"),
    "solidus-escape": (lambda b: b.replace(b'"A/B"', b'"A\\/B"'), "not in canonical form"),
    "non-ascii-escape": (lambda b: b.replace('"é"'.encode(), b'"\\u00e9"'), "not in canonical form"),
    "key-order": (lambda b: b.replace(b'"a":1,"b":"A/B"', b'"b":"A/B","a":1'), "not in canonical form"),
    "null-meta": (lambda b: b.replace(b'"meta":{"k":"v"}', b'"meta":null'), "stored record is invalid"),
    "nan": (lambda b: b.replace(b'"a":1', b'"a":NaN'), "stored bytes are not JSON (NaN is not JSON)"),
    "big-integer": (lambda b: b.replace(b'"n":100', b'"n":9007199254740993'), "not in canonical form"),
}


def test_the_cases_encode_the_same_data(base: Path) -> None:
    """Every recoding but NaN, null meta and the big integer denotes the same JSON data (so a lenient
    parser would accept it), and the good bytes verify as stored."""
    import json

    good = good_bytes()
    for name, (recode, _) in CASES.items():
        data = recode(good)
        assert data != good, name
        if name in ("nan", "null-meta", "big-integer"):
            continue
        assert json.loads(data) == json.loads(good), name  # json.loads(bytes) guesses UTF-16/32, skips a BOM
    with create_ledger(id=LEDGER, storage=sqlite_storage(base)) as ledger:
        assert ledger.verify().ok


@pytest.mark.parametrize("case", sorted(CASES))
def test_recoded_record_with_recomputed_hashes_fails_at_its_entry(base: Path, tmp_path: Path, case: str) -> None:
    recode, reason = CASES[case]
    path = tmp_path / "copy.db"
    shutil.copy(base, path)
    forge(path, BAD, recode(good_bytes()))
    before = table(path)
    with pytest.raises(IntegrityError) as info:
        create_ledger(id=LEDGER, storage=sqlite_storage(path))
    assert info.value.seq == BAD
    assert reason in str(info.value)
    assert f"does not verify at entry {BAD}" in str(info.value)
    assert "stored bytes are not a record:" not in str(info.value) or case == "duplicate-key"
    # Reads agree with verification: the entry is refused, its neighbours are served.
    with create_ledger(id=LEDGER, storage=sqlite_storage(path), verify_on_open=False) as ledger:
        report = ledger.verify()
        assert (report.ok, report.first_bad_seq, report.entries_checked) == (False, BAD, BAD - 1)
        assert reason in (report.reason or "")
        assert ledger.get_by_id("r2", CTX) is not None
        with pytest.raises(IntegrityError) as read:
            ledger.get_by_id(f"r{BAD}", CTX)
        assert read.value.seq == BAD
        assert reason in str(read.value)
        with pytest.raises(IntegrityError):
            ledger.query({"stream": "s"}, CTX)
        with pytest.raises(IntegrityError):
            list(ledger.iter_entries(CTX))
    assert table(path) == before  # neither the failed open nor the reads changed anything


@pytest.mark.parametrize(
    ("sql_value", "kind"),
    [("cast(canonical as text)", "TEXT"), ("42", "INTEGER"), ("1.5", "REAL")],
)
def test_canonical_column_of_another_type_is_named_not_a_type_error(
    base: Path, tmp_path: Path, sql_value: str, kind: str
) -> None:
    path = tmp_path / "copy.db"
    shutil.copy(base, path)
    with sqlite3.connect(path) as db:
        # The same text for TEXT, so the hashes still match: only the column's type is wrong.
        db.execute(f"update nucleus_entries set canonical = {sql_value} where seq = ?", (BAD,))
        assert db.execute("select typeof(canonical) from nucleus_entries where seq = ?", (BAD,)).fetchone()[0] == (
            kind.lower()
        )
    before = table(path)
    reason = f"canonical bytes stored as {kind}, not bytes"
    with pytest.raises(IntegrityError) as info:
        create_ledger(id=LEDGER, storage=sqlite_storage(path))
    assert info.value.seq == BAD
    assert str(info.value) == f"ledger {LEDGER!r} does not verify at entry {BAD}: {reason}"
    with create_ledger(id=LEDGER, storage=sqlite_storage(path), verify_on_open=False) as ledger:
        with pytest.raises(IntegrityError) as read:
            ledger.get_by_id(f"r{BAD}", CTX)
        assert (read.value.seq, read.value.reason, str(read.value)) == (BAD, reason, f"entry {BAD}: {reason}")
        assert ledger.get_by_id("r1", CTX) is not None
    assert table(path) == before
