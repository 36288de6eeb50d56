"""API key format, keyed hashing and the key record.

A key looks like ``nuk_<key id>_<secret>_<checksum>``:

* ``key id``: 12 base62 characters, public, used to find the stored record;
* ``secret``: 43 base62 characters (256 bits from :mod:`secrets`), shown once at creation;
* ``checksum``: CRC32 of everything before it, 6 base62 characters, so malformed or mistyped keys
  are refused without touching the database and secret scanners can recognise real keys.

Only ``HMAC-SHA256(pepper, key_id ":" secret)`` is stored. The pepper is a server-side secret from
the plugin's settings, never in the database, so a database dump alone cannot confirm a guess.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import zlib

import attrs

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


def secret_hash(pepper: bytes, key_id: str, secret: str) -> str:
    """The keyed hash stored for a key (lowercase hex HMAC-SHA256)."""
    return hmac.new(pepper, f"{key_id}:{secret}".encode("ascii"), hashlib.sha256).hexdigest()


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

    def status(self, now: float) -> str:
        """``active``, ``revoked`` or ``expired`` at time ``now``."""
        if self.revoked_at is not None:
            return "revoked"
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
