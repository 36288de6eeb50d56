"""The shared SQL base, exercised through a minimal subclass on plain peewee SQLite databases.

(The real backends run the full conformance suite in their own distributions.)
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path
from typing import Any

import peewee
import pytest
from nucleus_storage_sql import CURRENT_VERSION, MIGRATIONS, SqlStorageBackend, make_models, read_version, upgrade
from nucleus_storage_sql.schema import schema_indexes

from nucleus_core import (
    ConfigurationError,
    ConflictError,
    DuplicateRecordError,
    IntegrityError,
    Record,
    StorageError,
    StorageQuery,
    create_ledger,
)
from nucleus_core.testing import make_context, make_record


class PlainSqlite(SqlStorageBackend):
    """The smallest concrete backend: what a subclass must provide."""

    driver_errors = (sqlite3.Error,)

    def __init__(self, path: Path, **kwargs: Any) -> None:
        super().__init__(f"plain:{path}", **kwargs)
        self.path = path

    def _make_database(self) -> peewee.Database:
        return peewee.SqliteDatabase(str(self.path), pragmas=[("journal_mode", "wal")], timeout=10)

    def _begin_write(self) -> contextlib.AbstractContextManager[Any]:
        return self.database.atomic("IMMEDIATE")


def note_models(database: peewee.Database) -> type[peewee.Model]:
    """A plugin's table, built per backend (the factory pattern the README documents)."""

    class Note(peewee.Model):
        key = peewee.CharField(primary_key=True)
        value = peewee.TextField()

        class Meta:
            table_name = "plugin_notes"

    return Note


def test_two_ledgers_on_two_databases_in_one_process(tmp_path: Path) -> None:
    ctx = make_context()
    a = create_ledger(id="a", storage=PlainSqlite(tmp_path / "a.db"))
    b = create_ledger(id="b", storage=PlainSqlite(tmp_path / "b.db"))
    with a, b:
        a.append_batch([make_record(i) for i in range(3)], ctx)
        b.append(make_record(100), ctx)
        assert a.storage.entries_model is not b.storage.entries_model
        assert a.storage.entries_model._meta.database is a.storage.database
        assert b.storage.entries_model._meta.database is b.storage.database
        assert (a.length(), b.length()) == (3, 1)
        assert a.get_by_id(make_record(100).id, ctx) is None
        assert b.get_by_id(make_record(100).id, ctx) is not None
    with sqlite3.connect(tmp_path / "b.db") as raw:
        assert raw.execute("select count(*) from nucleus_entries").fetchone() == (1,)


def test_many_ledgers_share_one_database_and_verify_alone(tmp_path: Path) -> None:
    ctx = make_context()
    path = tmp_path / "shared.db"
    one = create_ledger(id="one", storage=PlainSqlite(path))
    two = create_ledger(id="two", storage=PlainSqlite(path))
    with one, two:
        one.append_batch([make_record(i) for i in range(5)], ctx)
        two.append_batch([make_record(i) for i in range(7)], ctx)  # same record ids: ids are unique per ledger
        assert (one.length(), two.length()) == (5, 7)
        assert one.verify().ok and two.verify().ok
        assert [e.seq for e in two.storage.iter_entries()] == list(range(1, 8))
    with sqlite3.connect(path) as raw:
        raw.execute("update nucleus_entries set stream = 'x' where ledger_id = 'two' and seq = 3")
    with create_ledger(id="one", storage=PlainSqlite(path)) as one:
        assert one.length() == 5
    with pytest.raises(IntegrityError) as info:
        create_ledger(id="two", storage=PlainSqlite(path))
    assert info.value.seq == 3


def test_plugin_writes_join_the_write_transaction(tmp_path: Path) -> None:
    ctx = make_context()
    with create_ledger(id="tx", storage=PlainSqlite(tmp_path / "tx.db")) as ledger:
        backend = ledger.storage
        assert isinstance(backend, SqlStorageBackend)
        note = note_models(backend.database)
        backend.ensure_tables([note])
        backend.ensure_tables([note])  # idempotent

        def write_note(key: str, fail: bool) -> None:
            def within(_tx: Any) -> None:
                note.create(key=key, value="v")
                if fail:
                    raise RuntimeError("roll everything back")

            record = Record(id=f"sys-{key}", stream="_notes", timestamp=1, payload={})
            ledger.append_system([record], ctx, within=within)

        with pytest.raises(RuntimeError):
            write_note("lost", fail=True)
        assert note.get_or_none(note.key == "lost") is None
        assert ledger.length() == 0
        write_note("kept", fail=False)
        assert note.get_or_none(note.key == "kept") is not None
        assert ledger.length() == 1

        # Directly on the backend, too: the plugin row and the entry commit or roll back together.
        with pytest.raises(ConflictError), backend.write():
            note.create(key="dupe", value="1")
            note.create(key="dupe", value="2")
        assert note.get_or_none(note.key == "dupe") is None
    # And the committed row is really on disk, in the same file.
    with sqlite3.connect(tmp_path / "tx.db") as raw:
        assert raw.execute("select key from plugin_notes").fetchall() == [("kept",)]


def test_ensure_tables_refuses_a_model_bound_elsewhere(tmp_path: Path) -> None:
    other = peewee.SqliteDatabase(str(tmp_path / "other.db"))
    foreign = note_models(other)
    other.bind([foreign])
    with (
        create_ledger(id="x", storage=PlainSqlite(tmp_path / "x.db")) as ledger,
        pytest.raises(ConfigurationError, match="bound to another database"),
    ):
        ledger.storage.ensure_tables([foreign])


def test_insert_contract(tmp_path: Path) -> None:
    ctx = make_context()
    with create_ledger(id="c", storage=PlainSqlite(tmp_path / "c.db")) as ledger:
        entries = ledger.append_batch([make_record(i) for i in range(3)], ctx)
        backend = ledger.storage
        row = backend.get_by_seq(3)
        assert row is not None
        nxt = type(row)(
            seq=4, hash="cd" * 32, prev_hash="ef" * 32, record_id="n", stream="s", timestamp=1, canonical=b"{}"
        )
        with pytest.raises(StorageError, match="does not link"), backend.write() as tx:
            tx.insert([nxt])
        dupe = type(row)(seq=4, hash="cd" * 32, prev_hash=entries[-1].hash, record_id=row.record_id, stream="s",
                         timestamp=1, canonical=b"{}")
        with pytest.raises(DuplicateRecordError), backend.write() as tx:
            tx.insert([dupe])
        assert ledger.length() == 3 and ledger.verify().ok


def test_query_builder_and_iteration_batches(tmp_path: Path) -> None:
    ctx = make_context()
    with create_ledger(id="q", storage=PlainSqlite(tmp_path / "q.db", iter_batch_size=7)) as ledger:
        ledger.append_batch([make_record(i, stream="a" if i % 2 else "b") for i in range(50)], ctx)
        backend = ledger.storage
        assert [e.seq for e in backend.iter_entries()] == list(range(1, 51))
        assert [e.seq for e in backend.iter_entries(43)] == list(range(43, 51))
        assert [e.seq for e in backend.iter_entries(49)] == [49, 50]
        got = backend.query(StorageQuery(streams=("a",), after_seq=10, limit=3))
        assert [e.seq for e in got] == [12, 14, 16]
        sel = backend.build_query(StorageQuery(streams=("a", "b"), since=1_700_000_000_005, limit=2))
        assert [e.seq for e in backend.fetch(sel)] == [6, 7]


def test_iteration_memory_is_bounded_by_the_batch(tmp_path: Path) -> None:
    ctx = make_context()
    with create_ledger(id="m", storage=PlainSqlite(tmp_path / "m.db", iter_batch_size=5)) as ledger:
        ledger.append_batch([make_record(i) for i in range(20)], ctx)
        backend = ledger.storage
        statements: list[str] = []
        it = backend.iter_entries()
        backend.database.connection().set_trace_callback(statements.append)
        first = [next(it) for _ in range(5)]
        assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1
        rest = list(it)
        assert [e.seq for e in first + rest] == list(range(1, 21))
        # 20 rows in batches of 5: 4 full batches and one empty probe, never one big select.
        assert len([s for s in statements if "LIMIT" in s.upper()]) == 5


def test_migrations_run_from_each_version(tmp_path: Path) -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, CURRENT_VERSION + 1))
    db = peewee.SqliteDatabase(str(tmp_path / "m.db"))
    models = make_models(db)
    assert read_version(models) == 0
    with db.atomic():
        assert upgrade(models, target=1) == 0
    assert read_version(models) == 1
    assert ("ledger_id", "timestamp") not in schema_indexes(db, "nucleus_entries")
    with db.atomic():
        assert upgrade(models) == 1
    assert read_version(models) == CURRENT_VERSION
    assert ("ledger_id", "timestamp") in schema_indexes(db, "nucleus_entries")
    assert upgrade(models) == CURRENT_VERSION  # nothing to do


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    create_ledger(id="n", storage=PlainSqlite(path)).close()
    with sqlite3.connect(path) as raw:
        raw.execute("update nucleus_schema_version set version = ?", (CURRENT_VERSION + 1,))
    with pytest.raises(ConfigurationError, match="newer than"):
        create_ledger(id="n", storage=PlainSqlite(path))


def test_foreign_entries_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "foreign.db"
    with sqlite3.connect(path) as raw:
        raw.execute("create table nucleus_entries (x)")
    with pytest.raises(ConfigurationError, match="not written by Nucleus"):
        create_ledger(id="f", storage=PlainSqlite(path))


def test_bad_table_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="entries_table"):
        PlainSqlite(tmp_path / "t.db", entries_table='x"; drop table y; --')


def test_reads_from_other_threads_use_their_own_connection(tmp_path: Path) -> None:
    ctx = make_context()
    with create_ledger(id="th", storage=PlainSqlite(tmp_path / "th.db")) as ledger:
        ledger.append_batch([make_record(i) for i in range(10)], ctx)
        seen: list[int] = []
        t = threading.Thread(target=lambda: seen.append(sum(1 for _ in ledger.storage.iter_entries())))
        t.start()
        t.join()
        assert seen == [10]


def test_cached_query_sql_matches_the_memory_backend(tmp_path: Path) -> None:
    """Every query shape (cached SQL after the first use) answers like the reference backend."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from nucleus_core import MemoryStorage

    ctx = make_context()
    records = [make_record(i, stream=f"s{i % 4}") for i in range(80)]
    sql_ledger = create_ledger(id="cache", storage=PlainSqlite(tmp_path / "cache.db"))
    mem_ledger = create_ledger(id="cache", storage=MemoryStorage())
    for ledger in (sql_ledger, mem_ledger):
        ledger.append_batch(records, ctx)
    t0 = records[0].timestamp
    streams = ["s0", "s1", "s2", "s3", "zz"]
    ids = [r.id for r in records[:20]] + ["nope"]
    queries = st.builds(
        StorageQuery,
        streams=st.none() | st.lists(st.sampled_from(streams), min_size=1, max_size=4).map(tuple),
        record_ids=st.none() | st.lists(st.sampled_from(ids), min_size=1, max_size=5).map(tuple),
        since=st.none() | st.integers(t0 - 5, t0 + 90),
        until=st.none() | st.integers(t0 - 5, t0 + 90),
        after_seq=st.integers(0, 85),
        limit=st.integers(1, 30),
    )

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(queries)
    def check(q: StorageQuery) -> None:
        # The same entries but for when each ledger took them (committed_at, and so the hashes).
        def comparable(entries: list[Any]) -> list[tuple[Any, ...]]:
            return [(e.seq, e.record_id, e.stream, e.timestamp, e.version, e.appender, e.canonical) for e in entries]

        assert comparable(sql_ledger.storage.query(q)) == comparable(mem_ledger.storage.query(q))

    with sql_ledger, mem_ledger:
        check()


def test_entry_from_row_equals_the_attrs_constructor() -> None:
    from nucleus_core import Entry

    row = (7, "ab" * 32, "cd" * 32, "rec-7", "events", 1_700_000_000_007, 2, "oid:t:user:a", "dev", 1_700_000_000_009,
           memoryview(b'{"id":"rec-7"}'))
    built = Entry.from_row(row)
    expected = Entry(seq=7, hash="ab" * 32, prev_hash="cd" * 32, record_id="rec-7", stream="events",
                     timestamp=1_700_000_000_007, version=2, appender="oid:t:user:a", auth_source="dev",
                     committed_at=1_700_000_000_009, canonical=b'{"id":"rec-7"}')
    assert built == expected and hash(built) == hash(expected) and repr(built) == repr(expected)
    assert type(built.canonical) is bytes
    with pytest.raises(AttributeError):
        built.seq = 8  # type: ignore[misc]  # still frozen
