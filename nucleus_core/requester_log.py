"""How a principal's OID may appear in a log line: one rule for the core and every plugin.

A log line that names a principal (the requester of an operation, the principal an API key
authenticates as) writes :func:`loggable_oid` of its OID, never the OID itself. What that gives is
the process's policy (:func:`set_requester_policy`), which ``nucleus serve`` sets from
``[server] log_requester`` (``docs/OPERATIONS.md``, "Logs"):

- ``"none"`` (the default, in every process that sets nothing: the ``nucleus`` command, an
  application embedding the ledger): no trace of the principal, the line says ``(oid not logged)``;
- ``"hash"``: ``oid-hmac:`` and the HMAC-SHA256 of the OID under the operator's key, in hex
  (:func:`requester_hash`: the same value as the access log's ``requester`` field), so the lines
  of one principal can be correlated without naming it.
"""

from __future__ import annotations

import hashlib
import hmac

from .errors import ConfigurationError

__all__ = [
    "MIN_REQUESTER_KEY_BYTES",
    "NOT_LOGGED",
    "REQUESTER_POLICIES",
    "loggable_oid",
    "requester_hash",
    "requester_policy",
    "set_requester_policy",
]

REQUESTER_POLICIES = ("none", "hash")
"""The values of ``[server] log_requester``."""
MIN_REQUESTER_KEY_BYTES = 32
"""Shortest key of the ``hash`` policy."""
NOT_LOGGED = "(oid not logged)"
"""What :func:`loggable_oid` writes under the ``none`` policy."""
HASH_PREFIX = "oid-hmac:"

_policy: tuple[str, bytes | None] = ("none", None)


def requester_hash(oid: str, key: bytes) -> str:
    """The keyed hash of ``oid`` under the ``hash`` policy: HMAC-SHA256 under the operator's key, in
    hex. Keyed because OIDs are guessable (``oid:acme:user:alice``): a plain SHA-256 would be
    reversed by hashing a list of user names; with the key, whoever reads the logs can correlate a
    principal's lines but not name it, and whoever holds the key can compute the value of a given
    OID to search for it."""
    return hmac.new(key, oid.encode("utf-8"), hashlib.sha256).hexdigest()


def set_requester_policy(policy: str, key: bytes | None = None) -> None:
    """Make ``policy`` (``"none"`` or ``"hash"``, the latter with ``key`` of at least
    :data:`MIN_REQUESTER_KEY_BYTES` bytes) the process's rule for OIDs in log lines."""
    if policy not in REQUESTER_POLICIES:
        raise ConfigurationError(f"log_requester must be one of {', '.join(REQUESTER_POLICIES)}, got {policy!r}")
    if policy == "hash":
        if not isinstance(key, bytes) or len(key) < MIN_REQUESTER_KEY_BYTES:
            raise ConfigurationError(f'log_requester = "hash" needs a key of at least {MIN_REQUESTER_KEY_BYTES} bytes')
    elif key is not None:
        raise ConfigurationError('a requester key goes with log_requester = "hash" only')
    global _policy
    _policy = (policy, key)


def requester_policy() -> str:
    """The process's policy: ``"none"`` or ``"hash"``."""
    return _policy[0]


def loggable_oid(oid: str | None) -> str:
    """``oid`` as a log line may write it under the process's policy: ``oid-hmac:<hex>`` (``hash``)
    or :data:`NOT_LOGGED` (``none``, and for no OID at all)."""
    policy, key = _policy
    if oid is None or key is None or policy != "hash":
        return NOT_LOGGED
    return HASH_PREFIX + requester_hash(oid, key)
