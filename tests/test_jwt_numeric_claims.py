"""JWT numeric date claims (``exp``, ``iat``, ``nbf``) must be JSON numbers within sane bounds, in
both JWT parsers, and connect tokens have a configurable maximum lifetime (``exp - iat``), as
service tokens do. Real keys, real PyJWT signatures, static keys (no network)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm
from nucleus_token_connect import ConnectParser
from nucleus_token_service import ServiceParser

from nucleus_core import PluginContext
from nucleus_core.auth import SERVICE_TOKEN_TYPE, TokenRegistry
from nucleus_core.errors import ConfigurationError, TokenInvalidError

ISSUER = "https://id.example.com"
AUDIENCE = "nucleus-books"
SUB = "oid:acme:user:alice"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ED_KEY = ed25519.Ed25519PrivateKey.generate()


def _jwk(data: str, kid: str, alg: str) -> dict[str, Any]:
    return {**json.loads(data), "kid": kid, "alg": alg, "use": "sig"}


def connect(**settings: Any) -> ConnectParser:
    base: dict[str, Any] = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "algorithms": ["RS256"],
        "keys": [_jwk(RSAAlgorithm.to_jwk(RSA_KEY.public_key()), "rsa1", "RS256")],
    }
    base.update(settings)
    return ConnectParser(PluginContext(ledger_id="books", environment="production", settings=base))


def service() -> ServiceParser:
    settings = {
        "services": {
            "billing": {
                "principal": "oid:acme:service:billing",
                "keys": {"ed1": _jwk(OKPAlgorithm.to_jwk(ED_KEY.public_key()), "ed1", "EdDSA")},
            }
        }
    }
    return ServiceParser(PluginContext(ledger_id="books", environment="production", settings=settings))


def connect_token(**over: Any) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": SUB, "iat": now, "exp": now + 300}
    payload.update(over)
    return jwt.encode(payload, RSA_KEY, algorithm="RS256", headers={"kid": "rsa1"})


def service_token(**over: Any) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": "billing",
        "sub": "billing",
        "aud": "books",
        "iat": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
    }
    payload.update(over)
    return jwt.encode(payload, ED_KEY, algorithm="EdDSA", headers={"kid": "ed1", "typ": SERVICE_TOKEN_TYPE})


def _odd_values(now: int) -> list[tuple[str, Any]]:
    return [
        ("exp", str(now + 300)),  # PyJWT's int() accepts numeric strings
        ("exp", 10**30),  # far beyond any date
        ("exp", True),
        ("exp", None),
        ("exp", float("inf")),  # serialised as Infinity, which Python's json reads back
        ("exp", float("nan")),
        ("exp", [now + 300]),
        ("iat", str(now)),
        ("iat", False),
        ("iat", -5),
        ("nbf", str(now)),
        ("nbf", 10**30),
    ]


@pytest.mark.parametrize("index", range(len(_odd_values(0))))
def test_connect_numeric_date_claims_must_be_json_numbers(index: int) -> None:
    now = int(time.time())
    claim, value = _odd_values(now)[index]
    registry = TokenRegistry(parsers=[("auth.connect", connect())])
    with pytest.raises(TokenInvalidError, match=claim):
        registry.authenticate(connect_token(**{claim: value}))


@pytest.mark.parametrize("index", range(len(_odd_values(0))))
def test_service_numeric_date_claims_must_be_json_numbers(index: int) -> None:
    now = int(time.time())
    claim, value = _odd_values(now)[index]
    registry = TokenRegistry(parsers=[("auth.service", service())])
    with pytest.raises(TokenInvalidError, match=claim):
        registry.authenticate(service_token(**{claim: value}))


def test_numeric_dates_that_are_numbers_still_work() -> None:
    now = time.time()
    assert connect().parse(connect_token(iat=now, exp=now + 300.5, nbf=now - 1)) is not None
    assert service().parse(service_token(iat=now, exp=now + 30.25)) is not None


def test_connect_tokens_have_a_maximum_lifetime_with_a_default_of_one_day() -> None:
    now = int(time.time())
    p = connect()
    assert p.max_lifetime == 86400
    assert p.parse(connect_token(exp=now + 86400)) is not None
    with pytest.raises(TokenInvalidError, match="lifetime"):
        p.parse(connect_token(exp=now + 86401))
    with pytest.raises(TokenInvalidError, match="lifetime"):
        p.parse(connect_token(exp=now + 10 * 365 * 86400))
    # Configurable, both ways.
    with pytest.raises(TokenInvalidError, match="lifetime"):
        connect(max_lifetime=600).parse(connect_token(exp=now + 601))
    assert connect(max_lifetime=3 * 86400).parse(connect_token(exp=now + 2 * 86400)) is not None


@pytest.mark.parametrize("value", [0, -1, 8 * 86400, "3600", True])
def test_connect_max_lifetime_setting_is_checked(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_lifetime"):
        connect(max_lifetime=value)
