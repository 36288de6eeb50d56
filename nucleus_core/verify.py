"""Streaming verification of a stored chain, in constant memory."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, cast

import attrs
import orjson
from blake3 import blake3

from .canonical import _ASTRAL_UTF8, DEFAULT_MAX_DEPTH
from .hashing import GENESIS_HASH, appender_block, preimage_header, preimage_header_v2, preimage_prefix
from .records import (
    MAX_RECORD_ID_LENGTH,
    STREAM_PATTERN,
    SYSTEM_STREAM_PATTERN,
    Entry,
    EntryRow,
    appender_problem,
    entry_row,
    parse_stored_record,
    stored_bytes,
)


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


ChainState = tuple[int, "int | None"]
"""``(version, committed_at)`` of an entry, as the next one is checked against it (``(1, None)``
before the first entry and after a version-1 entry)."""

START_STATE: ChainState = (1, None)


def verify_entries(
    ledger_id: str,
    rows: Iterable[Entry],
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
        ledger_id, map(entry_row, rows), expected_count=expected_count, progress=progress, progress_every=progress_every
    )


def verify_rows(
    ledger_id: str,
    rows: Iterable[EntryRow],
    *,
    expected_count: int | None = None,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 10000,
    first_seq: int = 1,
    start_hash: str = GENESIS_HASH,
    start_state: ChainState = START_STATE,
) -> VerificationReport:
    """:func:`verify_entries` over plain tuples in :data:`~nucleus_core.records.ENTRY_FIELDS` order
    (as :func:`~nucleus_core.storage.entry_rows` yields them); ``canonical`` may be any bytes-like
    object. The same checks, without an object per row.

    ``first_seq`` / ``start_hash``: start the chain there instead of at entry 1 after the genesis
    hash (``start_hash`` is the hash of entry ``first_seq - 1``, lowercase hex), to verify a part
    of the chain (:mod:`nucleus_core.verify_parallel`); reports then name seqs and counts of the
    whole chain, as if entries before ``first_seq`` had been checked. ``start_state``: the
    ``(version, committed_at)`` of entry ``first_seq - 1``, which the first entry may not go back from.

    Version-1 and version-2 entries are both checked (``docs/FORMAT.md`` section 5): for version 2
    the appender columns must be well formed and hashed with the rest, versions and
    ``committed_at`` never decrease along the chain.
    """
    # The per-entry work of opening a ledger: written for speed at a lower level than the rest of
    # the core. Each entry is one tuple unpack, one struct pack plus one BLAKE3 call (the previous
    # entry's raw digest is kept for the next preimage instead of decoding prev_hash from hex),
    # then the strict parse of the stored bytes (see _fast_record) and three comparisons for the
    # derived columns. Every check of the straightforward version stays; see the comments below
    # for why each shortcut is exact.
    prefix = preimage_prefix(ledger_id)
    pack = preimage_header(prefix).pack
    prefix_v2 = preimage_prefix(ledger_id, 2)
    # The version-2 header of the last appender seen (one write transaction's entries share it):
    # its checked columns, its packed block and the struct packing it.
    # (kept as three names: comparing them costs less than building a tuple per entry)
    key_committed: int | None = None
    key_appender: str | None = None
    key_source: str | None = None
    block = b""
    pack_v2 = pack
    prev = start_hash
    prev_digest = bytes.fromhex(start_hash)
    if len(prev_digest) != 32 or prev_digest.hex() != start_hash:
        raise ValueError("start_hash must be 64 lowercase hex digits")
    last_version, last_committed = start_state
    expected = first_seq
    head: str | None = None
    streams: dict[str, int] = {}  # valid stream names seen -> their count of "-" (see _fast_record)
    fast = _FAST
    every = progress_every if progress is not None else 0

    def bad(seq: int, reason: str) -> VerificationReport:
        return VerificationReport(
            ok=False, entries_checked=seq - 1, first_bad_seq=seq, reason=reason, head_hash=head
        )

    for seq, entry_hash, prev_hash, record_id, stream, ts, version, appender, source, committed, canonical in rows:
        if seq != expected:
            if seq > expected:
                return bad(expected, f"entry {expected} is missing (next stored entry is {seq})")
            return bad(seq, f"entry {seq} appears again or out of order after entry {expected - 1}")
        if prev_hash != prev:
            return bad(seq, f"prev_hash does not link to entry {seq - 1}")
        if version == 2 and type(version) is int:
            if (
                type(committed) is not int
                or committed != key_committed
                or appender != key_appender
                or source != key_source
            ):
                why = appender_problem(committed, appender, source)
                if why is None:
                    why = transition_problem(seq, (last_version, last_committed), (2, committed))
                if why is not None:
                    return bad(seq, why)
                key_committed, key_appender, key_source = (  # checked just now
                    cast(int, committed), cast(str, appender), cast(str, source)
                )
                block = appender_block(key_committed, key_appender, key_source)
                pack_v2 = preimage_header_v2(prefix_v2, block).pack
                last_version, last_committed = 2, committed
        elif version == 1 and type(version) is int:
            if last_version != 1:
                return bad(seq, transition_problem(seq, (last_version, last_committed), (1, None)) or "")
            if appender is not None or source is not None or committed is not None:
                return bad(seq, "a version-1 entry holds appender columns (they are part of version-2 entries only)")
        else:
            return bad(seq, f"unknown entry format version {version!r} (this code knows versions 1 and 2)")
        if type(canonical) is not bytes:
            raw, why = stored_bytes(canonical)
            if raw is None:
                return bad(seq, why)
            canonical = raw
        # prev_digest is the raw digest whose hex is prev (== prev_hash, checked above), so this is
        # exactly the preimage of docs/FORMAT.md; seq == expected >= 1 here, so it packs.
        if last_version == 1:
            digest = blake3(pack(prefix, seq, prev_digest, len(canonical)) + canonical).digest()
            if digest.hex() != entry_hash:
                return bad(seq, "hash mismatch: the stored bytes or position of this entry changed")
        else:
            digest = blake3(pack_v2(prefix_v2, seq, prev_digest, block, len(canonical)) + canonical).digest()
            if digest.hex() != entry_hash:
                return bad(seq, "hash mismatch: the stored bytes or position of this entry changed")
        # The stored bytes must be a canonical record (FORMAT.md section 5), whatever the hashes say.
        doc = fast(canonical, streams)
        if doc is None:
            record, why = parse_stored_record(canonical)  # the reference parse: decides, and says why
            if record is None:
                return bad(seq, why)
            doc = record.to_dict()
        # Derived columns.
        if doc["id"] != record_id:
            return bad(seq, "record id column does not match the stored bytes")
        if doc["stream"] != stream:
            return bad(seq, "stream column does not match the stored bytes")
        if type(ts) is not int or doc["timestamp"] != ts:
            return bad(seq, "timestamp column does not match the stored bytes")
        prev = head = entry_hash
        prev_digest = digest
        expected += 1
        if every and seq % every == 0 and progress is not None:
            progress(seq)
    if expected_count is not None and expected_count > expected - 1:
        return bad(expected, f"storage counts {expected_count} entries but the chain has {expected - 1}")
    return VerificationReport(ok=True, entries_checked=expected - 1, head_hash=head)


def transition_problem(seq: int, before: ChainState, state: ChainState) -> str | None:
    """Why an entry with ``state`` may not follow one with ``before`` (None when it may): format
    versions never decrease along a chain, nor does ``committed_at``."""
    version, committed = state
    if version < before[0]:
        return f"a version-{version} entry after a version-{before[0]} entry (format versions never decrease)"
    if before[1] is not None and committed is not None and committed < before[1]:
        return f"committed_at {committed} is earlier than entry {seq - 1}'s ({before[1]}); it never decreases"
    return None


_STREAM_CACHE = 4096
"""Most distinct valid stream names :func:`verify_rows` remembers at once (memory stays constant)."""


_loads = orjson.loads
_dumps = orjson.dumps
_SORTED_53 = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER
_MAX_CONTAINERS = DEFAULT_MAX_DEPTH + 1  # the record object plus payload's 64 levels
_DIGITS = bytes.maketrans(b"0123456789", b"0000000000")
_PLAIN = bytes(b for b in range(0x80) if b not in b"{[.+-\\")
"""The ASCII bytes none of the screens of :func:`_fast_record` looks for: deleting them from a
record's bytes (one C pass) leaves the few bytes the screens need, in order."""
_ESCAPE_NOT_JCS = re.compile(rb'\\(?!["\\bfnrt]|u00(?:0[0-7bef]|1[0-9a-f]))')
"""A backslash that does not start one of the escapes RFC 8785 writes (``\\u0041``, ``\\/``, ``\\u00E9``...)."""


def orjson_writes_as_assumed(dumps: Callable[..., bytes] = orjson.dumps) -> bool:
    """True when ``dumps`` (orjson's) writes numbers and keys the way :func:`_fast_record` relies on:
    every float with a digit then ``.`` or a signed exponent (orjson before 3.12 wrote ``1e16``),
    integers plainly, sorted keys compactly. Checked once at import; when it is false, verification
    parses every entry with the reference parse (slower, equally strict)."""
    samples: list[tuple[object, bytes]] = [
        (1e16, b"1e+16"),
        (2e22, b"2e+22"),
        (1e-7, b"1e-7"),
        (1.0, b"1.0"),
        (0.5, b"0.5"),
        (-1.5e300, b"-1.5e+300"),
        (9007199254740991, b"9007199254740991"),
        ({"b": 1, "a": [True, None]}, b'{"a":[true,null],"b":1}'),
    ]
    try:
        return all(dumps(value, option=_SORTED_53) == expected for value, expected in samples)
    except (TypeError, ValueError):
        return False


def _reference_only(_canonical: bytes, _streams: dict[str, int]) -> dict[str, Any] | None:
    """The shortcut when orjson does not write as assumed: it vouches for nothing."""
    return None


def _may_hold_float(canonical: bytes) -> bool:
    """True when orjson's encoding ``canonical`` may hold a float: orjson writes every float with a
    digit followed by ``.`` or by ``e+`` / ``e-`` (strings can hold these too; then the reference
    parse decides)."""
    digits = canonical.translate(_DIGITS)
    return b"0." in digits or b"0e-" in digits or b"0e+" in digits


def _fast_record(canonical: bytes, streams: dict[str, int]) -> dict[str, Any] | None:
    """The record object of ``canonical`` when the bytes are certainly a canonical record; None when
    they are not, or when this shortcut cannot tell: then :func:`parse_stored_record` decides.

    Exact, by these steps (each assumption about orjson is pinned by ``tests/core/test_verify_rows.py``):
    orjson parses only UTF-8 JSON (no byte order mark, no UTF-16/32, no NaN, no lone surrogates,
    no raw control characters), and re-encoding the value with sorted keys and integers limited to
    +/-(2**53-1) gives the same bytes. That equality rules out whitespace, repeated keys (the
    re-encoding has each key once), unsorted keys (orjson sorts by code point, which is RFC 8785's
    UTF-16 order when no key leaves the BMP: bytes F0-F4 send the record to the reference parse),
    other integer forms (``-0``, larger integers) and every escape RFC 8785 does not write (checked
    by a pattern, not left to orjson). Floats are the one thing orjson writes its own way, so bytes
    that may hold one (a digit then ``.`` or ``e+``/``e-``, inside strings too) go to the
    reference parse, as do deeper nesting than allowed and records outside FORMAT.md section 2's
    common case.
    """
    try:
        doc = _loads(canonical)
        if _dumps(doc, option=_SORTED_53) != canonical:
            return None
    except (ValueError, TypeError, RecursionError):
        return None
    if type(doc) is not dict:
        return None
    size = len(doc)
    if not (size == 4 or (size == 5 and type(doc.get("meta")) is dict)):
        return None
    rid = doc.get("id")
    if not (
        type(rid) is str
        and rid.isascii()
        and rid.isprintable()
        and 0 < len(rid) <= MAX_RECORD_ID_LENGTH
        and rid[0] != " "
        and rid[-1] != " "
    ):
        return None  # ids outside printable ASCII: checked in full by the reference parse
    stream = doc.get("stream")
    if type(stream) is not str:
        return None
    hyphens = streams.get(stream)
    if hyphens is None:
        if STREAM_PATTERN.fullmatch(stream) is None and SYSTEM_STREAM_PATTERN.fullmatch(stream) is None:
            return None
        if len(streams) >= _STREAM_CACHE:
            streams.clear()
        hyphens = streams[stream] = stream.count("-")
    # ts <= MAX_SAFE_INTEGER holds already: OPT_STRICT_INTEGER refused larger integers above.
    ts = doc.get("timestamp")
    if type(ts) is not int or ts <= 0 or type(doc.get("payload")) not in (dict, list):
        return None
    # The byte screens run on ``rest``: the bytes with every plain ASCII byte deleted, so it holds
    # exactly the bytes { [ . + - \ and every byte >= 0x80 of ``canonical``, in order (usually a
    # few bytes): one C pass instead of one per screen. A screen that finds nothing in ``rest``
    # would find nothing in ``canonical``; one that needs the context of a byte (a float's digit,
    # an escape's letters) looks at ``canonical`` again only when ``rest`` holds that byte.
    # Membership tests take the byte as an int: ``0x2E in rest`` is a memchr, ``b"." in rest`` a
    # generic substring search that costs ten times more.
    rest = canonical.translate(None, _PLAIN)
    if 0x2D in rest and rest.count(0x2D) != hyphens + rid.count("-"):
        # Some "-" lies outside the id and stream strings (orjson writes "-" unescaped, and both
        # strings appear once in the bytes): only then can it be a float's "e-".
        hyphens = -1
    if (
        (0x2E in rest or 0x2B in rest or (hyphens < 0 and b"e-" in canonical)) and _may_hold_float(canonical)
    ) or (
        len(rest) > _MAX_CONTAINERS and rest.count(0x7B) + rest.count(0x5B) > _MAX_CONTAINERS
    ) or not (
        rest.isascii() or _ASTRAL_UTF8.search(rest) is None
    ) or (
        0x5C in rest and _ESCAPE_NOT_JCS.search(canonical) is not None
    ):
        return None
    return doc


_FAST = _fast_record if orjson_writes_as_assumed() else _reference_only
"""The shortcut :func:`verify_rows` uses (see :func:`orjson_writes_as_assumed`)."""
