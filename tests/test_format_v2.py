"""docs/FORMAT.md, entry format version 2 (the appender bound into the hash): the vectors in
``tests/data/format_vectors_v2.json`` are what the ledger writes, and an independent verifier
written only from FORMAT.md sections 3 and 5 (struct + blake3, no nucleus_core) recomputes them.

Regenerate the file (only when the format changes, which is a new format version) with
``python tests/test_format_v2.py``.
"""

from __future__ import annotations

import json
import re
import struct
import sys
from pathlib import Path
from typing import Any

import pytest
from blake3 import blake3

from nucleus_core import MemoryStorage, Record, RequestContext, create_ledger
from nucleus_core.hashing import FORMAT_TAG_V2, stored_entry_hash
from nucleus_core.verify import verify_entries

ROOT = Path(__file__).parent.parent
VECTORS_PATH = Path(__file__).parent / "data" / "format_vectors_v2.json"
LEDGER_ID = "vectors-v2"
ALICE = RequestContext(oid="oid:acme:user:alice", source="auth.session")
BOB = RequestContext(oid="oid:acme:service:billing-api", source="auth.api_key")
OID = re.compile(r"oid:[a-z0-9][a-z0-9_-]{0,63}:[a-z0-9][a-z0-9_-]{0,63}:[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")
SOURCE = re.compile(r"[a-z][a-z0-9_.-]{0,63}")


class _Clock:
    """Stands in for the ``time`` module inside ``nucleus_core.ledger``: a clock the test sets."""

    def __init__(self) -> None:
        self.ms = 0

    def time_ns(self) -> int:
        return self.ms * 1_000_000


def build_vectors(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Write the vector ledger with the code: two version-1 entries (a ledger from before format 2),
    then, upgraded in place, a batch of two by Alice, one by Bob whose clock reads earlier than the
    previous commit (it gets the previous commit time), and one by Alice later."""
    import nucleus_core.ledger as ledger_module

    clock = _Clock()
    monkeypatch.setattr(ledger_module, "time", clock)
    storage = MemoryStorage()
    records = [
        Record(id="r1", stream="notes", timestamp=1700000000000, payload={"n": 1, "text": "hello"}),
        Record(id="r2", stream="notes", timestamp=1700000000001, payload={"n": 2}, meta={"by": "import"}),
        Record(id="r3", stream="orders", timestamp=1700000000002, payload={"sku": "A-1", "qty": 2}),
        Record(id="r4", stream="orders", timestamp=1700000000003, payload={"sku": "B-7", "qty": 1}),
        Record(id="r5", stream="invoices", timestamp=1700000000004, payload={"total": 0.1}),
        Record(id="r6", stream="notes", timestamp=1700000000005, payload=["é", "\U0001f600"]),
    ]
    with create_ledger(id=LEDGER_ID, storage=storage) as ledger:
        ledger._format_version = 1
        ledger.append_batch(records[:2], ALICE)
        ledger._format_version = 2
        clock.ms = 1700000000500
        ledger.append_batch(records[2:4], ALICE)
        clock.ms = 1700000000400  # the clock went back: committed_at stays 1700000000500
        ledger.append(records[4], BOB)
        clock.ms = 1700000001000
        ledger.append(records[5], ALICE)
        assert ledger.verify().ok
    entries = []
    for entry in storage.iter_entries(1):
        row: dict[str, Any] = {
            "seq": entry.seq,
            "version": entry.version,
            "appender": entry.appender,
            "auth_source": entry.auth_source,
            "committed_at": entry.committed_at,
            "record": entry.record.to_dict(),
            "canonical_hex": entry.canonical.hex(),
            "prev_hash": entry.prev_hash,
            "preimage_hex": spec_preimage(LEDGER_ID, entry.seq, entry.prev_hash, entry.canonical, _fields(entry)).hex(),
            "hash": entry.hash,
        }
        entries.append(row)
    return {
        "description": (
            "Test vectors for docs/FORMAT.md, entry format version 2 (nucleus/entry/v2): a ledger whose first "
            "two entries are version 1 (written before format 2) and the rest version 2, with the appender "
            "OID, the auth source and committed_at inside the hash. Fixed forever for format v2."
        ),
        "format_tag_hex": FORMAT_TAG_V2.hex(),
        "ledger_id": LEDGER_ID,
        "entries": entries,
    }


def _fields(entry: Any) -> dict[str, Any] | None:
    if entry.version == 1:
        return None
    return {"appender": entry.appender, "auth_source": entry.auth_source, "committed_at": entry.committed_at}


# -- the independent verifier: docs/FORMAT.md sections 3 and 5 only ------------------------------


def spec_preimage(ledger_id: str, seq: int, prev_hash: str, canonical: bytes, v2: dict[str, Any] | None) -> bytes:
    lid = ledger_id.encode("utf-8")
    if v2 is None:
        head = b"nucleus/entry/v1\x00" + struct.pack(">H", len(lid)) + lid + struct.pack(">Q", seq)
        return head + bytes.fromhex(prev_hash) + struct.pack(">Q", len(canonical)) + canonical
    appender, source = v2["appender"].encode("utf-8"), v2["auth_source"].encode("utf-8")
    return (
        b"nucleus/entry/v2\x00"
        + struct.pack(">H", len(lid)) + lid
        + struct.pack(">Q", seq)
        + bytes.fromhex(prev_hash)
        + struct.pack(">Q", v2["committed_at"])
        + struct.pack(">H", len(appender)) + appender
        + struct.pack(">H", len(source)) + source
        + struct.pack(">Q", len(canonical)) + canonical
    )


def spec_verify(ledger_id: str, rows: list[dict[str, Any]]) -> int | None:
    """The first bad seq (None: the rows verify), checking what section 5 adds for version 2."""
    prev, version, committed = "0" * 64, 1, None
    for expected, row in enumerate(rows, start=1):
        if row["seq"] != expected or row["prev_hash"] != prev or row["version"] not in (1, 2):
            return expected
        if row["version"] < version:
            return expected
        if row["version"] == 1:
            if (row["appender"], row["auth_source"], row["committed_at"]) != (None, None, None):
                return expected
            v2 = None
        else:
            if not (isinstance(row["appender"], str) and OID.fullmatch(row["appender"])):
                return expected
            if not (isinstance(row["auth_source"], str) and SOURCE.fullmatch(row["auth_source"])):
                return expected
            at = row["committed_at"]
            if type(at) is not int or not 0 < at <= 2**53 - 1 or (committed is not None and at < committed):
                return expected
            v2, committed = row, at
        canonical = bytes.fromhex(row["canonical_hex"])
        if blake3(spec_preimage(ledger_id, expected, prev, canonical, v2)).hexdigest() != row["hash"]:
            return expected
        prev, version = row["hash"], row["version"]
    return None


VECTORS = json.loads(VECTORS_PATH.read_text(encoding="utf-8")) if VECTORS_PATH.exists() else {}


def test_the_ledger_writes_exactly_the_vectors(monkeypatch: pytest.MonkeyPatch) -> None:
    assert build_vectors(monkeypatch) == VECTORS


def test_vectors_by_the_independent_verifier() -> None:
    entries = VECTORS["entries"]
    assert bytes.fromhex(VECTORS["format_tag_hex"]) == b"nucleus/entry/v2\x00"
    assert [e["version"] for e in entries] == [1, 1, 2, 2, 2, 2]
    assert spec_verify(LEDGER_ID, entries) is None
    for e in entries:
        v2 = None if e["version"] == 1 else e
        preimage = spec_preimage(LEDGER_ID, e["seq"], e["prev_hash"], bytes.fromhex(e["canonical_hex"]), v2)
        assert preimage.hex() == e["preimage_hex"]
        assert blake3(preimage).hexdigest() == e["hash"]
    # One batch shares committed_at; a clock that went back keeps the previous one.
    assert entries[2]["committed_at"] == entries[3]["committed_at"] == entries[4]["committed_at"]
    assert entries[4]["appender"] == BOB.oid and entries[5]["committed_at"] > entries[4]["committed_at"]


@pytest.mark.parametrize(
    ("seq", "change"),
    [
        (3, {"appender": "oid:acme:user:mallory"}),
        (3, {"auth_source": "auth.dev"}),
        (4, {"committed_at": 1700000000501}),
        (5, {"committed_at": 1700000000499}),  # earlier than entry 4 (and the hash changes too)
        (6, {"version": 1, "appender": None, "auth_source": None, "committed_at": None}),
        (3, {"appender": "alice"}),
    ],
)
def test_a_changed_appender_field_fails_both_verifiers_at_its_entry(seq: int, change: dict[str, Any]) -> None:
    rows = [dict(e) for e in VECTORS["entries"]]
    rows[seq - 1].update(change)
    assert spec_verify(LEDGER_ID, rows) == seq
    tuples = [
        (r["seq"], r["hash"], r["prev_hash"], r["record"]["id"], r["record"]["stream"], r["record"]["timestamp"],
         r["version"], r["appender"], r["auth_source"], r["committed_at"], bytes.fromhex(r["canonical_hex"]))
        for r in rows
    ]
    from nucleus_core.verify import verify_rows

    report = verify_rows(LEDGER_ID, tuples, expected_count=len(tuples))
    assert report.first_bad_seq == seq


def test_format_md_documents_the_vectors() -> None:
    text = (ROOT / "docs" / "FORMAT.md").read_text(encoding="utf-8")
    entry = VECTORS["entries"][2]
    assert VECTORS["format_tag_hex"] in text
    assert entry["hash"] in text
    assert entry["appender"] in text and entry["auth_source"] in text
    assert f"{entry['committed_at']:016x}" in text  # u64be(committed_at) in the worked example
    for e in VECTORS["entries"]:
        assert e["hash"] in text  # the table of the vector ledger's hashes


def test_entries_read_back_verify_with_their_own_hash() -> None:
    storage = MemoryStorage()
    with create_ledger(id="v2-read", storage=storage) as ledger:
        written = ledger.append_batch([Record(id=f"x{i}", stream="s", timestamp=1 + i, payload={}) for i in range(3)],
                                      ALICE)
        for entry in written:
            assert (entry.version, entry.appender, entry.auth_source) == (2, ALICE.oid, ALICE.source)
            assert stored_entry_hash("v2-read", entry) == entry.hash
        assert len({e.committed_at for e in written}) == 1
        assert verify_entries("v2-read", storage.iter_entries(1)).ok
        got = ledger.get(written[1].hash, ALICE)
        assert got is not None and got.to_dict()["appender"] == ALICE.oid


if __name__ == "__main__":  # regenerate the vector file
    patch = pytest.MonkeyPatch()
    try:
        VECTORS_PATH.write_text(json.dumps(build_vectors(patch), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    finally:
        patch.undo()
    sys.exit(0)
