"""The UAL's rules on memory://, SQLite and PostgreSQL: requester, escalation, expiry and revoke,
filter values as literals, allow-listed filter keys (SECURITY-TESTS cases 25-31), domain-module seeds,
and the ledger without the UAL."""

from __future__ import annotations

from typing import Any

import pytest
from nucleus_ual import ACL_STREAM, Grant, Resource, UalPlugin

from nucleus_core import (
    AccessDeniedError,
    ConfigurationError,
    MissingRequesterError,
    QueryError,
    Record,
    RequestContext,
    ValidationError,
    create_ledger,
)
from nucleus_core.ledger import Ledger

ALICE = "oid:test:user:alice"
BOB = "oid:test:user:bob"
MALLORY = "oid:test:user:mallory"


def ctx(oid: str) -> RequestContext:
    return RequestContext(oid=oid, source="service")


def note(rid: str, stream: str = "notes", **payload: Any) -> Record:
    return Record(id=rid, stream=stream, timestamp=1000, payload={"text": rid, **payload})


def grant(kind: str, rid: str, who: str, scope: str, expires_at: int | None = None) -> dict[str, Any]:
    return {"resource_kind": kind, "resource_id": rid, "principal_oid": who, "scope": scope, "expires_at": expires_at}


def state(ledger: Ledger) -> tuple[int, str | None, list[Grant]]:
    """What must not change when something is refused: length, head and every stored grant."""
    return ledger.length(), ledger.latest_hash(), list(ledger.acl._store.grants())


def visible(ledger: Ledger, who: str, **filters: Any) -> list[str]:
    return [e.record.id for e in ledger.query(filters, ctx(who))]


def listed(ledger: Ledger, who: str, **filters: Any) -> list[str]:
    return [e.record.id for e in ledger.acl.list(ctx(who), filters)]


@pytest.fixture
def ledger(backend: Any) -> Ledger:
    """Alice created n1 (so holds full on it) while she held write on every note (revoked since:
    a grant on '*' also lets its holder read every note); the admin created n2."""
    ledger = backend.open()
    admin = ctx(backend.admin)
    ledger.acl.grant([grant("stream:notes", "*", ALICE, "write")], admin)
    ledger.append(note("n1"), ctx(ALICE))
    ledger.acl.revoke([grant("stream:notes", "*", ALICE, "write")], admin)
    ledger.append(note("n2"), admin)
    return ledger


# case 25 --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("requester", [None, "", "   ", ALICE], ids=["none", "empty", "blank", "bare-string"])
def test_25_every_call_needs_a_requester(backend: Any, ledger: Ledger, requester: Any) -> None:
    entry = ledger.get_by_id("n1", ctx(ALICE))
    assert entry is not None
    before = state(ledger)
    statements: list[str] = []
    if backend.name == "sqlite":
        ledger.storage.database.connection().set_trace_callback(statements.append)  # type: ignore[attr-defined]
    calls = [
        lambda: ledger.append(note("n9"), requester),
        lambda: ledger.append_batch([note("n9")], requester),
        lambda: ledger.get(entry.hash, requester),
        lambda: ledger.get_by_id("n1", requester),
        lambda: ledger.query({}, requester),
        lambda: list(ledger.iter_entries(requester)),
        lambda: ledger.acl.grant([grant("stream:notes", "n1", BOB, "read")], requester),
        lambda: ledger.acl.revoke([grant("stream:notes", "n1", ALICE, "full")], requester),
        lambda: ledger.acl.list(requester, {}),
    ]
    for call in calls:
        with pytest.raises(MissingRequesterError):
            call()
    if backend.name == "sqlite":
        ledger.storage.database.connection().set_trace_callback(None)  # type: ignore[attr-defined]
    assert statements == []  # refused before any SQL ran (SQLite traces every statement)
    assert state(ledger) == before


# case 26 and escalation -----------------------------------------------------------------------------
def test_26_grant_or_revoke_without_full_is_refused_and_writes_nothing(backend: Any, ledger: Ledger) -> None:
    acl = ledger.acl
    acl.grant([grant("stream:notes", "n1", BOB, "write")], ctx(ALICE))
    before = state(ledger)
    attempts = [
        # Bob holds write on n1, not full: he can neither widen his own grant nor hand it on.
        lambda: acl.grant([grant("stream:notes", "n1", BOB, "full")], ctx(BOB)),
        lambda: acl.grant([grant("stream:notes", "n1", MALLORY, "read")], ctx(BOB)),
        lambda: acl.revoke([grant("stream:notes", "n1", ALICE, "full")], ctx(BOB)),
        # Mallory holds nothing at all.
        lambda: acl.grant([grant("stream:notes", "n2", MALLORY, "read")], ctx(MALLORY)),
        lambda: acl.revoke([grant("stream:notes", "n1", BOB, "write")], ctx(MALLORY)),
        # Alice holds full on n1 but not on n2 nor on the kind's '*'.
        lambda: acl.grant([grant("stream:notes", "n2", BOB, "read")], ctx(ALICE)),
        lambda: acl.grant([grant("stream:notes", "*", BOB, "read")], ctx(ALICE)),
        lambda: acl.grant([grant("stream:other", "*", ALICE, "full")], ctx(ALICE)),
        # A batch with one allowed and one refused grant is refused whole.
        lambda: acl.grant(
            [grant("stream:notes", "n1", MALLORY, "read"), grant("stream:notes", "n2", MALLORY, "read")], ctx(ALICE)
        ),
        lambda: acl.revoke(
            [grant("stream:notes", "n1", BOB, "write"), grant("stream:notes", "n2", ADMIN_FULL, "full")], ctx(ALICE)
        ),
    ]
    for attempt in attempts:
        with pytest.raises(AccessDeniedError, match="needs full access"):
            attempt()
        assert state(ledger) == before
    assert not acl.check(MALLORY, "read", ("stream:notes", "n1"))
    assert acl.check(BOB, "write", ("stream:notes", "n1")) and not acl.check(BOB, "full", ("stream:notes", "n1"))


ADMIN_FULL = "oid:test:user:admin"


def test_full_holder_may_grant_and_revoke_and_granted_by_is_the_requester(backend: Any, ledger: Ledger) -> None:
    acl = ledger.acl
    made = acl.grant([{**grant("stream:notes", "n1", BOB, "full"), "granted_by": MALLORY}], ctx(ALICE))
    assert made[0].granted_by == ALICE  # never taken from the input
    acl.grant([grant("stream:notes", "n1", MALLORY, "read")], ctx(BOB))  # Bob now holds full
    assert visible(ledger, MALLORY) == ["n1"]
    assert acl.revoke([grant("stream:notes", "n1", MALLORY, "read")], ctx(BOB)) == 1
    assert visible(ledger, MALLORY) == []
    with pytest.raises(ValidationError, match="holds no grant"):
        acl.revoke([grant("stream:notes", "n1", MALLORY, "read")], ctx(BOB))
    # The admin holds full on every '*'; a '*' grant lets its holder grant on any resource of the kind.
    acl.grant([grant("stream:notes", "*", BOB, "full")], ctx(backend.admin))
    acl.grant([grant("stream:notes", "n2", MALLORY, "read"), grant("stream:notes", "*", ALICE, "read")], ctx(BOB))
    assert visible(ledger, MALLORY) == ["n2"]


def test_writing_needs_write_on_the_kind_or_the_resource(backend: Any, ledger: Ledger) -> None:
    ledger.acl.grant([grant("stream:notes", "*", ALICE, "write")], ctx(backend.admin))
    before = state(ledger)
    with pytest.raises(AccessDeniedError, match="write access to stream:other/o1 denied"):
        ledger.append(note("o1", stream="other"), ctx(ALICE))
    with pytest.raises(AccessDeniedError, match="write access to stream:notes/n3 denied"):
        ledger.append(note("n3"), ctx(BOB))
    ledger.acl.grant([grant("stream:notes", "*", BOB, "read")], ctx(backend.admin))
    with pytest.raises(AccessDeniedError):
        ledger.append(note("n3"), ctx(BOB))  # read on the kind is not write
    with pytest.raises(AccessDeniedError):  # all or nothing: the allowed first record is not written either
        ledger.append_batch([note("n3"), note("o1", stream="other")], ctx(ALICE))
    assert ledger.length() == before[0] + 1  # only the grant's _acl entry
    ledger.append_batch([note("n3"), note("n4")], ctx(ALICE))
    assert ledger.acl.check(ALICE, "full", ("stream:notes", "n4"))
    # Write on one existing resource is not write on the kind: no new resources from it.
    ledger.acl.grant([grant("stream:notes", "n2", BOB, "write")], ctx(backend.admin))
    with pytest.raises(AccessDeniedError, match="write access to stream:notes/n5 denied"):
        ledger.append(note("n5"), ctx(BOB))


def test_reads_through_every_path_show_only_granted_entries(backend: Any, ledger: Ledger) -> None:
    n1 = ledger.get_by_id("n1", ctx(ALICE))
    n2 = ledger.get_by_id("n2", ctx(backend.admin))
    assert n1 is not None and n2 is not None
    assert ledger.get_by_id("n2", ctx(ALICE)) is None
    assert ledger.get(n2.hash, ctx(ALICE)) is None
    assert ledger.get(n1.hash, ctx(MALLORY)) is None and ledger.get_by_id("n1", ctx(MALLORY)) is None
    for filters in (
        {},
        {"record_ids": ["n1", "n2"]},
        {"stream": "notes"},
        {"stream": ["notes", ACL_STREAM]},
        {"since": 0},
    ):
        assert visible(ledger, ALICE, **filters) == ["n1"]
        assert visible(ledger, MALLORY, **filters) == []
    assert visible(ledger, ALICE, stream=ACL_STREAM) == []  # the audit stream is for admins only
    assert [e.record.id for e in ledger.iter_entries(ctx(ALICE))] == ["n1"]
    assert list(ledger.iter_entries(ctx(MALLORY))) == []
    assert listed(ledger, ALICE, kind="stream:notes") == ["n1"]
    assert listed(ledger, MALLORY) == []
    assert len(visible(ledger, backend.admin)) == ledger.length()  # admins read everything, _acl included
    assert listed(ledger, backend.admin, kind="stream:notes") == ["n1", "n2"]


def test_check_and_require(ledger: Ledger) -> None:
    acl = ledger.acl
    assert acl.require(ctx(ALICE), "full", Resource(kind="stream:notes", id="n1")) == Resource(
        kind="stream:notes", id="n1"
    )
    assert not acl.check(ALICE, "write", {"kind": "stream:notes", "id": "new"})
    acl.grant([grant("stream:notes", "*", BOB, "write")], ctx(ADMIN_FULL))
    assert acl.check(BOB, "write", {"kind": "stream:notes", "id": "new"})  # via write on '*'
    assert acl.check(BOB, "read", ("stream:notes", "n2")) and not acl.check(BOB, "full", ("stream:notes", "n2"))
    with pytest.raises(AccessDeniedError, match="read access to stream:notes/n2 denied"):
        acl.require(ALICE, "read", ("stream:notes", "n2"))
    with pytest.raises(ValidationError, match="scope"):
        acl.check(ALICE, "admin", ("stream:notes", "n1"))
    with pytest.raises(ValidationError, match="resource_kind"):
        acl.check(ALICE, "read", ("Notes' OR 1=1", "n1"))


# case 27 --------------------------------------------------------------------------------------------
def test_27_expired_grant_disappears_at_once_and_writes_are_refused(backend: Any, ledger: Ledger) -> None:
    now = backend.clock.now
    ledger.acl.grant(
        [grant("stream:notes", "n2", BOB, "write", now + 1000), grant("stream:notes", "*", BOB, "write", now + 1000)],
        ctx(backend.admin),
    )
    n2 = ledger.get_by_id("n2", ctx(backend.admin))
    assert n2 is not None
    assert visible(ledger, BOB) == ["n1", "n2"] and listed(ledger, BOB) == ["n1", "n2"]
    assert ledger.get(n2.hash, ctx(BOB)) is not None
    ledger.append(note("b1"), ctx(BOB))
    backend.clock.now = now + 1000  # expires_at is exclusive
    assert ledger.get(n2.hash, ctx(BOB)) is None and ledger.get_by_id("n2", ctx(BOB)) is None
    assert visible(ledger, BOB) == ["b1"]  # Bob created b1: he holds full on it, without expiry
    assert listed(ledger, BOB, kind="stream:notes") == ["b1"]
    assert not ledger.acl.check(BOB, "read", ("stream:notes", "n2"))
    before = state(ledger)
    with pytest.raises(AccessDeniedError):
        ledger.append(note("b2"), ctx(BOB))
    with pytest.raises(AccessDeniedError):  # an expired '*' full no longer lets Bob grant either
        ledger.acl.grant([grant("stream:notes", "n2", BOB, "read")], ctx(BOB))
    assert state(ledger) == before


def test_27_revoked_grant_disappears_at_once(backend: Any, ledger: Ledger) -> None:
    acl = ledger.acl
    acl.grant([grant("stream:notes", "n1", BOB, "write")], ctx(ALICE))
    n1 = ledger.get_by_id("n1", ctx(BOB))
    assert n1 is not None and visible(ledger, BOB) == ["n1"]
    acl.revoke([grant("stream:notes", "n1", BOB, "write")], ctx(ALICE))
    assert ledger.get(n1.hash, ctx(BOB)) is None and ledger.get_by_id("n1", ctx(BOB)) is None
    assert visible(ledger, BOB) == [] and listed(ledger, BOB) == []
    # The fixture revoked Alice's kind-wide write: she may no longer create notes; her full on n1 stays.
    with pytest.raises(AccessDeniedError):
        ledger.append(note("n5"), ctx(ALICE))
    assert visible(ledger, ALICE) == ["n1"]


# cases 30 and 31 ------------------------------------------------------------------------------------
TRICKY = ["' OR 1=1 --", "%", "_", "n%", "n_", "\\", "*", "x" * 100_000]


def test_30_filter_values_are_literals(backend: Any, ledger: Ledger) -> None:
    ledger.acl.grant([grant("stream:notes", "*", BOB, "read")], ctx(backend.admin))
    ledger.append_batch([note("a%b"), note("a_b"), note("axb")], ctx(backend.admin))
    for who in (ALICE, BOB, backend.admin):
        for value in TRICKY:
            assert visible(ledger, who, record_ids=[value]) == []
            assert listed(ledger, who, record_ids=[value]) == []
            assert ledger.get_by_id(value, ctx(who)) is None
        expected = [] if who == ALICE else ["a_b"]  # Alice may not read the admin's notes
        assert visible(ledger, who, record_ids=["a_b"]) == expected
        assert listed(ledger, who, record_ids=["a_b"]) == expected
    assert visible(ledger, BOB, record_ids=["a%b", "%"]) == ["a%b"]
    for value in ["' OR 1=1 --", "%", "_", "notes' --", "notes\x00"]:
        with pytest.raises(QueryError, match="stream"):
            ledger.query({"stream": value}, ctx(BOB))
        with pytest.raises(QueryError, match="kind"):
            ledger.acl.list(ctx(BOB), {"kind": value})
    # NUL (no record id holds one; PostgreSQL cannot carry it): refused alike on every backend.
    with pytest.raises(QueryError, match="record_ids"):
        ledger.query({"record_ids": ["n1\x00' OR 1=1 --"]}, ctx(BOB))
    with pytest.raises(QueryError, match="record_ids"):
        ledger.acl.list(ctx(BOB), {"record_ids": ["n1\x00"]})
    with pytest.raises(ValidationError, match="record_id"):
        ledger.get_by_id("n1\x00", ctx(BOB))
    assert visible(ledger, BOB) == ["n1", "n2", "a%b", "a_b", "axb"]


def test_31_unknown_filter_and_sort_keys_are_refused(ledger: Ledger) -> None:
    for bad in ({"sort": "seq"}, {"order_by": "seq desc"}, {"principal": ALICE}, {"1=1; --": 1}, {"Stream": "notes"}):
        with pytest.raises(QueryError, match="unknown filter"):
            ledger.query(bad, ctx(ALICE))
        with pytest.raises(QueryError, match="unknown filter"):
            ledger.acl.list(ctx(ALICE), {"kind": "stream:notes", **bad})
    for bad_grant in ({**grant("stream:notes", "n1", BOB, "read"), "admin": True}, {"resource_kind": "stream:notes"}):
        with pytest.raises(ValidationError):
            ledger.acl.grant([bad_grant], ctx(ALICE))
    with pytest.raises(ValidationError, match="unknown field"):
        ledger.acl.revoke([{**grant("stream:notes", "n1", ALICE, "full"), "where": "1=1"}], ctx(ALICE))
    with pytest.raises(ValidationError, match="at least one"):
        ledger.acl.grant([], ctx(ALICE))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("resource_kind", "Notes"),
        ("resource_kind", "stream:_acl"),
        ("resource_id", ""),
        ("resource_id", " n1"),
        ("resource_id", "n\x001"),
        ("resource_id", "x" * 257),
        ("principal_oid", "alice"),
        ("scope", "owner"),
        ("expires_at", -1),
        ("expires_at", 1.5),
    ],
)
def test_bad_grant_fields_are_named_and_change_nothing(ledger: Ledger, field: str, value: Any) -> None:
    before = state(ledger)
    with pytest.raises(ValidationError, match=field):
        ledger.acl.grant([{**grant("stream:notes", "n1", BOB, "read"), field: value}], ctx(ALICE))
    assert state(ledger) == before


# modules --------------------------------------------------------------------------------------------
MODULES = ("proof", "asset", "connect_grant", "token")
ISSUER = "oid:test:org:issuer"
APP = "oid:test:app:budget"


def test_module_seeds(backend: Any) -> None:
    ledger = backend.open(plugins=MODULES)
    admin = ctx(backend.admin)
    ledger.acl.grant(
        [grant(kind, "*", ISSUER, "write") for kind in ("proof", "asset", "connect_grant", "token")], admin
    )

    def rec(rid: str, stream: str, **payload: Any) -> Record:
        return Record(id=rid, stream=stream, timestamp=1000, payload=payload)

    proof = rec("p1", "proof", type="issued", subject=ALICE, issuer=ISSUER, proof_type="kyc.basic", target=APP, data={})
    asset = rec("a1", "asset", type="issued", asset_id="car-1", issuer=ISSUER, owner=ALICE)
    consent = rec("g1", "connect_grant", type="granted", subject=ALICE, app=APP, scopes=["read:balance"])
    ledger.acl.grant([grant("connect_grant", "*", ALICE, "write")], admin)
    token = rec("t1", "token", type="created", token_id="EUR", issuer=ISSUER, symbol="EUR", decimals=2)
    ledger.append_batch([proof, asset, token], ctx(ISSUER))
    ledger.append(consent, ctx(ALICE))
    acl = ledger.acl
    # the appender holds full on what it created
    for kind, rid in (("proof", "p1"), ("asset", "car-1"), ("token", "EUR")):
        assert acl.check(ISSUER, "full", (kind, rid))
    # proof: the subject may read (only); asset: the owner holds full; connect grant: the subject holds full
    assert acl.check(ALICE, "read", ("proof", "p1")) and not acl.check(ALICE, "write", ("proof", "p1"))
    assert acl.check(ALICE, "full", ("asset", "car-1"))
    assert acl.check(ALICE, "full", ("connect_grant", "g1"))
    assert not acl.check(APP, "read", ("connect_grant", "g1"))
    assert not acl.check(ALICE, "read", ("token", "EUR")) and not acl.check(BOB, "read", ("proof", "p1"))
    assert visible(ledger, ALICE) == ["p1", "a1", "g1"]
    assert listed(ledger, ALICE, kind="asset") == ["a1"]
    # The owner may transfer (write on her asset); the next event belongs to the same resource.
    ledger.append(rec("a2", "asset", type="transferred", asset_id="car-1", to=BOB, **{"from": ALICE}), ctx(ALICE))
    assert acl.check(BOB, "full", ("asset", "car-1"))
    assert visible(ledger, BOB) == ["a1", "a2"]
    # ... and withdrew Alice's grant on it (see test_withdraw.py).
    assert not acl.check(ALICE, "read", ("asset", "car-1"))
    # Bob may not issue assets: creating one needs write on asset/*.
    with pytest.raises(AccessDeniedError):
        ledger.append(rec("a3", "asset", type="issued", asset_id="bike-1", issuer=BOB, owner=BOB), ctx(BOB))
    assert ledger.verify().ok
    # Reopened, the module streams are indexed the same way and the grants match the chain.
    ledger.close()
    again = backend.open(plugins=MODULES)
    assert visible(again, ALICE) == ["p1", "g1"]
    assert visible(again, BOB) == ["a1", "a2"]


# without the UAL ------------------------------------------------------------------------------------
def test_without_the_ual_every_authenticated_requester_reads_and_writes(backend: Any) -> None:
    ledger = backend.open(ual=False)
    ledger.append(note("n1"), ctx(ALICE))
    ledger.append(note("n2", stream="other"), ctx(BOB))
    assert visible(ledger, MALLORY) == ["n1", "n2"]
    assert ledger.get_by_id("n1", ctx(MALLORY)) is not None
    for requester in (None, "", " "):
        with pytest.raises(MissingRequesterError):
            ledger.query({}, requester)  # type: ignore[arg-type]
        with pytest.raises(MissingRequesterError):
            ledger.append(note("n3"), requester)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="no access-control provider"):
        ledger.acl  # noqa: B018


def test_settings_and_storage_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="unknown setting"):
        create_ledger(id="x", storage="memory://", plugins=[UalPlugin()], settings={"ual": {"admin": [ALICE]}})
    with pytest.raises(ConfigurationError, match="admins"):
        create_ledger(id="x", storage="memory://", plugins=["ual"], settings={"ual": {"admins": ALICE}})
    ledger = create_ledger(id="x", storage="memory://", plugins=["ual"], settings={"ual": {"admins": [ALICE]}})
    assert ALICE in ledger.acl.admins
    ledger.close()
