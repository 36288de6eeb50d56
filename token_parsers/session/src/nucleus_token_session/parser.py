"""The session parser: opaque server-side sessions with idle and absolute expiry."""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

from nucleus_core import PluginContext, RequestContext, TokenSource
from nucleus_core.auth import check_unknown_settings, setting
from nucleus_core.errors import ConfigurationError, TokenExpiredError, TokenInvalidError, ValidationError
from nucleus_core.oid import validate_oid

from .store import MemorySessionStore, Session, SessionStore, SqlSessionStore

log = logging.getLogger(__name__)

NAME = "auth.session"
PREFIX = "nss_"
TOKEN_PATTERN = re.compile(r"nss_[A-Za-z0-9_-]{43}")
SETTINGS = ("idle_timeout", "absolute_timeout", "touch_interval")


def token_hash(token: str) -> str:
    """The stored form of a session token: SHA-256, lowercase hex. The token has 256 random bits,
    so a plain hash cannot be reversed or brute-forced."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def _positive(settings: Mapping[str, Any], key: str, default: float) -> float:
    value = setting(settings, key, (int, float), plugin=NAME, default=default)
    if value <= 0:
        raise ConfigurationError(f"{NAME}: setting {key!r} must be a positive number of seconds")
    return float(value)


class SessionParser:
    """Authenticates ``nss_`` session tokens (``nss_`` + 43 base64url characters, 256 random bits).

    Settings: ``idle_timeout`` (seconds without activity, default 1800), ``absolute_timeout``
    (seconds from creation, default 43200), ``touch_interval`` (activity is written at most this
    often, default 60; never more than the idle timeout).
    """

    def __init__(
        self, context: PluginContext, *, clock: Callable[[], float] = time.time, store: SessionStore | None = None
    ) -> None:
        settings = context.settings
        check_unknown_settings(settings, SETTINGS, plugin=NAME)
        self.idle_timeout = _positive(settings, "idle_timeout", 1800)
        self.absolute_timeout = _positive(settings, "absolute_timeout", 43200)
        self.touch_interval = min(_positive(settings, "touch_interval", 60), self.idle_timeout)
        if self.idle_timeout > self.absolute_timeout:
            raise ConfigurationError(f"{NAME}: idle_timeout must not exceed absolute_timeout")
        self._clock = clock
        if store is None:
            sql_store = SqlSessionStore.for_plugin(context, plugin=NAME)
            store = MemorySessionStore() if sql_store is None else sql_store
        self._store = store

    # TokenParser -----------------------------------------------------------------------------
    def validate_format(self, token: str) -> bool:
        """True for tokens starting with ``nss_``."""
        return token.startswith(PREFIX)

    def parse(self, token: str) -> RequestContext:
        """The session's context; refuses unknown, revoked, idle-expired and absolutely expired sessions."""
        if TOKEN_PATTERN.fullmatch(token) is None:
            raise TokenInvalidError("session token is malformed")
        h = token_hash(token)
        session = self._store.get(h)
        if session is None:
            raise TokenInvalidError("session is not known")
        if session.revoked_at is not None:
            raise TokenInvalidError("session was ended")
        now = self._clock()
        if now >= session.absolute_expires_at:
            raise TokenExpiredError("session reached its maximum lifetime")
        if now >= session.last_seen_at + self.idle_timeout:
            raise TokenExpiredError("session expired after inactivity")
        if now - session.last_seen_at >= self.touch_interval:
            self._store.touch(h, now)
        return RequestContext(oid=session.principal, source=TokenSource.SESSION, role=session.role)

    # management ------------------------------------------------------------------------------
    def create_session(self, principal: str, *, role: str | None = None) -> tuple[str, Session]:
        """Start a session for an already authenticated ``principal``. Returns ``(token, session)``;
        the token is not stored (only its hash). Start a new session whenever the principal's
        privileges change, and end the old one with :meth:`end_session`."""
        validate_oid(principal, field="principal")
        if role is not None and (not isinstance(role, str) or not role.strip() or len(role) > 128):
            raise ValidationError("must be a non-empty string of at most 128 characters", field="role")
        token = PREFIX + secrets.token_urlsafe(32)
        now = self._clock()
        session = Session(
            token_hash=token_hash(token),
            principal=principal,
            role=role,
            created_at=now,
            last_seen_at=now,
            absolute_expires_at=now + self.absolute_timeout,
        )
        self._store.add(session)
        return token, session

    def end_session(self, token: str) -> bool:
        """Log out: revoke the session of ``token`` at once. False when it is unknown or already ended."""
        if not isinstance(token, str) or TOKEN_PATTERN.fullmatch(token) is None:
            return False
        return self._store.revoke(token_hash(token), self._clock())

    def end_sessions_of(self, principal: str) -> int:
        """Revoke every live session of ``principal`` (e.g. after a password change); returns how many."""
        validate_oid(principal, field="principal")
        return self._store.revoke_principal(principal, self._clock())

    def purge_expired(self) -> int:
        """Delete sessions that are past their absolute expiry or were ended; returns how many.
        (A deleted session's token is simply unknown afterwards, so it stays refused.)"""
        return self._store.purge(self._clock())
