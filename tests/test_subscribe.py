"""``Ledger.subscribe``: entries of other processes (a writer subprocess on the same SQLite file or
PostgreSQL database), the UAL's access rules, the idle timeout, the end at close, bad arguments,
and ``nucleus tail``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from nucleus_storage_postgres import postgres_storage

from nucleus_core import Entry, QueryError, Record, RequestContext, ValidationError, create_ledger
from nucleus_core.cli import make_cli
from nucleus_core.errors import MissingRequesterError
from nucleus_core.testing.postgres import drop_schema, temporary_database

ALICE = RequestContext(oid="oid:test:user:alice", source="dev")
BOB = RequestContext(oid="oid:test:user:bob", source="dev")
CAROL = RequestContext(oid="oid:test:user:carol", source="dev")
ROOT = RequestContext(oid="oid:test:user:root", source="dev")

WRITER = textwrap.dedent(
    """
    import sys
    from nucleus_core import Record, RequestContext, open_ledger
    backend, where, schema, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    if backend == "postgres":
        from nucleus_storage_postgres import postgres_storage
        storage = postgres_storage(where, schema=schema)
    else:
        storage = f"sqlite:///{where}"
    ctx = RequestContext(oid="oid:test:user:writer", source="dev")
    with open_ledger(id="sub", storage=storage) as ledger:
        for i in range(count):
            stream = "a" if i % 2 == 0 else "b"
            ledger.append(Record(id=f"w-{i}", stream=stream, timestamp=1000 + i, payload={"i": i}), ctx)
    """
)


def rec(rid: str, stream: str = "a", **payload: Any) -> Record:
    return Record(id=rid, stream=stream, timestamp=1, payload=payload)


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    with temporary_database("nucleus_subscribe") as dsn:
        yield dsn


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, str, Callable[[], Any]]]:
    """(backend, where, schema, make storage): one database, the same one each call."""
    if request.param == "postgres":
        dsn = request.getfixturevalue("pg_dsn")
        schema = f"sub_{uuid.uuid4().hex[:12]}"
        yield "postgres", dsn, schema, lambda: postgres_storage(dsn, schema=schema)
        drop_schema(dsn, schema)
    else:
        path = tmp_path / "sub.db"
        yield "sqlite", str(path), "-", lambda: f"sqlite:///{path}"


def collect(sub: Any, into: list[Entry]) -> threading.Thread:
    def run() -> None:
        into.extend(sub)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_subscription_sees_the_entries_another_process_appends(
    store: tuple[str, str, str, Callable[[], Any]],
) -> None:
    backend, where, schema, make = store
    with create_ledger(id="sub", storage=make()) as ledger:
        ledger.append(rec("before"), ALICE)
        start = ledger.length()
        everything = ledger.subscribe(start, None, ALICE, timeout=30, poll_interval=0.05)
        only_a = ledger.subscribe(start, {"stream": "a", "limit": 3}, ALICE, timeout=30, poll_interval=0.05)
        got_all: list[Entry] = []
        got_a: list[Entry] = []
        threads = [collect(everything, got_all), collect(only_a, got_a)]
        writer = subprocess.run(
            [sys.executable, "-c", WRITER, backend, where, schema, "40"], capture_output=True, text=True, timeout=120
        )
        assert writer.returncode == 0, writer.stderr
        # The writer's 40 entries (and its _ledger record, if any) arrive; then the subscriptions
        # are ended from here (the other process's commits never woke them: the poll saw them).
        head = ledger.length()
        for sub, thread in ((everything, threads[0]), (only_a, threads[1])):
            while thread.is_alive() and sub.position < head:
                thread.join(0.05)
            sub.close()
            thread.join(30)
            assert not thread.is_alive()
        ids = [e.record.id for e in got_all if not e.record.stream.startswith("_")]
        assert ids == [f"w-{i}" for i in range(40)]
        assert [e.seq for e in got_all] == list(range(start + 1, head + 1))
        assert [e.record.id for e in got_a] == [f"w-{i}" for i in range(0, 40, 2)]
        assert everything.position == only_a.position == head
        # Each entry is the stored one, as a query answers it.
        assert got_a == [e for e in ledger.query({"stream": "a", "limit": 1000}, ALICE).entries if e.seq > start]


def test_a_subscriber_gets_exactly_what_the_ual_lets_it_read(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'ual.db'}"
    with create_ledger(id="sub-ual", storage=storage, plugins=["ual"], admins=[ROOT.oid]) as ledger:
        grants = [
            ("stream:a", ALICE, "create"), ("stream:b", ALICE, "create"), ("stream:b", BOB, "create"),
            ("stream:a", CAROL, "read"),
        ]
        ledger.acl.grant(
            [{"resource_kind": k, "resource_id": "*", "principal_oid": p.oid, "scope": s} for k, p, s in grants], ROOT
        )
        start = ledger.length()
        subs = {who.oid: ledger.subscribe(start, None, who, timeout=30) for who in (ALICE, BOB, CAROL, ROOT)}
        got: dict[str, list[Entry]] = {oid: [] for oid in subs}
        threads = {oid: collect(sub, got[oid]) for oid, sub in subs.items()}
        for i in range(10):
            ledger.append(rec(f"a-{i}", "a"), ALICE)
            ledger.append(rec(f"b-{i}", "b"), BOB if i % 2 else ALICE)
        head = ledger.length()
        for oid, sub in subs.items():
            while threads[oid].is_alive() and sub.position < head:
                threads[oid].join(0.02)
            sub.close()
            threads[oid].join(30)
        for who in (ALICE, BOB, CAROL, ROOT):
            expected = [e for e in ledger.query({"limit": 1000}, who).entries if e.seq > start]
            assert got[who.oid] == expected, who.oid
        assert [e.record.id for e in got[CAROL.oid]] == [f"a-{i}" for i in range(10)]
        assert [e.record.id for e in got[BOB.oid]] == [f"b-{i}" for i in range(1, 10, 2)]
        assert len(got[ROOT.oid]) > 20  # the admin reads the audit records too
        # A grant revoked while subscribed: the next page reads without it.
        carol = ledger.subscribe(ledger.length(), None, CAROL, timeout=0)
        ledger.append(rec("a-seen", "a"), ALICE)
        assert [e.record.id for e in carol.poll()] == ["a-seen"]
        ledger.acl.revoke([{"resource_kind": "stream:a", "resource_id": "*", "principal_oid": CAROL.oid}], ROOT)
        ledger.append(rec("a-hidden", "a"), ALICE)
        assert carol.poll() == []
        assert carol.position == ledger.length()


def test_the_idle_timeout_ends_the_iteration_and_so_does_closing_the_ledger() -> None:
    ledger = create_ledger(id="sub-mem", storage="memory://")
    ledger.append(rec("r-1"), ALICE)
    with ledger.subscribe(0, {"stream": "a"}, ALICE, timeout=0.2) as sub:
        assert [e.record.id for e in sub] == ["r-1"]  # then 0.2 s without an entry: the end
    assert sub.position == 1
    assert list(ledger.subscribe(1, None, ALICE, timeout=0)) == []
    # Without a timeout, the iteration blocks until the ledger closes.
    forever = ledger.subscribe(1, None, ALICE)
    got: list[Entry] = []
    thread = collect(forever, got)
    ledger.append(rec("r-2"), ALICE)
    while not got and thread.is_alive():
        thread.join(0.02)
    assert thread.is_alive()
    ledger.close()
    thread.join(30)
    assert not thread.is_alive()
    assert [e.record.id for e in got] == ["r-2"]
    assert forever.closed


def test_bad_arguments_are_refused_before_anything_is_read() -> None:
    with create_ledger(id="sub-bad", storage="memory://") as ledger:
        for after in (-1, "3", 1.5, None):
            with pytest.raises(ValidationError) as err:
                ledger.subscribe(after, None, ALICE)  # type: ignore[arg-type]
            assert err.value.field == "after_seq"
        with pytest.raises(QueryError) as qerr:
            ledger.subscribe(0, {"cursor": "s3"}, ALICE)
        assert qerr.value.field == "cursor"
        with pytest.raises(QueryError) as qerr:
            ledger.subscribe(0, {"stream": "Bad Stream"}, ALICE)
        assert qerr.value.field == "stream"
        with pytest.raises(QueryError) as qerr:
            ledger.subscribe(0, {"limit": 5000}, ALICE)
        assert qerr.value.field == "limit"
        for name, kwargs in (("timeout", {"timeout": -1}), ("poll_interval", {"poll_interval": 0}),
                             ("poll_interval", {"poll_interval": 600}), ("timeout", {"timeout": True})):
            with pytest.raises(ValidationError) as err:
                ledger.subscribe(0, None, ALICE, **kwargs)
            assert err.value.field == name
        with pytest.raises(MissingRequesterError):
            ledger.subscribe(0, None, None)  # type: ignore[arg-type]


def test_nucleus_tail_prints_json_lines_of_new_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NUCLEUS_AS", ALICE.oid)
    with create_ledger(id="default", storage="sqlite:///nucleus.db") as ledger:
        for i in range(3):
            ledger.append(rec(f"t-{i}", "a" if i != 1 else "b"), ALICE)
    runner = CliRunner()
    result = runner.invoke(make_cli(), ["tail", "--after", "0", "--stream", "a", "--timeout", "0.3"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [line["record"]["id"] for line in lines] == ["t-0", "t-2"]
    assert set(lines[0]) == {"seq", "hash", "prev_hash", "version", "appender", "auth_source", "committed_at", "record"}
    result = runner.invoke(make_cli(), ["tail", "--after", "0", "--count", "1"])
    assert result.exit_code == 0 and len(result.output.splitlines()) == 1
    # By default only entries after the head: none here before the timeout.
    result = runner.invoke(make_cli(), ["tail", "--timeout", "0.1"])
    assert result.exit_code == 0 and result.output == ""
