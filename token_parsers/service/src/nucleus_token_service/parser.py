"""The service parser: short-lived service-to-service JWTs signed with pinned keys."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import attrs
import jwt

from nucleus_core import PluginContext, RequestContext
from nucleus_core.auth import (
    SERVICE_TOKEN_TYPE,
    check_unknown_settings,
    decode_jwt,
    jwt_header,
    jwt_unverified_claims,
    load_public_key,
    looks_like_jwt,
    scopes_from_claim,
    setting,
)
from nucleus_core.context import DEFAULT_SCOPES, SCOPES, WILDCARD_SCOPE, scopes_from_names
from nucleus_core.errors import ConfigurationError, TokenInvalidError
from nucleus_core.oid import is_oid

from .replay import ReplayCache, ReplayStore, SqlReplayStore

NAME = "auth.service"
SETTINGS = ("audience", "services", "max_lifetime", "leeway", "replay_cache_size")
SERVICE_SETTINGS = ("principal", "role", "algorithm", "keys", "scopes")
SERVICE_ALGORITHMS = ("EdDSA", "ES256")
REQUIRED = ("exp", "iat", "iss", "aud", "sub", "jti")


@attrs.frozen(kw_only=True)
class PinnedService:
    """One calling service: its principal and role (from configuration, never from the token) and
    its public keys by ``kid``, and the scopes its requests may have (default: every scope)."""

    service_id: str
    principal: str
    role: str | None
    algorithm: str
    keys: Mapping[str, jwt.PyJWK]
    scopes: frozenset[str] = DEFAULT_SCOPES


def _service(service_id: str, raw: object) -> PinnedService:
    where = f"services[{service_id!r}]"
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"{NAME}: {where} must be a mapping")
    unknown = sorted(set(raw) - set(SERVICE_SETTINGS))
    if unknown:
        raise ConfigurationError(f"{NAME}: {where} has unknown setting(s) {', '.join(map(repr, unknown))}")
    principal = raw.get("principal")
    if not is_oid(principal):
        raise ConfigurationError(f"{NAME}: {where}.principal must be an OID (oid:<ns>:<type>:<id>)")
    role = raw.get("role")
    if role is not None and (not isinstance(role, str) or not role):
        raise ConfigurationError(f"{NAME}: {where}.role must be a non-empty string")
    algorithm = raw.get("algorithm", "EdDSA")
    if algorithm not in SERVICE_ALGORITHMS:
        raise ConfigurationError(f"{NAME}: {where}.algorithm must be one of {', '.join(SERVICE_ALGORITHMS)}")
    keys_raw = raw.get("keys")
    if not isinstance(keys_raw, Mapping) or not keys_raw:
        raise ConfigurationError(f"{NAME}: {where}.keys must map key ids to public keys (JWK or PEM)")
    keys = {}
    for kid, value in keys_raw.items():
        if not isinstance(kid, str) or not kid or len(kid) > 256:
            raise ConfigurationError(f"{NAME}: {where}.keys has a bad key id")
        keys[kid] = load_public_key(value, plugin=NAME, field=f"{where}.keys[{kid!r}]", algorithm=algorithm)
    scopes_raw = raw.get("scopes", [WILDCARD_SCOPE])
    if isinstance(scopes_raw, str) or not isinstance(scopes_raw, (list, tuple)):
        raise ConfigurationError(f"{NAME}: {where}.scopes must be a list of scope names")
    bad = [s for s in scopes_raw if s not in SCOPES and s != WILDCARD_SCOPE]
    if bad:
        raise ConfigurationError(
            f"{NAME}: {where}.scopes has unknown scope(s) {', '.join(map(repr, bad))}; use {', '.join(sorted(SCOPES))}"
        )
    scopes = scopes_from_names(scopes_raw)  # '*': every scope but keys, which is given only by name
    return PinnedService(
        service_id=service_id,
        principal=principal,
        role=role,
        algorithm=algorithm,
        keys=keys,
        scopes=scopes,
    )


class ServiceParser:
    """Verifies service tokens: JWTs with header ``typ: nucleus-service+jwt`` and a ``kid``,
    ``iss`` = ``sub`` = a configured service id, ``aud`` = this ledger, ``exp``, ``iat``, ``jti``.

    Settings: ``services`` (required: ``{service_id: {"principal": OID, "role": ..., "algorithm":
    "EdDSA"|"ES256", "keys": {kid: JWK or PEM public key}, "scopes": [...]}}``; ``scopes``, from
    configuration like the principal, defaults to every scope, and a token's ``scope`` claim can
    only narrow it further), ``audience`` (default: the ledger
    id), ``max_lifetime`` (``exp - iat`` limit in seconds, default 300, at most 3600), ``leeway``
    (default 30, at most 60), ``replay_cache_size`` (default 100000; memory ledgers only). Each
    ``jti`` is accepted once: remembered in the ledger's SQL database when it has one (shared by
    every process using that database), in memory otherwise.
    """

    def __init__(self, context: PluginContext, *, clock: Callable[[], float] = time.time) -> None:
        s = context.settings
        check_unknown_settings(s, SETTINGS, plugin=NAME)
        self.audience: str = setting(s, "audience", str, plugin=NAME, default=context.ledger_id)
        self.max_lifetime = setting(s, "max_lifetime", int, plugin=NAME, default=300)
        if not 1 <= self.max_lifetime <= 3600:
            raise ConfigurationError(f"{NAME}: 'max_lifetime' must be between 1 and 3600 seconds")
        self.leeway = setting(s, "leeway", (int, float), plugin=NAME, default=30)
        if not 0 <= self.leeway <= 60:
            raise ConfigurationError(f"{NAME}: 'leeway' must be between 0 and 60 seconds")
        size = setting(s, "replay_cache_size", int, plugin=NAME, default=100_000)
        if size < 1:
            raise ConfigurationError(f"{NAME}: 'replay_cache_size' must be positive")
        services = setting(s, "services", Mapping, plugin=NAME)
        if not services:
            raise ConfigurationError(f"{NAME}: 'services' must configure at least one service")
        self.services = {sid: _service(sid, raw) for sid, raw in services.items()}
        sql_store = SqlReplayStore.for_plugin(context, plugin=NAME)
        self.replay: ReplayStore = ReplayCache(size) if sql_store is None else sql_store
        self._clock = clock

    def validate_format(self, token: str) -> bool:
        """True for JWS compact serialisation (three base64url segments) whose header is typed
        ``nucleus-service+jwt``; other JWTs are not this parser's."""
        if not looks_like_jwt(token):
            return False
        try:
            typ = jwt_header(token).get("typ")
        except TokenInvalidError:
            return False
        return isinstance(typ, str) and typ.strip().lower() == SERVICE_TOKEN_TYPE

    def parse(self, token: str) -> RequestContext | None:
        """Verify a service token and spend its ``jti`` (a second use is refused); None when the
        token is not typed as one. The context's ``expires_at`` is ``exp`` plus the leeway."""
        return self._verify(token, spend=True)

    def check(self, token: str) -> RequestContext | None:
        """:meth:`parse` without spending the ``jti`` (nor asking whether it was spent): the check
        of a token already accepted, such as an open stream's
        (:class:`~nucleus_core.tokens.PassiveTokenParser`); never to admit a request."""
        return self._verify(token, spend=False)

    def _verify(self, token: str, *, spend: bool) -> RequestContext | None:
        header = jwt_header(token)
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.strip().lower() != SERVICE_TOKEN_TYPE:
            return None
        issuer = jwt_unverified_claims(token).get("iss")
        service = self.services.get(issuer) if isinstance(issuer, str) else None
        if service is None:
            raise TokenInvalidError("token issuer is not a configured service")
        kid = header.get("kid")
        key = service.keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise TokenInvalidError("token key id is not pinned for this service")
        claims = decode_jwt(
            token,
            key,
            algorithms=(service.algorithm,),
            issuer=service.service_id,
            audience=self.audience,
            leeway=self.leeway,
            required=REQUIRED,
        )
        if claims["sub"] != service.service_id:
            raise TokenInvalidError("token subject must equal its issuer")
        exp, iat, jti = claims["exp"], claims["iat"], claims["jti"]
        # exp and iat are JSON numbers here (decode_jwt refuses anything else).
        if exp - iat > self.max_lifetime:
            raise TokenInvalidError(f"token lifetime exceeds {self.max_lifetime} seconds")
        if not isinstance(jti, str) or not 1 <= len(jti) <= 128:
            raise TokenInvalidError("token id (jti) must be a string of 1-128 characters")
        scopes = service.scopes
        if "scope" in claims:  # a service may mint a narrower token than its configuration allows
            scopes = scopes & scopes_from_claim(claims, "scope")
        if spend:
            self.replay.use(service.service_id, jti, float(exp) + self.leeway, self._clock())
        return RequestContext(
            scopes=scopes,
            oid=service.principal,
            source=NAME,
            role=service.role,
            claims={"service": service.service_id, "jti": jti, "exp": exp, "iat": iat},
            expires_at=float(exp) + self.leeway,
        )
