"""The connect parser: JWT access tokens from an identity provider."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import jwt

from nucleus_core import PluginContext, RequestContext
from nucleus_core.auth import (
    SERVICE_TOKEN_TYPE,
    check_algorithms,
    check_unknown_settings,
    decode_jwt,
    jwt_header,
    load_public_key,
    looks_like_jwt,
    scopes_from_claim,
    setting,
)
from nucleus_core.context import DEFAULT_SCOPES
from nucleus_core.errors import ConfigurationError, TokenInvalidError
from nucleus_core.oid import is_oid

from .jwks import JwksCache, check_jwks_url

NAME = "auth.connect"
SETTINGS = (
    "issuer",
    "audience",
    "algorithms",
    "jwks_url",
    "keys",
    "leeway",
    "principal_claim",
    "principal_prefix",
    "role_claim",
    "token_types",
    "jwks_lifespan",
    "jwks_cooldown",
    "jwks_timeout",
    "max_lifetime",
    "scope_claim",
    "scope_prefix",
)
DEFAULT_TOKEN_TYPES = ("jwt", "at+jwt")
MAX_LEEWAY = 300
MAX_TIMEOUT = 10
DEFAULT_MAX_LIFETIME = 86400
"""Default longest ``exp - iat`` (seconds) of a connect token: one day."""
MAX_MAX_LIFETIME = 7 * 86400


def _number(settings: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = setting(settings, key, (int, float), plugin=NAME, default=default)
    if not low <= value <= high:
        raise ConfigurationError(f"{NAME}: setting {key!r} must be between {low} and {high}")
    return float(value)


def _normal_typ(value: str) -> str:
    value = value.strip().lower()
    return value[len("application/") :] if value.startswith("application/") else value


class ConnectParser:
    """Verifies JWTs issued by an identity provider.

    Required settings: ``issuer`` and ``audience`` (exact strings), ``algorithms`` (asymmetric
    only, e.g. ``["RS256"]``; never taken from the token), and exactly one of ``jwks_url``
    (https) or ``keys`` (a list of public JWKs, each with a ``kid``). Optional: ``leeway``
    (seconds, default 30, at most 300), ``principal_claim`` (default ``sub``),
    ``principal_prefix`` (prepended to the claim to form the OID; default none, so the claim must
    be an OID), ``role_claim``, ``token_types`` (accepted ``typ`` headers, default ``JWT`` and
    ``at+jwt``; tokens without ``typ`` are accepted), ``jwks_lifespan`` (300), ``jwks_cooldown``
    (30), ``jwks_timeout`` (3, at most 10: the deadline of a whole JWKS fetch), ``max_lifetime``
    (longest ``exp - iat`` in seconds, default 86400, at most 7 days), ``scope_claim`` (a claim
    narrowing the context's scopes, e.g. ``scope`` or ``scp``; default none: not narrowed) and
    ``scope_prefix`` (removed from each name in that claim, e.g. ``books:``; names without it are
    ignored).

    ``exp``, ``iat``, ``iss``, ``aud`` and ``sub`` are required in every token; ``exp``, ``iat``
    and ``nbf`` must be JSON numbers (see :func:`nucleus_core.auth.check_numeric_dates`), and a
    token living longer than ``max_lifetime`` is refused. Tokens typed
    ``nucleus-service+jwt`` are not this parser's (it returns None).
    """

    def __init__(self, context: PluginContext, *, clock: Callable[[], float] = time.monotonic) -> None:
        s = context.settings
        check_unknown_settings(s, SETTINGS, plugin=NAME)
        self.issuer: str = setting(s, "issuer", str, plugin=NAME)
        self.audience: str = setting(s, "audience", str, plugin=NAME)
        if not self.issuer or not self.audience:
            raise ConfigurationError(f"{NAME}: 'issuer' and 'audience' must be non-empty")
        self.algorithms = check_algorithms(setting(s, "algorithms", (list, tuple), plugin=NAME), plugin=NAME)
        self.leeway = _number(s, "leeway", 30, 0, MAX_LEEWAY)
        self.max_lifetime = _number(s, "max_lifetime", DEFAULT_MAX_LIFETIME, 1, MAX_MAX_LIFETIME)
        self.scope_claim: str | None = setting(s, "scope_claim", str, plugin=NAME, default=None)
        self.scope_prefix: str = setting(s, "scope_prefix", str, plugin=NAME, default="")
        if self.scope_claim == "" or (self.scope_prefix and self.scope_claim is None):
            raise ConfigurationError(f"{NAME}: 'scope_prefix' needs 'scope_claim', which must be a claim name")
        self.principal_claim: str = setting(s, "principal_claim", str, plugin=NAME, default="sub")
        self.principal_prefix: str = setting(s, "principal_prefix", str, plugin=NAME, default="")
        self.role_claim: str | None = setting(s, "role_claim", str, plugin=NAME, default=None)
        types = setting(s, "token_types", (list, tuple), plugin=NAME, default=DEFAULT_TOKEN_TYPES)
        if not all(isinstance(t, str) and t for t in types):
            raise ConfigurationError(f"{NAME}: 'token_types' must be a list of strings")
        self.token_types = frozenset(_normal_typ(t) for t in types)
        if SERVICE_TOKEN_TYPE in self.token_types:
            raise ConfigurationError(f"{NAME}: {SERVICE_TOKEN_TYPE!r} tokens belong to the service parser")
        if ("jwks_url" in s) == ("keys" in s):
            raise ConfigurationError(f"{NAME}: set exactly one of 'jwks_url' and 'keys'")
        self.jwks: JwksCache | None = None
        self._static: dict[str, jwt.PyJWK] = {}
        if "jwks_url" in s:
            self.jwks = JwksCache(
                check_jwks_url(s["jwks_url"], plugin=NAME),
                algorithms=self.algorithms,
                lifespan=_number(s, "jwks_lifespan", 300, 1, 86400),
                cooldown=_number(s, "jwks_cooldown", 30, 0, 3600),
                timeout=_number(s, "jwks_timeout", 3, 0.1, MAX_TIMEOUT),
                clock=clock,
            )
        else:
            self._static = self._load_static(setting(s, "keys", (list, tuple), plugin=NAME))

    def _load_static(self, items: list[Any] | tuple[Any, ...]) -> dict[str, jwt.PyJWK]:
        if not items:
            raise ConfigurationError(f"{NAME}: 'keys' must list at least one public JWK")
        keys: dict[str, jwt.PyJWK] = {}
        for i, item in enumerate(items):
            field = f"keys[{i}]"
            if not isinstance(item, Mapping) or not isinstance(item.get("kid"), str) or not item["kid"]:
                raise ConfigurationError(f"{NAME}: {field} must be a public JWK with a 'kid'")
            alg = item.get("alg") or (self.algorithms[0] if len(self.algorithms) == 1 else None)
            if alg is None:
                raise ConfigurationError(f"{NAME}: {field} needs 'alg' when several algorithms are allowed")
            if alg not in self.algorithms:
                raise ConfigurationError(f"{NAME}: {field} has algorithm {alg!r}, which 'algorithms' does not allow")
            if item["kid"] in keys:
                raise ConfigurationError(f"{NAME}: key id {item['kid']!r} appears twice in 'keys'")
            keys[item["kid"]] = load_public_key(item, plugin=NAME, field=field, algorithm=alg)
        return keys

    # TokenParser -----------------------------------------------------------------------------
    def validate_format(self, token: str) -> bool:
        """True for JWS compact serialisation (three base64url segments) not typed as a service
        token (those are the service parser's: its slowness and this one's stay apart, see
        :meth:`nucleus_core.auth.TokenRegistry.lane`)."""
        if not looks_like_jwt(token):
            return False
        try:
            typ = jwt_header(token).get("typ")
        except TokenInvalidError:
            return True  # ours to refuse, in parse()
        return not (isinstance(typ, str) and _normal_typ(typ) == SERVICE_TOKEN_TYPE)

    def parse(self, token: str) -> RequestContext | None:
        """Verify the token; None when it is a service token (not this parser's kind). The
        context's ``expires_at`` is ``exp`` plus the leeway (when the token starts being refused).
        Nothing is recorded (the JWKS cache aside, which fetches keys): checking a token again
        changes nothing."""
        header = jwt_header(token)
        typ = header.get("typ")
        if typ is not None:
            if not isinstance(typ, str):
                raise TokenInvalidError("token type header is not a string")
            if _normal_typ(typ) == SERVICE_TOKEN_TYPE:
                return None
            if _normal_typ(typ) not in self.token_types:
                raise TokenInvalidError("token type is not accepted")
        claims = decode_jwt(
            token,
            self._key(header.get("kid")),
            algorithms=self.algorithms,
            issuer=self.issuer,
            audience=self.audience,
            leeway=self.leeway,
        )
        if claims["exp"] - claims["iat"] > self.max_lifetime:
            raise TokenInvalidError(f"token lifetime exceeds {self.max_lifetime:g} seconds")
        value = claims.get(self.principal_claim)
        if not isinstance(value, str) or not value:
            raise TokenInvalidError(f"token claim {self.principal_claim!r} is missing or not a string")
        oid = self.principal_prefix + value
        if not is_oid(oid):
            raise TokenInvalidError(f"token claim {self.principal_claim!r} does not name a valid principal")
        role = None
        if self.role_claim is not None:
            role = claims.get(self.role_claim)
            if role is not None and (not isinstance(role, str) or not role):
                raise TokenInvalidError(f"token claim {self.role_claim!r} must be a string")
        scopes = (
            DEFAULT_SCOPES
            if self.scope_claim is None
            else scopes_from_claim(claims, self.scope_claim, prefix=self.scope_prefix)
        )
        # Refused from exp + leeway on (decode_jwt): the deadline of whatever holds the token open.
        return RequestContext(
            oid=oid, source=NAME, role=role, claims=claims, scopes=scopes,
            expires_at=float(claims["exp"]) + self.leeway,
        )

    def _key(self, kid: object) -> jwt.PyJWK:
        if kid is not None and (not isinstance(kid, str) or not kid or len(kid) > 256):
            raise TokenInvalidError("token key id is malformed")
        if self.jwks is not None:
            if kid is None:
                raise TokenInvalidError("token has no key id")
            return self.jwks.key(kid)
        if kid is None:
            if len(self._static) == 1:
                return next(iter(self._static.values()))
            raise TokenInvalidError("token has no key id")
        key = self._static.get(kid)
        if key is None:
            raise TokenInvalidError("token key id is not known")
        return key
