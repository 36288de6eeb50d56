"""Token module: schema, rules, idempotency, refusals leaving the ledger unchanged, replay."""

from __future__ import annotations

import contextlib
import random

import pytest
from nucleus_module_token import TokenInfo, TokenModule

from nucleus_core import MemoryStorage, ModuleError, Record, RecordRejectedError, RequestContext, create_ledger

ALICE = RequestContext(oid="oid:acme:user:alice", source="service")
BOB = RequestContext(oid="oid:acme:user:bob", source="service")
CAROL = RequestContext(oid="oid:acme:user:carol", source="service")


def rec(rid, **payload):
    return Record(id=rid, stream="token", timestamp=1000, payload=payload)


def created(rid="c1", token_id="EUR", issuer=ALICE.oid, **extra):
    return rec(rid, type="created", token_id=token_id, issuer=issuer, symbol="EUR", decimals=2, **extra)


def minted(rid, tx, to, amount, token_id="EUR"):
    return rec(rid, type="minted", token_id=token_id, tx_id=tx, to=to, amount=amount)


def transferred(rid, tx, sender, to, amount, token_id="EUR"):
    return rec(rid, type="transferred", token_id=token_id, tx_id=tx, to=to, amount=amount, **{"from": sender})


def burned(rid, tx, sender, amount, token_id="EUR"):
    return rec(rid, type="burned", token_id=token_id, tx_id=tx, amount=amount, **{"from": sender})


@pytest.fixture
def ledger():
    ledger = create_ledger(id="bank", storage="memory://", plugins=["token"])
    yield ledger
    ledger.close()


def handle(ledger):
    return ledger.modules.get("token", TokenModule)


def test_typed_handle(ledger):
    assert isinstance(handle(ledger), TokenModule)
    from nucleus_core import Module

    class NotToken(Module):
        pass

    with pytest.raises(ModuleError, match="not a NotToken"):
        ledger.modules.get("token", NotToken)


def test_create_mint_transfer_burn(ledger):
    ledger.append(created(cap=1000), ALICE)
    ledger.append_batch([minted("m1", "tx1", ALICE.oid, 600), transferred("t1", "tx2", ALICE.oid, BOB.oid, 250)], ALICE)
    ledger.append(burned("b1", "tx3", BOB.oid, 50), BOB)
    tokens = handle(ledger)
    assert tokens.balance("EUR", ALICE.oid, ALICE) == 350
    assert tokens.balance("EUR", BOB.oid, ALICE) == 200
    assert tokens.balance("EUR", CAROL.oid, ALICE) == 0
    assert tokens.holders("EUR", ALICE) == {ALICE.oid: 350, BOB.oid: 200}
    assert tokens.token("EUR", ALICE) == TokenInfo(
        token_id="EUR", issuer=ALICE.oid, symbol="EUR", decimals=2, cap=1000, supply=550, seq=1
    )
    assert [e.record.id for e in tokens.history("EUR", ALICE)] == ["c1", "m1", "t1", "b1"]
    assert [e.record.id for e in tokens.history("EUR", ALICE, holder=BOB.oid)] == ["t1", "b1"]
    assert tokens.transaction("tx2", ALICE).record.id == "t1"
    assert tokens.transaction("nope", ALICE) is None
    assert tokens.token("USD", ALICE) is None


def test_holders_drop_empty_balances(ledger):
    ledger.append_batch([created(), minted("m1", "tx1", ALICE.oid, 5)], ALICE)
    ledger.append(transferred("t1", "tx2", ALICE.oid, BOB.oid, 5), ALICE)
    assert handle(ledger).holders("EUR", ALICE) == {BOB.oid: 5}


def test_handle_queries_need_a_requester(ledger):
    from nucleus_core import MissingRequesterError

    with pytest.raises(MissingRequesterError):
        handle(ledger).balance("EUR", ALICE.oid, None)


REFUSALS = [
    ("mint over cap", lambda: minted("m9", "tx9", ALICE.oid, 401), ALICE, "amount", "exceed the cap"),
    ("overdraft", lambda: transferred("t9", "tx9", BOB.oid, CAROL.oid, 101), BOB, "amount", "holds 100, less than 101"),
    ("burn overdraft", lambda: burned("b9", "tx9", BOB.oid, 101), BOB, "amount", "less than 101"),
    ("replayed tx id", lambda: minted("m9", "tx1", ALICE.oid, 1), ALICE, "tx_id", "already applied by record 'm1'"),
    ("mint by non-issuer", lambda: minted("m9", "tx9", BOB.oid, 1), BOB, "token_id", "only the issuer"),
    ("transfer by other", lambda: transferred("t9", "tx9", BOB.oid, CAROL.oid, 1), CAROL, "from", "is not"),
    ("create for other", lambda: created("c9", token_id="USD", issuer=BOB.oid), ALICE, "issuer", "is not"),
    ("duplicate token", lambda: created("c9"), ALICE, "token_id", "exists already"),
    ("unknown token", lambda: minted("m9", "tx9", ALICE.oid, 1, token_id="USD"), ALICE, "token_id", "no token"),
    ("bad OID", lambda: minted("m9", "tx9", "alice", 1), ALICE, "to", "is not an OID"),
    ("look-alike OID", lambda: minted("m9", "tx9", "oid:acme:user:\u0430lice", 1), ALICE, "to", "is not an OID"),
    ("zero amount", lambda: minted("m9", "tx9", ALICE.oid, 0), ALICE, "amount", "must be from 1"),
    ("float amount", lambda: minted("m9", "tx9", ALICE.oid, 1.5), ALICE, "amount", "must be an integer"),
    ("bool amount", lambda: minted("m9", "tx9", ALICE.oid, True), ALICE, "amount", "must be an integer"),
    ("self transfer", lambda: transferred("t9", "tx9", BOB.oid, BOB.oid, 1), BOB, "to", "must differ"),
    (
        "unknown field",
        lambda: rec("x9", type="burned", token_id="EUR", tx_id="t", amount=1, extra=1),
        BOB,
        "payload",
        "unknown field",
    ),
    ("unknown type", lambda: rec("x9", type="stolen", token_id="EUR"), BOB, "type", "must be one of"),
    (
        "missing field",
        lambda: rec("x9", type="minted", token_id="EUR", tx_id="t", to=BOB.oid),
        ALICE,
        "amount",
        "is required",
    ),
    (
        "bad symbol",
        lambda: rec("c9", type="created", token_id="USD", issuer=ALICE.oid, symbol="usd", decimals=2),
        ALICE,
        "symbol",
        "does not match",
    ),
    (
        "bad decimals",
        lambda: rec("c9", type="created", token_id="USD", issuer=ALICE.oid, symbol="USD", decimals=19),
        ALICE,
        "decimals",
        "must be from 0 to 18",
    ),
    ("bad token id", lambda: minted("m9", "tx9", ALICE.oid, 1, token_id="bad id"), ALICE, "token_id", "does not match"),
    (
        "array payload",
        lambda: Record(id="x9", stream="token", timestamp=1, payload=[1]),
        ALICE,
        "payload",
        "JSON object",
    ),
]


@pytest.mark.parametrize(("name", "make", "who", "field", "reason"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_leave_the_ledger_unchanged(ledger, name, make, who, field, reason):
    ledger.append_batch([created(cap=500), minted("m1", "tx1", ALICE.oid, 100)], ALICE)
    ledger.append(transferred("t1", "tx2", ALICE.oid, BOB.oid, 100), ALICE)
    tokens = handle(ledger)
    before = (ledger.length(), ledger.latest_hash(), sorted(tokens.state.items("balance")), tokens.token("EUR", ALICE))
    with pytest.raises(RecordRejectedError) as info:
        ledger.append(make(), who)
    assert info.value.module_id == "token"
    assert info.value.field == field
    assert reason in str(info.value)
    after = (ledger.length(), ledger.latest_hash(), sorted(tokens.state.items("balance")), tokens.token("EUR", ALICE))
    assert after == before


def test_a_refused_record_refuses_its_whole_batch(ledger):
    ledger.append_batch([created(cap=10), minted("m1", "tx1", ALICE.oid, 10)], ALICE)
    length = ledger.length()
    with pytest.raises(RecordRejectedError, match="exceed the cap"):
        ledger.append_batch([burned("b1", "tx2", ALICE.oid, 5), minted("m2", "tx3", ALICE.oid, 6)], ALICE)
    assert ledger.length() == length
    assert handle(ledger).token("EUR", ALICE).supply == 10
    # The same batch's earlier records count: burning 5 makes room to mint 5 in one batch.
    ledger.append_batch([burned("b1", "tx2", ALICE.oid, 5), minted("m2", "tx3", ALICE.oid, 5)], ALICE)
    assert handle(ledger).balance("EUR", ALICE.oid, ALICE) == 10


def test_a_tx_id_repeated_inside_one_batch_is_refused(ledger):
    ledger.append(created(), ALICE)
    with pytest.raises(RecordRejectedError, match="already applied by record 'm1'"):
        ledger.append_batch([minted("m1", "tx1", ALICE.oid, 1), minted("m2", "tx1", ALICE.oid, 1)], ALICE)
    assert ledger.length() == 1


def test_uncapped_supply_is_bounded_by_safe_integers(ledger):
    ledger.append(created(), ALICE)
    ledger.append(minted("m1", "tx1", ALICE.oid, 2**53 - 1), ALICE)
    with pytest.raises(RecordRejectedError, match="exceed the cap"):
        ledger.append(minted("m2", "tx2", BOB.oid, 1), ALICE)


def test_balances_are_rebuilt_from_the_chain_and_match_a_replay():
    """Random operations (many refused) on one ledger; a second ledger over the same storage
    rebuilds its state on open; both agree with an independent replay of the committed chain."""
    storage = MemoryStorage()
    people = [ALICE, BOB, CAROL]
    live = create_ledger(id="bank", storage=storage, plugins=["token"])
    live.append(created(cap=10_000), ALICE)
    live.append(created("c2", token_id="GBP", issuer=BOB.oid), BOB)
    rng = random.Random(5)
    for i in range(400):
        who = rng.choice(people)
        token_id = rng.choice(["EUR", "GBP"])
        other = rng.choice(people).oid
        amount = rng.randint(1, 400)
        tx = f"tx{rng.randint(0, 450)}"
        op = rng.choice(["mint", "transfer", "transfer", "burn"])
        if op == "mint":
            record = minted(f"r{i}", tx, other, amount, token_id)
        elif op == "transfer":
            record = transferred(f"r{i}", tx, who.oid, other, amount, token_id)
        else:
            record = burned(f"r{i}", tx, who.oid, amount, token_id)
        with contextlib.suppress(RecordRejectedError):
            live.append(record, who)
    assert live.length() > 100, "the random walk should commit plenty"
    # An independent replay of the committed entries.
    balances: dict[tuple[str, str], int] = {}
    for entry in live.iter_entries(ALICE):
        p = entry.record.payload
        key_from = (p["token_id"], p.get("from"))
        if p["type"] == "minted":
            balances[(p["token_id"], p["to"])] = balances.get((p["token_id"], p["to"]), 0) + p["amount"]
        elif p["type"] == "transferred":
            balances[key_from] -= p["amount"]
            balances[(p["token_id"], p["to"])] = balances.get((p["token_id"], p["to"]), 0) + p["amount"]
        elif p["type"] == "burned":
            balances[key_from] -= p["amount"]
    assert all(v >= 0 for v in balances.values())
    rebuilt = create_ledger(id="bank", storage=storage, plugins=["token"])
    for ledger in (live, rebuilt):
        tokens = handle(ledger)
        for token_id in ("EUR", "GBP"):
            expected = {h: b for (t, h), b in sorted(balances.items()) if t == token_id and b > 0}
            assert tokens.holders(token_id, ALICE) == expected
            assert tokens.token(token_id, ALICE).supply == sum(expected.values())
    assert handle(live).state.items("tx") and sorted(handle(live).state.items("tx")) == sorted(
        handle(rebuilt).state.items("tx")
    )
    live.close()
    rebuilt.close()


def test_entries_written_without_the_module_have_no_effect_when_invalid():
    storage = MemoryStorage()
    plain = create_ledger(id="bank", storage=storage)
    plain.append_batch([created(), minted("m1", "tx1", ALICE.oid, 5), burned("b1", "tx2", BOB.oid, 7)], ALICE)
    plain.close()
    ledger = create_ledger(id="bank", storage=storage, plugins=["token"])
    assert handle(ledger).holders("EUR", ALICE) == {ALICE.oid: 5}
    ledger.close()


def test_resource_contract():
    module = TokenModule()
    assert module.resource_kind == "token"
    assert module.resource_id(minted("m1", "tx1", ALICE.oid, 1)) == "EUR"
    assert module.seed_grants(created()) == []


def test_handle_operations():
    """The handle methods are handle operations (served over HTTP by nucleus-server)."""
    from nucleus_core import operations_of

    ops = {op.name: [(p.name, p.required) for p in op.params] for op in operations_of(TokenModule)}
    assert ops == {
        "balance": [("token_id", True), ("holder", True)],
        "history": [("token_id", True), ("holder", False)],
        "holders": [("token_id", True)],
        "token": [("token_id", True)],
        "transaction": [("tx_id", True)],
    }
