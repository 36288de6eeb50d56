"""The entry hash: BLAKE3-256 over a domain-separated preimage. ``docs/FORMAT.md`` is normative.

::

    preimage = b"nucleus/entry/v1\\x00"
             || u16be(len(ledger_id_utf8)) || ledger_id_utf8
             || u64be(seq)
             || prev_hash (32 raw bytes; 32 zero bytes before the first entry)
             || u64be(len(canonical)) || canonical
    hash     = BLAKE3-256(preimage), lowercase hex
"""

from __future__ import annotations

import re
import struct

from blake3 import blake3

from .errors import ValidationError

FORMAT_TAG = b"nucleus/entry/v1\x00"
"""Format and domain tag at the start of every preimage (version 1)."""

GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of the first entry (seq 1): 32 zero bytes, in hex."""

LEDGER_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
"""Ledger ids: 1-128 ASCII characters of letters, digits, ``_ . : -``; starts with a letter or digit."""

HASH_PATTERN = re.compile(r"[0-9a-f]{64}")

_u64 = struct.Struct(">Q")
_u16 = struct.Struct(">H")
_fromhex = bytes.fromhex


def validate_ledger_id(value: object) -> str:
    """Return ``value`` if it is a valid ledger id, else raise :class:`ValidationError`."""
    if not isinstance(value, str) or LEDGER_ID_PATTERN.fullmatch(value) is None:
        raise ValidationError(
            "a ledger id is 1-128 characters of A-Z, a-z, 0-9, '_', '.', ':', '-' starting with a letter or digit",
            field="id",
        )
    return value


def is_hash(value: object) -> bool:
    """True for a lowercase-hex 64-character hash string."""
    return isinstance(value, str) and HASH_PATTERN.fullmatch(value) is not None


def preimage_prefix(ledger_id: str) -> bytes:
    """The part of the preimage that is the same for every entry of a ledger."""
    raw = ledger_id.encode("utf-8")
    return FORMAT_TAG + _u16.pack(len(raw)) + raw


def entry_hash_with_prefix(prefix: bytes, seq: int, prev_hash: str, canonical: bytes) -> str:
    """Hash of one entry, given :func:`preimage_prefix` of its ledger."""
    return blake3(prefix + _u64.pack(seq) + _fromhex(prev_hash) + _u64.pack(len(canonical)) + canonical).hexdigest()


def preimage_header(prefix: bytes) -> struct.Struct:
    """A struct packing everything before the canonical bytes in one call, for hot loops:
    ``header.pack(prefix, seq, prev_digest, len(canonical)) + canonical`` is the preimage, where
    ``prev_digest`` is the previous entry's 32-byte raw digest (``bytes(32)`` before the first).

    Chaining loops keep the raw digest of each entry (``blake3(...).digest()``) for the next one
    instead of converting hex back to bytes per entry.
    """
    return struct.Struct(f">{len(prefix)}sQ32sQ")


def entry_hash(ledger_id: str, seq: int, prev_hash: str, canonical: bytes) -> str:
    """BLAKE3-256 of the entry preimage as lowercase hex (see ``docs/FORMAT.md``)."""
    return entry_hash_with_prefix(preimage_prefix(ledger_id), seq, prev_hash, canonical)
