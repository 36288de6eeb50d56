"""docs/FORMAT.md: the test vectors, checked against the implementation and against an independent
minimal verifier written only from the format document (struct + blake3 + json, no nucleus_core)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from blake3 import blake3

from nucleus_core import MemoryStorage, Record, RequestContext, create_ledger
from nucleus_core.hashing import FORMAT_TAG, GENESIS_HASH, entry_hash

VECTORS = json.loads((Path(__file__).parent / "data" / "format_vectors.json").read_text(encoding="utf-8"))
ALL_ENTRIES = [(ledger["ledger_id"], entry) for ledger in VECTORS["ledgers"] for entry in ledger["entries"]]
CTX = RequestContext(oid="oid:test:user:format", source="dev")


# -- the independent verifier: written from docs/FORMAT.md sections 3 and 5 only ----------------


def spec_preimage(ledger_id: str, seq: int, prev_hash_hex: str, canonical: bytes) -> bytes:
    lid = ledger_id.encode("utf-8")
    return (
        b"nucleus/entry/v1\x00"
        + struct.pack(">H", len(lid))
        + lid
        + struct.pack(">Q", seq)
        + bytes.fromhex(prev_hash_hex)
        + struct.pack(">Q", len(canonical))
        + canonical
    )


def spec_hash(ledger_id: str, seq: int, prev_hash_hex: str, canonical: bytes) -> str:
    return blake3(spec_preimage(ledger_id, seq, prev_hash_hex, canonical)).hexdigest()


def spec_verify(ledger_id: str, rows: list[dict[str, Any]], reported_count: int) -> int | None:
    """Return None when the rows verify, else the first bad seq (FORMAT.md section 5)."""
    prev, expected = "0" * 64, 1
    for row in rows:
        if row["seq"] != expected:
            return min(row["seq"], expected)
        if row["prev_hash"] != prev:
            return expected
        if spec_hash(ledger_id, row["seq"], prev, row["canonical"]) != row["hash"]:
            return expected
        doc = json.loads(row["canonical"])
        if not isinstance(doc, dict) or doc.get("id") != row["record_id"] or doc.get("stream") != row["stream"]:
            return expected
        if type(doc.get("timestamp")) is not int or doc["timestamp"] != row["timestamp"]:
            return expected
        prev, expected = row["hash"], expected + 1
    return None if reported_count == expected - 1 else expected


def jcs_reference(record: dict[str, Any]) -> bytes:
    """Canonical bytes by the independent rfc8785 package (meta absent when None)."""
    return rfc8785.dumps({k: v for k, v in record.items() if v is not None or k != "meta"})


# -- vectors ------------------------------------------------------------------------------------


def test_vector_file_header() -> None:
    assert bytes.fromhex(VECTORS["format_tag_hex"]) == b"nucleus/entry/v1\x00" == FORMAT_TAG
    assert VECTORS["genesis_prev_hash"] == "0" * 64 == GENESIS_HASH
    assert len(ALL_ENTRIES) >= 8
    covered = {e["record"]["stream"] for _, e in ALL_ENTRIES}
    assert "_grants" in covered  # a system stream
    assert any("meta" in e["record"] for _, e in ALL_ENTRIES)
    assert any("meta" not in e["record"] for _, e in ALL_ENTRIES)
    assert any(max(e["canonical"]) > "\uffff" for _, e in ALL_ENTRIES)  # non-BMP text


@pytest.mark.parametrize(("ledger_id", "entry"), ALL_ENTRIES, ids=[f"{lid}#{e['seq']}" for lid, e in ALL_ENTRIES])
def test_vector_by_independent_verifier(ledger_id: str, entry: dict[str, Any]) -> None:
    canonical = bytes.fromhex(entry["canonical_hex"])
    assert canonical == entry["canonical"].encode("utf-8")
    assert canonical == jcs_reference(entry["record"])  # RFC 8785 by another implementation
    preimage = spec_preimage(ledger_id, entry["seq"], entry["prev_hash"], canonical)
    assert preimage.hex() == entry["preimage_hex"]
    assert blake3(preimage).hexdigest() == entry["hash"]


@pytest.mark.parametrize(("ledger_id", "entry"), ALL_ENTRIES, ids=[f"{lid}#{e['seq']}" for lid, e in ALL_ENTRIES])
def test_vector_by_implementation(ledger_id: str, entry: dict[str, Any]) -> None:
    record = Record.from_dict(entry["record"])
    assert record.canonical.hex() == entry["canonical_hex"]
    assert entry_hash(ledger_id, entry["seq"], entry["prev_hash"], record.canonical) == entry["hash"]
    assert Record.from_canonical(bytes.fromhex(entry["canonical_hex"])) == record


@pytest.mark.parametrize("ledger", VECTORS["ledgers"], ids=[lg["ledger_id"] for lg in VECTORS["ledgers"]])
def test_vectors_chain_and_ledger_reproduces_them(ledger: dict[str, Any]) -> None:
    entries = ledger["entries"]
    rows = [
        {
            "seq": e["seq"],
            "hash": e["hash"],
            "prev_hash": e["prev_hash"],
            "record_id": e["record"]["id"],
            "stream": e["record"]["stream"],
            "timestamp": e["record"]["timestamp"],
            "canonical": bytes.fromhex(e["canonical_hex"]),
        }
        for e in entries
    ]
    assert spec_verify(ledger["ledger_id"], rows, len(rows)) is None
    # The ledger writes exactly these entries.
    records = [Record.from_dict(e["record"]) for e in entries]
    with create_ledger(id=ledger["ledger_id"], storage="memory://") as led:
        written = []
        for r in records:  # in vector order; system streams are written the way plugins do
            if r.stream.startswith("_"):
                written.extend(led.append_system([r], CTX))
            else:
                written.append(led.append(r, CTX))
        assert [e.hash for e in written] == [e["hash"] for e in entries]
        assert led.latest_hash() == entries[-1]["hash"]


def test_example_in_format_md_matches_vectors() -> None:
    text = (Path(__file__).parent.parent / "docs" / "FORMAT.md").read_text(encoding="utf-8")
    first = VECTORS["ledgers"][0]["entries"][0]
    assert first["canonical"] in text
    assert first["hash"] in text
    assert f"{len(first['canonical'])} bytes" in text
    assert VECTORS["format_tag_hex"] in text


# -- a freshly written ledger, read straight from storage ----------------------------------------


def stored_rows(storage: MemoryStorage) -> list[dict[str, Any]]:
    return [
        {
            "seq": e.seq,
            "hash": e.hash,
            "prev_hash": e.prev_hash,
            "record_id": e.record_id,
            "stream": e.stream,
            "timestamp": e.timestamp,
            "canonical": e.canonical,
        }
        for e in storage.iter_entries(1)
    ]


def fresh_records() -> list[Record]:
    return [
        Record(id=f"id-{i}", stream="s", timestamp=1000 + i, payload={"i": i, "f": i / 7, "u": "é\U0001f600" * i})
        if i % 2
        else Record(id=f"id-{i}", stream="t.x", timestamp=1000, payload=[i, None], meta={"\U0001f600": i, "\uff61": -i})
        for i in range(40)
    ]


def test_fresh_ledger_verifies_independently() -> None:
    storage = MemoryStorage()
    with create_ledger(id="fresh:ledger-1", storage=storage) as ledger:
        ledger.append_batch(fresh_records()[:25], CTX)
        for r in fresh_records()[25:]:
            ledger.append(r, CTX)
        rows = stored_rows(storage)
        assert len(rows) == 40
        assert spec_verify("fresh:ledger-1", rows, storage.count()) is None
        for row in rows:
            assert row["canonical"] == jcs_reference(json.loads(row["canonical"]))
        # The independent verifier and Ledger.verify() agree on a tampered copy too.
        rows[17]["canonical"] = rows[17]["canonical"].replace(b'"id-17"', b'"id-1X"')
        assert spec_verify("fresh:ledger-1", rows, len(rows)) == 18
        assert ledger.verify().ok
        # Another ledger id gives other hashes: entries cannot move between ledgers.
        assert spec_verify("fresh:ledger-2", stored_rows(storage), storage.count()) == 1
