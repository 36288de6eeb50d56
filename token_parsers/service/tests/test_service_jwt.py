"""SECURITY-TESTS "JWT parsers" for the service parser: pinned keys, replayed token ids, lifetime,
audience and configuration, with real keys generated here."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import OKPAlgorithm
from nucleus_token_service import ServiceParser

from nucleus_core import PluginContext
from nucleus_core.auth import SERVICE_TOKEN_TYPE
from nucleus_core.errors import ConfigurationError, TokenInvalidError
from nucleus_core.testing import ManualClock
from nucleus_core.testing.jwt import jwk_of

EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()


def service_parser(clock: ManualClock | None = None, **over: Any) -> ServiceParser:
    settings = {
        "audience": "books",
        "services": {
            "billing": {
                "principal": "oid:acme:service:billing",
                "role": "writer",
                "algorithm": "EdDSA",
                "keys": {"ed1": jwk_of(ED_KEY, "ed1", "EdDSA")},
            },
            "reports": {
                "principal": "oid:acme:service:reports",
                "algorithm": "ES256",
                "keys": {
                    "ec1": EC_KEY.public_key()
                    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
                    .decode()
                },
            },
        },
        **over,
    }
    ctx = PluginContext(ledger_id="books", environment="production", settings=settings)
    return ServiceParser(ctx, clock=clock) if clock else ServiceParser(ctx)


def service_token(
    service: str = "billing", key: Any = ED_KEY, alg: str = "EdDSA", kid: str = "ed1", **over: Any
) -> str:
    now = int(time.time())
    payload = {"iss": service, "sub": service, "aud": "books", "iat": now, "exp": now + 60, "jti": uuid.uuid4().hex}
    payload.update(over)
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid, "typ": SERVICE_TOKEN_TYPE})


def test_service_accepts_pinned_eddsa_and_es256_tokens() -> None:
    p = service_parser()
    ctx = p.parse(service_token())
    assert ctx is not None and (ctx.oid, ctx.source, ctx.role) == (
        "oid:acme:service:billing",
        "auth.service",
        "writer",
    )
    ctx2 = p.parse(service_token("reports", EC_KEY, "ES256", "ec1"))
    assert ctx2 is not None and ctx2.oid == "oid:acme:service:reports"


def test_service_replayed_jti_is_refused() -> None:
    p = service_parser()
    token = service_token()
    assert p.parse(token) is not None
    with pytest.raises(TokenInvalidError, match="replay"):
        p.parse(token)


def test_service_lifetime_audience_subject_and_keys_are_enforced() -> None:
    p = service_parser()
    now = int(time.time())
    for bad in (
        service_token(exp=now + 3600),  # longer than max_lifetime
        service_token(aud="other-ledger"),
        service_token(sub="reports"),
        service_token(jti=None),
        service_token("unknown"),
        service_token(kid="nope"),
        service_token(key=ed25519.Ed25519PrivateKey.generate()),
        service_token("reports", ED_KEY, "EdDSA", "ec1"),
    ):
        with pytest.raises(TokenInvalidError):
            p.parse(bad)


def test_service_configuration_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="algorithm"):
        service_parser(services={"s": {"principal": "oid:a:service:s", "algorithm": "HS256", "keys": {"k": "x"}}})
    with pytest.raises(ConfigurationError, match="principal"):
        service_parser(services={"s": {"principal": "s", "keys": {"k": jwk_of(ED_KEY, "k", "EdDSA")}}})
    private = json.loads(OKPAlgorithm.to_jwk(ED_KEY))
    with pytest.raises(ConfigurationError, match="private"):
        service_parser(services={"s": {"principal": "oid:a:service:s", "keys": {"k": private}}})
    with pytest.raises(ConfigurationError, match="max_lifetime"):
        service_parser(max_lifetime=86400)


def test_a_passive_check_spends_no_jti_and_gives_exp_plus_leeway() -> None:
    from nucleus_core.auth import PassiveTokenParser, TokenRegistry

    p = service_parser()
    assert isinstance(p, PassiveTokenParser)
    now = int(time.time())
    token = service_token(exp=now + 60, iat=now)
    registry = TokenRegistry(parsers=[("auth.service", p)])
    checked = registry.authenticate(token, passive=True)  # not spent: it is still accepted once
    assert checked.oid == "oid:acme:service:billing" and checked.expires_at == now + 60 + p.leeway
    ctx = registry.authenticate(token)
    assert ctx.expires_at == now + 60 + p.leeway
    assert registry.authenticate(token, passive=True) == ctx  # a spent token still checks
    with pytest.raises(TokenInvalidError, match="replay"):
        registry.authenticate(token)
    # Within the leeway: accepted, and its deadline is still ahead.
    late = p.parse(service_token(exp=now - 10, iat=now - 70))
    assert late is not None and late.expires_at is not None and late.expires_at > time.time()
