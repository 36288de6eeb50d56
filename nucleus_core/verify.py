"""Streaming verification of a stored chain, in constant memory."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

import attrs
from blake3 import blake3

from .canonical import encode_string as _encode_string
from .hashing import GENESIS_HASH, preimage_header, preimage_prefix
from .storage import EntryRow, StoredEntry, _as_row


@attrs.frozen(kw_only=True)
class VerificationReport:
    """The outcome of verifying a chain.

    ``ok``: everything checked out. ``entries_checked``: entries that verified before the first
    problem (all of them when ok). ``first_bad_seq`` / ``reason``: where and what the first problem
    is (None when ok). ``head_hash``: hash of the last good entry (None for an empty ledger).
    """

    ok: bool
    entries_checked: int
    first_bad_seq: int | None = None
    reason: str | None = None
    head_hash: str | None = None

    def to_dict(self) -> dict[str, object]:
        return attrs.asdict(self)


def verify_entries(
    ledger_id: str,
    rows: Iterable[StoredEntry],
    *,
    expected_count: int | None = None,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 10000,
) -> VerificationReport:
    """Check seq continuity, hash links, every hash, and that the derived columns match the bytes
    (the checks ``docs/FORMAT.md`` lists).

    ``rows`` must come in seq order. ``expected_count``, when given, is the count storage reported
    before the rows were read; entries it claims but the stream lacks are reported as missing. The
    stream may hold more (other processes may append while a ledger verifies; history only grows).
    """
    return verify_rows(
        ledger_id, map(_as_row, rows), expected_count=expected_count, progress=progress, progress_every=progress_every
    )


def verify_rows(
    ledger_id: str,
    rows: Iterable[EntryRow],
    *,
    expected_count: int | None = None,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 10000,
) -> VerificationReport:
    """:func:`verify_entries` over plain tuples in :data:`~nucleus_core.storage.ENTRY_FIELDS` order
    (as :func:`~nucleus_core.storage.entry_rows` yields them); ``canonical`` may be any bytes-like
    object. The same checks, without an object per row.
    """
    # The per-entry work of opening a ledger: written for speed at a lower level than the rest of
    # the core. Each entry is one tuple unpack, one struct pack plus one BLAKE3 call (the previous
    # entry's raw digest is kept for the next preimage instead of decoding prev_hash from hex),
    # and two string comparisons for the derived columns. Every check of the straightforward
    # version stays; see the comments below for why each shortcut is exact.
    prefix = preimage_prefix(ledger_id)
    pack = preimage_header(prefix).pack
    prev = GENESIS_HASH
    prev_digest = bytes(32)
    expected = 1
    head: str | None = None
    encode = _encode_string
    suffixes: dict[str, str] = {}
    every = progress_every if progress is not None else 0

    def bad(seq: int, reason: str) -> VerificationReport:
        return VerificationReport(
            ok=False, entries_checked=seq - 1, first_bad_seq=seq, reason=reason, head_hash=head
        )

    for seq, entry_hash, prev_hash, record_id, stream, ts, canonical in rows:
        if seq != expected:
            if seq > expected:
                return bad(expected, f"entry {expected} is missing (next stored entry is {seq})")
            return bad(seq, f"entry {seq} appears again or out of order after entry {expected - 1}")
        if prev_hash != prev:
            return bad(seq, f"prev_hash does not link to entry {seq - 1}")
        if type(canonical) is not bytes:
            try:
                canonical = bytes(canonical)
            except TypeError:
                return bad(seq, "stored bytes are not a record")
        # prev_digest is the raw digest whose hex is prev (== prev_hash, checked above), so this is
        # exactly the preimage of docs/FORMAT.md; seq == expected >= 1 here, so it packs.
        digest = blake3(pack(prefix, seq, prev_digest, len(canonical)) + canonical).digest()
        if digest.hex() != entry_hash:
            return bad(seq, "hash mismatch: the stored bytes or position of this entry changed")
        # Derived columns. Canonical record bytes start with {"id":<id>, and end with
        # ,"stream":<stream>,"timestamp":<ts>} (keys sorted), so a prefix and suffix comparison
        # settles the common case; anything else is decided by parsing. The comparison runs on the
        # decoded text: UTF-8 (with surrogatepass both ways) maps whole characters to whole byte
        # sequences one to one, so the text has the prefix/suffix exactly when the bytes have
        # their encoding; bytes that do not decode go to the parse. The stream part of the
        # suffix repeats, so it is kept per stream (bounded, so memory stays constant).
        suffix = suffixes.get(stream)
        if suffix is None:
            if len(suffixes) >= _SUFFIX_CACHE:
                suffixes.clear()
            suffix = suffixes[stream] = ',"stream":' + encode(stream) + ',"timestamp":' if type(stream) is str else ""
        try:
            text = canonical.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            text = ""
        if not (
            type(ts) is int
            and suffix
            and type(record_id) is str
            and text.startswith('{"id":' + encode(record_id) + ",")
            and text.endswith(suffix + str(ts) + "}")
        ):
            reason = _column_mismatch(canonical, record_id, stream, ts)
            if reason is not None:
                return bad(seq, reason)
        prev = head = entry_hash
        prev_digest = digest
        expected += 1
        if every and seq % every == 0 and progress is not None:
            progress(seq)
    if expected_count is not None and expected_count > expected - 1:
        return bad(expected, f"storage counts {expected_count} entries but the chain has {expected - 1}")
    return VerificationReport(ok=True, entries_checked=expected - 1, head_hash=head)


_SUFFIX_CACHE = 4096
"""Most distinct streams whose suffix text :func:`verify_rows` keeps at once."""


def _column_mismatch(canonical: bytes, record_id: object, stream: object, timestamp: object) -> str | None:
    """Compare the derived columns with the values parsed from the bytes; None when they match."""
    try:
        doc = json.loads(canonical)
        if doc["id"] != record_id:
            return "record id column does not match the stored bytes"
        if doc["stream"] != stream:
            return "stream column does not match the stored bytes"
        if type(doc["timestamp"]) is not int or type(timestamp) is not int or doc["timestamp"] != timestamp:
            return "timestamp column does not match the stored bytes"
    except (ValueError, KeyError, TypeError):
        return "stored bytes are not a record"
    return None
