"""Asset module: issue, transfer by the current owner only, revoke by the issuer; replay."""

from __future__ import annotations

import pytest
from nucleus_module_asset import AssetModule

from nucleus_core import MemoryStorage, Record, RecordRejectedError, RequestContext, create_ledger
from nucleus_core.modules import SeedGrant

ISSUER = RequestContext(oid="oid:acme:org:mint", source="service")
ALICE = RequestContext(oid="oid:acme:user:alice", source="service")
BOB = RequestContext(oid="oid:acme:user:bob", source="service")


def rec(rid, **payload):
    return Record(id=rid, stream="asset", timestamp=1000, payload=payload)


def issued(rid="i1", asset_id="car-1", owner=ALICE.oid, **extra):
    return rec(rid, type="issued", asset_id=asset_id, issuer=ISSUER.oid, owner=owner, **extra)


def transferred(rid, sender, to, asset_id="car-1"):
    return rec(rid, type="transferred", asset_id=asset_id, to=to, **{"from": sender})


def revoked(rid, by=ISSUER.oid, asset_id="car-1"):
    return rec(rid, type="revoked", asset_id=asset_id, by=by, reason="stolen")


@pytest.fixture
def storage():
    return MemoryStorage()


@pytest.fixture
def ledger(storage):
    ledger = create_ledger(id="assets", storage=storage, plugins=["asset"])
    yield ledger
    ledger.close()


def test_issue_transfer_revoke_and_queries(ledger, storage):
    ledger.append(issued(asset_type="vehicle", data={"vin": "X"}), ISSUER)
    ledger.append(issued("i2", asset_id="car-2"), ISSUER)
    ledger.append(transferred("t1", ALICE.oid, BOB.oid), ALICE)
    assets = ledger.modules.get("asset", AssetModule)
    assert assets.owner("car-1", BOB) == BOB.oid
    assert [a.asset_id for a in assets.assets_of(BOB.oid, BOB)] == ["car-1"]
    assert [a.asset_id for a in assets.assets_of(ALICE.oid, BOB)] == ["car-2"]
    ledger.append(revoked("r1"), ISSUER)
    assert assets.get("car-1", BOB).status == "revoked"
    assert assets.assets_of(BOB.oid, BOB) == []
    assert [e.record.id for e in assets.history("car-1", BOB)] == ["i1", "t1", "r1"]
    assert assets.owner("nope", BOB) is None
    rebuilt = create_ledger(id="assets", storage=storage, plugins=["asset"])
    again = rebuilt.modules.get("asset", AssetModule)
    assert sorted(again.state.items("asset")) == sorted(assets.state.items("asset"))
    assert again.assets_of(ALICE.oid, BOB) == assets.assets_of(ALICE.oid, BOB)
    rebuilt.close()


REFUSALS = [
    ("transfer by non-owner", lambda: transferred("t9", BOB.oid, ISSUER.oid), BOB, "from", "not the current owner"),
    ("transfer for the owner by another", lambda: transferred("t9", ALICE.oid, BOB.oid), BOB, "from", "is not"),
    ("issuer cannot transfer", lambda: transferred("t9", ALICE.oid, BOB.oid), ISSUER, "from", "is not"),
    ("revoke by owner", lambda: revoked("r9", by=ALICE.oid), ALICE, "by", "only the issuer"),
    ("duplicate asset", lambda: issued("i9"), ISSUER, "asset_id", "exists already"),
    ("unknown asset", lambda: transferred("t9", ALICE.oid, BOB.oid, asset_id="boat"), ALICE, "asset_id", "no asset"),
    ("issue as someone else", lambda: issued("i9", asset_id="car-9"), ALICE, "issuer", "is not"),
    ("bad owner OID", lambda: issued("i9", asset_id="car-9", owner="oid:acme:user:"), ISSUER, "owner", "not an OID"),
    ("bad type", lambda: issued("i9", asset_id="car-9", asset_type="Car"), ISSUER, "asset_type", "does not match"),
    ("data not object", lambda: issued("i9", asset_id="car-9", data=[1]), ISSUER, "data", "JSON object"),
    ("unknown field", lambda: issued("i9", asset_id="car-9", price=3), ISSUER, "payload", "unknown field"),
]


@pytest.mark.parametrize(("name", "make", "who", "field", "reason"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_leave_the_ledger_unchanged(ledger, name, make, who, field, reason):
    ledger.append(issued(), ISSUER)
    assets = ledger.modules.get("asset", AssetModule)
    before = (ledger.length(), ledger.latest_hash(), sorted(assets.state.items("asset")))
    with pytest.raises(RecordRejectedError) as info:
        ledger.append(make(), who)
    assert (info.value.module_id, info.value.field) == ("asset", field)
    assert reason in str(info.value)
    assert (ledger.length(), ledger.latest_hash(), sorted(assets.state.items("asset"))) == before


def test_revoked_assets_cannot_move(ledger):
    ledger.append_batch([issued(), revoked("r1")], ISSUER)
    with pytest.raises(RecordRejectedError, match="is revoked"):
        ledger.append(transferred("t1", ALICE.oid, BOB.oid), ALICE)


def test_resource_contract():
    module = AssetModule()
    assert module.resource_kind == "asset"
    assert module.resource_id(transferred("t1", ALICE.oid, BOB.oid)) == "car-1"
    assert module.seed_grants(issued()) == [SeedGrant(principal_oid=ALICE.oid, scope="full")]
    assert module.seed_grants(transferred("t1", ALICE.oid, BOB.oid)) == [SeedGrant(principal_oid=BOB.oid, scope="full")]
    assert module.seed_grants(revoked("r1")) == []


def test_withdrawals_name_the_dispossessed_owner_never_the_issuer(ledger):
    assets = ledger.modules.get("asset", AssetModule)
    mint_owned = issued("i2", asset_id="car-2", owner=ISSUER.oid)
    ledger.append_batch([issued(), mint_owned], ISSUER)
    assert assets.withdraw_grants(issued()) == []
    to_bob = transferred("t1", ALICE.oid, BOB.oid)
    ledger.append(to_bob, ALICE)
    assert assets.withdraw_grants(to_bob) == [ALICE.oid]
    # The issuer keeps its grant: handing on an asset it owns withdraws nobody; a revocation
    # withdraws the owner at that point of the batch.
    batch = [transferred("t2", ISSUER.oid, ALICE.oid, asset_id="car-2"), revoked("r2", asset_id="car-2")]
    ledger.append_batch(batch, ISSUER)
    assert [assets.withdraw_grants(r) for r in batch] == [[], [ALICE.oid]]
    assert ledger.modules.withdraw_grants(batch[1]) == [ALICE.oid]


def test_handle_operations():
    """The handle methods are handle operations (served over HTTP by nucleus-server)."""
    from nucleus_core import operations_of

    ops = {op.name: [(p.name, p.required) for p in op.params] for op in operations_of(AssetModule)}
    assert ops == {
        "assets_of": [("owner", True)],
        "get": [("asset_id", True)],
        "history": [("asset_id", True)],
        "owner": [("asset_id", True)],
    }
