"""Where sessions live: in memory (``memory://`` ledgers) or in the ledger's SQL database.

Sessions are keyed by the SHA-256 of the session token; the token itself is never stored. The SQL
store keeps table ``nucleus_sessions`` in the ledger's own database, with a ``ledger_id`` column.
Models are built and bound per store instance (no module-level binding). Each row carries the
session's MAC (``mac``, see :func:`nucleus_token_session.parser.session_mac`); a table made by the
first version gains that column when the store opens it, and its old rows never authenticate.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

import attrs
import peewee

from nucleus_core.auth import SqlPluginStore

TABLE_NAME = "nucleus_sessions"


@attrs.frozen(kw_only=True)
class Session:
    """A stored session. ``token_hash`` is the SHA-256 of the token (hidden from ``repr``); times
    are Unix seconds."""

    token_hash: str = attrs.field(repr=False)
    principal: str
    role: str | None = None
    created_at: float
    last_seen_at: float
    absolute_expires_at: float
    revoked_at: float | None = None
    mac: str | None = attrs.field(default=None, repr=False)
    """The session MAC; None for a row of the first format, which never authenticates."""
    scopes: str | None = None
    """The session's scopes, space-separated (see :data:`nucleus_core.context.SCOPES`); None for a
    session that was not narrowed (every scope)."""


class SessionStore(Protocol):
    """Storage of :class:`Session` records for one ledger."""

    def add(self, session: Session) -> None: ...

    def get(self, token_hash: str) -> Session | None: ...

    def touch(self, token_hash: str, at: float) -> None:
        """Record activity at ``at`` (moves the idle expiry)."""

    def revoke(self, token_hash: str, at: float) -> bool:
        """Revoke one session; False when absent or already revoked."""

    def revoke_principal(self, principal: str, at: float) -> int:
        """Revoke every live session of ``principal``; returns how many."""

    def purge(self, before: float) -> int:
        """Delete sessions whose absolute expiry is at or before ``before`` or that were revoked by then."""


class MemorySessionStore:
    """Sessions in process memory."""

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def add(self, session: Session) -> None:
        with self._lock:
            self._sessions[session.token_hash] = session

    def get(self, token_hash: str) -> Session | None:
        return self._sessions.get(token_hash)

    def touch(self, token_hash: str, at: float) -> None:
        with self._lock:
            s = self._sessions.get(token_hash)
            if s is not None and at > s.last_seen_at:
                self._sessions[token_hash] = attrs.evolve(s, last_seen_at=at)

    def revoke(self, token_hash: str, at: float) -> bool:
        with self._lock:
            s = self._sessions.get(token_hash)
            if s is None or s.revoked_at is not None:
                return False
            self._sessions[token_hash] = attrs.evolve(s, revoked_at=at)
            return True

    def revoke_principal(self, principal: str, at: float) -> int:
        with self._lock:
            hits = [h for h, s in self._sessions.items() if s.principal == principal and s.revoked_at is None]
            for h in hits:
                self._sessions[h] = attrs.evolve(self._sessions[h], revoked_at=at)
            return len(hits)

    def purge(self, before: float) -> int:
        with self._lock:
            dead = [
                h
                for h, s in self._sessions.items()
                if s.absolute_expires_at <= before or (s.revoked_at is not None and s.revoked_at <= before)
            ]
            for h in dead:
                del self._sessions[h]
            return len(dead)


def _model(database: peewee.Database) -> Any:
    class SessionRow(peewee.Model):
        ledger_id = peewee.CharField(max_length=128)
        token_hash = peewee.CharField(max_length=64)
        principal = peewee.CharField(max_length=512, index=True)
        role = peewee.CharField(max_length=128, null=True)
        created_at = peewee.DoubleField()
        last_seen_at = peewee.DoubleField()
        absolute_expires_at = peewee.DoubleField()
        revoked_at = peewee.DoubleField(null=True)
        mac = peewee.CharField(max_length=64, null=True)
        scopes = peewee.CharField(max_length=256, null=True)

        class Meta:
            table_name = TABLE_NAME
            indexes = ((("ledger_id", "token_hash"), True),)

    SessionRow.bind(database, bind_refs=False, bind_backrefs=False)
    return SessionRow


class SqlSessionStore(SqlPluginStore):
    """Sessions in the ledger's peewee database (SQLite or PostgreSQL), table ``nucleus_sessions``.

    Build it with ``SqlSessionStore.for_plugin(context, plugin=...)`` or from a database directly
    (see :class:`~nucleus_core.auth.SqlPluginStore` for the arguments)."""

    label = "sessions"
    make_model = staticmethod(_model)

    def _mine(self, token_hash: str) -> Any:
        m = self._model
        return (m.ledger_id == self._ledger_id) & (m.token_hash == token_hash)

    def add(self, session: Session) -> None:
        self._run(
            "storing a session",
            lambda: self._model.insert(ledger_id=self._ledger_id, **attrs.asdict(session)).execute(),
        )

    def get(self, token_hash: str) -> Session | None:
        row = self._run("reading a session", lambda: self._model.get_or_none(self._mine(token_hash)), read=True)
        if row is None:
            return None
        return Session(**{f.name: getattr(row, f.name) for f in attrs.fields(Session)})

    def touch(self, token_hash: str, at: float) -> None:
        m = self._model
        self._run(
            "recording activity",
            lambda: m.update(last_seen_at=at).where(self._mine(token_hash) & (m.last_seen_at < at)).execute(),
        )

    def revoke(self, token_hash: str, at: float) -> bool:
        m = self._model
        n = self._run(
            "revoking a session",
            lambda: m.update(revoked_at=at).where(self._mine(token_hash) & m.revoked_at.is_null()).execute(),
        )
        return bool(n)

    def revoke_principal(self, principal: str, at: float) -> int:
        m = self._model
        where = (m.ledger_id == self._ledger_id) & (m.principal == principal) & m.revoked_at.is_null()
        return int(self._run("revoking sessions", lambda: m.update(revoked_at=at).where(where).execute()))

    def purge(self, before: float) -> int:
        m = self._model
        dead = (m.absolute_expires_at <= before) | (m.revoked_at.is_null(False) & (m.revoked_at <= before))
        return int(
            self._run("purging sessions", lambda: m.delete().where((m.ledger_id == self._ledger_id) & dead).execute())
        )
