"""The entry hash: BLAKE3-256 over a domain-separated preimage. ``docs/FORMAT.md`` is normative.

::

    version 1 (entries written before the appender was bound; still verified):
    preimage = b"nucleus/entry/v1\\x00"
             || u16be(len(ledger_id_utf8)) || ledger_id_utf8
             || u64be(seq)
             || prev_hash (32 raw bytes; 32 zero bytes before the first entry)
             || u64be(len(canonical)) || canonical

    version 2 (what the ledger writes):
    preimage = b"nucleus/entry/v2\\x00"
             || u16be(len(ledger_id_utf8)) || ledger_id_utf8
             || u64be(seq)
             || prev_hash (32 raw bytes)
             || u64be(committed_at)                        ms since the Unix epoch, ledger-assigned
             || u16be(len(appender_utf8)) || appender_utf8  the appending principal's OID
             || u16be(len(auth_source_utf8)) || auth_source_utf8
             || u64be(len(canonical)) || canonical

    hash     = BLAKE3-256(preimage), lowercase hex
"""

from __future__ import annotations

import re
import struct
from typing import TYPE_CHECKING

from blake3 import blake3

from .errors import ValidationError

if TYPE_CHECKING:
    from .records import Entry

FORMAT_TAG = b"nucleus/entry/v1\x00"
"""Format and domain tag at the start of every version-1 preimage."""

FORMAT_TAG_V2 = b"nucleus/entry/v2\x00"
"""Format and domain tag at the start of every version-2 preimage (the appender bound in)."""

FORMAT_VERSION = 2
"""The entry format version the ledger writes."""

FORMAT_TAGS = {1: FORMAT_TAG, 2: FORMAT_TAG_V2}
"""The tag of each entry format version a ledger may hold (versions never decrease along a chain)."""

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


def preimage_prefix(ledger_id: str, version: int = 1) -> bytes:
    """The part of the preimage that is the same for every entry of a ledger in format ``version``."""
    raw = ledger_id.encode("utf-8")
    return FORMAT_TAGS[version] + _u16.pack(len(raw)) + raw


def appender_block(committed_at: int, appender: str, auth_source: str) -> bytes:
    """The version-2 fields between ``prev_hash`` and the canonical bytes' length:
    ``u64be(committed_at) || u16be(len) || appender || u16be(len) || auth_source`` (UTF-8). The
    same for every entry of one write transaction, so the ledger packs it once per batch."""
    app = appender.encode("utf-8")
    src = auth_source.encode("utf-8")
    return _u64.pack(committed_at) + _u16.pack(len(app)) + app + _u16.pack(len(src)) + src


def preimage_header_v2(prefix: bytes, block: bytes) -> struct.Struct:
    """:func:`preimage_header` for version 2: ``header.pack(prefix, seq, prev_digest, block,
    len(canonical)) + canonical`` is the preimage, ``prefix`` from ``preimage_prefix(ledger_id, 2)``
    and ``block`` from :func:`appender_block`."""
    return struct.Struct(f">{len(prefix)}sQ32s{len(block)}sQ")


def entry_hash_v2(
    ledger_id: str, seq: int, prev_hash: str, canonical: bytes, *, committed_at: int, appender: str, auth_source: str
) -> str:
    """BLAKE3-256 of a version-2 entry preimage as lowercase hex (see ``docs/FORMAT.md``)."""
    return blake3(
        preimage_prefix(ledger_id, 2)
        + _u64.pack(seq)
        + _fromhex(prev_hash)
        + appender_block(committed_at, appender, auth_source)
        + _u64.pack(len(canonical))
        + canonical
    ).hexdigest()


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
    """BLAKE3-256 of a version-1 entry preimage as lowercase hex (see ``docs/FORMAT.md``)."""
    return entry_hash_with_prefix(preimage_prefix(ledger_id), seq, prev_hash, canonical)


def entry_hash_of_version(
    ledger_id: str,
    seq: int,
    prev_hash: str,
    canonical: bytes,
    version: int = 1,
    appender: str | None = None,
    auth_source: str | None = None,
    committed_at: int | None = None,
) -> str:
    """The hash of an entry from its stored columns, in its format ``version``: :func:`entry_hash`
    for version 1, :func:`entry_hash_v2` over the appender columns for version 2."""
    if version == 1:
        return entry_hash(ledger_id, seq, prev_hash, canonical)
    if version == 2 and committed_at is not None and appender is not None and auth_source is not None:
        return entry_hash_v2(
            ledger_id, seq, prev_hash, canonical, committed_at=committed_at, appender=appender, auth_source=auth_source
        )
    raise ValidationError(f"entry {seq}: format version {version!r} without its fields", field="version")


def stored_entry_hash(ledger_id: str, entry: Entry) -> str:
    """The hash ``entry`` must have (:func:`entry_hash_of_version` over its fields)."""
    return entry_hash_of_version(
        ledger_id, entry.seq, entry.prev_hash, entry.canonical,
        entry.version, entry.appender, entry.auth_source, entry.committed_at,
    )
