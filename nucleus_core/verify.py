"""Streaming verification of a stored chain, in constant memory."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

import attrs

from .canonical import encode_string as _encode_string
from .hashing import GENESIS_HASH, entry_hash_with_prefix, preimage_prefix
from .storage import StoredEntry


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
    prefix = preimage_prefix(ledger_id)
    prev = GENESIS_HASH
    expected = 1
    head: str | None = None
    hash_entry = entry_hash_with_prefix
    quote = _quote

    def bad(seq: int, reason: str) -> VerificationReport:
        return VerificationReport(
            ok=False, entries_checked=seq - 1, first_bad_seq=seq, reason=reason, head_hash=head
        )

    for row in rows:
        seq = row.seq
        if seq != expected:
            if seq > expected:
                return bad(expected, f"entry {expected} is missing (next stored entry is {seq})")
            return bad(seq, f"entry {seq} appears again or out of order after entry {expected - 1}")
        if row.prev_hash != prev:
            return bad(seq, f"prev_hash does not link to entry {seq - 1}")
        canonical = row.canonical
        if hash_entry(prefix, seq, prev, canonical) != row.hash:
            return bad(seq, "hash mismatch: the stored bytes or position of this entry changed")
        # Derived columns. Canonical record bytes start with {"id":<id>, and end with
        # ,"stream":<stream>,"timestamp":<ts>} (keys sorted), so a prefix and suffix comparison
        # settles the common case; anything else is decided by parsing.
        ts = row.timestamp
        if not (
            type(ts) is int
            and canonical.startswith(b'{"id":' + quote(row.record_id) + b",")
            and canonical.endswith(b',"stream":' + quote(row.stream) + b',"timestamp":' + str(ts).encode() + b"}")
        ):
            reason = _column_mismatch(row)
            if reason is not None:
                return bad(seq, reason)
        prev = head = row.hash
        expected += 1
        if progress is not None and seq % progress_every == 0:
            progress(seq)
    if expected_count is not None and expected_count > expected - 1:
        return bad(expected, f"storage counts {expected_count} entries but the chain has {expected - 1}")
    return VerificationReport(ok=True, entries_checked=expected - 1, head_hash=head)


def _quote(value: str) -> bytes:
    return _encode_string(value).encode("utf-8", "surrogatepass")


def _column_mismatch(row: StoredEntry) -> str | None:
    """Compare the derived columns with the values parsed from the bytes; None when they match."""
    try:
        doc = json.loads(row.canonical)
        if doc["id"] != row.record_id:
            return "record id column does not match the stored bytes"
        if doc["stream"] != row.stream:
            return "stream column does not match the stored bytes"
        if type(doc["timestamp"]) is not int or type(row.timestamp) is not int or doc["timestamp"] != row.timestamp:
            return "timestamp column does not match the stored bytes"
    except (ValueError, KeyError, TypeError):
        return "stored bytes are not a record"
    return None
