"""JWT helpers shared by the ``connect`` and ``service`` token parsers.

They import PyJWT lazily, so the core itself does not depend on it; the distributions that call
them declare ``pyjwt[crypto]>=2.15``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .context import scopes_from_names
from .errors import ConfigurationError, TokenExpiredError, TokenInvalidError

if TYPE_CHECKING:
    import jwt
# The logger keeps the name it had before these helpers left nucleus_core.auth.
log = logging.getLogger("nucleus_core.auth")

_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]{2,4096}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")
MAX_JWT_HEADER_CHARS = 4096

ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES256K", "ES384", "ES512", "EdDSA"}
)
"""The only JWT algorithms a Nucleus parser may be configured with: no ``none``, no HMAC."""

REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub")

NUMERIC_DATE_CLAIMS = ("exp", "iat", "nbf")
"""Claims that are NumericDate values (RFC 7519 section 2): JSON numbers of seconds since the epoch."""

MAX_NUMERIC_DATE = 253402300799
"""Latest NumericDate accepted in a token (9999-12-31T23:59:59Z); larger values are refused."""

SERVICE_TOKEN_TYPE = "nucleus-service+jwt"  # noqa: S105 - a media type, not a secret
"""The ``typ`` header of service-to-service tokens (RFC 8725 explicit typing): the service parser
claims only tokens of this type, and the connect parser never accepts them."""


def looks_like_jwt(token: str) -> bool:
    """True when ``token`` has JWS compact shape: three base64url segments (the last may be empty)."""
    return _JWT_SHAPE.fullmatch(token) is not None


def jwt_header(token: str) -> dict[str, Any]:
    """The *unverified* JOSE header of ``token``, for choosing a key and a parser only.

    :raises TokenInvalidError: the header is not base64url JSON object of bounded size.
    """
    segment = token.split(".", 1)[0]
    if len(segment) > MAX_JWT_HEADER_CHARS:
        raise TokenInvalidError("token header is too large")
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        header = json.loads(raw)
    except (binascii.Error, ValueError) as err:
        raise TokenInvalidError("token header is not base64url-encoded JSON") from err
    if not isinstance(header, dict):
        raise TokenInvalidError("token header is not a JSON object")
    return header


def jwt_unverified_claims(token: str) -> dict[str, Any]:
    """The *unverified* payload of ``token``, for dispatch decisions only (never for trust)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenInvalidError("token is not a compact JWS")
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError) as err:
        raise TokenInvalidError("token payload is not base64url-encoded JSON") from err
    if not isinstance(payload, dict):
        raise TokenInvalidError("token payload is not a JSON object")
    return payload


def check_numeric_dates(claims: Mapping[str, Any]) -> None:
    """Refuse a token whose ``exp``, ``iat`` or ``nbf`` is present but not a JSON number: a string,
    a boolean, null, NaN or an infinity, a negative value or one after :data:`MAX_NUMERIC_DATE`.
    (PyJWT converts with ``int()``, which takes ``"9999999999"`` and ``True``.)

    :raises TokenInvalidError: naming the claim, never its value.
    """
    for name in NUMERIC_DATE_CLAIMS:
        if name not in claims:
            continue
        value = claims[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TokenInvalidError(f"token claim {name!r} must be a JSON number")
        if not math.isfinite(value) or not 0 <= value <= MAX_NUMERIC_DATE:
            raise TokenInvalidError(f"token claim {name!r} is not a date between 1970 and 9999")


def scopes_from_claim(claims: Mapping[str, Any], claim: str, *, prefix: str = "") -> frozenset[str]:
    """The core scopes a JWT's ``claim`` grants: a space-separated string (OAuth ``scope``, RFC
    9068) or a list of strings (``scp``); each name, after removing ``prefix`` (e.g. ``books:``),
    is taken when it is a core scope (or ``*``). A missing claim grants none.

    :raises TokenInvalidError: the claim is present but neither a string nor a list of strings.
    """
    value = claims.get(claim)
    if value is None:
        return frozenset()
    if isinstance(value, str):
        names: list[str] = value.split()
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        names = list(value)
    else:
        raise TokenInvalidError(f"token claim {claim!r} must be a string or a list of strings")
    if prefix:
        names = [n[len(prefix) :] for n in names if n.startswith(prefix)]
    return scopes_from_names(names)


def check_algorithms(value: object, *, plugin: str) -> tuple[str, ...]:
    """Validate a configured algorithm allow-list: non-empty, asymmetric algorithms only."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value:
        raise ConfigurationError(f"{plugin}: setting 'algorithms' must be a non-empty list, e.g. ['RS256']")
    bad = [a for a in value if a not in ASYMMETRIC_ALGORITHMS]
    if bad:
        allowed = ", ".join(sorted(ASYMMETRIC_ALGORITHMS))
        raise ConfigurationError(
            f"{plugin}: algorithm(s) {', '.join(map(repr, bad))} are not allowed (no 'none', no HMAC); use {allowed}"
        )
    return tuple(value)


def load_public_key(value: object, *, plugin: str, field: str, algorithm: str | None = None) -> jwt.PyJWK:
    """A verification key from configuration: a public JWK (a mapping) or a PEM public key.

    ``algorithm`` pins the key's algorithm (required for PEM keys, optional for JWKs that carry
    ``alg``). Private key material is refused: configuration must hold public keys only.
    """
    import jwt
    from cryptography.hazmat.primitives import serialization

    jwk: dict[str, Any]
    if isinstance(value, Mapping):
        jwk = dict(value)
        if any(k in jwk for k in ("d", "p", "q", "k")):
            raise ConfigurationError(
                f"{plugin}: {field} must be a public key; it holds private or symmetric key material"
            )
    elif isinstance(value, str) and value.lstrip().startswith("-----BEGIN"):
        if algorithm is None:
            raise ConfigurationError(f"{plugin}: {field} is a PEM key and needs an explicit algorithm")
        try:
            key = serialization.load_pem_public_key(value.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as err:
            raise ConfigurationError(f"{plugin}: {field} is not a PEM public key") from err
        try:
            alg_obj = jwt.get_algorithm_by_name(algorithm)
            jwk = json.loads(alg_obj.to_jwk(key))
        except (jwt.exceptions.PyJWTError, NotImplementedError, TypeError, ValueError) as err:
            raise ConfigurationError(f"{plugin}: {field} does not fit algorithm {algorithm!r}") from err
    else:
        raise ConfigurationError(f"{plugin}: {field} must be a public JWK (mapping) or a PEM public key")
    if algorithm is not None:
        if jwk.get("alg", algorithm) != algorithm:
            raise ConfigurationError(f"{plugin}: {field} has alg {jwk.get('alg')!r} but {algorithm!r} is configured")
        jwk["alg"] = algorithm
    try:
        return jwt.PyJWK(jwk, algorithm=jwk.get("alg"))
    except jwt.exceptions.PyJWTError as err:
        raise ConfigurationError(f"{plugin}: {field} is not a usable public key: {err}") from err


def decode_jwt(
    token: str,
    key: Any,
    *,
    algorithms: Sequence[str],
    issuer: str,
    audience: str,
    leeway: float,
    required: Sequence[str] = REQUIRED_CLAIMS,
) -> dict[str, Any]:
    """Verify ``token`` with ``key`` and return its claims.

    Always passes the configured ``algorithms``, ``issuer`` and ``audience`` (exact match,
    ``strict_aud``), requires ``required`` claims, enforces minimum key lengths, refuses numeric
    date claims that are not JSON numbers (:func:`check_numeric_dates`, checked on the payload
    before the signature, so a malformed value never reaches PyJWT), and maps PyJWT's errors to
    :class:`TokenExpiredError` / :class:`TokenInvalidError` with messages that name the failed
    check, never a claim value or the token.
    """
    import jwt
    from jwt import exceptions as jx

    check_numeric_dates(jwt_unverified_claims(token))
    try:
        return jwt.decode(
            token,
            key,
            algorithms=list(algorithms),
            audience=audience,
            issuer=issuer,
            leeway=leeway,
            options={"require": list(required), "strict_aud": True, "enforce_minimum_key_length": True},
        )
    except jx.ExpiredSignatureError as err:
        raise TokenExpiredError("token has expired") from err
    except jx.ImmatureSignatureError as err:
        raise TokenInvalidError("token is not valid yet (nbf or iat in the future)") from err
    except jx.MissingRequiredClaimError as err:
        raise TokenInvalidError(f"token lacks the required claim {err.claim!r}") from err
    except jx.InvalidAudienceError as err:
        raise TokenInvalidError("token audience is not accepted") from err
    except jx.InvalidIssuerError as err:
        raise TokenInvalidError("token issuer is not accepted") from err
    except jx.InvalidAlgorithmError as err:
        raise TokenInvalidError("token algorithm is not accepted for this key") from err
    except jx.InvalidSignatureError as err:
        raise TokenInvalidError("token signature does not verify") from err
    except jx.InvalidKeyError as err:
        log.warning("PyJWT refused the verification key for a token (check the parser's key configuration)")
        raise TokenInvalidError("token cannot be verified with the configured key") from err
    except jx.PyJWTError as err:
        raise TokenInvalidError(f"token is malformed or not acceptable ({type(err).__name__})") from err
