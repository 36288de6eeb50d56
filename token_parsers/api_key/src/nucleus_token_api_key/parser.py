"""The API key parser: checks keys and creates, lists and revokes them."""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from nucleus_core import PluginContext, RequestContext, TokenSource
from nucleus_core.auth import check_unknown_settings, setting
from nucleus_core.errors import ConfigurationError, TokenExpiredError, TokenInvalidError, ValidationError
from nucleus_core.oid import validate_oid

from .keys import KEY_ID_PATTERN, MIN_PEPPER_LENGTH, PREFIX, ApiKey, new_key, pepper_id, secret_hash, split_key
from .store import KeyStore, MemoryKeyStore, SqlKeyStore

log = logging.getLogger(__name__)

NAME = "auth.api_key"
SETTINGS = ("pepper", "pepper_env", "previous_peppers", "max_lifetime")
_SCOPE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:._-*/")


def _pepper_bytes(value: object, what: str) -> bytes:
    if not isinstance(value, str) or len(value) < MIN_PEPPER_LENGTH:
        raise ConfigurationError(f"{NAME}: {what} must be a string of at least {MIN_PEPPER_LENGTH} characters")
    return value.encode("utf-8")


def load_peppers(settings: Mapping[str, Any]) -> tuple[bytes, dict[str, bytes]]:
    """The current pepper and every accepted pepper by id, from ``pepper`` or ``pepper_env``
    (the name of an environment variable holding it) plus ``previous_peppers`` (for rotation)."""
    if ("pepper" in settings) == ("pepper_env" in settings):
        raise ConfigurationError(f"{NAME}: set exactly one of 'pepper' and 'pepper_env' (a secret of 32+ characters)")
    if "pepper_env" in settings:
        var = setting(settings, "pepper_env", str, plugin=NAME)
        raw = os.environ.get(var)
        if raw is None:
            raise ConfigurationError(f"{NAME}: environment variable {var!r} (pepper_env) is not set")
        current = _pepper_bytes(raw, f"the value of {var}")
    else:
        current = _pepper_bytes(settings["pepper"], "setting 'pepper'")
    peppers = {pepper_id(current): current}
    for i, old in enumerate(setting(settings, "previous_peppers", (list, tuple), plugin=NAME, default=())):
        value = _pepper_bytes(old, f"previous_peppers[{i}]")
        peppers.setdefault(pepper_id(value), value)
    return current, peppers


def _check_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    out = tuple(scopes)
    for s in out:
        if not isinstance(s, str) or not s or len(s) > 128 or not set(s) <= _SCOPE_CHARS:
            raise ValidationError(f"{s!r} is not a scope (1-128 of letters, digits and :._-*/)", field="scopes")
    return out


class ApiKeyParser:
    """Authenticates ``nuk_...`` API keys and manages them.

    Settings: ``pepper`` or ``pepper_env`` (required server-side secret, 32+ characters),
    ``previous_peppers`` (older peppers still accepted, for rotation), ``max_lifetime`` (seconds;
    when set, every new key must expire within it).
    """

    def __init__(
        self, context: PluginContext, *, clock: Callable[[], float] = time.time, store: KeyStore | None = None
    ) -> None:
        settings = context.settings
        check_unknown_settings(settings, SETTINGS, plugin=NAME)
        self._pepper, self._peppers = load_peppers(settings)
        self._current_pepper_id = pepper_id(self._pepper)
        self._max_lifetime = setting(settings, "max_lifetime", (int, float), plugin=NAME, default=None)
        if self._max_lifetime is not None and self._max_lifetime <= 0:
            raise ConfigurationError(f"{NAME}: setting 'max_lifetime' must be positive")
        self._clock = clock
        if store is None:
            sql_store = SqlKeyStore.for_plugin(context, plugin=NAME)
            store = MemoryKeyStore() if sql_store is None else sql_store
        self._store = store
        self._dummy_hash = secret_hash(self._pepper, "0" * 12, "0" * 43)

    # TokenParser -----------------------------------------------------------------------------
    def validate_format(self, token: str) -> bool:
        """True for tokens starting with ``nuk_`` (the checksum is checked in :meth:`parse`)."""
        return token.startswith(PREFIX)

    def parse(self, token: str) -> RequestContext:
        """Verify the key. Malformed keys and bad checksums are refused before any storage access."""
        parts = split_key(token)
        if parts is None:
            raise TokenInvalidError("API key is malformed")
        key_id, secret, checksum_ok = parts
        if not checksum_ok:
            raise TokenInvalidError("API key checksum does not match")
        record = self._store.get(key_id)
        pepper = self._peppers.get(record.pepper_id) if record is not None else None
        if record is None or pepper is None:
            # Same work as for a real key, so timing does not tell whether the id exists.
            hmac.compare_digest(self._dummy_hash, secret_hash(self._pepper, key_id, secret))
            if record is not None:
                log.warning("API key %s was hashed with a pepper that is no longer configured", key_id)
            raise TokenInvalidError("API key is not valid")
        if not hmac.compare_digest(record.secret_hash, secret_hash(pepper, key_id, secret)):
            raise TokenInvalidError("API key is not valid")
        now = self._clock()
        if record.revoked_at is not None:
            raise TokenInvalidError("API key was revoked")
        if record.expires_at is not None and now >= record.expires_at:
            raise TokenExpiredError("API key has expired")
        return RequestContext(
            oid=record.principal,
            source=TokenSource.API_KEY,
            role=record.role,
            claims={"key_id": key_id, "scopes": list(record.scopes)},
        )

    # management ------------------------------------------------------------------------------
    def create_key(
        self,
        principal: str,
        *,
        role: str | None = None,
        scopes: Iterable[str] = (),
        expires_in: float | None = None,
        name: str = "",
    ) -> tuple[str, ApiKey]:
        """Create a key for ``principal``. Returns ``(key, record)``: the key is shown only here and
        is not stored anywhere; keep it safe."""
        validate_oid(principal, field="principal")
        if role is not None and (not isinstance(role, str) or not role.strip() or len(role) > 128):
            raise ValidationError("must be a non-empty string of at most 128 characters", field="role")
        if not isinstance(name, str) or len(name) > 256:
            raise ValidationError("must be a string of at most 256 characters", field="name")
        checked_scopes = _check_scopes(scopes)
        if expires_in is not None and (
            isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)) or expires_in <= 0
        ):
            raise ValidationError("must be a positive number of seconds", field="expires_in")
        if self._max_lifetime is not None and (expires_in is None or expires_in > self._max_lifetime):
            raise ValidationError(
                f"keys on this ledger must expire within {self._max_lifetime} seconds", field="expires_in"
            )
        now = self._clock()
        key, key_id, secret = new_key()
        record = ApiKey(
            key_id=key_id,
            principal=principal,
            role=role,
            scopes=checked_scopes,
            name=name,
            created_at=now,
            expires_at=None if expires_in is None else now + expires_in,
            secret_hash=secret_hash(self._pepper, key_id, secret),
            pepper_id=self._current_pepper_id,
        )
        self._store.add(record)
        log.info("created API key %s for %s", key_id, principal)
        return key, record

    def list_keys(self, *, include_inactive: bool = True) -> list[ApiKey]:
        """Stored keys, oldest first (revoked and expired ones too unless ``include_inactive`` is False)."""
        keys = self._store.list()
        if include_inactive:
            return keys
        now = self._clock()
        return [k for k in keys if k.status(now) == "active"]

    def revoke_key(self, key_id: str) -> bool:
        """Revoke a key by id; False when there is no such active key. Takes effect immediately."""
        if not isinstance(key_id, str) or KEY_ID_PATTERN.fullmatch(key_id) is None:
            raise ValidationError("must be a 12-character API key id", field="key_id")
        done = self._store.revoke(key_id, self._clock())
        if done:
            log.info("revoked API key %s", key_id)
        return done

    def now(self) -> float:
        """The parser's clock (Unix seconds)."""
        return self._clock()
