"""Group commit (nucleus_core.group_commit): concurrent appends share one transaction and its commit,
each call keeping its meaning and its own errors. On real SQLite files, the PostgreSQL server and
the memory backend.

A group is made deterministic by holding the ledger's write lock: the first caller becomes the
leader and waits for the lock with its own call; the calls made meanwhile queue, and all of them
become the next transaction once the lock is released."""

from __future__ import annotations

import contextlib
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from nucleus_storage_postgres import postgres_storage
from nucleus_storage_sqlite import sqlite_storage

from nucleus_core import (
    AccessDeniedError,
    ConfigurationError,
    DuplicateRecordError,
    LedgerClosedError,
    MemoryStorage,
    Module,
    ModuleSpec,
    Record,
    RecordRejectedError,
    RequestContext,
    StorageError,
    create_ledger,
    hookimpl,
)
from nucleus_core import ledger as ledger_module
from nucleus_core.capabilities import SavepointTransaction
from nucleus_core.errors import NotFoundError
from nucleus_core.ledger import Ledger
from nucleus_core.testing.postgres import drop_schema, temporary_database

ADMIN = RequestContext(oid="oid:test:user:admin", source="service")
ALICE = RequestContext(oid="oid:test:user:alice", source="service")
BOB = RequestContext(oid="oid:test:user:bob", source="service")

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "memory"]


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    with temporary_database("nucleus_group") as dsn:
        yield dsn


@pytest.fixture(params=BACKENDS)
def make_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Ledger]]:
    """Opens a ledger on a fresh store of the backend (the same store on each call of one test)."""
    stack = contextlib.ExitStack()
    if request.param == "postgres":
        dsn = request.getfixturevalue("pg_dsn")
        schema = f"g_{uuid.uuid4().hex[:12]}"
        stack.callback(drop_schema, dsn, schema)
        make: Callable[[], Any] = lambda: postgres_storage(dsn, schema=schema, pool_size=24)  # noqa: E731
    elif request.param == "sqlite":
        make = lambda: sqlite_storage(tmp_path / "group.db", durability="full")  # noqa: E731
    else:
        memory = "memory://"
        make = lambda: memory  # noqa: E731

    def factory(**kwargs: Any) -> Ledger:
        kwargs.setdefault("id", "group")
        return stack.enter_context(create_ledger(storage=make(), **kwargs))

    with stack:
        yield factory


def note(rid: str, **payload: Any) -> Record:
    return Record(id=rid, stream="notes", timestamp=1_700_000_000_000, payload={"text": rid, **payload})


class Outcomes:
    """Appends started one by one in threads, each waiting in the queue before the next starts."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.threads: list[threading.Thread] = []
        self.results: dict[str, Any] = {}

    def start(self, name: str, records: list[Record], ctx: RequestContext = ALICE, *, queued: bool = True) -> None:
        group = self.ledger._group
        assert group is not None
        before = group.queued

        def run() -> None:
            try:
                self.results[name] = self.ledger.append_batch(records, ctx)
            except Exception as err:
                self.results[name] = err

        thread = threading.Thread(target=run)
        thread.start()
        self.threads.append(thread)
        if queued:
            wait_for(lambda: group.queued > before)

    def join(self) -> dict[str, Any]:
        for thread in self.threads:
            thread.join(60)
            assert not thread.is_alive()
        return self.results


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, "the calls did not queue"
        time.sleep(0.002)


@contextlib.contextmanager
def held(ledger: Ledger) -> Iterator[Outcomes]:
    """A leader stuck on the write lock with the call ``lead``; the calls started in the block queue
    behind it and form the next group when the block ends."""
    outcomes = Outcomes(ledger)
    with ledger._lock:
        outcomes.start("lead", [note("lead")], queued=False)
        wait_for(lambda: ledger._group is not None and ledger._group.queued == 0 and ledger._group._leading)
        yield outcomes
    outcomes.join()


def test_many_threads_every_entry_once_chain_verifies(make_ledger: Callable[..., Ledger]) -> None:
    ledger = make_ledger()
    threads, per = 16, 25

    def worker(t: int) -> None:
        for i in range(per):
            ledger.append(note(f"t{t}-{i}"), ALICE)

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    entries = list(ledger.storage.iter_entries())
    ids = [e.record_id for e in entries if e.stream == "notes"]
    assert sorted(ids) == sorted(f"t{t}-{i}" for t in range(threads) for i in range(per))
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    # Each thread's appends are in the chain in the order it made them.
    for t in range(threads):
        mine = [int(i.split("-")[1]) for i in ids if i.startswith(f"t{t}-")]
        assert mine == list(range(per))
    stats = ledger.group_commit_stats()
    assert stats is not None and stats.calls == threads * per and stats.failed == 0
    assert stats.groups <= stats.calls and stats.entries == threads * per
    assert ledger.verify().ok


def test_queued_calls_share_one_transaction_in_queue_order(make_ledger: Callable[..., Ledger]) -> None:
    ledger = make_ledger()
    ledger.append(note("first"), ALICE)
    with held(ledger) as calls:
        for i in range(8):
            calls.start(f"c{i}", [note(f"c{i}-a"), note(f"c{i}-b")], ALICE if i % 2 else BOB)
    results = calls.results
    group = [e for i in range(8) for e in results[f"c{i}"]]
    # The chain order is the order the calls were taken; one transaction, one committed_at.
    assert [e.seq for e in group] == list(range(group[0].seq, group[0].seq + 16))
    assert [e.record_id for e in group] == [f"c{i}-{x}" for i in range(8) for x in "ab"]
    assert len({e.committed_at for e in group}) == 1
    # Each entry binds its own call's requester.
    assert [e.appender for e in group] == [(ALICE if i % 2 else BOB).oid for i in range(8) for _ in "ab"]
    stats = ledger.group_commit_stats()
    assert stats is not None and stats.largest == 8 and stats.groups == 3
    assert ledger.verify().ok


def test_a_bad_record_fails_only_its_own_call(make_ledger: Callable[..., Ledger]) -> None:
    ledger = make_ledger()
    ledger.append(note("stored"), ALICE)
    with held(ledger) as calls:
        calls.start("ok1", [note("ok1")])
        calls.start("dup-stored", [note("fresh-1"), note("stored")])  # an id already in the ledger
        calls.start("ok2", [note("ok2-a"), note("ok2-b")])
        calls.start("dup-group", [note("ok1")])  # an id an earlier call of the same group takes
        calls.start("ok3", [note("ok3")])
    results = calls.results
    assert isinstance(results["dup-stored"], DuplicateRecordError)
    assert isinstance(results["dup-group"], DuplicateRecordError)
    committed = [e for name in ("lead", "ok1", "ok2", "ok3") for e in results[name]]
    assert [e.record_id for e in committed] == ["lead", "ok1", "ok2-a", "ok2-b", "ok3"]
    assert [e.seq for e in committed] == list(range(2, 7))  # no gap where the failed calls were
    ids = [e.record_id for e in ledger.storage.iter_entries() if e.stream == "notes"]
    assert ids == ["stored", "lead", "ok1", "ok2-a", "ok2-b", "ok3"]
    assert ledger.get_by_id("fresh-1", ALICE) is None
    stats = ledger.group_commit_stats()
    assert stats is not None and stats.failed == 2 and stats.largest == 5
    assert ledger.verify().ok


def test_access_denied_fails_only_its_call_and_grants_follow_the_chain(make_ledger: Callable[..., Ledger]) -> None:
    ledger = make_ledger(plugins=["ual"], admins=[ADMIN.oid])
    ledger.acl.grant(
        [{"resource_kind": "stream:notes", "resource_id": "*", "principal_oid": ALICE.oid, "scope": "write"}], ADMIN
    )
    with held(ledger) as calls:
        calls.start("alice-1", [note("a1")], ALICE)
        calls.start("bob", [note("b1")], BOB)  # no grant: refused
        calls.start("alice-2", [note("a2")], ALICE)
        calls.start("bob-on-a1", [note("a1", edit=True)], BOB)
    results = calls.results
    assert isinstance(results["bob"], AccessDeniedError)
    # a1 is taken (by alice-1, in the same transaction): a duplicate for whoever may read it, an
    # access denial otherwise (bob may not).
    assert isinstance(results["bob-on-a1"], AccessDeniedError)
    assert [e.record_id for e in results["alice-1"] + results["alice-2"]] == ["a1", "a2"]
    # The appender of each created resource holds full on it (the UAL's audit records, in the chain).
    assert ledger.acl.check(ALICE.oid, "full", ("stream:notes", "a2"))
    assert not ledger.acl.check(BOB.oid, "read", ("stream:notes", "b1"))
    assert ledger.verify().ok  # the grants table matches the chain


class Refuser(Module):
    """Refuses records whose payload says ``bad``; counts what it validated and what it applied."""

    id = "refuser"
    streams = ("checked",)

    def __init__(self) -> None:
        self.applied: list[int] = []

    def validate(self, record: Record, context: RequestContext) -> None:
        if record.payload.get("bad"):
            raise RecordRejectedError("bad payload", module_id=self.id, record_id=record.id)

    def apply(self, entry: Any) -> None:
        self.applied.append(entry.seq)


class RefuserPlugin:
    def __init__(self, module: Refuser) -> None:
        self.module = module

    @hookimpl
    def nucleus_register_modules(self) -> list[ModuleSpec]:
        return [ModuleSpec(id=self.module.id, factory=lambda _ctx: self.module)]


def checked(rid: str, *, bad: bool = False) -> Record:
    return Record(id=rid, stream="checked", timestamp=1, payload={"bad": bad})


def test_module_refusal_fails_only_its_call_and_module_calls_do_not_share(
    make_ledger: Callable[..., Ledger],
) -> None:
    module = Refuser()
    ledger = make_ledger(plugins=[RefuserPlugin(module)])
    with held(ledger) as calls:
        calls.start("plain-1", [note("p1")])
        calls.start("refused", [checked("m1", bad=True)])
        calls.start("plain-2", [note("p2")])
        calls.start("module-ok", [checked("m2")])  # a second module call: the next transaction
        calls.start("plain-3", [note("p3")])
    results = calls.results
    assert isinstance(results["refused"], RecordRejectedError)
    assert [e.record_id for n in ("plain-1", "plain-2", "module-ok", "plain-3") for e in results[n]] == [
        "p1", "p2", "m2", "p3",
    ]
    # The module's committed callbacks saw its entry, once, in chain order.
    assert module.applied == [results["module-ok"][0].seq]
    stats = ledger.group_commit_stats()
    assert stats is not None and stats.groups == 3  # lead; plain-1..plain-2; module-ok, plain-3
    assert ledger.verify().ok


@pytest.mark.parametrize("make_ledger", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)
def test_a_failed_shared_transaction_fails_every_call_and_writes_nothing(
    make_ledger: Callable[..., Ledger], monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = make_ledger()
    ledger.append_batch([note("before-1"), note("before-2")], ALICE)
    before = list(ledger.storage.iter_entries())
    root = ledger.tree_size(), ledger.latest_hash()
    real = ledger_module.extend_tree

    def failing(*args: Any) -> None:
        raise StorageError("disk gone while writing the tree")

    with held(ledger) as calls:
        for i in range(5):
            calls.start(f"c{i}", [note(f"c{i}")])
        calls.start("dup", [note("before-1")])
        monkeypatch.setattr(ledger_module, "extend_tree", failing)
    results = calls.results
    for name in ("lead", *(f"c{i}" for i in range(5))):
        assert isinstance(results[name], StorageError) and "disk gone" in str(results[name])
    assert isinstance(results["dup"], DuplicateRecordError)  # its own error: it failed before the commit did
    assert list(ledger.storage.iter_entries()) == before
    assert (ledger.tree_size(), ledger.latest_hash()) == root
    monkeypatch.setattr(ledger_module, "extend_tree", real)
    assert ledger.append(note("after"), ALICE).seq == before[-1].seq + 1
    assert ledger.verify().ok


def test_entry_limit_splits_groups(make_ledger: Callable[..., Ledger]) -> None:
    ledger = make_ledger(group_commit_max_entries=7)
    with held(ledger) as calls:
        for i in range(4):
            calls.start(f"c{i}", [note(f"c{i}-{x}") for x in range(3)])
        calls.start("big", [note(f"big-{x}") for x in range(9)])  # larger than the limit: alone
    stats = ledger.group_commit_stats()
    assert stats is not None and stats.groups == 4 and stats.largest == 2  # lead; c0+c1; c2+c3; big
    assert len(calls.results["big"]) == 9
    assert ledger.verify().ok


def test_call_limit_and_group_commit_off(make_ledger: Callable[..., Ledger]) -> None:
    ledger = make_ledger(group_commit_max_calls=2)
    with held(ledger) as calls:
        for i in range(5):
            calls.start(f"c{i}", [note(f"c{i}")])
    stats = ledger.group_commit_stats()
    assert stats is not None and stats.groups == 4 and stats.largest == 2
    ledger.close()
    off = make_ledger(id="off", group_commit_max_calls=1)
    assert off.group_commit_stats() is None
    assert off.append(note("x"), ALICE).seq >= 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("group_commit_max_calls", 0), ("group_commit_max_calls", 10001), ("group_commit_max_calls", "4"),
        ("group_commit_max_calls", True), ("group_commit_max_entries", 0), ("group_commit_max_entries", 2.5),
        ("group_commit_max_entries", 1_000_001), ("group_commit_window", -0.001), ("group_commit_window", 1.5),
        ("group_commit_window", "0.001"), ("group_commit_window", True),
    ],
)
def test_config_is_validated(field: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=field):
        create_ledger(id="cfg", storage="memory://", **{field: value})


def test_closing_fails_the_queued_calls(tmp_path: Path) -> None:
    ledger = create_ledger(id="closing", storage=sqlite_storage(tmp_path / "c.db"))
    calls = Outcomes(ledger)
    with ledger._lock:
        calls.start("lead", [note("lead")], queued=False)
        wait_for(lambda: ledger._group is not None and ledger._group._leading)
        calls.start("queued", [note("queued")])
        ledger.close()
    results = calls.join()
    assert set(results) == {"lead", "queued"}
    assert all(isinstance(r, LedgerClosedError) for r in results.values())


class _PlainTransaction:
    """A memory transaction without savepoints: what a third-party backend may hand out."""

    def __init__(self, tx: Any) -> None:
        self._tx = tx

    def head(self) -> Any:
        return self._tx.head()

    def insert(self, entries: Any) -> None:
        self._tx.insert(entries)

    def on_rollback(self, undo: Callable[[], None]) -> None:
        self._tx.on_rollback(undo)

    def merkle_size(self) -> int:
        return int(self._tx.merkle_size())

    def merkle_store(self) -> Any:
        return self._tx.merkle_store()

    def write_merkle(self, size: int, nodes: Any) -> None:
        self._tx.write_merkle(size, nodes)


class NoSavepointStorage(MemoryStorage):
    @contextlib.contextmanager
    def write(self) -> Iterator[Any]:  # type: ignore[override]
        with super().write() as tx:
            yield _PlainTransaction(tx)


def test_storage_without_savepoints_still_isolates_errors() -> None:
    storage = NoSavepointStorage()
    with create_ledger(id="plain", storage=storage) as ledger:
        with ledger.storage.write() as tx:
            assert not isinstance(tx, SavepointTransaction)
        ledger.append(note("stored"), ALICE)
        with held(ledger) as calls:
            calls.start("ok1", [note("ok1")])
            calls.start("dup1", [note("stored")])
            calls.start("ok2", [note("ok2")])
            calls.start("dup2", [note("ok1")])
        results = calls.results
        assert isinstance(results["dup1"], DuplicateRecordError) and isinstance(results["dup2"], DuplicateRecordError)
        ids = [e.record_id for e in ledger.storage.iter_entries()]
        assert ids == ["stored", "lead", "ok1", "ok2"]
        assert ledger.verify().ok


def test_configuration_file_sets_group_commit() -> None:
    from nucleus_core.config import structure_ledger_file

    parsed = structure_ledger_file(
        {"ledger": {"id": "cfg", "storage": "memory://", "group_commit_max_calls": 8, "group_commit_window": 0}}
    )
    kwargs = parsed.ledger_kwargs()
    assert kwargs["group_commit_max_calls"] == 8 and kwargs["group_commit_window"] == 0
    assert "group_commit_max_entries" not in kwargs  # the default
    with create_ledger(**kwargs) as ledger:
        assert ledger.config.group_commit_max_calls == 8 and ledger.config.group_commit_window == 0
    with pytest.raises(ConfigurationError, match="group_commit_max_calls"):
        structure_ledger_file({"ledger": {"group_commit_max_calls": "8"}})


def test_sigkill_never_loses_an_acknowledged_entry_of_a_group(tmp_path: Path) -> None:
    """A child appends from 8 threads (groups of several calls) and reports each acknowledged
    entry; SIGKILL at a random moment, several times on the same file: reopening verifies and
    holds every acknowledged entry at its seq."""
    path = tmp_path / "crash.db"
    rng = random.Random(15)
    acknowledged: list[tuple[int, str]] = []
    for round_no in range(5):
        proc = subprocess.Popen(
            [sys.executable, WRITER, str(path), "8", f"r{round_no}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        for _ in range(rng.randint(20, 200)):
            line = proc.stdout.readline()
            assert line.startswith("ack "), line
            acknowledged.append(_ack(line))
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate()
        acknowledged.extend(_ack(line) for line in rest.splitlines() if line.startswith("ack "))
        assert proc.returncode == -signal.SIGKILL
        with create_ledger(id="crash", storage=sqlite_storage(path)) as ledger:  # verifies on open
            for seq, rid in acknowledged:
                entry = ledger.storage.get_by_id(rid)
                assert entry is not None and entry.seq == seq
    seqs = sorted(seq for seq, _ in acknowledged)
    assert len(seqs) == len(set(seqs))  # no seq acknowledged twice


WRITER = str(Path(__file__).with_name("group_writer.py"))


def _ack(line: str) -> tuple[int, str]:
    _, seq, rid = line.split()
    return int(seq), rid


def test_a_group_is_checkpointed_after_its_commit(make_ledger: Callable[..., Ledger]) -> None:
    """The checkpoint issued after a shared transaction covers every call of it (interval 0: each
    commit issues one)."""
    from nucleus_core.checkpoint import NoteSigner
    from nucleus_core.tlog_verify import parse_vkey, verify_checkpoint

    signer = NoteSigner.generate("example.com/group")
    ledger = make_ledger(checkpoint={"signers": (signer,), "key_env": None, "interval": 0.0,
                                     "origin": "example.com/group"})
    with held(ledger) as calls:
        for i in range(6):
            calls.start(f"c{i}", [note(f"c{i}")])
    size = ledger.tree_size()
    assert size == ledger.length() and max(e.seq for r in calls.results.values() for e in r) == size
    issued = verify_checkpoint(ledger.checkpoint(size), [parse_vkey(signer.vkey)], origin="example.com/group")
    assert (issued.size, issued.root_hash) == (size, ledger.root_hash(size))
    # The group's checkpoint was issued by its commit, not on demand: no checkpoint between the calls.
    first = calls.results["c0"][0].seq
    with pytest.raises(NotFoundError):
        ledger.checkpoint(first)
