"""Service-to-service JWTs for Nucleus ledgers: pinned EdDSA/ES256 keys, short lifetime, one use per jti."""

from __future__ import annotations

from nucleus_core.auth import SERVICE_TOKEN_TYPE

from .parser import PinnedService, ServiceParser
from .replay import ReplayCache, ReplayStore, SqlReplayStore

__all__ = ["SERVICE_TOKEN_TYPE", "PinnedService", "ReplayCache", "ReplayStore", "ServiceParser", "SqlReplayStore"]
