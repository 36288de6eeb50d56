"""docs/FORMAT.md: the test vectors, checked against the implementation and against an independent
minimal verifier written only from the format document (struct + blake3 + json, no nucleus_core)."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from blake3 import blake3

from nucleus_core import IntegrityError, MemoryStorage, Record, RecordValidationError, RequestContext, create_ledger
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


SPEC_STREAM = re.compile(r"[a-z][a-z0-9_.-]{0,63}|_[a-z][a-z0-9_.-]{0,62}")
SPEC_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def spec_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(spec_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(spec_depth, value), default=0)
    return 0


def spec_parse(canonical: object) -> dict[str, Any] | None:
    """FORMAT.md section 5, parse rules 1-6: the record, or None when the stored value breaks one."""
    if not isinstance(canonical, bytes) or canonical.startswith(b"\xef\xbb\xbf"):  # rules 1, 2
        return None
    try:
        text = canonical.decode("utf-8")  # rule 3
    except UnicodeDecodeError:
        return None

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({k for k, _ in pairs}) != len(pairs):
            raise ValueError("repeated key")
        return dict(pairs)

    def number(text: str) -> int | float:  # every number is a double (section 2)
        value = int(text)
        return value if abs(value) <= 2**53 - 1 else float(text)

    def refuse(name: str) -> None:
        raise ValueError(name)

    try:  # rule 4
        doc = json.loads(text, object_pairs_hook=unique, parse_int=number, parse_constant=refuse)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or set(doc) - {"meta"} != {"id", "payload", "stream", "timestamp"}:  # rule 5
        return None
    rid, ts = doc["id"], doc["timestamp"]
    if not (isinstance(rid, str) and 1 <= len(rid) <= 256 and not SPEC_CONTROLS.search(rid) and rid == rid.strip()):
        return None
    if not isinstance(doc["stream"], str) or not SPEC_STREAM.fullmatch(doc["stream"]):
        return None
    if type(ts) is not int or not 1 <= ts <= 2**53 - 1 or type(doc["payload"]) not in (dict, list):
        return None
    if "meta" in doc and (type(doc["meta"]) is not dict or spec_depth(doc["meta"]) > 64):
        return None
    if spec_depth(doc["payload"]) > 64:
        return None
    try:
        again = rfc8785.dumps(doc)  # rule 6, by an independent RFC 8785 implementation
    except (rfc8785.CanonicalizationError, UnicodeEncodeError):
        return None
    return doc if again == canonical else None


def spec_verify(ledger_id: str, rows: list[dict[str, Any]], reported_count: int) -> int | None:
    """Return None when the rows verify, else the first bad seq (FORMAT.md section 5)."""
    prev, expected = "0" * 64, 1
    for row in rows:
        if row["seq"] != expected:
            return min(row["seq"], expected)
        if row["prev_hash"] != prev or not isinstance(row["canonical"], bytes):
            return expected
        if spec_hash(ledger_id, row["seq"], prev, row["canonical"]) != row["hash"]:
            return expected
        doc = spec_parse(row["canonical"])
        if doc is None or doc["id"] != row["record_id"] or doc["stream"] != row["stream"]:
            return expected
        if type(row["timestamp"]) is not int or doc["timestamp"] != row["timestamp"]:
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
        led._format_version = 1  # the vectors are version 1 (tests/test_format_v2.py: version 2)
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
            "version": e.version,
            "appender": e.appender,
            "auth_source": e.auth_source,
            "committed_at": e.committed_at,
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
        ledger._format_version = 1  # this file checks format 1 (test_format_v2.py: format 2)
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


# -- the parse rules of section 5, the independent verifier against Ledger.verify() ---------------

RECODINGS: dict[str, Any] = {
    "byte order mark": lambda b: b"\xef\xbb\xbf" + b,
    "utf-16": lambda b: b.decode().encode("utf-16"),
    "utf-16-be": lambda b: b.decode().encode("utf-16-be"),
    "utf-32": lambda b: b.decode().encode("utf-32"),
    "repeated key, equal value": lambda b: b.replace(b'"i":0', b'"i":0,"i":0'),
    "whitespace": lambda b: b.replace(b",", b", ", 1),
    "trailing newline": lambda b: b + b"\n",
    "1.0 for 1": lambda b: b.replace(b'"one":1', b'"one":1.0'),
    "1e2 for 100": lambda b: b.replace(b'"h":100', b'"h":1e2'),
    "-0 for 0": lambda b: b.replace(b'"i":0', b'"i":-0'),
    "escaped letter": lambda b: b.replace(b'"t":"A', b'"t":"\\u0041'),
    "escaped solidus": lambda b: b.replace(b"/", b"\\/", 1),
    "uppercase hex escape": lambda b: b.replace(b"\\u001f", b"\\u001F"),
    "key order": lambda b: b.replace(b'"h":100,"i":0', b'"i":0,"h":100'),
    "null meta": lambda b: b.replace(b'"payload"', b'"meta":null,"payload"'),
    "float timestamp": lambda b: b.replace(b'"timestamp":9007199254740991', b'"timestamp":9007199254740991.0'),
    "lone surrogate": lambda b: b.replace(b'"t":"A', b'"t":"\\ud800A'),
}


def strict_rows() -> list[dict[str, Any]]:
    records = [
        Record(id="p1", stream="s", timestamp=1, payload={"i": 1}),
        Record(
            id="p2", stream="s", timestamp=9007199254740991,
            payload={"h": 100, "i": 0, "one": 1, "t": "A/B\x1f", "x": [0.5, 1e-7]},
        ),
        Record(id="p3", stream="s", timestamp=3, payload={"i": 3}),
    ]
    storage = MemoryStorage()
    with create_ledger(id="strict:format", storage=storage) as ledger:
        ledger._format_version = 1  # this file checks format 1 (test_format_v2.py: format 2)
        ledger.append_batch(records, CTX)
    return stored_rows(storage)


def forged(rows: list[dict[str, Any]], index: int, data: bytes) -> list[dict[str, Any]]:
    out = [dict(r) for r in rows]
    out[index]["canonical"] = data
    prev = out[index - 1]["hash"] if index else "0" * 64
    for row in out[index:]:
        row["prev_hash"], row["hash"] = prev, spec_hash("strict:format", row["seq"], prev, row["canonical"])
        prev = row["hash"]
    return out


def verify_like_the_ledger(rows: list[dict[str, Any]]) -> tuple[int | None, str | None]:
    from nucleus_core.storage import ENTRY_FIELDS
    from nucleus_core.verify import verify_rows

    report = verify_rows("strict:format", [tuple(r[f] for f in ENTRY_FIELDS) for r in rows], expected_count=len(rows))
    return report.first_bad_seq, report.reason


def test_the_strict_rows_verify_both_ways() -> None:
    rows = strict_rows()
    assert spec_verify("strict:format", rows, len(rows)) is None
    assert verify_like_the_ledger(rows) == (None, None)


@pytest.mark.parametrize("name", sorted(RECODINGS))
def test_independent_verifier_and_ledger_refuse_each_recoding_at_its_entry(name: str) -> None:
    rows = strict_rows()
    data = RECODINGS[name](rows[1]["canonical"])
    assert data != rows[1]["canonical"], name
    bad = forged(rows, 1, data)
    assert spec_verify("strict:format", bad, len(bad)) == 2
    seq, reason = verify_like_the_ledger(bad)
    assert seq == 2 and reason and reason != "stored bytes are not a record"
    with pytest.raises(IntegrityError):
        Record.from_canonical(data, seq=2)


def test_text_instead_of_bytes_is_refused_by_both_with_its_reason() -> None:
    rows = strict_rows()
    rows[1]["canonical"] = rows[1]["canonical"].decode()
    assert spec_verify("strict:format", rows, len(rows)) == 2
    assert verify_like_the_ledger(rows) == (2, "canonical bytes stored as TEXT, not bytes")


# -- section 2: what the rules count and distinguish ----------------------------------------------


def test_record_id_length_counts_code_points() -> None:
    astral = "\U0001f600" * 256  # 256 code points, 512 UTF-16 code units, 1024 UTF-8 bytes
    assert Record(id=astral, stream="s", timestamp=1, payload={}).id == astral
    assert Record(id="é" * 256, stream="s", timestamp=1, payload={}).id == "é" * 256
    for too_long in ("a" * 257, "\U0001f600" * 257, "é" * 257):
        with pytest.raises(RecordValidationError, match="257 characters"):
            Record(id=too_long, stream="s", timestamp=1, payload={})
    record = Record(id=astral, stream="s", timestamp=1, payload={})
    assert spec_parse(record.canonical) == record.to_dict()


def test_an_integral_double_is_not_an_integer_timestamp() -> None:
    for value in (9007199254740991.0, 1700000000000.0):
        with pytest.raises(RecordValidationError, match="timestamp"):
            Record(id="t", stream="s", timestamp=value, payload={})  # type: ignore[arg-type]
        with pytest.raises(RecordValidationError, match="timestamp"):
            Record.from_dict(json.loads(f'{{"id":"t","stream":"s","timestamp":{value!r},"payload":{{}}}}'))
    stored = b'{"id":"t","payload":{},"stream":"s","timestamp":9007199254740991.0}'
    assert spec_parse(stored) is None
    with pytest.raises(IntegrityError, match=r"not in canonical form|timestamp"):
        Record.from_canonical(stored, seq=1)
    # In payload an integral double is data, stored the JCS way, as an integer.
    assert Record(id="t", stream="s", timestamp=1, payload={"n": 2.0}).canonical.endswith(
        b'"payload":{"n":2},"stream":"s","timestamp":1}'
    )


def test_empty_meta_is_a_different_record_from_no_meta() -> None:
    (ledger,) = [lg for lg in VECTORS["ledgers"] if lg["ledger_id"] == "meta-empty"]
    with_meta, without = ledger["entries"]
    assert with_meta["record"]["meta"] == {} and "meta" not in without["record"]
    a = Record(id="m", stream="notes", timestamp=1700000000000, payload={}, meta={})
    b = Record(id="m", stream="notes", timestamp=1700000000000, payload={})
    assert a != b and a.canonical != b.canonical
    assert entry_hash("x", 1, GENESIS_HASH, a.canonical) != entry_hash("x", 1, GENESIS_HASH, b.canonical)
    assert Record.from_canonical(a.canonical).meta == {} and Record.from_canonical(b.canonical).meta is None
    text = (Path(__file__).parent.parent / "docs" / "FORMAT.md").read_text(encoding="utf-8")
    assert with_meta["canonical"] in text and without["canonical"] in text


# -- section 5: deleting the newest entries, and the recorded head that shows it -----------------


def test_deleting_the_newest_entries_verifies_but_a_recorded_head_shows_it(tmp_path: Path) -> None:
    import sqlite3

    from nucleus_storage_sqlite import sqlite_storage

    path = tmp_path / "truncate.db"
    with create_ledger(id="trunc", storage=sqlite_storage(path)) as ledger:
        ledger._format_version = 1  # this file checks format 1 (test_format_v2.py: format 2)
        ledger.append_batch([Record(id=f"t{i}", stream="s", timestamp=1 + i, payload={}) for i in range(10)], CTX)
        recorded = (ledger.length(), ledger.latest_hash())  # kept outside the database
    with sqlite3.connect(path) as db:
        db.execute("delete from nucleus_entries where ledger_id = 'trunc' and seq > 7")
    # The stored Merkle tree still covers 10 entries: verification sees it.
    with pytest.raises(IntegrityError, match="the Merkle tree covers 10 entries but the chain has 7"):
        create_ledger(id="trunc", storage=sqlite_storage(path))
    # Trimmed to match (the tree is not part of the format, and whoever writes the database can
    # rewrite it too), nothing in the database shows it: a trusted checkpoint does
    # (tests/test_trusted_checkpoint.py).
    with sqlite3.connect(path) as db:
        db.execute("delete from nucleus_merkle where ledger_id = 'trunc'")
        db.execute("update nucleus_merkle_size set size = 7 where ledger_id = 'trunc'")

    def rows() -> list[dict[str, Any]]:
        with sqlite3.connect(path) as db:
            cols = "seq, hash, prev_hash, record_id, stream, timestamp, canonical"
            got = db.execute(f"select {cols} from nucleus_entries where ledger_id = 'trunc' order by seq").fetchall()
        return [dict(zip(cols.split(", "), r, strict=True)) for r in got]

    assert spec_verify("trunc", rows(), len(rows())) is None  # the database alone cannot show it
    with create_ledger(id="trunc", storage=sqlite_storage(path)) as ledger:
        ledger._format_version = 1  # this file checks format 1 (test_format_v2.py: format 2)
        assert ledger.verify().ok and ledger.length() == 7
    seq, head = recorded
    with sqlite3.connect(path) as db:
        found = db.execute("select hash from nucleus_entries where ledger_id = 'trunc' and seq = ?", (seq,)).fetchone()
    assert found is None  # FORMAT.md section 5: no row at the recorded seq -> deleted from the end
    assert head is not None


# -- section 4: the table layout written in FORMAT.md is the one the backends create --------------


def format_md_columns() -> dict[str, tuple[str, str]]:
    text = (Path(__file__).parent.parent / "docs" / "FORMAT.md").read_text(encoding="utf-8")
    section = text[text.index("## 4. What storage holds") : text.index("## 5. Verification")]
    out = {}
    for match in re.finditer(r"^\| `(\w+)` +\| `([^`]+)`[^|]*\| `([^`]+)` +\| NOT NULL \|$", section, re.M):
        out[match[1]] = (match[2], match[3])
    return out


def format_md_indexes() -> set[tuple[str, tuple[str, ...], bool]]:
    text = (Path(__file__).parent.parent / "docs" / "FORMAT.md").read_text(encoding="utf-8")
    found = set()
    for match in re.finditer(r"^- (unique )?index `<t>(_\w+)` on `\(([^`]*)\)`", text, re.M):
        found.add(("nucleus_entries" + match[2], index_terms(match[3]), bool(match[1])))
    return found


def index_terms(text: str) -> tuple[str, ...]:
    """The terms of an index's column list (``ledger_id, substr(hash, 1, 16)``), split at the commas
    outside parentheses, without quotes, spaces or PostgreSQL's casts (``(hash)::text``)."""
    text = re.sub(r"\((\w+)\)::text", r"\1", text.replace('"', "").replace(" ", ""))
    terms, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(text[start:i])
            start = i + 1
    return (*terms, text[start:])


@pytest.mark.postgres
def test_table_layout_in_format_md_matches_sqlite_and_postgres(tmp_path: Path) -> None:
    import sqlite3

    import psycopg
    from nucleus_storage_postgres import postgres_storage
    from nucleus_storage_sqlite import sqlite_storage

    from nucleus_core.testing.postgres import temporary_database

    columns, indexes = format_md_columns(), format_md_indexes()
    assert list(columns) == ["ledger_id", "seq", "hash", "prev_hash", "record_id", "stream", "timestamp", "canonical"]
    v2_columns = {"version": ("INTEGER", "smallint", 1, "NO"), "appender": ("TEXT", "text", 0, "YES"),
                  "auth_source": ("VARCHAR(64)", "character varying(64)", 0, "YES"),
                  "committed_at": ("INTEGER", "bigint", 0, "YES")}
    text = (Path(__file__).parent.parent / "docs" / "FORMAT.md").read_text(encoding="utf-8")
    for name, (sqlite_type, pg_type, _, _) in v2_columns.items():
        assert re.search(rf"^\| `{name}` +\| `{re.escape(sqlite_type)}`[^|]*\| `{re.escape(pg_type)}` +\|", text, re.M)
    assert len(indexes) == 4
    path = tmp_path / "layout.db"
    create_ledger(id="layout", storage=sqlite_storage(path)).close()
    with sqlite3.connect(path) as db:
        info = db.execute("pragma table_info(nucleus_entries)").fetchall()
        assert [(r[1], r[2], r[3]) for r in info[8:]] == [(n, t, nn) for n, (t, _, nn, _) in v2_columns.items()]
        info = info[:8]
        assert [(r[1], r[2], r[3], r[5]) for r in info] == [
            (name, sqlite_type.split(" ")[0], 1, pk)
            for (name, (sqlite_type, _)), pk in zip(columns.items(), (1, 2, 0, 0, 0, 0, 0, 0), strict=True)
        ]
        got = set()
        for name, unique in db.execute("select name, \"unique\" from pragma_index_list('nucleus_entries')"):
            if name.startswith("sqlite_autoindex"):
                continue  # the primary key
            (sql,) = db.execute("select sql from sqlite_master where name = ?", (name,)).fetchone()
            got.add((name, index_terms(sql.split(" ON ", 1)[1].split("(", 1)[1].rsplit(")", 1)[0]), bool(unique)))
        assert got == indexes
        versions = db.execute("select component, version from nucleus_schema_version order by component")
        assert versions.fetchall() == [("entries", 3), ("ledgers", 1), ("merkle", 1)]
    with temporary_database("nucleus_format") as dsn:
        create_ledger(id="layout", storage=postgres_storage(dsn, schema="layout")).close()
        with psycopg.connect(dsn) as conn:
            rows = conn.execute(
                "select column_name, data_type, character_maximum_length, is_nullable from information_schema.columns "
                "where table_schema = 'layout' and table_name = 'nucleus_entries' order by ordinal_position"
            ).fetchall()
            assert [
                (name, f"{kind}({size})" if size else kind, nullable) for name, kind, size, nullable in rows
            ] == [(name, pg_type, "NO") for name, (_, pg_type) in columns.items()] + [
                (name, pg_type, nullable) for name, (_, pg_type, _, nullable) in v2_columns.items()
            ]
            pg_indexes = conn.execute(
                "select indexname, indexdef from pg_indexes "
                "where schemaname = 'layout' and tablename = 'nucleus_entries'"
            ).fetchall()
            got = {
                (
                    name,
                    index_terms(definition.split("(", 1)[1].rsplit(")", 1)[0]),
                    definition.startswith("CREATE UNIQUE"),
                )
                for name, definition in pg_indexes
                if not name.endswith("_pkey")
            }
            assert got == indexes
