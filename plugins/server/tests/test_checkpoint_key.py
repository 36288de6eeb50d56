"""``GET /checkpoint/key`` over a real uvicorn on loopback and ``RemoteLedger.checkpoint_keys()``:
the served verifier keys (``nucleus serve --dev``'s own key: ``test_serve.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from nucleus_server import ServerSettings
from nucleus_server.client import RemoteLedger

from nucleus_core import Ledger
from nucleus_core.checkpoint import NoteSigner
from nucleus_core.errors import AuthenticationError, NucleusError
from nucleus_core.tlog_verify import parse_vkey

ORIGIN = "ledger.example.com/http-test"


def test_checkpoint_key_is_public_text(
    serve: Callable[..., Any], open_ledger: Callable[..., Ledger]
) -> None:
    old, new = NoteSigner.generate(ORIGIN), NoteSigner.generate(ORIGIN)
    server = serve(open_ledger(checkpoint={"origin": ORIGIN, "signers": [old, new], "key_env": None}))
    response = httpx.get(f"{server.url}/checkpoint/key")  # no token: a public path by default
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == f"{old.vkey}\n{new.vkey}\n"
    assert [parse_vkey(line) for line in response.text.splitlines()] == [old.verifier, new.verifier]
    assert old.skey.split("+", 4)[4] not in response.text
    with RemoteLedger(server.url) as remote:
        assert remote.checkpoint_keys() == (old.vkey, new.vkey)
    operation = httpx.get(f"{server.url}/openapi.json").json()["paths"]["/checkpoint/key"]["get"]
    assert operation["operationId"] == "checkpoint_keys"
    assert "text/plain; charset=utf-8" in operation["responses"]["200"]["content"]
    assert {} in operation["security"]


def test_checkpoint_key_without_keys_or_not_public(
    serve: Callable[..., Any], open_ledger: Callable[..., Ledger]
) -> None:
    bare = serve(open_ledger(name="bare.db", checkpoint={"key_env": None}))
    missing = httpx.get(f"{bare.url}/checkpoint/key")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    signer = NoteSigner.generate(ORIGIN)
    private = serve(
        open_ledger(name="private.db", checkpoint={"origin": ORIGIN, "signers": [signer], "key_env": None}),
        ServerSettings(public_paths=("/health",)),
    )
    assert httpx.get(f"{private.url}/checkpoint/key").status_code == 401
    with RemoteLedger(private.url) as remote, pytest.raises(AuthenticationError):
        remote.checkpoint_keys()
    with RemoteLedger(private.url, token="dev:oid:dev:user:alice") as remote:
        assert remote.checkpoint_keys() == (signer.vkey,)


def test_remote_refuses_a_malformed_vkey() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="not-a-vkey\n", headers={"content-type": "text/plain; charset=utf-8"})

    remote = RemoteLedger("http://ledger.invalid", transport=httpx.MockTransport(handler))
    with remote, pytest.raises(NucleusError, match="malformed verifier key"):
        remote.checkpoint_keys()
