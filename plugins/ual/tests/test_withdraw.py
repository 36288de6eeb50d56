"""Grants withdrawn by records (``Module.withdraw_grants``) on memory://, SQLite and PostgreSQL: after
an asset transfer the previous owner loses the ``full`` seeded when the asset was hers, the new owner
holds it, a revocation withdraws the owner's, and the ``_acl`` stream replays to the same table."""

from __future__ import annotations

from typing import Any

import pytest
from nucleus_ual import ACL_STREAM

from nucleus_core import (
    AccessDeniedError,
    ModuleError,
    ModuleSpec,
    Record,
    RecordRejectedError,
    RequestContext,
    hookimpl,
)
from nucleus_core.ledger import Ledger
from nucleus_core.modules import Module

ISSUER = "oid:test:org:mint"
ALICE = "oid:test:user:alice"
BOB = "oid:test:user:bob"
CAROL = "oid:test:user:carol"


def ctx(oid: str) -> RequestContext:
    return RequestContext(oid=oid, source="service")


def rec(rid: str, **payload: Any) -> Record:
    return Record(id=rid, stream="asset", timestamp=1000, payload=payload)


def issued(rid: str, asset_id: str, owner: str) -> Record:
    return rec(rid, type="issued", asset_id=asset_id, issuer=ISSUER, owner=owner)


def transferred(rid: str, asset_id: str, sender: str, to: str) -> Record:
    return rec(rid, type="transferred", asset_id=asset_id, to=to, **{"from": sender})


def revoked(rid: str, asset_id: str) -> Record:
    return rec(rid, type="revoked", asset_id=asset_id, by=ISSUER)


def read_grant(asset_id: str, who: str) -> dict[str, Any]:
    return {"resource_kind": "asset", "resource_id": asset_id, "principal_oid": who, "scope": "read"}


def sees(ledger: Ledger, who: str) -> dict[str, list[str]]:
    """What ``who`` reads of the asset stream through every read path."""
    c = ctx(who)
    return {
        "query": [e.record.id for e in ledger.query({"stream": "asset"}, c)],
        "list": [e.record.id for e in ledger.acl.list(c, {"kind": "asset"})],
        "get_by_id": [rid for rid in ("a1", "a2", "a3") if ledger.get_by_id(rid, c) is not None],
    }


def acl_ops(ledger: Ledger, admin: str) -> list[str]:
    return [e.record.payload["op"] for e in ledger.query({"stream": ACL_STREAM}, ctx(admin))]


def table(ledger: Ledger) -> dict[tuple[str, str, str], Any]:
    return {(g.principal_oid, g.resource_kind, g.resource_id): g for g in ledger.acl._store.grants()}


@pytest.fixture
def ledger(backend: Any) -> Ledger:
    """The mint issued car-1 to Alice, who transferred it to Bob."""
    ledger = backend.open(plugins=("asset",))
    ledger.acl.grant([{"resource_kind": "asset", "resource_id": "*", "principal_oid": ISSUER, "scope": "write"}],
                     ctx(backend.admin))
    ledger.append(issued("a1", "car-1", ALICE), ctx(ISSUER))
    assert ledger.acl.check(ALICE, "full", ("asset", "car-1"))
    ledger.append(transferred("a2", "car-1", ALICE, BOB), ctx(ALICE))
    return ledger


def test_the_previous_owner_loses_the_asset_and_the_new_owner_holds_it(backend: Any, ledger: Ledger) -> None:
    acl = ledger.acl
    # Alice: nothing left, through any read path; she can neither transfer again nor grant.
    assert not acl.check(ALICE, "read", ("asset", "car-1"))
    assert sees(ledger, ALICE) == {"query": [], "list": [], "get_by_id": []}
    with pytest.raises(AccessDeniedError):
        ledger.append(transferred("x1", "car-1", ALICE, CAROL), ctx(ALICE))
    with pytest.raises(AccessDeniedError):
        acl.grant([read_grant("car-1", CAROL)], ctx(ALICE))
    # Bob: full; he reads the whole history, grants and transfers on.
    assert acl.check(BOB, "full", ("asset", "car-1"))
    assert sees(ledger, BOB) == {"query": ["a1", "a2"], "list": ["a1", "a2"], "get_by_id": ["a1", "a2"]}
    acl.grant([read_grant("car-1", CAROL)], ctx(BOB))
    assert acl.check(CAROL, "read", ("asset", "car-1"))
    ledger.append(transferred("a3", "car-1", BOB, CAROL), ctx(BOB))
    assert not acl.check(BOB, "read", ("asset", "car-1"))
    assert acl.check(CAROL, "full", ("asset", "car-1"))
    # The issuer keeps the full it holds as the appender of the issue (it may still revoke).
    assert acl.check(ISSUER, "full", ("asset", "car-1"))
    # Audit: the withdrawals are in the _acl stream, and replaying it gives the stored table.
    assert acl_ops(ledger, backend.admin).count("withdraw") == 2
    assert acl.grants_from_chain() == table(ledger)
    assert ledger.verify().ok
    # Reopened (the open verifies the table against the chain): still withdrawn.
    ledger.close()
    again = backend.open(plugins=("asset",))
    assert not again.acl.check(ALICE, "read", ("asset", "car-1"))
    assert not again.acl.check(BOB, "read", ("asset", "car-1"))
    assert again.acl.check(CAROL, "full", ("asset", "car-1"))


def test_revocation_withdraws_the_owner(backend: Any, ledger: Ledger) -> None:
    ledger.append(revoked("a3", "car-1"), ctx(ISSUER))
    assert not ledger.acl.check(BOB, "read", ("asset", "car-1"))
    assert sees(ledger, BOB) == {"query": [], "list": [], "get_by_id": []}
    assert ledger.acl.check(ISSUER, "full", ("asset", "car-1"))
    assert ledger.acl.grants_from_chain() == table(ledger)
    assert ledger.verify().ok


def test_withdrawals_and_seeds_apply_in_batch_order(backend: Any, ledger: Ledger) -> None:
    # One batch by the mint: issue bike-1 to itself, hand it to Alice, revoke it.
    ledger.append_batch(
        [issued("b1", "bike-1", ISSUER), transferred("b2", "bike-1", ISSUER, ALICE), revoked("b3", "bike-1")],
        ctx(ISSUER),
    )
    assert not ledger.acl.check(ALICE, "read", ("asset", "bike-1"))
    assert ledger.acl.check(ISSUER, "full", ("asset", "bike-1"))
    assert acl_ops(ledger, backend.admin)[-2:] == ["seed", "withdraw"]
    assert ledger.acl.grants_from_chain() == table(ledger)
    assert ledger.verify().ok


def test_a_refused_transfer_withdraws_nothing(backend: Any, ledger: Ledger) -> None:
    before = (ledger.length(), table(ledger))
    # Bob names Carol as the sender: the module refuses; nothing is written or withdrawn.
    with pytest.raises(RecordRejectedError):
        ledger.append(transferred("x1", "car-1", CAROL, ALICE), ctx(BOB))
    assert (ledger.length(), table(ledger)) == before


class _BadWithdrawal(Module):
    id = "bad"
    streams = ("bad",)
    resource_kind = "bad"

    def withdraw_grants(self, record: Record) -> list[str]:
        return ["not an oid"]


class _BadPlugin:
    @hookimpl
    def nucleus_register_modules(self) -> list[ModuleSpec]:
        return [ModuleSpec(id="bad", factory=lambda _context: _BadWithdrawal())]


def test_a_module_withdrawing_a_non_oid_refuses_the_append_and_writes_nothing(backend: Any) -> None:
    ledger = backend.open(plugins=(_BadPlugin(),))
    admin = ctx(backend.admin)
    length = ledger.length()
    with pytest.raises(ModuleError, match="not an OID"):
        ledger.append(Record(id="z1", stream="bad", timestamp=1000, payload={}), admin)
    assert ledger.length() == length
    assert ledger.acl.grants_from_chain() == table(ledger) == {}
