"""Faults: the connection killed mid-append (``pg_terminate_backend``) and an unreachable server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from nucleus_storage_postgres import PostgresStorage, postgres_storage

from nucleus_core import Record, StorageError, StorageUnavailableError, create_ledger
from nucleus_core.testing import make_context, make_record

pytestmark = pytest.mark.postgres


def _terminate(admin: psycopg.Connection, pid: int) -> None:
    assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)


def test_connection_killed_mid_append(
    pg_admin: psycopg.Connection, make_storage: Callable[..., PostgresStorage]
) -> None:
    ctx = make_context()
    with create_ledger(id="killed", storage=make_storage()) as ledger:
        before = ledger.append_batch([make_record(i) for i in range(5)], ctx)
        storage = ledger.storage
        assert isinstance(storage, PostgresStorage)

        def kill_own_connection(_tx: object) -> None:
            # Inside the write transaction, after the entries were inserted, before commit.
            pid = storage.database.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
            _terminate(pg_admin, pid)

        records = [Record(id=f"sys-{i}", stream="_audit", timestamp=1, payload={"i": i}) for i in range(3)]
        with pytest.raises(StorageError) as info:
            ledger.append_system(records, ctx, within=kill_own_connection)
        assert isinstance(info.value, StorageUnavailableError)
        assert "connection lost" in str(info.value) and storage.url in str(info.value)
        # Nothing half-written: neither the entries nor anything else of that transaction.
        assert ledger.length() == 5 and ledger.latest_hash() == before[-1].hash
        assert all(ledger.get_by_id(r.id, ctx) is None for r in records)
        # The next append reconnects and chains onto the committed head.
        entry = ledger.append(make_record(5), ctx)
        assert entry.seq == 6 and entry.prev_hash == before[-1].hash
        assert ledger.verify().ok


def test_connection_killed_while_waiting_for_the_ledger_lock(
    pg_dsn: str, pg_schema: str, pg_admin: psycopg.Connection, make_storage: Callable[..., PostgresStorage]
) -> None:
    ctx = make_context()
    with create_ledger(id="waiting", storage=make_storage(application_name="kill-waiter")) as ledger:
        ledger.append(make_record(0), ctx)
        with psycopg.connect(pg_dsn) as holder:
            holder.execute(f"SELECT 1 FROM {pg_schema}.nucleus_ledgers WHERE ledger_id = 'waiting' FOR UPDATE")
            failures: list[BaseException] = []

            def append() -> None:
                try:
                    ledger.append(make_record(1), ctx)
                except StorageError as err:
                    failures.append(err)

            waiter = threading.Thread(target=append)
            waiter.start()
            while True:
                row = pg_admin.execute(
                    "SELECT pid FROM pg_stat_activity "
                    "WHERE application_name = 'kill-waiter' AND wait_event_type = 'Lock'"
                ).fetchone()
                assert waiter.is_alive()
                if row:
                    break
                threading.Event().wait(0.02)
            _terminate(pg_admin, row[0])
            waiter.join()
            assert len(failures) == 1 and isinstance(failures[0], StorageUnavailableError)
        assert ledger.length() == 1
        assert ledger.append(make_record(1), ctx).seq == 2
        assert ledger.verify().ok


def _wait_gone(admin: psycopg.Connection, pids: list[int]) -> None:
    """Until the server processes ``pids`` have exited (pg_terminate_backend only signals them)."""
    deadline = time.monotonic() + 10
    while admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)).fetchone() != (0,):
        assert time.monotonic() < deadline, "terminated backends did not exit"
        time.sleep(0.01)


def test_idle_pooled_connections_killed_between_appends(
    pg_admin: psycopg.Connection, make_storage: Callable[..., PostgresStorage]
) -> None:
    """A server restart or an idle timeout kills pooled connections; the pool replaces them unnoticed
    (the closed socket tells the check-out, which then pings and discards them)."""
    ctx = make_context()
    with create_ledger(id="idle", storage=make_storage(application_name="idle-pool")) as ledger:
        ledger.append(make_record(0), ctx)
        pids = [r[0] for r in pg_admin.execute("SELECT pid FROM pg_stat_activity WHERE application_name = 'idle-pool'")]
        assert pids
        for pid in pids:
            _terminate(pg_admin, pid)
        _wait_gone(pg_admin, pids)
        entry = ledger.append(make_record(1), ctx)
        assert entry.seq == 2
        assert ledger.get(entry.hash, ctx) is not None
        assert ledger.verify().ok


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The statements psycopg cursors execute from now on (each one round trip)."""
    statements: list[str] = []
    execute = psycopg.Cursor.execute

    def counting(self: psycopg.Cursor, query: Any, *args: Any, **kwargs: Any) -> Any:
        statements.append(str(query))
        return execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", counting)
    return statements


def test_a_healthy_pooled_connection_is_checked_out_without_a_round_trip(
    make_storage: Callable[..., PostgresStorage], sent: list[str]
) -> None:
    """peewee pings (``SELECT 1``) every connection it checks out; the backend's pool asks the socket
    instead and pings only when the server has said something, so a read is one statement."""
    ctx = make_context()
    with create_ledger(id="quiet", storage=make_storage()) as ledger:
        entry = ledger.append(make_record(0), ctx)
        for _ in range(3):
            sent.clear()
            assert ledger.get(entry.hash, ctx) is not None
            assert len(sent) == 1 and "SELECT 1" not in sent, sent


def test_a_proof_is_one_statement(make_storage: Callable[..., PostgresStorage], sent: list[str]) -> None:
    """An inclusion proof by seq reads its entry (for the requester's right to read it) and its
    nodes in one statement; a consistency proof is one too (a tree size read before needs no read)."""
    ctx = make_context()
    with create_ledger(id="proofs", storage=make_storage()) as ledger:
        ledger.append_batch([make_record(i) for i in range(300)], ctx)
        size = ledger.tree_size()
        for seq in (1, 2, 17, 150, 299, 300):
            sent.clear()
            proof = ledger.inclusion_proof(seq, size, ctx)
            assert proof is not None and proof.leaf_index == seq - 1
            assert len(sent) == 1, sent
            sent.clear()
            assert ledger.consistency_proof(seq, size, ctx).first == seq
            assert len(sent) == (seq < size), sent  # a proof between equal sizes is empty: no read
        sent.clear()
        assert ledger.inclusion_proof(1, 1, ctx) is not None  # a tree of one leaf: the entry only
        assert len(sent) == 1, sent


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server_at_open(closed_port: int) -> None:
    dsn = f"postgresql://nucleus:pw-never-shown@127.0.0.1:{closed_port}/nowhere"
    with pytest.raises(StorageUnavailableError) as info:
        create_ledger(id="down", storage=postgres_storage(dsn, connect_timeout=2))
    message = str(info.value)
    assert f"127.0.0.1:{closed_port}" in message and "connection lost or refused" in message
    assert "pw-never-shown" not in message


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers (a hung server or a black-holed route)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_silent_server_at_open_fails_after_connect_timeout(silent_server: int) -> None:
    """Bounded by connect_timeout: the open fails instead of hanging (the join is only a safety net)."""
    outcome: list[BaseException] = []

    def open_ledger() -> None:
        try:
            dsn = f"postgresql://u@127.0.0.1:{silent_server}/db"
            create_ledger(id="hung", storage=postgres_storage(dsn, connect_timeout=2))
        except BaseException as err:
            outcome.append(err)

    thread = threading.Thread(target=open_ledger, daemon=True)
    thread.start()
    thread.join(120)
    assert not thread.is_alive(), "opening against a silent server did not give up"
    assert len(outcome) == 1 and isinstance(outcome[0], StorageUnavailableError), outcome


@pytest.mark.parametrize("fault", ["terminate", "refuse"])
def test_commit_that_fails_is_reported_as_the_commit(
    pg_admin: psycopg.Connection, pg_schema: str, make_storage: Callable[..., PostgresStorage], fault: str
) -> None:
    """COMMIT itself fails (a deferred trigger runs at commit: it kills its own connection, or
    refuses): the error is the commit's, not that of peewee's rollback after it; nothing is
    written and the ledger goes on."""
    ctx = make_context()
    with create_ledger(id="commit", storage=make_storage()) as ledger:
        before = ledger.append_batch([make_record(i) for i in range(3)], ctx)
        action = (
            "PERFORM pg_terminate_backend(pg_backend_pid());"
            if fault == "terminate"
            else "RAISE EXCEPTION 'refused at commit' USING ERRCODE = 'check_violation';"
        )
        pg_admin.execute(
            f"CREATE FUNCTION {pg_schema}.at_commit() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN IF NEW.record_id = 'doomed' THEN {action} END IF; RETURN NULL; END $$"
        )
        pg_admin.execute(
            f"CREATE CONSTRAINT TRIGGER at_commit AFTER INSERT ON {pg_schema}.nucleus_entries "
            f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {pg_schema}.at_commit()"
        )
        with pytest.raises(StorageError) as info:
            ledger.append(Record(id="doomed", stream="s", timestamp=1, payload={}), ctx)
        message = str(info.value)
        assert "committing" in message and "rollback" not in message.lower(), message
        if fault == "terminate":
            assert isinstance(info.value, StorageUnavailableError)
            assert "may or may not have committed" in message
        else:
            assert "while committing" in message and "refused at commit" in message
        assert ledger.length() == 3 and ledger.latest_hash() == before[-1].hash
        assert ledger.get_by_id("doomed", ctx) is None
        pg_admin.execute(f"DROP TRIGGER at_commit ON {pg_schema}.nucleus_entries")
        entry = ledger.append(make_record(3), ctx)
        assert entry.seq == 4 and entry.prev_hash == before[-1].hash
        assert ledger.verify().ok
