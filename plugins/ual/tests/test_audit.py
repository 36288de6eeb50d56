"""The ``_acl`` audit stream: every grant change is chained atomically with it (SECURITY-TESTS 29), the
grants table rebuilt from the chain equals the stored one, and tampering with the UAL's tables behind
the ledger's back fails ``verify()`` and the next open."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from nucleus_ual import ACL_STREAM, Grant

from nucleus_core import IntegrityError, LedgerClosedError, PluginError, Record, RequestContext, StorageError
from nucleus_core import storage as core_storage
from nucleus_core.ledger import Ledger

ALICE = "oid:test:user:alice"
BOB = "oid:test:user:bob"
MALLORY = "oid:test:user:mallory"
BOOM = "oid:test:user:boom"


def ctx(oid: str) -> RequestContext:
    return RequestContext(oid=oid, source="service")


def note(rid: str) -> Record:
    return Record(id=rid, stream="notes", timestamp=1000, payload={"text": rid})


def grant(rid: str, who: str, scope: str, expires_at: int | None = None) -> dict[str, Any]:
    return {
        "resource_kind": "stream:notes",
        "resource_id": rid,
        "principal_oid": who,
        "scope": scope,
        "expires_at": expires_at,
    }


def snapshot(ledger: Ledger) -> tuple[Any, ...]:
    store = ledger.acl._store
    return ledger.length(), ledger.latest_hash(), list(store.grants()), list(store.iter_index())


@pytest.fixture
def ledger(backend: Any) -> Ledger:
    """Alice creates notes; Bob reads n1 until clock + 1000; the admin created n2."""
    ledger = backend.open()
    admin = ctx(backend.admin)
    ledger.acl.grant([grant("*", ALICE, "write")], admin)
    ledger.append(note("n1"), ctx(ALICE))
    ledger.append(note("n2"), admin)
    ledger.acl.grant([grant("n1", BOB, "read", backend.clock.now + 1000)], ctx(ALICE))
    return ledger


def _sql_trigger(backend: Any, table: str, condition: str) -> None:
    """A trigger that makes inserts into ``table`` matching ``condition`` (on NEW) fail."""
    if backend.name == "sqlite":
        backend.sql(
            f"CREATE TRIGGER boom BEFORE INSERT ON {table} WHEN {condition} BEGIN SELECT RAISE(ABORT, 'boom'); END"
        )
    else:
        backend.sql(
            "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN IF {condition} THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$"
        )
        backend.sql(f"CREATE TRIGGER boom BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION boom()")


def _drop_trigger(backend: Any, table: str) -> None:
    backend.sql("DROP TRIGGER boom" if backend.name == "sqlite" else f"DROP TRIGGER boom ON {table}")


def fail_grant_writes(backend: Any, ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Make writing a grant of BOOM into the grants table fail (after the audit entry was chained)."""
    if backend.is_sql:
        _sql_trigger(backend, "nucleus_ual_grants", f"NEW.principal_oid = '{BOOM}'")
        return lambda: _drop_trigger(backend, "nucleus_ual_grants")
    store = ledger.acl._store
    original = store.put_grant

    def put_grant(g: Grant) -> None:
        if g.principal_oid == BOOM:
            raise StorageError("the grants table refused the write")
        original(g)

    monkeypatch.setattr(store, "put_grant", put_grant)
    return monkeypatch.undo


def fail_audit_writes(backend: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Make inserting any ``_acl`` entry fail (after grants were written)."""
    if backend.is_sql:
        _sql_trigger(backend, "nucleus_entries", f"NEW.stream = '{ACL_STREAM}'")
        return lambda: _drop_trigger(backend, "nucleus_entries")
    original = core_storage._MemoryTransaction.insert

    def insert(self: Any, entries: Any) -> None:
        if any(e.stream == ACL_STREAM for e in entries):
            raise StorageError("the entries table refused the write")
        original(self, entries)

    monkeypatch.setattr(core_storage._MemoryTransaction, "insert", insert)
    return monkeypatch.undo


def test_29_grant_fails_after_the_audit_entry_was_chained(
    backend: Any, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(ledger)
    undo = fail_grant_writes(backend, ledger, monkeypatch)
    # Mallory's grant is written before BOOM's fails: neither it nor the audit entry may remain.
    with pytest.raises(StorageError):
        ledger.acl.grant([grant("n1", MALLORY, "read"), grant("n1", BOOM, "read")], ctx(ALICE))
    assert snapshot(ledger) == before
    assert ledger.get_by_id("n1", ctx(MALLORY)) is None
    undo()
    assert ledger.verify().ok
    ledger.acl.grant([grant("n1", MALLORY, "read")], ctx(ALICE))
    assert ledger.get_by_id("n1", ctx(MALLORY)) is not None
    assert ledger.verify().ok


def test_29_seeded_grants_roll_back_when_the_audit_entry_fails(
    backend: Any, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(ledger)
    undo = fail_audit_writes(backend, monkeypatch)
    # The append seeds Alice's full on n3 (grants table, resource index), then chains the _acl entry.
    with pytest.raises(StorageError):
        ledger.append(note("n3"), ctx(ALICE))
    with pytest.raises(StorageError):
        ledger.acl.revoke([grant("n1", BOB, "read")], ctx(ALICE))
    assert snapshot(ledger) == before
    assert not ledger.acl.check(ALICE, "full", ("stream:notes", "n3"))
    undo()
    assert ledger.verify().ok
    ledger.append(note("n3"), ctx(ALICE))
    assert ledger.acl.check(ALICE, "full", ("stream:notes", "n3"))
    assert ledger.verify().ok


def test_every_change_is_in_the_acl_stream_and_the_table_matches_it(backend: Any, ledger: Ledger) -> None:
    acl = ledger.acl
    acl.grant([grant("n2", BOB, "full"), grant("n2", MALLORY, "read", 5)], ctx(backend.admin))
    acl.revoke([grant("n2", MALLORY, "read")], ctx(BOB))
    ledger.append(note("n3"), ctx(ALICE))
    acl.grant([grant("n3", ALICE, "read")], ctx(ALICE))  # lowers her own seeded full: an explicit grant replaces
    ops = [e.record.payload["op"] for e in ledger.query({"stream": ACL_STREAM}, ctx(backend.admin))]
    assert ops == ["grant", "seed", "seed", "grant", "grant", "revoke", "seed", "grant"]
    assert [e.record.payload["by"] for e in ledger.query({"stream": ACL_STREAM}, ctx(backend.admin))][-3:] == [
        BOB,
        ALICE,
        ALICE,
    ]
    stored = {(g.principal_oid, g.resource_kind, g.resource_id): g for g in acl._store.grants()}
    assert acl.grants_from_chain() == stored
    assert stored[(ALICE, "stream:notes", "n3")].scope == 1
    assert stored[(BOB, "stream:notes", "n2")].granted_by == backend.admin
    assert ledger.verify().ok
    ledger.close()
    again = backend.open()
    assert again.acl.grants_from_chain() == stored
    assert [e.record.id for e in again.query({}, ctx(BOB))] == ["n1", "n2"]


def test_a_reopened_ledger_keeps_grants_and_expiry(backend: Any, ledger: Ledger) -> None:
    ledger.close()
    again = backend.open()
    assert again.get_by_id("n1", ctx(BOB)) is not None
    backend.clock.now += 1000
    assert again.get_by_id("n1", ctx(BOB)) is None


def test_read_only_open_after_grants(sql_backend: Any) -> None:
    ledger = sql_backend.open()
    ledger.acl.grant([grant("*", ALICE, "write")], ctx(sql_backend.admin))
    ledger.append(note("n1"), ctx(ALICE))  # the last entry is the _acl seed entry
    ledger.close()
    reader = sql_backend.open(verify_on_open=False)
    assert reader.read_only
    assert [e.record.id for e in reader.query({}, ctx(ALICE))] == ["n1"]


def test_a_writer_without_the_ual_is_refused(backend: Any, ledger: Ledger) -> None:
    """A UAL ledger does not open without the UAL (its chain records it, or holds _acl entries):
    a writer that leaves it out cannot write entries nobody checked."""
    before = snapshot(ledger)
    ledger.close()
    with pytest.raises(PluginError, match="'ual'"):
        backend.open(ual=False)
    again = backend.open()
    assert snapshot(again) == before and again.verify().ok


OTHER = "'oid:test:user:mallory'"
TAMPERING = {
    "raise-scope": "UPDATE nucleus_ual_grants SET scope = 3 WHERE principal_oid = 'oid:test:user:bob'",
    "drop-expiry": "UPDATE nucleus_ual_grants SET expires_at = NULL WHERE principal_oid = 'oid:test:user:bob'",
    "forge-grant": "INSERT INTO nucleus_ual_grants (ledger_id, principal_oid, resource_kind, resource_id, scope, "
    f"granted_by, expires_at) VALUES ('acl', {OTHER}, 'stream:notes', '*', 1, {OTHER}, NULL)",
    "delete-grant": "DELETE FROM nucleus_ual_grants WHERE principal_oid = 'oid:test:user:alice'",
    "move-entry": "UPDATE nucleus_ual_resources SET resource_id = 'n1' WHERE resource_id = 'n2'",
    # (Index rows missing after the last indexed entry look like entries of a writer without the UAL:
    # opening indexes them again from the chain. A row missing before it is tampering.)
    "unindex-entry": "DELETE FROM nucleus_ual_resources WHERE resource_id = 'n1'",
    # (seq 4 is n2: seq 1 is the ledger's _ledger record of its plugins, 2 the first grant, 3 n1.)
    "forge-index": "INSERT INTO nucleus_ual_resources (ledger_id, seq, kind, resource_id) "
    "VALUES ('acl', 4, 'stream:notes', 'n1')",
}


@pytest.mark.parametrize("statement", list(TAMPERING.values()), ids=list(TAMPERING))
def test_tampering_with_the_ual_tables_fails_verify_and_open(sql_backend: Any, statement: str) -> None:
    ledger = sql_backend.open()
    admin = ctx(sql_backend.admin)
    ledger.acl.grant([grant("*", ALICE, "write")], admin)
    ledger.append(note("n1"), ctx(ALICE))
    ledger.append(note("n2"), admin)
    ledger.acl.grant([grant("n1", BOB, "read", sql_backend.clock.now + 1000)], ctx(ALICE))
    assert ledger.verify().ok
    sql_backend.sql(statement)
    report = ledger.verify()
    assert not report.ok
    assert report.reason is not None and "access control state" in report.reason
    ledger.close()
    with pytest.raises(IntegrityError, match="access control state does not match the chain"):
        sql_backend.open()


@pytest.mark.postgres
@pytest.mark.parametrize("sql_backend", ["postgres"], indirect=True)
def test_reads_outside_a_write_return_the_pooled_connection(sql_backend: Any) -> None:
    """check, can_read (get, get_by_id), list and query hold a PostgreSQL connection only while they run."""
    ledger = sql_backend.open()
    admin = ctx(sql_backend.admin)
    ledger.acl.grant([grant("*", ALICE, "write")], admin)
    entry = ledger.append(note("n1"), ctx(ALICE))
    database = ledger.storage.database
    reads: list[Callable[[], object]] = [
        lambda: ledger.acl.check(ALICE, "read", ("stream:notes", "n1")),
        lambda: ledger.acl.require(ALICE, "read", ("stream:notes", "n1")),
        lambda: ledger.get_by_id("n1", ctx(BOB)),
        lambda: ledger.get(entry.hash, ctx(ALICE)),
        lambda: ledger.acl.list(ctx(ALICE), {"kind": "stream:notes"}),
        lambda: ledger.acl.list(ctx(sql_backend.admin), {"kind": ["stream:notes"]}),
        lambda: ledger.query({"stream": "notes"}, ctx(BOB)),
        lambda: ledger.acl.check_consistency(),
    ]
    for read in reads:
        database.close()
        assert database.is_closed()
        read()
        assert database.is_closed(), read


def test_the_acl_of_a_closed_sql_ledger_refuses_instead_of_reconnecting(sql_backend: Any) -> None:
    ledger = sql_backend.open()
    acl = ledger.acl
    ledger.close()
    with pytest.raises(LedgerClosedError):
        acl.check(ALICE, "read", ("stream:notes", "n1"))
    with pytest.raises(LedgerClosedError):
        acl.list(ctx(ALICE), {"kind": "stream:notes"})


def test_emptied_tables_are_refused_and_rebuilt_only_when_asked(
    sql_backend: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Grants and index both emptied behind the ledger's back: an ordinary open refuses (they are
    never rebuilt quietly, which would hide the tampering); the rebuild mode (an import being
    finished, a deliberate rebuild) builds them from the chain, logged at WARNING."""
    ledger = sql_backend.open()
    admin = ctx(sql_backend.admin)
    ledger.acl.grant([grant("*", ALICE, "write")], admin)
    ledger.append(note("n1"), ctx(ALICE))
    expected = sorted(ledger.acl.grants_from_chain())
    ledger.close()
    sql_backend.sql("DELETE FROM nucleus_ual_grants")
    sql_backend.sql("DELETE FROM nucleus_ual_resources")
    with pytest.raises(IntegrityError, match="access control state does not match the chain"):
        sql_backend.open()
    assert sql_backend.sql("SELECT COUNT(*) FROM nucleus_ual_grants") == [(0,)]
    with caplog.at_level("WARNING", logger="nucleus_ual.ual"):
        rebuilt = sql_backend.open(rebuild_state=True)
    assert any("rebuilding the grants" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    assert sorted(rebuilt.acl.grants_from_chain()) == expected
    assert rebuilt.verify().ok
    rebuilt.close()
    assert sql_backend.open().acl.check(ALICE, "read", ("stream:notes", "n1"))


def test_the_index_catches_up_in_bounded_batches(backend: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Entries written without the UAL are indexed a bounded batch at a time when it next opens
    (memory does not grow with the chain), and so is the rebuild."""
    import nucleus_ual.ual as ual_module

    first = backend.open(ual=False)
    first.append_batch([note(f"n{i}") for i in range(23)], ctx(ALICE))
    first.close()
    monkeypatch.setattr(ual_module, "INDEX_BATCH", 5)
    sizes: list[int] = []
    real = ual_module.UnifiedAccessLayer._index_from

    def spying(self: Any, start: int, stop: int | None) -> None:
        store = self._store
        index = store.index

        def counted(rows: Any) -> None:
            sizes.append(len(rows))
            index(rows)

        store.index = counted
        try:
            real(self, start, stop)
        finally:
            del store.index

    monkeypatch.setattr(ual_module.UnifiedAccessLayer, "_index_from", spying)
    ledger = backend.open()
    assert sum(sizes) == 23 and max(sizes) <= 5
    assert ledger.verify().ok


def test_a_grant_committed_by_another_writer_during_the_check_is_no_difference(
    sql_backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening a ledger compares its grants table with the chain while other processes may grant:
    one committing between the read of the chain and the read of the table is not tampering (it
    was: a second writer's open failed with "access control state does not match the chain")."""
    first = sql_backend.open()
    admin = ctx(sql_backend.admin)
    first.acl.grant([grant("*", ALICE, "write")], admin)
    first.append(note("n1"), ctx(ALICE))
    second = sql_backend.open()
    acl = second.acl
    chain_read = acl.grants_from_chain
    commits: list[int] = []

    def then_another_writer_grants() -> Any:
        state = chain_read()
        if not commits:  # once: the retry reads the chain and the table again, with the grant
            first.acl.grant([grant("n1", BOB, "read")], ctx(ALICE))
            commits.append(first.length())
        return state

    monkeypatch.setattr(acl, "grants_from_chain", then_another_writer_grants)
    assert acl.check_consistency() is None
    assert commits
    monkeypatch.undo()
    # A difference that stays (the head not moving) is still reported.
    sql_backend.sql("DELETE FROM nucleus_ual_grants WHERE principal_oid = 'oid:test:user:bob'")
    problem = acl.check_consistency()
    assert problem is not None and BOB in problem
