"""Denials do not depend on existence (issue #11, item 2).

The reproduction: a principal with no grant at all appended records naming target ids and got
``write access to asset/<id> denied`` when the id existed and ``creating a asset needs write on
asset/*`` when it did not, for every module's resources and for plain record ids. Here every probe
is sent twice over the real HTTP server (uvicorn on loopback, SQLite and PostgreSQL): before its
target exists and after; status and body must be byte-for-byte the same. A principal who may write
a stream but not read the entry holding an id gets that same denial, not ``duplicate_record``.
"""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from nucleus_server import create_app
from nucleus_storage_postgres import postgres_storage

from nucleus_core import Ledger, Record, RequestContext, create_ledger
from nucleus_core.errors import AccessDeniedError, DuplicateRecordError, RecordRejectedError
from nucleus_core.testing.postgres import drop_schema, temporary_database

_spec = importlib.util.spec_from_file_location(
    "nucleus_denial_server_helpers", Path(__file__).parents[1] / "plugins/server/tests/conftest.py"
)
assert _spec is not None and _spec.loader is not None
_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_helpers)

ROOT = "oid:den:user:root"
ISSUER = "oid:den:user:issuer"
ALICE = "oid:den:user:alice"
BOB = "oid:den:user:bob"
MALLORY = "oid:den:user:mallory"
MODULES = ["proof", "asset", "connect_grant", "token"]
TS = 1_763_942_400_000


def ctx(oid: str) -> RequestContext:
    return RequestContext(oid=oid, source="auth.dev")


def dev(oid: str) -> dict[str, str]:
    return {"Authorization": f"Bearer dev:{oid}"}


def body(rid: str, stream: str, **payload: Any) -> dict[str, Any]:
    return {"id": rid, "stream": stream, "timestamp": TS, "payload": payload}


def grant(kind: str, rid: str, who: str, scope: str) -> dict[str, Any]:
    return {"resource_kind": kind, "resource_id": rid, "principal_oid": who, "scope": scope}


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    with temporary_database("nucleus_denials") as dsn:
        yield dsn


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Any]]:
    if request.param == "sqlite":
        yield lambda: f"sqlite:///{tmp_path / 'den.db'}"
        return
    dsn = request.getfixturevalue("pg_dsn")
    schema = f"d_{uuid.uuid4().hex[:12]}"
    try:
        yield lambda: postgres_storage(dsn, schema=schema)
    finally:
        drop_schema(dsn, schema)


@pytest.fixture
def served(storage: Callable[[], Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Ledger, httpx.Client]]:
    monkeypatch.setenv("NUCLEUS_ENV", "development")
    ledger = create_ledger(id="den", storage=storage(), plugins=["auth.dev", "ual", *MODULES], admins=[ROOT])
    ledger.acl.grant(
        [grant(kind, "*", ISSUER, "write") for kind in ("proof", "asset", "token")]
        + [grant("connect_grant", "*", ALICE, "write"), grant("stream:notes", "*", ALICE, "write")],
        ctx(ROOT),
    )
    server = _helpers.ServerThread(create_app(ledger, owns_ledger=True)).start()
    try:
        with httpx.Client(base_url=server.url) as http:
            yield ledger, http
    finally:
        server.stop()


# Every probe names a target (a module resource, a record id) that does not exist yet.
PROBES: dict[str, tuple[str, str, Any]] = {
    "asset: transfer": ("POST", "/entries", body(
        "m-1", "asset", type="transferred", asset_id="car-1", to=BOB, **{"from": MALLORY})),
    "asset: issue the same id": ("POST", "/entries", body(
        "m-2", "asset", type="issued", asset_id="car-1", issuer=MALLORY, owner=MALLORY)),
    "proof: revoke": ("POST", "/entries", body("m-3", "proof", type="revoked", proof_id="p-1", by=MALLORY)),
    "proof: issue under its record id": ("POST", "/entries", body(
        "p-1", "proof", type="issued", subject=MALLORY, issuer=MALLORY, proof_type="kyc.basic", target=BOB,
        data={})),
    "connect_grant: revoke": ("POST", "/entries", body(
        "m-4", "connect_grant", type="revoked", grant_id="g-1", by=MALLORY)),
    "token: mint": ("POST", "/entries", body(
        "m-5", "token", type="minted", token_id="EUR", tx_id="tx-m", to=MALLORY, amount=5)),
    "token: create the same id": ("POST", "/entries", body(
        "m-6", "token", type="created", token_id="EUR", issuer=MALLORY, symbol="EUR", decimals=2)),
    "plain record id, its stream": ("POST", "/entries", body("secret-1", "notes", n=1)),
    "plain record id, another stream": ("POST", "/entries", body("secret-1", "mnotes", n=1)),
    "batch naming a target second": ("POST", "/entries/batch", {"records": [
        body("m-7", "mnotes", n=1), body("secret-1", "notes", n=2)]}),
    "get by id": ("GET", "/records/secret-1", None),
    "get a module record by id": ("GET", "/records/p-1", None),
    "query by id": ("GET", "/entries?record_id=secret-1&record_id=p-1", None),
    "acl list": ("GET", "/acl/entries?kind=asset&kind=proof&kind=stream:notes", None),
    "acl check own access": ("POST", "/acl/check", {"action": "read", "resource": {"kind": "asset", "id": "car-1"}}),
    "acl check another's access": ("POST", "/acl/check", {
        "action": "read", "resource": {"kind": "asset", "id": "car-1"}, "principal": ISSUER}),
    "grant on it": ("POST", "/acl/grant", {"grants": [grant("asset", "car-1", MALLORY, "read")]}),
    "revoke on it": ("POST", "/acl/revoke", {"grants": [grant("asset", "car-1", ISSUER, "full")]}),
}


def probe(http: httpx.Client, method: str, path: str, doc: Any) -> tuple[int, bytes]:
    response = http.request(method, path, json=doc, headers=dev(MALLORY))
    return response.status_code, response.content


def create_targets(ledger: Ledger) -> None:
    def rec(rid: str, stream: str, **payload: Any) -> Record:
        return Record(id=rid, stream=stream, timestamp=TS, payload=payload)

    ledger.append_batch(
        [
            rec("a-1", "asset", type="issued", asset_id="car-1", issuer=ISSUER, owner=ISSUER),
            rec("p-1", "proof", type="issued", subject=ALICE, issuer=ISSUER, proof_type="kyc.basic", target=BOB,
                data={}),
            rec("t-1", "token", type="created", token_id="EUR", issuer=ISSUER, symbol="EUR", decimals=2),
        ],
        ctx(ISSUER),
    )
    ledger.append(rec("g-1", "connect_grant", type="granted", subject=ALICE, app=BOB, scopes=["read:x"]), ctx(ALICE))
    ledger.append(rec("secret-1", "notes", n=0), ctx(ALICE))


def test_no_response_tells_a_principal_without_grants_whether_a_target_exists(
    served: tuple[Ledger, httpx.Client],
) -> None:
    ledger, http = served
    before = {name: probe(http, *spec) for name, spec in PROBES.items()}
    create_targets(ledger)
    length = ledger.length()
    after = {name: probe(http, *spec) for name, spec in PROBES.items()}
    for name in PROBES:
        assert after[name] == before[name], name
    assert ledger.length() == length  # nothing mallory sent was written
    # The appends were refused as denials (one status, one code), not as conflicts or rejections.
    for name, (method, path, _doc) in PROBES.items():
        if path.startswith("/entries") and method == "POST":
            assert after[name][0] == 403, (name, after[name])
            assert b'"code":"access_denied"' in after[name][1], after[name]


def test_an_inclusion_proof_is_refused_like_a_read_whether_the_entry_exists_or_not(
    served: tuple[Ledger, httpx.Client],
) -> None:
    ledger, http = served
    size = ledger.length()
    seqs = range(size + 1, size + 8)
    before = [probe(http, "GET", f"/proof/inclusion?seq={seq}&size={size}", None) for seq in seqs]
    create_targets(ledger)
    assert ledger.length() >= seqs[-1]  # the probed seqs exist now, none readable by mallory
    size = ledger.length()
    after = [probe(http, "GET", f"/proof/inclusion?seq={seq}&size={size}", None) for seq in seqs]
    assert after == before and {status for status, _body in after} == {404}
    secret = ledger.get_by_id("secret-1", ctx(ALICE))
    assert secret is not None
    by_hash = probe(http, "GET", f"/proof/inclusion?hash={secret.hash}&size={size}", None)
    unknown = probe(http, "GET", f"/proof/inclusion?hash={'ab' * 32}&size={size}", None)
    assert by_hash == unknown == probe(http, "GET", f"/entries/{secret.hash}", None)
    # Alice, who may read it, gets the proof.
    mine = http.get(f"/proof/inclusion?hash={secret.hash}&size={size}", headers=dev(ALICE))
    assert mine.status_code == 200 and mine.json()["leaf_index"] == secret.seq - 1


def test_an_id_held_by_an_unreadable_entry_is_denied_not_a_conflict(served: tuple[Ledger, httpx.Client]) -> None:
    ledger, http = served
    create_targets(ledger)
    ledger.acl.grant([grant("stream:mnotes", "*", MALLORY, "write")], ctx(ROOT))
    length = ledger.length()
    # Mallory may write mnotes, but 'secret-1' is Alice's note: she gets exactly what Bob, who may
    # write nowhere, gets for the same record; and a batch with it writes nothing.
    taken = body("secret-1", "mnotes", n=1)
    as_mallory = http.post("/entries", json=taken, headers=dev(MALLORY))
    as_bob = http.post("/entries", json=taken, headers=dev(BOB))
    assert (as_mallory.status_code, as_mallory.content) == (as_bob.status_code, as_bob.content)
    assert as_mallory.status_code == 403 and b"already exists" not in as_mallory.content
    batch = {"records": [body("m-ok", "mnotes", n=1), taken]}
    assert http.post("/entries/batch", json=batch, headers=dev(MALLORY)).status_code == 403
    assert ledger.length() == length
    # ... a module record's id too (proofs take their record id as resource id).
    proof_id = http.post("/entries", json=body("p-1", "mnotes", n=1), headers=dev(MALLORY))
    assert proof_id.status_code == 403 and b"already exists" not in proof_id.content
    # Who may read the entry learns nothing new from the conflict: 409 stays for her.
    ledger.acl.grant([grant("stream:anotes", "*", ALICE, "write")], ctx(ROOT))
    as_alice = http.post("/entries", json=body("secret-1", "anotes", n=1), headers=dev(ALICE))
    assert as_alice.status_code == 409 and as_alice.json()["error"]["code"] == "duplicate_record"
    # In process, the same: AccessDeniedError for Mallory, DuplicateRecordError for Alice.
    with pytest.raises(AccessDeniedError, match="write access to stream:mnotes/secret-1 denied"):
        ledger.append(Record.from_dict(taken), ctx(MALLORY))
    with pytest.raises(DuplicateRecordError):
        ledger.append(Record.from_dict(body("secret-1", "anotes", n=1)), ctx(ALICE))
    assert ledger.length() == length + 1  # only the grant's _acl entry


def test_a_token_refusal_never_names_another_tokens_record(storage: Callable[[], Any]) -> None:
    """Transaction ids are unique on the ledger; reusing one of another token must not name that
    token's record to a writer who cannot read it."""
    with create_ledger(id="den", storage=storage(), plugins=["ual", "token"], admins=[ROOT]) as ledger:
        ledger.acl.grant([grant("token", "*", ISSUER, "write")], ctx(ROOT))

        def rec(rid: str, **payload: Any) -> Record:
            return Record(id=rid, stream="token", timestamp=TS, payload=payload)

        ledger.append_batch(
            [
                rec("t-eur", type="created", token_id="EUR", issuer=ISSUER, symbol="EUR", decimals=2),
                rec("t-usd", type="created", token_id="USD", issuer=ISSUER, symbol="USD", decimals=2),
                rec("secret-mint", type="minted", token_id="EUR", tx_id="tx-1", to=ALICE, amount=5),
                rec("usd-mint", type="minted", token_id="USD", tx_id="tx-2", to=BOB, amount=5),
            ],
            ctx(ISSUER),
        )
        ledger.acl.grant([grant("token", "USD", BOB, "write")], ctx(ROOT))
        reuse = rec("b-1", type="transferred", token_id="USD", tx_id="tx-1", to=ALICE, amount=1, **{"from": BOB})
        with pytest.raises(RecordRejectedError) as info:
            ledger.append(reuse, ctx(BOB))
        assert "secret-mint" not in str(info.value) and "EUR" not in str(info.value)
        # Within the same token the original is named, as before (the writer may read it).
        again = rec("b-2", type="transferred", token_id="USD", tx_id="tx-2", to=ALICE, amount=1, **{"from": BOB})
        with pytest.raises(RecordRejectedError, match="usd-mint"):
            ledger.append(again, ctx(BOB))


def test_the_create_right_over_http_keeps_two_issuers_apart(served: tuple[Ledger, httpx.Client]) -> None:
    """Issue #11, item 4 over the real server: ``create`` on ``proof/*`` granted over ``/acl/grant``;
    each issuer creates proofs, sees only her own through every HTTP read route, and a proof of the
    other is denied like anything else."""
    from nucleus_server.client import RemoteLedger

    _ledger, http = served
    granted = http.post("/acl/grant", json={"grants": [grant("proof", "*", who, "create") for who in (ALICE, BOB)]},
                        headers=dev(ROOT))
    assert granted.status_code == 201 and {g["scope"] for g in granted.json()["grants"]} == {"create"}
    alice = RemoteLedger(str(http.base_url), token=f"dev:{ALICE}", ledger_id="den")
    bob = RemoteLedger(str(http.base_url), token=f"dev:{BOB}", ledger_id="den")
    try:
        for remote, who, rid in ((alice, ALICE, "pa"), (bob, BOB, "pb")):
            remote.append(Record(id=rid, stream="proof", timestamp=TS, payload={
                "type": "issued", "subject": MALLORY, "issuer": who, "proof_type": "kyc.basic", "target": ROOT,
                "data": {}}))
        for remote, who, own, other in ((alice, ALICE, "pa", "pb"), (bob, BOB, "pb", "pa")):
            assert remote.acl.check(ctx(who), "create", ("proof", "*"))
            assert not remote.acl.check(ctx(who), "read", ("proof", other))
            assert [e.record.id for e in remote.acl.list(filters={"kind": "proof"}).entries] == [own]
            assert [e.record.id for e in remote.query({"stream": "proof"}).entries] == [own]
            assert remote.get_by_id(own) is not None and remote.get_by_id(other) is None
            with pytest.raises(AccessDeniedError, match=f"write access to proof/{other} denied"):
                remote.append(Record(id=f"rv-{who[-3:]}", stream="proof", timestamp=TS, payload={
                    "type": "revoked", "proof_id": other, "by": who}))
    finally:
        alice.close()
        bob.close()
