"""API keys for Nucleus ledgers: ``nuk_<id>_<secret>_<checksum>``, stored only as keyed hashes."""

from __future__ import annotations

from .keys import ApiKey
from .parser import ApiKeyParser
from .store import KeyStore, MemoryKeyStore, SqlKeyStore

__all__ = ["ApiKey", "ApiKeyParser", "KeyStore", "MemoryKeyStore", "SqlKeyStore"]
