"""Identity-provider JWTs for Nucleus ledgers, verified against a JWKS URL or configured keys."""

from __future__ import annotations

from .jwks import JwksCache
from .parser import ConnectParser

__all__ = ["ConnectParser", "JwksCache"]
