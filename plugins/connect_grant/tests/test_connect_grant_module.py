"""Connect-grant module: consent by a subject to an app, revocation, active grants, refusals, replay."""

from __future__ import annotations

import pytest
from nucleus_module_connect_grant import ConnectGrantModule

from nucleus_core import MemoryStorage, Record, RecordRejectedError, RequestContext, create_ledger
from nucleus_core.modules import SeedGrant

ALICE = RequestContext(oid="oid:acme:user:alice", source="service")
APP = RequestContext(oid="oid:acme:app:budget", source="service")
EVE = RequestContext(oid="oid:acme:user:eve", source="service")


def rec(rid, **payload):
    return Record(id=rid, stream="connect_grant", timestamp=1000, payload=payload)


def granted(rid="g1", scopes=("read:balance",), **extra):
    return rec(rid, type="granted", subject=ALICE.oid, app=APP.oid, scopes=list(scopes), **extra)


@pytest.fixture
def storage():
    return MemoryStorage()


@pytest.fixture
def ledger(storage):
    ledger = create_ledger(id="consent", storage=storage, plugins=["connect_grant"])
    yield ledger
    ledger.close()


def test_grant_expire_revoke_and_active_queries(ledger, storage):
    ledger.append_batch([granted(scopes=["b", "a"]), granted("g2", expires_at=5000)], ALICE)
    grants = ledger.modules.get("connect_grant", ConnectGrantModule)
    assert grants.get("g1", ALICE).scopes == ("a", "b")
    assert [g.grant_id for g in grants.active_for_subject(ALICE.oid, ALICE, now_ms=4000)] == ["g1", "g2"]
    assert [g.grant_id for g in grants.active_for_app(APP.oid, ALICE, now_ms=5000)] == ["g1"]
    ledger.append(rec("r1", type="revoked", grant_id="g1", by=APP.oid), APP)
    assert grants.active_for_subject(ALICE.oid, ALICE, now_ms=4000)[0].grant_id == "g2"
    assert grants.get("g1", ALICE).revoked
    rebuilt = create_ledger(id="consent", storage=storage, plugins=["connect_grant"])
    again = rebuilt.modules.get("connect_grant", ConnectGrantModule)
    assert sorted(again.state.items("grant")) == sorted(grants.state.items("grant"))
    rebuilt.close()


REFUSALS = [
    ("grant for someone else", lambda: granted("g9"), EVE, "subject", "is not"),
    (
        "bad app OID",
        lambda: rec("g9", type="granted", subject=ALICE.oid, app="budget", scopes=["a"]),
        ALICE,
        "app",
        "not an OID",
    ),
    ("no scopes", lambda: granted("g9", scopes=[]), ALICE, "scopes", "non-empty list"),
    ("repeated scope", lambda: granted("g9", scopes=["a", "a"]), ALICE, "scopes", "distinct"),
    ("bad scope", lambda: granted("g9", scopes=["A B"]), ALICE, "scopes", "does not match"),
    ("past expiry", lambda: granted("g9", expires_at=999), ALICE, "expires_at", "later than"),
    ("revoke by stranger", lambda: rec("r9", type="revoked", grant_id="g1", by=EVE.oid), EVE, "by", "subject or app"),
    ("revoke unknown", lambda: rec("r9", type="revoked", grant_id="zz", by=ALICE.oid), ALICE, "grant_id", "no connect"),
    ("revoke as other", lambda: rec("r9", type="revoked", grant_id="g1", by=ALICE.oid), APP, "by", "is not"),
]


@pytest.mark.parametrize(("name", "make", "who", "field", "reason"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_leave_the_ledger_unchanged(ledger, name, make, who, field, reason):
    ledger.append(granted(), ALICE)
    grants = ledger.modules.get("connect_grant", ConnectGrantModule)
    before = (ledger.length(), ledger.latest_hash(), sorted(grants.state.items("grant")))
    with pytest.raises(RecordRejectedError) as info:
        ledger.append(make(), who)
    assert (info.value.module_id, info.value.field) == ("connect_grant", field)
    assert reason in str(info.value)
    assert (ledger.length(), ledger.latest_hash(), sorted(grants.state.items("grant"))) == before


def test_resource_contract():
    module = ConnectGrantModule()
    assert module.resource_kind == "connect_grant"
    assert module.resource_id(rec("r1", type="revoked", grant_id="g1", by=ALICE.oid)) == "g1"
    assert module.seed_grants(granted()) == [SeedGrant(principal_oid=ALICE.oid, scope="full")]


def test_handle_operations():
    """The handle methods are handle operations (served over HTTP by nucleus-server)."""
    from nucleus_core import operations_of

    ops = {op.name: [(p.name, p.required) for p in op.params] for op in operations_of(ConnectGrantModule)}
    assert ops == {
        "active_for_app": [("app", True), ("now_ms", False)],
        "active_for_subject": [("subject", True), ("now_ms", False)],
        "get": [("grant_id", True)],
    }
