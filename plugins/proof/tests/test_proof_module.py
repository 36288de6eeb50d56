"""Proof module: issue and revoke attestations; status, queries, refusals, replay."""

from __future__ import annotations

import pytest
from nucleus_module_proof import ProofModule, ProofStatus

from nucleus_core import MemoryStorage, Record, RecordRejectedError, RequestContext, create_ledger
from nucleus_core.modules import SeedGrant

ISSUER = RequestContext(oid="oid:acme:org:kyc", source="service")
ALICE = RequestContext(oid="oid:acme:user:alice", source="service")


def rec(rid, **payload):
    return Record(id=rid, stream="proof", timestamp=1000, payload=payload)


def issued(rid="p1", subject=ALICE.oid, **extra):
    payload = {"type": "issued", "subject": subject, "issuer": ISSUER.oid, "proof_type": "kyc.basic"}
    payload.update(target="oid:acme:app:bank", data={"level": 2})
    payload.update(extra)
    return rec(rid, **payload)


@pytest.fixture
def storage():
    return MemoryStorage()


@pytest.fixture
def ledger(storage):
    ledger = create_ledger(id="proofs", storage=storage, plugins=["proof"])
    yield ledger
    ledger.close()


def test_issue_revoke_status_and_queries(ledger, storage):
    ledger.append_batch([issued(), issued("p2", expires_at=5000)], ISSUER)
    proofs = ledger.modules.get("proof", ProofModule)
    assert [p.proof_id for p in proofs.by_subject(ALICE.oid, ALICE)] == ["p1", "p2"]
    assert [p.proof_id for p in proofs.by_issuer(ISSUER.oid, ALICE)] == ["p1", "p2"]
    assert proofs.status("p1", ALICE) is ProofStatus.ISSUED
    assert proofs.status("p2", ALICE, now_ms=4999) is ProofStatus.ISSUED
    assert proofs.status("p2", ALICE, now_ms=5000) is ProofStatus.EXPIRED
    ledger.append(rec("r1", type="revoked", proof_id="p1", by=ISSUER.oid), ISSUER)
    assert proofs.status("p1", ALICE) is ProofStatus.REVOKED
    assert proofs.status("nope", ALICE) is None
    rebuilt = create_ledger(id="proofs", storage=storage, plugins=["proof"])
    assert sorted(rebuilt.modules.get("proof", ProofModule).state.items("proof")) == sorted(proofs.state.items("proof"))
    rebuilt.close()


REFUSALS = [
    ("issue as someone else", lambda: issued("p9"), ALICE, "issuer", "is not"),
    ("bad subject OID", lambda: issued("p9", subject="oid:Acme:user:x"), ISSUER, "subject", "not an OID"),
    ("expired at issue", lambda: issued("p9", expires_at=1000), ISSUER, "expires_at", "later than"),
    (
        "data missing",
        lambda: rec("p9", type="issued", subject=ALICE.oid, issuer=ISSUER.oid, proof_type="kyc", target="t"),
        ISSUER,
        "data",
        "is required",
    ),
    (
        "revoke by subject",
        lambda: rec("r9", type="revoked", proof_id="p1", by=ALICE.oid),
        ALICE,
        "by",
        "only the issuer",
    ),
    ("revoke unknown", lambda: rec("r9", type="revoked", proof_id="zz", by=ISSUER.oid), ISSUER, "proof_id", "no proof"),
    ("revoke twice", lambda: rec("r9", type="revoked", proof_id="p0", by=ISSUER.oid), ISSUER, "proof_id", "already"),
    ("long target", lambda: issued("p9", target="x" * 513), ISSUER, "target", "at most 512"),
]


@pytest.mark.parametrize(("name", "make", "who", "field", "reason"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_leave_the_ledger_unchanged(ledger, name, make, who, field, reason):
    ledger.append_batch([issued(), issued("p0"), rec("r0", type="revoked", proof_id="p0", by=ISSUER.oid)], ISSUER)
    proofs = ledger.modules.get("proof", ProofModule)
    before = (ledger.length(), ledger.latest_hash(), sorted(proofs.state.items("proof")))
    with pytest.raises(RecordRejectedError) as info:
        ledger.append(make(), who)
    assert (info.value.module_id, info.value.field) == ("proof", field)
    assert reason in str(info.value)
    assert (ledger.length(), ledger.latest_hash(), sorted(proofs.state.items("proof"))) == before


def test_resource_contract():
    module = ProofModule()
    assert module.resource_kind == "proof"
    assert module.resource_id(issued()) == "p1"
    assert module.resource_id(rec("r1", type="revoked", proof_id="p1", by=ISSUER.oid)) == "p1"
    assert module.seed_grants(issued()) == [SeedGrant(principal_oid=ALICE.oid, scope="read")]


def test_handle_operations():
    """The handle methods are handle operations (served over HTTP by nucleus-server), with the
    arguments of their signatures."""
    from nucleus_core import operations_of

    ops = {op.name: [(p.name, p.required) for p in op.params] for op in operations_of(ProofModule)}
    assert ops == {
        "by_issuer": [("issuer", True)],
        "by_subject": [("subject", True)],
        "get": [("proof_id", True)],
        "status": [("proof_id", True), ("now_ms", False)],
    }
