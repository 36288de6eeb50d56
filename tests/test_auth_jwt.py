"""SECURITY-TESTS "JWT parsers" case 7, which needs both JWT parsers: a service token is never a
connect token and the reverse, even when one key is known to both (the parsers' own cases are in
token_parsers/connect/tests/test_connect_jwt.py and token_parsers/service/tests/test_service_jwt.py)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from nucleus_token_connect import ConnectParser
from nucleus_token_service import ServiceParser

from nucleus_core import PluginContext
from nucleus_core.auth import SERVICE_TOKEN_TYPE, TokenRegistry
from nucleus_core.errors import TokenInvalidError
from nucleus_core.testing.jwt import jwk_of

ISSUER = "https://id.example.com"
AUDIENCE = "nucleus-books"
ED_KEY = ed25519.Ed25519PrivateKey.generate()
"""One key that the identity provider signs with and that the billing service is pinned to."""


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": AUDIENCE, "sub": "oid:acme:user:alice", "iat": now, "exp": now + 300, **over}


def connect_parser() -> ConnectParser:
    keys = [jwk_of(ED_KEY, "ed1", "EdDSA")]
    settings = {"issuer": ISSUER, "audience": AUDIENCE, "algorithms": ["EdDSA"], "keys": keys}
    return ConnectParser(PluginContext(ledger_id="books", environment="production", settings=settings))


def service_parser() -> ServiceParser:
    keys = {"ed1": jwk_of(ED_KEY, "ed1", "EdDSA")}
    billing = {"principal": "oid:acme:service:billing", "algorithm": "EdDSA", "keys": keys}
    settings = {"audience": "books", "services": {"billing": billing}}
    return ServiceParser(PluginContext(ledger_id="books", environment="production", settings=settings))


def connect_token(**over: Any) -> str:
    return jwt.encode(claims(**over), ED_KEY, algorithm="EdDSA", headers={"kid": "ed1"})


def service_token() -> str:
    now = int(time.time())
    payload = {"iss": "billing", "sub": "billing", "aud": "books", "iat": now, "exp": now + 60, "jti": uuid.uuid4().hex}
    return jwt.encode(payload, ED_KEY, algorithm="EdDSA", headers={"kid": "ed1", "typ": SERVICE_TOKEN_TYPE})


def registry(*parsers: ConnectParser | ServiceParser) -> TokenRegistry:
    names = {ConnectParser: "auth.connect", ServiceParser: "auth.service"}
    return TokenRegistry(parsers=[(names[type(p)], p) for p in parsers])


def test_case07_service_token_offered_as_connect_token_is_refused() -> None:
    parser = connect_parser()
    token = service_token()
    assert parser.parse(token) is None  # not a connect token
    with pytest.raises(TokenInvalidError):
        registry(parser).authenticate(token)


def test_case07_connect_token_offered_as_service_token_is_refused() -> None:
    sp = service_parser()
    token = connect_token()
    assert sp.parse(token) is None
    with pytest.raises(TokenInvalidError):
        registry(sp).authenticate(token)
    # Even re-typed as a service token (a new signature by the IdP key): issuer is not a service.
    retyped = jwt.encode(claims(jti="x"), ED_KEY, algorithm="EdDSA", headers={"kid": "ed1", "typ": SERVICE_TOKEN_TYPE})
    with pytest.raises(TokenInvalidError):
        registry(sp).authenticate(retyped)


def test_case07_both_parsers_enabled_route_each_token_to_its_parser() -> None:
    reg = registry(connect_parser(), service_parser())
    assert reg.authenticate(service_token()).source == "auth.service"
    assert reg.authenticate(connect_token()).source == "auth.connect"
