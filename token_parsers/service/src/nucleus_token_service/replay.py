"""A bounded in-memory record of used token ids (``jti``), each kept until its token expires."""

from __future__ import annotations

import heapq
import threading

from nucleus_core.errors import TokenInvalidError


class ReplayCache:
    """Remembers ``(issuer, jti)`` pairs until their token's expiry; a second use is refused.

    Memory is per parser instance, so per ledger and per process: in a deployment where several
    processes serve one ledger, a token could be replayed once against each process within its
    (short) lifetime. Such deployments should route each service to one process, keep lifetimes
    short, or make the callers' requests idempotent.
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
                raise TokenInvalidError("token was already used (replay)")
            if len(self._seen) >= self._max:
                raise TokenInvalidError("too many unexpired service tokens in use; refusing (replay cache full)")
            self._seen[key] = expires_at
            heapq.heappush(self._expiry, (expires_at, key))

    def _drop_expired(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] < now:
            _, key = heapq.heappop(self._expiry)
            self._seen.pop(key, None)
