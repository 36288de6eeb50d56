"""Nucleus UAL: grant-based access control enforced on every ledger read and write."""

from __future__ import annotations

from .model import WILDCARD, Grant, Resource, Scope
from .plugin import UalPlugin
from .store import GrantStore, MemoryGrantStore
from .ual import ACL_STREAM, ListResult, UnifiedAccessLayer, build_ual, system_clock

__all__ = [
    "ACL_STREAM",
    "WILDCARD",
    "Grant",
    "GrantStore",
    "ListResult",
    "MemoryGrantStore",
    "Resource",
    "Scope",
    "UalPlugin",
    "UnifiedAccessLayer",
    "build_ual",
    "system_clock",
]
