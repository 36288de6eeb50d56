"""The session parser: opaque server-side sessions with idle and absolute expiry.

Each stored session carries a MAC (HMAC-SHA256 keyed with the server-side session secret, which is
never in the database) over the RFC 8785 encoding of the session id, ledger id, principal, role,
creation and absolute expiry. A database writer who does not know the secret cannot change who a
session authenticates as, for how long at most, or on which ledger: an edited row is refused. What
it can still do (delete sessions, bring back a row it copied before logout until the row's absolute
expiry, move the idle expiry) is written down in the README and ``docs/SECURITY.md``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from nucleus_core import PluginContext, RequestContext
from nucleus_core.auth import check_unknown_settings, setting
from nucleus_core.canonical import canonical_json
from nucleus_core.context import DEFAULT_SCOPES, SCOPES
from nucleus_core.errors import ConfigurationError, TokenExpiredError, TokenInvalidError, ValidationError
from nucleus_core.oid import validate_oid

from .store import MemorySessionStore, Session, SessionStore, SqlSessionStore

log = logging.getLogger(__name__)

NAME = "auth.session"
PREFIX = "nss_"
TOKEN_PATTERN = re.compile(r"nss_[A-Za-z0-9_-]{43}")
SETTINGS = ("idle_timeout", "absolute_timeout", "touch_interval", "secret", "secret_env", "previous_secrets")
DEFAULT_SECRET_ENV = "NUCLEUS_SESSION_SECRET"  # noqa: S105 - the name of a variable, not a secret
"""Read for the session secret when neither ``secret`` nor ``secret_env`` is set."""
MIN_SECRET_LENGTH = 32
_MAC_LABEL = b"nucleus session v2\x00"


def token_hash(token: str) -> str:
    """The stored form of a session token: SHA-256, lowercase hex. The token has 256 random bits,
    so a plain hash cannot be reversed or brute-forced."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def session_mac(secret: bytes, ledger_id: str, token: str, session: Session) -> str:
    """The MAC stored with a session: HMAC-SHA256 keyed with the session secret over the RFC 8785
    encoding of the session id (the token), ledger id, principal, role, creation, absolute expiry
    and, for a session narrowed to some scopes, those scopes (lowercase hex). A session that was
    not narrowed has no ``scopes`` member, so rows written before scopes existed keep their MAC,
    and clearing a narrowed row's scopes breaks it."""
    document = {
        "ledger_id": ledger_id,
        "session_id": token,
        "principal": session.principal,
        "role": session.role,
        "created_at": session.created_at,
        "absolute_expires_at": session.absolute_expires_at,
    }
    if session.scopes is not None:
        document["scopes"] = session.scopes
    return hmac.new(secret, _MAC_LABEL + canonical_json(document, field="session"), hashlib.sha256).hexdigest()


def _secret_bytes(value: object, what: str) -> bytes:
    if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
        raise ConfigurationError(f"{NAME}: {what} must be a string of at least {MIN_SECRET_LENGTH} characters")
    return value.encode("utf-8")


def load_secrets(context: PluginContext) -> list[bytes]:
    """The session secrets, current first: ``secret`` or ``secret_env`` (an environment variable's
    name), else the variable ``NUCLEUS_SESSION_SECRET``, then ``previous_secrets`` (still accepted,
    for rotation). Without any: a random secret for this parser only when the storage does not
    outlive the process (memory) or in development (with a warning: sessions end on restart);
    a :class:`ConfigurationError` in production with persistent storage."""
    settings = context.settings
    if "secret" in settings and "secret_env" in settings:
        raise ConfigurationError(f"{NAME}: set at most one of 'secret' and 'secret_env'")
    current: bytes | None
    if "secret" in settings:
        current = _secret_bytes(settings["secret"], "setting 'secret'")
    else:
        var = setting(settings, "secret_env", str, plugin=NAME, default=DEFAULT_SECRET_ENV)
        raw = os.environ.get(var)
        if raw is None and "secret_env" in settings:
            raise ConfigurationError(f"{NAME}: environment variable {var!r} (secret_env) is not set")
        current = None if raw is None else _secret_bytes(raw, f"the value of {var}")
    if current is None:
        persistent = context.storage is not None and context.storage.persistent
        if persistent and not context.is_development:
            raise ConfigurationError(
                f"{NAME}: a session secret is required in production (setting 'secret' or 'secret_env', "
                f"or the environment variable {DEFAULT_SECRET_ENV}; 32+ random characters)"
            )
        if persistent:
            log.warning(
                "%s: NO SESSION SECRET CONFIGURED - using a random one for this process (development only); "
                "every session ends when the process stops. Set %s in any real deployment.",
                NAME,
                DEFAULT_SECRET_ENV,
            )
        current = secrets.token_bytes(32)
    out = [current]
    for i, old in enumerate(setting(settings, "previous_secrets", (list, tuple), plugin=NAME, default=())):
        out.append(_secret_bytes(old, f"previous_secrets[{i}]"))
    return out


def _positive(settings: Mapping[str, Any], key: str, default: float) -> float:
    value = setting(settings, key, (int, float), plugin=NAME, default=default)
    if value <= 0:
        raise ConfigurationError(f"{NAME}: setting {key!r} must be a positive number of seconds")
    return float(value)


class SessionParser:
    """Authenticates ``nss_`` session tokens (``nss_`` + 43 base64url characters, 256 random bits).

    Settings: ``idle_timeout`` (seconds without activity, default 1800), ``absolute_timeout``
    (seconds from creation, default 43200), ``touch_interval`` (activity is written at most this
    often, default 60; never more than the idle timeout), ``secret`` or ``secret_env`` (the
    server-side key of the session MACs, 32+ characters; default: the environment variable
    ``NUCLEUS_SESSION_SECRET``; required in production with persistent storage) and
    ``previous_secrets`` (older secrets still accepted, for rotation).
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
        self._secrets = load_secrets(context)
        self._ledger_id = context.ledger_id
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
        """The session's context; refuses unknown, revoked, idle-expired and absolutely expired
        sessions, and records the activity (at most every ``touch_interval``: the idle deadline
        moves). The context's ``expires_at`` is the session's deadline as it stands: its idle
        deadline, or its absolute one when that comes first."""
        return self._verify(token, touch=True)

    def check(self, token: str) -> RequestContext:
        """:meth:`parse` without recording activity (the idle deadline stays where it is): the
        check of a credential already authenticated, such as an open stream's
        (:class:`~nucleus_core.tokens.PassiveTokenParser`). A session used by nothing else
        expires at its idle timeout however often it is checked."""
        return self._verify(token, touch=False)

    def _verify(self, token: str, *, touch: bool) -> RequestContext:
        if TOKEN_PATTERN.fullmatch(token) is None:
            raise TokenInvalidError("session token is malformed")
        h = token_hash(token)
        session = self._store.get(h)
        if session is None:
            raise TokenInvalidError("session is not known")
        if session.mac is None:
            log.warning("a session stored in the first format was refused (sessions now carry a MAC; log in again)")
            raise TokenInvalidError("session is not valid")
        if not any(
            hmac.compare_digest(session.mac, session_mac(key, self._ledger_id, token, session)) for key in self._secrets
        ):
            log.warning("a session row failed its MAC (changed in the database?); refused")
            raise TokenInvalidError("session is not valid")
        if session.revoked_at is not None:
            raise TokenInvalidError("session was ended")
        now = self._clock()
        if now >= session.absolute_expires_at:
            raise TokenExpiredError("session reached its maximum lifetime")
        if now >= session.last_seen_at + self.idle_timeout:
            raise TokenExpiredError("session expired after inactivity")
        last_seen = session.last_seen_at
        if touch and now - last_seen >= self.touch_interval:
            self._store.touch(h, now)
            last_seen = now
        scopes = DEFAULT_SCOPES if session.scopes is None else frozenset(session.scopes.split())
        return RequestContext(
            oid=session.principal, source=NAME, role=session.role, scopes=scopes,
            expires_at=min(session.absolute_expires_at, last_seen + self.idle_timeout),
        )

    # management ------------------------------------------------------------------------------
    def create_session(
        self, principal: str, *, role: str | None = None, scopes: Iterable[str] | None = None
    ) -> tuple[str, Session]:
        """Start a session for an already authenticated ``principal``. Returns ``(token, session)``;
        the token is not stored (only its hash). ``scopes`` narrows what the session may do (names
        of :data:`nucleus_core.context.SCOPES`, kept in its row under the MAC); None, the default,
        leaves every scope but ``keys``, which a session gets only when ``scopes`` names it. Start
        a new session whenever the principal's privileges change, and end the old one with
        :meth:`end_session`."""
        validate_oid(principal, field="principal")
        narrowed: str | None = None
        if scopes is not None:
            if isinstance(scopes, str):
                raise ValidationError("must be a list of scope names", field="scopes")
            names = sorted(set(scopes))
            unknown = [s for s in names if s not in SCOPES]
            if unknown:
                raise ValidationError(
                    f"unknown scope(s) {', '.join(map(repr, unknown))}; the scopes are {', '.join(sorted(SCOPES))}",
                    field="scopes",
                )
            narrowed = " ".join(names)
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
            scopes=narrowed,
        )
        session = attrs.evolve(session, mac=session_mac(self._secrets[0], self._ledger_id, token, session))
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
