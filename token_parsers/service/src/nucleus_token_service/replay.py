"""Where used token ids (``jti``) are remembered until their token expires: in process memory
(``memory://`` ledgers) or in the ledger's SQL database, shared by every process using it.

Both stores implement :class:`ReplayStore`. The SQL store keeps table ``nucleus_service_jti`` in
the ledger's own database with a ``ledger_id`` column; each row holds the SHA-256 of
``issuer NUL jti`` (never the id itself) and the time after which the token can no longer be used.
A unique index on ``(ledger_id, jti_hash)`` makes the first use win even when several processes
see the same token at the same moment. Expired rows are deleted at most once per purge interval
(and an expired row for the very id being used is replaced at once). The model is built and bound
per store instance (no module-level binding).
"""

from __future__ import annotations

import hashlib
import heapq
import threading
from typing import Any, Protocol

import peewee

from nucleus_core.auth import SqlPluginStore
from nucleus_core.errors import TokenInvalidError

TABLE_NAME = "nucleus_service_jti"
DEFAULT_PURGE_INTERVAL = 60.0
"""Seconds between two deletions of expired rows by one SQL store."""

_REPLAY = "token was already used (replay)"


class ReplayStore(Protocol):
    """Records token uses for one ledger; a second use of an unexpired ``(issuer, jti)`` is refused."""

    def use(self, issuer: str, jti: str, expires_at: float, now: float) -> None:
        """Record a use; :class:`TokenInvalidError` when this id was used before and has not expired."""


class ReplayCache:
    """Remembers ``(issuer, jti)`` pairs in memory until their token's expiry, at most
    ``max_entries`` at once (when full, new tokens are refused rather than forgetting old ones).

    Memory is per parser instance, so per ledger and per process; ledgers with SQL storage use
    :class:`SqlReplayStore` instead, which every process sharing the database sees.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self._max = max_entries
        self._seen: dict[tuple[str, str], float] = {}
        self._expiry: list[tuple[float, tuple[str, str]]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def use(self, issuer: str, jti: str, expires_at: float, now: float) -> None:
        """Record a use; :class:`TokenInvalidError` when this id was used before and has not expired."""
        key = (issuer, jti)
        with self._lock:
            self._drop_expired(now)
            if key in self._seen:
                raise TokenInvalidError(_REPLAY)
            if len(self._seen) >= self._max:
                raise TokenInvalidError("too many unexpired service tokens in use; refusing (replay cache full)")
            self._seen[key] = expires_at
            heapq.heappush(self._expiry, (expires_at, key))

    def _drop_expired(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] < now:
            _, key = heapq.heappop(self._expiry)
            self._seen.pop(key, None)


def jti_hash(issuer: str, jti: str) -> str:
    """The stored form of a token id: lowercase hex SHA-256 of ``issuer NUL jti``."""
    return hashlib.sha256(f"{issuer}\x00{jti}".encode("utf-8", "surrogatepass")).hexdigest()


def _model(database: peewee.Database) -> Any:
    class UsedJti(peewee.Model):
        ledger_id = peewee.CharField(max_length=128)
        jti_hash = peewee.CharField(max_length=64)
        expires_at = peewee.DoubleField()

        class Meta:
            table_name = TABLE_NAME
            indexes = (
                (("ledger_id", "jti_hash"), True),
                (("ledger_id", "expires_at"), False),
            )

    UsedJti.bind(database, bind_refs=False, bind_backrefs=False)
    return UsedJti


class SqlReplayStore(SqlPluginStore):
    """Used token ids in the ledger's peewee database (SQLite or PostgreSQL), table ``nucleus_service_jti``.

    Build it with ``SqlReplayStore.for_plugin(context, plugin=...)`` or from a database directly
    (see :class:`~nucleus_core.auth.SqlPluginStore` for the arguments); ``purge_interval`` is
    the most seconds between two deletions of expired rows."""

    label = "service token ids"
    make_model = staticmethod(_model)

    def __init__(self, *args: Any, purge_interval: float = DEFAULT_PURGE_INTERVAL, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._purge_interval = purge_interval
        self._next_purge = float("-inf")
        self._lock = threading.Lock()

    def use(self, issuer: str, jti: str, expires_at: float, now: float) -> None:
        """Record a use; :class:`TokenInvalidError` when this id was used before (by any process
        sharing the database) and has not expired."""
        m = self._model
        with self._lock:
            due = now >= self._next_purge
            if due:
                self._next_purge = now + self._purge_interval
        if due:
            self.purge(now)
        digest = jti_hash(issuer, jti)
        mine = (m.ledger_id == self._ledger_id) & (m.jti_hash == digest)

        def record() -> None:
            m.delete().where(mine & (m.expires_at < now)).execute()
            m.insert(ledger_id=self._ledger_id, jti_hash=digest, expires_at=expires_at).execute()

        self._run("recording a token id", record, conflict=lambda: TokenInvalidError(_REPLAY))

    def purge(self, now: float) -> int:
        """Delete the rows of tokens that expired before ``now``; returns how many."""
        m = self._model
        expired = (m.ledger_id == self._ledger_id) & (m.expires_at < now)
        return int(self._run("purging expired token ids", lambda: m.delete().where(expired).execute()))

    def __len__(self) -> int:
        m = self._model
        return int(
            self._run("counting token ids", lambda: m.select().where(m.ledger_id == self._ledger_id).count(), read=True)
        )
