"""API key format, keyed hashing and the key record.

A key looks like ``nuk_<key id>_<secret>_<checksum>``:

* ``key id``: 12 base62 characters, public, used to find the stored record;
* ``secret``: 43 base62 characters (256 bits from :mod:`secrets`), shown once at creation;
* ``checksum``: CRC32 of everything before it, 6 base62 characters, so malformed or mistyped keys
  are refused without touching the database and secret scanners can recognise real keys.

Two keyed MACs are stored per key, both HMAC-SHA256 with the pepper (a server-side secret from the
plugin's settings, never in the database):

* ``secret_hash`` over the ledger id, key id and secret, so a database dump cannot confirm a guess;
* ``mac`` over the RFC 8785 encoding of every field that decides what the key may do (ledger id,
  key id, ``secret_hash``, principal, role, scopes, name, creation, expiry, revocation, pepper id).

Someone who can write the database but does not know the pepper cannot change a single field of a
row (or move it to another ledger) without the MAC failing, so an edited row never authenticates.
Rows of the first format (no ``mac``) are refused: their fields cannot be trusted (see the README).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import zlib

import attrs

from nucleus_core.canonical import canonical_json

PREFIX = "nuk_"
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
KEY_ID_LENGTH = 12
SECRET_LENGTH = 43
CHECKSUM_LENGTH = 6
KEY_PATTERN = re.compile(
    rf"nuk_([0-9A-Za-z]{{{KEY_ID_LENGTH}}})_([0-9A-Za-z]{{{SECRET_LENGTH}}})_([0-9A-Za-z]{{{CHECKSUM_LENGTH}}})"
)
KEY_ID_PATTERN = re.compile(rf"[0-9A-Za-z]{{{KEY_ID_LENGTH}}}")
MIN_PEPPER_LENGTH = 32
NOT_CARRIED_OVER = ""
"""The ``secret_hash`` of a row rebuilt from the chain by an import (the secret's hash is never in
the chain): no key matches it, so the row never authenticates (its MAC binds it, as every field)."""
NOT_IMPORTED = "not-imported"
"""The status of such a row (:meth:`ApiKey.status`): the key must be issued again."""


def _base62(value: int, width: int) -> str:
    out = []
    for _ in range(width):
        value, digit = divmod(value, 62)
        out.append(BASE62[digit])
    return "".join(reversed(out))


def checksum(body: str) -> str:
    """The 6-character base62 CRC32 of ``body`` (the key up to and including the last ``_``)."""
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


def random_base62(length: int) -> str:
    """``length`` base62 characters from the operating system's CSPRNG."""
    return "".join(secrets.choice(BASE62) for _ in range(length))


def new_key() -> tuple[str, str, str]:
    """A fresh key: ``(full_key, key_id, secret)``."""
    key_id = random_base62(KEY_ID_LENGTH)
    secret = random_base62(SECRET_LENGTH)
    body = f"{PREFIX}{key_id}_{secret}_"
    return body + checksum(body), key_id, secret


def split_key(key: str) -> tuple[str, str, bool] | None:
    """``(key_id, secret, checksum_ok)`` for a key of the right shape, None otherwise."""
    match = KEY_PATTERN.fullmatch(key)
    if match is None:
        return None
    key_id, secret, check = match.groups()
    ok = hmac.compare_digest(check, checksum(f"{PREFIX}{key_id}_{secret}_"))
    return key_id, secret, ok


def pepper_id(pepper: bytes) -> str:
    """A public 8-hex-character identifier of a pepper, stored with each key to pick the pepper."""
    return hmac.new(pepper, b"nucleus api key pepper id", hashlib.sha256).hexdigest()[:8]


_SECRET_LABEL = b"nucleus api key secret v2\x00"
_ROW_LABEL = b"nucleus api key row v2\x00"


def secret_hash(pepper: bytes, ledger_id: str, key_id: str, secret: str) -> str:
    """The keyed hash of a key's secret (lowercase hex HMAC-SHA256 over ledger id, key id, secret)."""
    message = _SECRET_LABEL + "\x00".join((ledger_id, key_id, secret)).encode("utf-8")
    return hmac.new(pepper, message, hashlib.sha256).hexdigest()


@attrs.frozen(kw_only=True)
class ApiKey:
    """A stored API key: everything except its secret. ``secret_hash`` is the keyed hash (hidden
    from ``repr``); times are Unix seconds; ``expires_at``/``revoked_at`` None when not set."""

    key_id: str
    principal: str
    role: str | None = None
    scopes: tuple[str, ...] = ()
    name: str = ""
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
    secret_hash: str = attrs.field(repr=False)
    pepper_id: str
    mac: str | None = attrs.field(default=None, repr=False)
    """The row MAC (:func:`row_mac`); None for a row of the first format, which never authenticates."""

    def sealed(self, pepper: bytes, ledger_id: str) -> ApiKey:
        """This record with its :attr:`mac` computed for ``ledger_id`` with ``pepper``."""
        return attrs.evolve(self, mac=row_mac(pepper, ledger_id, self))

    def mac_matches(self, pepper: bytes, ledger_id: str) -> bool:
        """True when :attr:`mac` is this record's MAC for ``ledger_id`` (constant-time comparison)."""
        return self.mac is not None and hmac.compare_digest(self.mac, row_mac(pepper, ledger_id, self))

    def status(self, now: float) -> str:
        """``legacy`` (first format, never authenticates), ``revoked``, ``not-imported`` (rebuilt
        from the chain by an import without its secret: never authenticates, issue it again),
        ``expired`` or ``active`` at time ``now``."""
        if self.mac is None:
            return "legacy"
        if self.revoked_at is not None:
            return "revoked"
        if self.secret_hash == NOT_CARRIED_OVER:
            return NOT_IMPORTED
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"

    def public_dict(self, now: float) -> dict[str, object]:
        """A JSON-ready view without the hash (for ``nucleus keys list --json``)."""
        return {
            "key_id": self.key_id,
            "principal": self.principal,
            "role": self.role,
            "scopes": list(self.scopes),
            "name": self.name,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "status": self.status(now),
        }


def authorizing_fields(key: ApiKey) -> dict[str, object]:
    """The fields of ``key`` that its MAC binds and the ``_api_keys`` stream records (no secret hash)."""
    return {
        "key_id": key.key_id,
        "principal": key.principal,
        "role": key.role,
        "scopes": list(key.scopes),
        "name": key.name,
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "pepper_id": key.pepper_id,
    }


def row_mac(pepper: bytes, ledger_id: str, key: ApiKey) -> str:
    """The MAC of a stored key row: HMAC-SHA256 with the pepper over the RFC 8785 encoding of the
    ledger id, the secret's keyed hash and :func:`authorizing_fields` (lowercase hex)."""
    document = {"ledger_id": ledger_id, "secret_hash": key.secret_hash, **authorizing_fields(key)}
    return hmac.new(pepper, _ROW_LABEL + canonical_json(document, field="api key"), hashlib.sha256).hexdigest()
