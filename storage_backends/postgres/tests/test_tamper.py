"""Tampering with stored history by SQL, behind the ledger's back: opening must fail at the right seq.

One ledger of a few thousand entries is built once; every case runs on its own copy of its tables
(a fresh schema filled with ``INSERT ... SELECT``), so the cases cannot influence each other.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from nucleus_storage_postgres import postgres_storage
from psycopg import sql

from nucleus_core import IntegrityError, Record, create_ledger
from nucleus_core.hashing import entry_hash, entry_hash_of_version
from nucleus_core.testing import make_context, make_record

pytestmark = pytest.mark.postgres

LEDGER = "tamper-ledger"
N = 3000
K = 1234  # the entry most cases tamper with
TABLES = ("nucleus_schema_version", "nucleus_entries", "nucleus_ledgers")


@pytest.fixture(scope="module")
def base_schema(pg_dsn: str) -> Iterator[str]:
    name = f"tamper_base_{uuid.uuid4().hex[:8]}"
    ctx = make_context()
    with create_ledger(id=LEDGER, storage=postgres_storage(pg_dsn, schema=name)) as ledger:
        for start in range(0, N, 1000):
            ledger.append_batch([make_record(i, stream="s" if i % 2 else "t") for i in range(start, start + 1000)], ctx)
        assert ledger.length() == N
    yield name
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def copy_of(pg_dsn: str, base_schema: str) -> Iterator[Callable[[], tuple[str, psycopg.Connection]]]:
    """Make a fresh copy of the base ledger's tables; returns (schema, connection with that search_path)."""
    made: list[str] = []
    conns: list[psycopg.Connection] = []

    def make() -> tuple[str, psycopg.Connection]:
        name = f"tamper_{uuid.uuid4().hex[:10]}"
        conn = psycopg.connect(pg_dsn, autocommit=True)
        conns.append(conn)
        made.append(name)
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        for table in TABLES:
            src = sql.Identifier(base_schema, table)
            dst = sql.Identifier(name, table)
            conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(dst, src))
            conn.execute(sql.SQL("INSERT INTO {} SELECT * FROM {}").format(dst, src))
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(name)))
        return name, conn

    yield make
    for conn in conns:
        conn.close()
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        for name in made:
            admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def _row(conn: psycopg.Connection, seq: int) -> tuple[str, str, str, str, int, bytes]:
    row = conn.execute(
        "SELECT hash, prev_hash, record_id, stream, timestamp, canonical FROM nucleus_entries "
        "WHERE ledger_id = %s AND seq = %s",
        (LEDGER, seq),
    ).fetchone()
    assert row is not None
    return row


def _flip_byte(conn: psycopg.Connection) -> None:
    conn.execute(
        "UPDATE nucleus_entries SET canonical = set_byte(canonical, 20, get_byte(canonical, 20) # 1) "
        "WHERE ledger_id = %s AND seq = %s",
        (LEDGER, K),
    )


def _set_column(column: str, value: object) -> Callable[[psycopg.Connection], None]:
    def tamper(conn: psycopg.Connection) -> None:
        conn.execute(
            sql.SQL("UPDATE nucleus_entries SET {} = %s WHERE ledger_id = %s AND seq = %s").format(
                sql.Identifier(column)
            ),
            (value, LEDGER, K),
        )

    return tamper


def _delete(conn: psycopg.Connection) -> None:
    conn.execute("DELETE FROM nucleus_entries WHERE ledger_id = %s AND seq = %s", (LEDGER, K))


def _delete_last(conn: psycopg.Connection) -> None:
    conn.execute("DELETE FROM nucleus_entries WHERE ledger_id = %s AND seq = %s", (LEDGER, N))
    # Deleting the tail is truncation: the chain that remains is valid. It must at least not fork:
    # the ledger opens with N-1 entries (tests below assert that explicitly).


def _insert_forged_at_end(conn: psycopg.Connection) -> None:
    last_hash = _row(conn, N)[0]
    forged = Record(id="forged", stream="s", timestamp=1, payload={"evil": True})
    conn.execute(
        "INSERT INTO nucleus_entries (ledger_id, seq, hash, prev_hash, record_id, stream, timestamp, canonical, "
        "version, appender, auth_source, committed_at) SELECT %s, %s, %s, %s, %s, %s, %s, %s, "
        "version, appender, auth_source, committed_at FROM nucleus_entries WHERE ledger_id = %s AND seq = %s",
        (LEDGER, N + 1, "ab" * 32, last_hash, forged.id, forged.stream, forged.timestamp, forged.canonical, LEDGER, N),
    )


def _insert_version_1_at_end(conn: psycopg.Connection) -> None:
    last_hash = _row(conn, N)[0]
    forged = Record(id="forged", stream="s", timestamp=1, payload={"evil": True})
    conn.execute(
        "INSERT INTO nucleus_entries (ledger_id, seq, hash, prev_hash, record_id, stream, timestamp, canonical) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (LEDGER, N + 1, entry_hash(LEDGER, N + 1, last_hash, forged.canonical), last_hash, forged.id, forged.stream,
         forged.timestamp, forged.canonical),
    )


def _insert_forged_in_middle(conn: psycopg.Connection) -> None:
    # Shift entries K.. up by one and put a forged entry at K whose hash is computed correctly:
    # entry K then verifies, and the old entry K (now K+1) no longer links or hashes.
    conn.execute("UPDATE nucleus_entries SET seq = -seq WHERE ledger_id = %s AND seq >= %s", (LEDGER, K))
    conn.execute("UPDATE nucleus_entries SET seq = -seq + 1 WHERE ledger_id = %s AND seq < 0", (LEDGER,))
    prev = _row(conn, K - 1)[0]
    forged = Record(id="forged-middle", stream="s", timestamp=1, payload={"evil": True})
    columns = _appender_columns(conn, K - 1)
    h = entry_hash_of_version(LEDGER, K, prev, forged.canonical, *columns)
    conn.execute(
        "INSERT INTO nucleus_entries (ledger_id, seq, hash, prev_hash, record_id, stream, timestamp, canonical, "
        "version, appender, auth_source, committed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (LEDGER, K, h, prev, forged.id, forged.stream, forged.timestamp, forged.canonical, *columns),
    )


def _appender_columns(conn: psycopg.Connection, seq: int) -> tuple[Any, ...]:
    row = conn.execute(
        "SELECT version, appender, auth_source, committed_at FROM nucleus_entries WHERE ledger_id = %s AND seq = %s",
        (LEDGER, seq),
    ).fetchone()
    assert row is not None
    return tuple(row)


def _swap(conn: psycopg.Connection) -> None:
    a, b = K, K + 500
    ra, rb = _row(conn, a), _row(conn, b)
    # The unique (hash) and (record_id) indexes forbid an in-place swap row by row; go through a
    # placeholder as an attacker would.
    update = (
        "UPDATE nucleus_entries SET hash = %s, prev_hash = %s, record_id = %s, stream = %s, timestamp = %s, "
        "canonical = %s WHERE ledger_id = %s AND seq = %s"
    )
    conn.execute(update, ("0" * 64, "0" * 64, "placeholder", "x", 0, b"{}", LEDGER, a))
    conn.execute(update, (*ra, LEDGER, b))
    conn.execute(update, (*rb, LEDGER, a))


def _duplicate_under_new_seq(conn: psycopg.Connection) -> None:
    # The unique indexes refuse an exact duplicate, so the attacker drops them first.
    for (index,) in conn.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'nucleus_entries' "
        "AND indexdef LIKE 'CREATE UNIQUE INDEX%%' AND indexname NOT LIKE '%%pkey'"
    ).fetchall():
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(index)))
    conn.execute(
        "INSERT INTO nucleus_entries (ledger_id, seq, hash, prev_hash, record_id, stream, timestamp, canonical) "
        "SELECT ledger_id, %s, hash, prev_hash, record_id, stream, timestamp, canonical FROM nucleus_entries "
        "WHERE ledger_id = %s AND seq = %s",
        (N + 1, LEDGER, K),
    )


CASES = [
    ("flip a byte of canonical", _flip_byte, K, "hash mismatch"),
    ("stream column only", _set_column("stream", "other"), K, "stream column"),
    ("record_id column only", _set_column("record_id", "rec-other"), K, "record id column"),
    ("timestamp column only", _set_column("timestamp", 5), K, "timestamp column"),
    ("hash column only", _set_column("hash", "cd" * 32), K, "hash mismatch"),
    ("prev_hash column only", _set_column("prev_hash", "ef" * 32), K, "prev_hash"),
    ("delete a row", _delete, K, "missing"),
    ("insert a forged row at the end", _insert_forged_at_end, N + 1, "hash mismatch"),
    ("insert a version-1 row at the end", _insert_version_1_at_end, N + 1, "a version-1 entry after a version-2"),
    ("appender column only", _set_column("appender", "oid:evil:user:mallory"), K, "hash mismatch"),
    ("auth_source column only", _set_column("auth_source", "auth.forged"), K, "hash mismatch"),
    ("committed_at column later", _set_column("committed_at", 2**52), K, "hash mismatch"),
    ("committed_at column earlier", _set_column("committed_at", 1), K, "committed_at 1 is earlier than entry"),
    ("appender column not an OID", _set_column("appender", "mallory"), K, "appender column is not an OID"),
    ("appender column NULL", _set_column("appender", None), K, "appender column is not an OID"),
    ("version column only", _set_column("version", 1), K, "a version-1 entry after a version-2"),
    ("unknown version", _set_column("version", 3), K, "unknown entry format version 3"),
    ("insert a forged row in the middle", _insert_forged_in_middle, K + 1, "prev_hash"),
    ("swap two rows' contents", _swap, K, "prev_hash"),
    ("duplicate a row under a new seq", _duplicate_under_new_seq, N + 1, "prev_hash"),
]


@pytest.mark.parametrize(("tamper", "expected_seq", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_tampering_fails_open_at_the_right_seq(
    pg_dsn: str,
    copy_of: Callable[[], tuple[str, psycopg.Connection]],
    tamper: Callable[[psycopg.Connection], None],
    expected_seq: int,
    reason: str,
) -> None:
    schema, conn = copy_of()
    with create_ledger(id=LEDGER, storage=postgres_storage(pg_dsn, schema=schema)) as intact:
        assert intact.length() == N  # the copy verifies before tampering
    tamper(conn)
    with pytest.raises(IntegrityError) as info:
        create_ledger(id=LEDGER, storage=postgres_storage(pg_dsn, schema=schema))
    assert info.value.seq == expected_seq
    assert reason in str(info.value)
    # Without verification the ledger opens read-only, so nothing can be chained onto bad history.
    with create_ledger(id=LEDGER, storage=postgres_storage(pg_dsn, schema=schema), verify_on_open=False) as ro:
        assert ro.read_only
        report = ro.verify()
        assert not report.ok and report.first_bad_seq == expected_seq


def test_truncating_the_tail_is_seen_as_a_shorter_ledger(
    pg_dsn: str, copy_of: Callable[[], tuple[str, psycopg.Connection]]
) -> None:
    """Deleting the newest entries leaves a valid shorter chain (a hash chain alone cannot tell):
    the ledger opens with fewer entries and the next append re-uses the freed seq without forking."""
    schema, conn = copy_of()
    _delete_last(conn)
    with create_ledger(id=LEDGER, storage=postgres_storage(pg_dsn, schema=schema)) as ledger:
        assert ledger.length() == N - 1
        entry = ledger.append(make_record(10**6), make_context())
        assert entry.seq == N and entry.prev_hash == _row(conn, N - 1)[0]
        assert ledger.verify().ok


def test_an_exact_duplicate_row_is_refused_by_the_database(
    copy_of: Callable[[], tuple[str, psycopg.Connection]],
) -> None:
    _, conn = copy_of()
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(
            "INSERT INTO nucleus_entries (ledger_id, seq, hash, prev_hash, record_id, stream, timestamp, canonical) "
            "SELECT ledger_id, %s, hash, prev_hash, record_id, stream, timestamp, canonical FROM nucleus_entries "
            "WHERE ledger_id = %s AND seq = %s",
            (N + 1, LEDGER, K),
        )


def _recode_last(recode: Callable[[bytes], bytes]) -> Callable[[psycopg.Connection], None]:
    """Re-encode the last entry's record and recompute its hash, as a forger with write access would."""

    def tamper(conn: psycopg.Connection) -> None:
        prev_hash, canonical = _row(conn, N)[1], _row(conn, N)[5]
        data = recode(bytes(canonical))
        conn.execute(
            "UPDATE nucleus_entries SET canonical = %s, hash = %s WHERE ledger_id = %s AND seq = %s",
            (data, entry_hash_of_version(LEDGER, N, prev_hash, data, *_appender_columns(conn, N)), LEDGER, N),
        )

    return tamper


STRICT_CASES = [
    ("byte order mark", _recode_last(lambda b: b"\xef\xbb\xbf" + b), "stored bytes start with a UTF-8 byte order mark"),
    ("utf-16", _recode_last(lambda b: b.decode().encode("utf-16")), "stored bytes are not UTF-8"),
    ("repeated key", _recode_last(lambda b: b.replace(b'{"id":', b'{"id":"x","id":', 1)), 'duplicate key "id"'),
    ("whitespace", _recode_last(lambda b: b.replace(b",", b", ", 1)), "not in canonical form"),
]


@pytest.mark.parametrize(("tamper", "reason"), [c[1:] for c in STRICT_CASES], ids=[c[0] for c in STRICT_CASES])
def test_bytes_that_are_not_a_canonical_record_fail_open_though_hashed(
    pg_dsn: str,
    copy_of: Callable[[], tuple[str, psycopg.Connection]],
    tamper: Callable[[psycopg.Connection], None],
    reason: str,
) -> None:
    schema, conn = copy_of()
    tamper(conn)
    with pytest.raises(IntegrityError) as info:
        create_ledger(id=LEDGER, storage=postgres_storage(pg_dsn, schema=schema))
    assert info.value.seq == N
    assert f"does not verify at entry {N}: " in str(info.value) and reason in str(info.value)
    with create_ledger(id=LEDGER, storage=postgres_storage(pg_dsn, schema=schema), verify_on_open=False) as ro:
        last = _row(conn, N)
        with pytest.raises(IntegrityError) as read:
            ro.get_by_id(last[2], make_context())
        assert read.value.seq == N and reason in str(read.value)


def test_canonical_column_as_text_is_named_and_reads_raise_integrity_errors(
    pg_dsn: str, copy_of: Callable[[], tuple[str, psycopg.Connection]]
) -> None:
    schema, conn = copy_of()
    conn.execute("ALTER TABLE nucleus_entries ALTER COLUMN canonical TYPE text USING convert_from(canonical, 'UTF8')")
    reason = "canonical bytes stored as TEXT, not bytes"
    with pytest.raises(IntegrityError) as info:
        create_ledger(id=LEDGER, storage=postgres_storage(pg_dsn, schema=schema))
    assert info.value.seq == 1
    assert str(info.value) == f"ledger {LEDGER!r} does not verify at entry 1: {reason}"
    with create_ledger(id=LEDGER, storage=postgres_storage(pg_dsn, schema=schema), verify_on_open=False) as ro:
        record_id = _row(conn, K)[2]
        with pytest.raises(IntegrityError) as read:
            ro.get_by_id(record_id, make_context())
        assert (read.value.seq, read.value.reason) == (K, reason)
