"""Scopes over the real server: an API key created with ``--scope read`` (the same principal as an
unrestricted key, an administrator, so access control alone would allow everything) reads, and is
refused every append, grant, revocation, verification and key-management call with 403
``insufficient_scope``, leaving the ledger and its grants exactly as they were."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from nucleus_server.client import RemoteLedger

from nucleus_core import Ledger
from nucleus_core.errors import AuthorizationError

ADMIN = "oid:test:user:admin"
BOB = "oid:test:user:bob"
PEPPER = "p" * 40
RECORD = {"id": "r-1", "stream": "notes", "timestamp": 1, "payload": {"n": 1}}
GRANT = {"resource_kind": "stream:notes", "resource_id": "*", "principal_oid": BOB, "scope": "read"}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def state(ledger: Ledger) -> tuple[Any, ...]:
    grants = sorted(str(sorted(g.to_dict().items())) for g in ledger.acl.grants_from_chain().values())
    keys = [(k.key_id, k.revoked_at) for k in ledger.auth.parser("auth.api_key").list_keys()]
    return ledger.length(), ledger.latest_hash(), grants, keys


@pytest.fixture
def setup(open_ledger: Callable[..., Ledger], serve: Callable[..., Any]) -> tuple[Ledger, str, dict[str, str]]:
    ledger = open_ledger("ual", "auth.api_key", admins=[ADMIN], settings={"auth.api_key": {"pepper": PEPPER}})
    keys = ledger.auth.parser("auth.api_key")
    tokens = {
        "full": keys.create_key(ADMIN)[0],
        "read": keys.create_key(ADMIN, scopes=["read"])[0],
        "write": keys.create_key(ADMIN, scopes=["write", "books:append"])[0],
        "star": keys.create_key(ADMIN, scopes=["*"])[0],
        "app_only": keys.create_key(ADMIN, scopes=["books:append"])[0],
    }
    server = serve(ledger, owns_ledger=False)
    with httpx.Client(base_url=server.url) as http:
        assert http.post("/entries", json=RECORD, headers=bearer(tokens["full"])).status_code == 201
        assert http.post("/acl/grant", json={"grants": [GRANT]}, headers=bearer(tokens["full"])).status_code == 201
    return ledger, server.url, tokens


def refused(response: httpx.Response, scope: str) -> None:
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "insufficient_scope"
    assert f"'{scope}' scope" in response.json()["error"]["message"]
    assert (
        response.headers["www-authenticate"] == f'Bearer realm="nucleus", error="insufficient_scope", scope="{scope}"'
    )


def test_a_read_only_key_reads_and_is_refused_everything_else(setup: tuple[Ledger, str, dict[str, str]]) -> None:
    ledger, url, tokens = setup
    before = state(ledger)
    read = bearer(tokens["read"])
    with httpx.Client(base_url=url, headers=read) as http:
        refused(http.post("/entries", json={**RECORD, "id": "r-2"}), "write")
        refused(http.post("/entries/batch", json={"records": [{**RECORD, "id": "r-3"}]}), "write")
        refused(http.post("/acl/grant", json={"grants": [{**GRANT, "principal_oid": "oid:test:user:eve"}]}), "grant")
        refused(http.post("/acl/revoke", json={"grants": [GRANT]}), "grant")
        refused(http.get("/verify"), "verify")
        # Reads work.
        entry = http.get("/records/r-1")
        assert entry.status_code == 200
        assert http.get(f"/entries/{entry.json()['hash']}").status_code == 200
        assert [e["record"]["id"] for e in http.get("/entries", params={"stream": "notes"}).json()["entries"]] == [
            "r-1"
        ]
        assert http.post("/entries/query", json={"stream": "notes"}).status_code == 200
        assert http.get("/acl/entries").status_code == 200
        check = {"action": "read", "resource": {"kind": "stream:notes", "id": "r-1"}}
        assert http.post("/acl/check", json=check).json() == {"allowed": True}
        assert http.get("/whoami").json() == {"oid": ADMIN, "source": "auth.api_key", "role": None, "scopes": ["read"]}
    with RemoteLedger(url, token=tokens["read"]) as remote:
        assert remote.whoami().scopes == frozenset({"read"})
    # Key management with the read key's context (the parser's entry points).
    keys = ledger.auth.parser("auth.api_key")
    ctx = ledger.auth.authenticate(tokens["read"])
    assert ctx.scopes == frozenset({"read"})
    key_id = keys.list_keys()[0].key_id
    for call in (
        lambda: keys.create_key(BOB, context=ctx),
        lambda: keys.revoke_key(key_id, context=ctx),
        lambda: keys.list_keys(context=ctx),
    ):
        with pytest.raises(AuthorizationError, match="'keys' scope"):
            call()
    with pytest.raises(AuthorizationError, match="'verify' scope"):
        ledger.verify(context=ctx)
    assert state(ledger) == before


def test_write_only_and_application_only_keys_are_narrowed_too(setup: tuple[Ledger, str, dict[str, str]]) -> None:
    ledger, url, tokens = setup
    with httpx.Client(base_url=url) as http:
        write = bearer(tokens["write"])
        assert http.post("/entries", json={**RECORD, "id": "w-1"}, headers=write).status_code == 201
        refused(http.get("/records/w-1", headers=write), "read")
        refused(http.get("/entries", headers=write), "read")
        refused(http.get("/acl/entries", headers=write), "read")
        refused(
            http.post("/acl/check", json={"action": "read", "resource": {"kind": "k", "id": "i"}}, headers=write),
            "read",
        )
        refused(http.post("/acl/grant", json={"grants": [GRANT]}, headers=write), "grant")
        # A key holding only an application's own scopes gets no core operation.
        app_only = bearer(tokens["app_only"])
        refused(http.get("/records/w-1", headers=app_only), "read")
        refused(http.post("/entries", json={**RECORD, "id": "w-2"}, headers=app_only), "write")
        # An unrestricted key and a "*" key do everything.
        for name in ("full", "star"):
            h = bearer(tokens[name])
            assert http.get("/records/w-1", headers=h).status_code == 200
            assert http.get("/verify", headers=h).json()["ok"] is True
            assert http.post("/entries", json={**RECORD, "id": f"x-{name}"}, headers=h).status_code == 201
    assert ledger.get_by_id("w-2", ledger.auth.authenticate(tokens["full"])) is None
