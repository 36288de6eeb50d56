"""SECURITY-TESTS "JWT parsers" (cases 1-6, 8, 9, 12) for the connect parser, with real keys generated
here and a JWKS served by a real HTTP server on 127.0.0.1 (the service parser's cases are in
token_parsers/service/tests/test_service_jwt.py, case 7 with both parsers in tests/test_auth_jwt.py)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from nucleus_token_connect import ConnectParser

from nucleus_core import PluginContext, create_ledger
from nucleus_core.auth import KeySourceUnavailableError, TokenRegistry, decode_jwt
from nucleus_core.errors import ConfigurationError, TokenExpiredError, TokenInvalidError
from nucleus_core.testing import ManualClock
from nucleus_core.testing.jwt import JwksServer, jwk_of

ISSUER = "https://id.example.com"
AUDIENCE = "nucleus-books"
SUB = "oid:acme:user:alice"

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()
OTHER_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": SUB, "iat": now, "exp": now + 300, "role": "reader"}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def sign(
    payload: dict[str, Any], key: Any = RSA_KEY, alg: str = "RS256", kid: str | None = "rsa1", **headers: Any
) -> str:
    hdr = {"kid": kid, **headers} if kid is not None else dict(headers)
    return jwt.encode(payload, key, algorithm=alg, headers=hdr)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    server = JwksServer(
        [jwk_of(RSA_KEY, "rsa1", "RS256"), jwk_of(EC_KEY, "ec1", "ES256"), jwk_of(ED_KEY, "ed1", "EdDSA")]
    )
    yield server
    server.close()


def connect(settings: dict[str, Any], clock: ManualClock | None = None) -> ConnectParser:
    base = {"issuer": ISSUER, "audience": AUDIENCE, "algorithms": ["RS256", "ES256", "EdDSA"], "role_claim": "role"}
    base.update(settings)
    ctx = PluginContext(ledger_id="books", environment="production", settings=base)
    return ConnectParser(ctx, clock=clock) if clock else ConnectParser(ctx)


@pytest.fixture
def parser(jwks: JwksServer) -> ConnectParser:
    return connect({"jwks_url": jwks.url})


def registry(*parsers: ConnectParser) -> TokenRegistry:
    """A registry holding ``parsers`` under the connect parser's spec name."""
    return TokenRegistry(parsers=[("auth.connect", p) for p in parsers])


# --- happy paths ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "alg", "kid"), [(RSA_KEY, "RS256", "rsa1"), (EC_KEY, "ES256", "ec1"), (ED_KEY, "EdDSA", "ed1")]
)
def test_connect_accepts_valid_tokens_of_each_key_type(parser: ConnectParser, key: Any, alg: str, kid: str) -> None:
    ctx = parser.parse(sign(claims(), key, alg, kid))
    assert ctx is not None
    assert (ctx.oid, ctx.source, ctx.role) == (SUB, "auth.connect", "reader")


def test_connect_with_static_keys_needs_no_network() -> None:
    p = connect({"keys": [jwk_of(EC_KEY, "ec1", "ES256")], "algorithms": ["ES256"]})
    assert p.parse(sign(claims(), EC_KEY, "ES256", "ec1")).oid == SUB  # type: ignore[union-attr]


def test_connect_principal_prefix_builds_the_oid(jwks: JwksServer) -> None:
    p = connect({"jwks_url": jwks.url, "principal_prefix": "oid:acme:user:"})
    assert p.parse(sign(claims(sub="bob"))).oid == "oid:acme:user:bob"  # type: ignore[union-attr]
    with pytest.raises(TokenInvalidError, match="valid principal"):
        p.parse(sign(claims(sub="bob:x")))


# --- case 1: alg=none ----------------------------------------------------------------------------


@pytest.mark.parametrize("signature", ["", "AAAA"])
def test_case01_alg_none_is_refused(parser: ConnectParser, signature: str) -> None:
    token = (
        f"{b64(json.dumps({'alg': 'none', 'kid': 'rsa1'}).encode())}.{b64(json.dumps(claims()).encode())}.{signature}"
    )
    with pytest.raises(TokenInvalidError):
        registry(parser).authenticate(token)


# --- case 2: HS256 with the public key as secret --------------------------------------------------


@pytest.mark.parametrize("form", ["pem", "jwk"])
def test_case02_hs256_signed_with_public_key_is_refused(parser: ConnectParser, form: str) -> None:
    pem = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    secret = pem if form == "pem" else json.dumps(jwk_of(RSA_KEY, "rsa1", "RS256")).encode()
    header = {"alg": "HS256", "kid": "rsa1", "typ": "JWT"}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims()).encode())}"
    import hashlib
    import hmac

    token = f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"
    with pytest.raises(TokenInvalidError):
        parser.parse(token)
    # Even if HS256 were wrongly allowed, PyJWT (>= 2.13) refuses a public key as HMAC secret.
    with pytest.raises(TokenInvalidError):
        decode_jwt(token, secret, algorithms=["HS256"], issuer=ISSUER, audience=AUDIENCE, leeway=0)


@pytest.mark.parametrize("algs", [["HS256"], ["RS256", "HS256"], ["none"], [], "RS256"])
def test_case02_hmac_or_none_algorithms_are_refused_in_configuration(jwks: JwksServer, algs: Any) -> None:
    with pytest.raises(ConfigurationError, match="algorithm"):
        connect({"jwks_url": jwks.url, "algorithms": algs})


# --- case 3: alg/key mismatch, other key with a valid kid ----------------------------------------


def test_case03_alg_not_matching_key_type_is_refused(parser: ConnectParser) -> None:
    with pytest.raises(TokenInvalidError):
        parser.parse(sign(claims(), EC_KEY, "ES256", kid="rsa1"))


def test_case03_signed_by_another_key_with_valid_kid_is_refused(parser: ConnectParser) -> None:
    with pytest.raises(TokenInvalidError, match="signature"):
        parser.parse(sign(claims(), OTHER_RSA, "RS256", kid="rsa1"))


# --- case 4: time claims --------------------------------------------------------------------------


def test_case04_expired_is_refused(parser: ConnectParser) -> None:
    now = int(time.time())
    with pytest.raises(TokenExpiredError):
        parser.parse(sign(claims(iat=now - 600, exp=now - 120)))


def test_case04_exp_within_leeway_is_accepted(parser: ConnectParser) -> None:
    now = int(time.time())
    ctx = parser.parse(sign(claims(iat=now - 600, exp=now - 10)))
    assert ctx is not None
    # Its deadline (what an open stream ends at) is exp plus the leeway, still ahead.
    assert ctx.expires_at == now - 10 + parser.leeway and ctx.expires_at > time.time()


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_case04_nbf_or_iat_in_the_future_beyond_leeway_is_refused(parser: ConnectParser, claim: str) -> None:
    now = int(time.time())
    with pytest.raises(TokenInvalidError, match="not valid yet"):
        parser.parse(sign(claims(**{claim: now + 600}, exp=now + 900)))


# --- case 5: required claims ----------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["exp", "iat", "iss", "aud", "sub"])
def test_case05_missing_required_claim_is_refused(parser: ConnectParser, missing: str) -> None:
    with pytest.raises(TokenInvalidError):
        parser.parse(sign(claims(**{missing: None})))


# --- case 6: audience and issuer exact ------------------------------------------------------------


@pytest.mark.parametrize("aud", ["nucleus-book", "nucleus-books-x", "other", ["nucleus-books", "x"]])
def test_case06_wrong_audience_is_refused(parser: ConnectParser, aud: Any) -> None:
    with pytest.raises(TokenInvalidError, match="audience"):
        parser.parse(sign(claims(aud=aud)))


@pytest.mark.parametrize(
    "iss", ["https://id.example.co", "id.example.com", "https://id.example.com.evil", "example", "h"]
)
def test_case06_issuer_prefix_suffix_substring_is_refused(parser: ConnectParser, iss: str) -> None:
    with pytest.raises(TokenInvalidError, match="issuer"):
        parser.parse(sign(claims(iss=iss)))


def test_case06_non_string_subject_and_unknown_crit_are_refused(parser: ConnectParser) -> None:
    with pytest.raises(TokenInvalidError):
        parser.parse(sign(claims(sub=42)))
    with pytest.raises(TokenInvalidError):
        parser.parse(sign(claims(), crit=["x"], x=1))


# --- case 7: cross-JWT confusion ------------------------------------------------------------------


# --- case 8: unknown kid flood --------------------------------------------------------------------


def test_case08_unknown_kid_flood_causes_at_most_one_fetch_per_cooldown(jwks: JwksServer) -> None:
    clock = ManualClock(1000.0)
    p = connect({"jwks_url": jwks.url, "jwks_cooldown": 30}, clock)
    assert p.parse(sign(claims())) is not None
    assert jwks.fetches == 1
    for i in range(1000):
        with pytest.raises(TokenInvalidError, match="key id"):
            p.parse(sign(claims(), OTHER_RSA, "RS256", kid=f"random-{i}"))
    assert jwks.fetches == 1  # the first fetch started the cooldown
    assert p.parse(sign(claims())) is not None  # known keys still work
    clock.now += 31
    with pytest.raises(TokenInvalidError):
        p.parse(sign(claims(), OTHER_RSA, "RS256", kid="random-x"))
    assert jwks.fetches == 2


def test_case08_rotated_key_is_found_after_the_cooldown(jwks: JwksServer) -> None:
    clock = ManualClock(1000.0)
    p = connect({"jwks_url": jwks.url}, clock)
    assert p.parse(sign(claims())) is not None
    jwks.keys.append(jwk_of(OTHER_RSA, "rsa2", "RS256"))
    clock.now += 31
    assert p.parse(sign(claims(), OTHER_RSA, "RS256", "rsa2")) is not None


# --- case 9: endpoint down or hanging -------------------------------------------------------------


def test_case09_cached_keys_work_while_the_endpoint_is_down_then_fail_closed(jwks: JwksServer) -> None:
    clock = ManualClock(1000.0)
    p = connect({"jwks_url": jwks.url, "jwks_lifespan": 300, "jwks_cooldown": 30}, clock)
    assert p.parse(sign(claims())) is not None
    jwks.mode = "down"
    clock.now += 100
    with pytest.raises(TokenInvalidError):  # unknown kid forces a refresh, which fails; cache kept
        p.parse(sign(claims(), OTHER_RSA, "RS256", kid="new"))
    assert p.parse(sign(claims())) is not None  # still inside the lifespan
    clock.now += 300
    with pytest.raises(KeySourceUnavailableError):
        p.parse(sign(claims()))
    fetches = jwks.fetches
    with pytest.raises(KeySourceUnavailableError):  # inside the cooldown: no new attempt
        p.parse(sign(claims()))
    assert jwks.fetches == fetches


def test_case09_hanging_endpoint_respects_the_short_timeout(jwks: JwksServer) -> None:
    jwks.mode = "hang"
    p = connect({"jwks_url": jwks.url, "jwks_timeout": 0.5})
    with pytest.raises(KeySourceUnavailableError):
        p.parse(sign(claims()))


@pytest.mark.parametrize("mode", ["redirect", "garbage"])
def test_case09_redirect_or_non_json_jwks_fails_closed(jwks: JwksServer, mode: str) -> None:
    jwks.mode = mode
    with pytest.raises(KeySourceUnavailableError):
        connect({"jwks_url": jwks.url}).parse(sign(claims()))


def test_case09_empty_or_kidless_jwks_fails_closed(jwks: JwksServer) -> None:
    kidless = jwk_of(RSA_KEY, "x", "RS256")
    del kidless["kid"]
    jwks.keys = [kidless]
    with pytest.raises(KeySourceUnavailableError):
        connect({"jwks_url": jwks.url}).parse(sign(claims()))


def test_jwks_url_must_be_https_except_loopback() -> None:
    with pytest.raises(ConfigurationError, match="https"):
        connect({"jwks_url": "http://id.example.com/jwks"})
    with pytest.raises(ConfigurationError, match="exactly one"):
        connect({})


# --- case 12: PyJWT version -----------------------------------------------------------------------


def test_case12_pyjwt_is_at_least_2_15() -> None:
    major, minor = (int(x) for x in version("pyjwt").split(".")[:2])
    assert (major, minor) >= (2, 15)


def test_connect_through_a_ledger(jwks: JwksServer) -> None:
    settings = {"issuer": ISSUER, "audience": AUDIENCE, "algorithms": ["RS256"], "jwks_url": jwks.url}
    with create_ledger(
        id="books", storage="memory://", plugins=["auth.connect"], settings={"auth.connect": settings}
    ) as ledger:
        assert ledger.auth.authenticate(sign(claims())).oid == SUB
        with pytest.raises(TokenInvalidError):
            ledger.auth.authenticate(sign(claims(aud="x")))
