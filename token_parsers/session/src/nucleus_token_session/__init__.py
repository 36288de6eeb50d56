"""Server-side sessions for Nucleus ledgers: opaque ``nss_`` tokens stored only as SHA-256 hashes."""

from __future__ import annotations

from .parser import SessionParser, token_hash
from .store import MemorySessionStore, Session, SessionStore, SqlSessionStore

__all__ = ["MemorySessionStore", "Session", "SessionParser", "SessionStore", "SqlSessionStore", "token_hash"]
