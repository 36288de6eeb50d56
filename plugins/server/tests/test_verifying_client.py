"""The verifying RemoteLedger against real servers on loopback (SQLite and PostgreSQL ledgers): an
honest server is accepted and the trusted state advances; a proxy on loopback that changes an
entry, a proof hash or a checkpoint byte is refused with the dedicated error; a server restarted on
an older copy of its database is refused as a rollback naming both sizes; two histories under one
key are refused as inconsistent; the trusted-state file is atomic, persistent and never silently
reset. ``POST /proof/inclusion`` (the batch the client uses) is tested here too."""

from __future__ import annotations

import dataclasses
import http.server
import itertools
import json
import os
import pickle
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from nucleus_server.client import (
    AnswerMismatchError,
    CheckpointSignatureError,
    CosignaturePolicy,
    EntryContentError,
    FileTrustedState,
    InclusionProofError,
    InconsistentLogError,
    LogVerificationError,
    MemoryTrustedState,
    RemoteLedger,
    RollbackError,
    TrustedStateError,
    WitnessPolicyError,
)
from nucleus_server.errors import NotFoundError, error_document, rebuild_error

from nucleus_core import Entry, IntegrityError, Ledger, Record, RequestContext
from nucleus_core.checkpoint import CosignatureSigner, NoteSigner, default_origin
from nucleus_core.cosignature import add_cosignatures
from nucleus_core.errors import ConfigurationError
from nucleus_core.hashing import entry_hash_of_version
from nucleus_core.testing import postgres
from nucleus_core.tlog_verify import parse_checkpoint, parse_note

pg_dsn = postgres.pg_dsn

ALICE = "oid:vc:user:alice"
BOB = "oid:vc:user:bob"
LEDGER = "http-test"
ORIGIN = default_origin(LEDGER)


def rec(i: int, stream: str = "notes", **payload: Any) -> Record:
    return Record(id=f"r-{i}", stream=stream, timestamp=1_700_000_000_000 + i, payload={"n": i, **payload})


def dev(oid: str) -> dict[str, str]:
    return {"Authorization": f"Bearer dev:{oid}"}


# --- ledgers on SQLite files and PostgreSQL schemas -----------------------------------------
class Ledgers:
    """Opens ledgers of one backend, all signed by one key: ``open(name)`` is the database ``name``
    (a SQLite file, or a PostgreSQL schema), the same one each time it is named."""

    def __init__(self, backend: str, open_ledger: Callable[..., Ledger], tmp_path: Path, dsn: str | None) -> None:
        self.backend = backend
        self.signer = NoteSigner.generate(ORIGIN)
        self._open = open_ledger
        self.tmp_path = tmp_path
        self._dsn = dsn
        self.schemas: dict[str, str] = {}

    def open(self, name: str, *, interval: float = 0, **config: Any) -> Ledger:
        checkpoint = {"signers": (self.signer,), "key_env": None, "interval": interval}
        if self.backend == "postgres":
            from nucleus_storage_postgres import postgres_storage

            assert self._dsn is not None
            schema = self.schemas.setdefault(name, f"vc_{name}_{uuid.uuid4().hex[:8]}")
            config["storage"] = postgres_storage(self._dsn, schema=schema)
        return self._open("ual", name=f"{name}.db", admins=[ALICE], checkpoint=checkpoint, **config)

    def sqlite_copy(self, name: str, copy: str) -> None:
        """A consistent copy of the SQLite database ``name`` (open or not) as ``copy``."""
        src = sqlite3.connect(self.tmp_path / f"{name}.db")
        dst = sqlite3.connect(self.tmp_path / f"{copy}.db")
        with dst:
            src.backup(dst)
        src.close()
        dst.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledgers(
    request: pytest.FixtureRequest, open_ledger: Callable[..., Ledger], tmp_path: Path
) -> Iterator[Ledgers]:
    dsn = request.getfixturevalue("pg_dsn") if request.param == "postgres" else None
    made = Ledgers(request.param, open_ledger, tmp_path, dsn)
    yield made
    if dsn is not None:
        for schema in made.schemas.values():
            postgres.drop_schema(dsn, schema)


# --- a real HTTP proxy on loopback that can change what passes ------------------------------
Rewrite = Callable[[str, str, bytes], bytes]
"""``rewrite(method, path with query, body) -> body`` of a response on its way to the client."""


class Proxy:
    """Forwards every request to ``upstream`` (switchable) and passes each response body through
    ``rewrite`` (None: unchanged)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.rewrite: Rewrite | None = None
        self.route: Callable[[str], str | tuple[int, bytes]] | None = None
        """``route(path)``: the path to ask upstream instead, or an answer ``(status, JSON body)``."""
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
                routed = self.path if proxy.route is None else proxy.route(self.path)
                if isinstance(routed, tuple):
                    status, content, kind = routed[0], routed[1], "application/json"
                else:
                    with httpx.Client(base_url=proxy.upstream) as http:
                        response = http.request(self.command, routed, content=body, headers=headers)
                    status, content = response.status_code, response.content
                    kind = response.headers.get("content-type", "application/json")
                if proxy.rewrite is not None and 200 <= status < 300:
                    content = proxy.rewrite(self.command, self.path, content)
                self.send_response(status)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = _forward
            do_POST = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture
def proxy() -> Iterator[Callable[[str], Proxy]]:
    made: list[Proxy] = []

    def start(upstream: str) -> Proxy:
        p = Proxy(upstream)
        made.append(p)
        return p

    yield start
    for p in made:
        p.close()


def client(url: str, ledgers: Ledgers, **options: Any) -> RemoteLedger:
    options.setdefault("ledger_id", LEDGER)
    return RemoteLedger(url, token=f"dev:{ALICE}", checkpoint_vkeys=[ledgers.signer.vkey], **options)


# --- an honest server -----------------------------------------------------------------------
def test_honest_server_is_accepted_and_the_trusted_state_advances(
    ledgers: Ledgers, serve: Callable[..., Any], tmp_path: Path
) -> None:
    ledger = ledgers.open("main")
    server = serve(ledger)
    state = tmp_path / "state" / "trusted.checkpoint"
    state.parent.mkdir()
    with client(server.url, ledgers, trusted_state=state) as remote:
        assert remote.verifying and remote.trusted_checkpoint is None
        one = remote.append(rec(1))
        first = remote.trusted_checkpoint
        assert first is not None and first.size >= one.seq and first.origin == ORIGIN
        batch = remote.append_batch([rec(i) for i in range(2, 8)])
        grown = remote.trusted_checkpoint
        assert grown is not None and grown.size >= batch[-1].seq > first.size
        assert remote.get(batch[2].hash) == batch[2]
        assert remote.get_by_id("r-5") == batch[3]
        assert remote.get_by_id("r-404") is None
        page = remote.query({"stream": "notes", "limit": 4})
        assert [e.record.id for e in page] == ["r-1", "r-2", "r-3", "r-4"]
        assert [e.record.id for e in remote.iter_entries() if e.record.stream == "notes"] == [
            f"r-{i}" for i in range(1, 8)
        ]
        assert remote.verify_entries([one, *batch]) == [one, *batch]
        # The state file is the latest verified checkpoint, as served, and nothing else.
        note = remote.checkpoint()
        assert state.read_bytes() == note.encode("utf-8")
        assert remote.trusted_checkpoint == grown
        assert sorted(p.name for p in state.parent.iterdir()) == ["trusted.checkpoint", "trusted.checkpoint.lock"]
    # An entry the ledger's own code wrote is the same verified entry remotely.
    assert ledger.get(batch[2].hash, RequestContext(oid=ALICE, source="auth.dev")) == batch[2]


def test_an_entry_past_the_latest_checkpoint_waits_for_the_next_one(
    ledgers: Ledgers, serve: Callable[..., Any]
) -> None:
    ledger = ledgers.open("main", interval=0.3)
    server = serve(ledger)
    with client(server.url, ledgers) as remote:
        remote.refresh()
        # Two appends within the interval: the second has no checkpoint yet when it returns from
        # the server; the client waits for the one the server's timer issues.
        a = remote.append(rec(1))
        b = remote.append(rec(2))
        trusted = remote.trusted_checkpoint
        assert trusted is not None and trusted.size >= b.seq > a.seq


def test_no_checkpoint_in_time_is_refused_never_returned_unverified(
    ledgers: Ledgers, serve: Callable[..., Any]
) -> None:
    ledger = ledgers.open("main", interval=3600)
    server = serve(ledger)
    with client(server.url, ledgers, checkpoint_wait=0.2) as remote:
        remote.append(rec(1))  # the first checkpoint is issued at once
        with pytest.raises(InclusionProofError) as caught:
            remote.append(rec(2))  # the next one only an hour later
        assert caught.value.reason == "no_covering_checkpoint" and "no checkpoint covers it" in str(caught.value)
        with pytest.raises(InclusionProofError):
            remote.get_by_id("r-2")
        assert remote.get_by_id("r-1") is not None


def test_a_verifying_tail_yields_each_page_only_proven_in_a_trusted_checkpoint(
    ledgers: Ledgers, serve: Callable[..., Any]
) -> None:
    ledger = ledgers.open("main", interval=0.2)
    server = serve(ledger)
    alice = RequestContext(oid=ALICE, source="auth.dev")
    with client(server.url, ledgers) as remote:
        first = remote.append(rec(1))
        got: list[Entry] = []

        def follow() -> None:
            got.extend(remote.tail(first.seq, {"stream": "notes"}, timeout=5))

        thread = threading.Thread(target=follow, daemon=True)
        thread.start()
        made = [ledger.append(rec(i), alice) for i in range(2, 12)]
        made += ledger.append_batch([rec(i) for i in range(12, 40)], alice)
        thread.join(60)
        assert not thread.is_alive()
        assert got == made
        trusted = remote.trusted_checkpoint
        assert trusted is not None and trusted.size >= made[-1].seq  # each page was proven in it
        # Filters a verifying client checks: a tail of another stream yields none of these.
        assert list(remote.tail(first.seq, {"stream": "other"}, timeout=0.5)) == []


# --- tampering in transit -------------------------------------------------------------------
def rehashed(entry: dict[str, Any]) -> None:
    """Change the entry document's payload and give it the hash of what it now holds."""
    entry["record"]["payload"]["n"] = 99
    record = Record.from_dict(entry["record"])
    entry["hash"] = entry_hash_of_version(
        LEDGER, entry["seq"], entry["prev_hash"], record.canonical, entry["version"],
        entry["appender"], entry["auth_source"], entry["committed_at"],
    )


def _flip_hex(value: str) -> str:
    return ("1" if value[0] == "0" else "0") + value[1:]


@pytest.fixture
def tamper(
    ledgers: Ledgers, serve: Callable[..., Any], proxy: Callable[[str], Proxy]
) -> Iterator[tuple[Ledger, Proxy, RemoteLedger]]:
    ledger = ledgers.open("main")
    server = serve(ledger)
    front = proxy(server.url)
    with client(front.url, ledgers) as remote:
        remote.append_batch([rec(i) for i in range(1, 9)])
        yield ledger, front, remote


def test_an_entry_changed_in_transit_is_refused(tamper: tuple[Ledger, Proxy, RemoteLedger]) -> None:
    _ledger, front, remote = tamper
    before = remote.trusted_checkpoint

    def change_payload(method: str, path: str, body: bytes) -> bytes:
        if path.startswith("/entries/query"):
            doc = json.loads(body)
            doc["entries"][1]["record"]["payload"]["n"] = 99
            return json.dumps(doc).encode()
        return body

    front.rewrite = change_payload
    with pytest.raises(IntegrityError) as caught:
        remote.query({"stream": "notes"})
    assert caught.value.reason == "hash mismatch"

    def change_and_rehash(method: str, path: str, body: bytes) -> bytes:
        # A proxy that knows the format recomputes the entry hash: the hash check passes, the
        # inclusion proof cannot (the page's proof in the query, a single read's from the batch).
        if path.startswith("/entries/query"):
            doc = json.loads(body)
            rehashed(doc["entries"][1])
            return json.dumps(doc).encode()
        if path.startswith("/records/"):
            doc = json.loads(body)
            rehashed(doc)
            return json.dumps(doc).encode()
        return body

    front.rewrite = change_and_rehash
    with pytest.raises(InclusionProofError) as page_caught:
        remote.query({"stream": "notes"})
    assert "not all in the trusted tree" in str(page_caught.value)
    with pytest.raises(InclusionProofError) as one_caught:
        remote.get_by_id("r-2")
    assert "is not in the trusted tree" in str(one_caught.value)
    assert remote.trusted_checkpoint == before
    front.rewrite = None
    assert [e.record.payload["n"] for e in remote.query({"stream": "notes"})] == list(range(1, 9))


def test_verify_entries_recomputes_each_hash_from_the_entry_content(
    tamper: tuple[Ledger, Proxy, RemoteLedger],
) -> None:
    """An inclusion proof proves a hash only: a forged record, or a record object changed after it
    was built, under the genuine hash (and so with a genuine proof) is refused, not returned."""
    _ledger, _front, remote = tamper
    genuine = remote.get_by_id("r-2")
    assert genuine is not None and remote.verify_entries([genuine]) == [genuine]
    forged = Entry.chained(
        seq=genuine.seq, hash=genuine.hash, prev_hash=genuine.prev_hash,
        record=Record(id="r-2", stream="notes", timestamp=genuine.record.timestamp, payload={"n": 1_000_000}),
        version=genuine.version, appender=genuine.appender, auth_source=genuine.auth_source,
        committed_at=genuine.committed_at,
    )
    with pytest.raises(EntryContentError, match="does not hash to its hash") as caught:
        remote.verify_entries([genuine, forged])
    assert caught.value.seq == genuine.seq and isinstance(caught.value, LogVerificationError)
    other_seq = Entry.chained(
        seq=genuine.seq + 1, hash=genuine.hash, prev_hash=genuine.prev_hash, record=genuine.record,
        version=genuine.version, appender=genuine.appender, auth_source=genuine.auth_source,
        committed_at=genuine.committed_at,
    )
    with pytest.raises(EntryContentError):
        remote.verify_entries([other_seq])
    mutated = remote.get_by_id("r-3")
    assert mutated is not None and isinstance(mutated.record.payload, dict)
    mutated.record.payload["n"] = 1_000_000
    with pytest.raises(EntryContentError, match="not the canonical form"):
        remote.verify_entries([mutated])


def test_a_checkpoint_of_another_size_than_asked_is_refused_and_never_trusted(
    tamper: tuple[Ledger, Proxy, RemoteLedger], ledgers: Ledgers
) -> None:
    """``checkpoint(size=N)`` answered with another (validly signed) checkpoint, the latest one
    here, is refused before it could move the trusted state forward."""
    ledger, front, remote = tamper
    before = remote.trusted_checkpoint
    assert before is not None
    ledger.append_batch([rec(i) for i in range(9, 12)], RequestContext(oid=ALICE, source="auth.dev"))
    ledger.issue_checkpoint()
    front.route = lambda path: path.split("?")[0] if path.startswith("/checkpoint?size=") else path
    with pytest.raises(AnswerMismatchError, match=f"size {before.size}, the server answered one of size [0-9]+"):
        remote.checkpoint(before.size)
    assert remote.trusted_checkpoint == before
    with client(front.url, ledgers) as fresh:
        with pytest.raises(AnswerMismatchError):
            fresh.checkpoint(before.size)
        assert fresh.trusted_checkpoint is None
        front.route = None
        assert parse_checkpoint(parse_note(fresh.checkpoint(before.size)).text).size == before.size


def test_a_query_page_outside_its_filters_or_a_cursor_going_back_is_refused(
    tamper: tuple[Ledger, Proxy, RemoteLedger],
) -> None:
    """Genuine, proven entries that the query did not ask for (another record id, before the
    cursor), and a next_cursor pointing back (duplicates, an endless iter_entries), are refused."""
    _ledger, front, remote = tamper
    first_three = httpx.post(f"{front.upstream}/entries/query", json={"limit": 3}, headers=dev(ALICE)).content

    def unfiltered(method: str, path: str, body: bytes) -> bytes:
        return first_three if path.startswith("/entries/query") else body

    front.rewrite = unfiltered
    with pytest.raises(AnswerMismatchError, match=r"record id '.*' is not one asked for"):
        remote.query({"record_ids": ["r-5"]})
    with pytest.raises(AnswerMismatchError, match="not after the cursor"):
        remote.query({"cursor": "s5"})
    with pytest.raises(AnswerMismatchError):
        list(remote.iter_entries(from_seq=5))

    def back_to_start(method: str, path: str, body: bytes) -> bytes:
        if path.startswith("/entries/query"):
            doc = json.loads(body)
            doc["entries"] = doc["entries"][:2]
            doc["next_cursor"] = "s0"
            return json.dumps(doc).encode()
        return body

    front.rewrite = back_to_start
    with pytest.raises(AnswerMismatchError, match="does not move past its page"):
        remote.query({"limit": 2})
    with pytest.raises(AnswerMismatchError):
        list(itertools.islice(remote.iter_entries(), 100))
    front.rewrite = None
    assert [e.record.id for e in remote.query({"record_ids": ["r-5"]})] == ["r-5"]
    seqs = [e.seq for e in remote.iter_entries()]
    assert seqs == sorted(set(seqs))


def test_a_proof_hash_changed_in_transit_is_refused(tamper: tuple[Ledger, Proxy, RemoteLedger]) -> None:
    ledger, front, remote = tamper

    def flip_inclusion(method: str, path: str, body: bytes) -> bytes:
        if method == "POST" and path == "/proof/inclusion":
            doc = json.loads(body)
            proof = doc["proofs"][-1]
            proof["hashes"][0] = _flip_hex(proof["hashes"][0])
            return json.dumps(doc).encode()
        return body

    front.rewrite = flip_inclusion
    with pytest.raises(InclusionProofError) as caught:
        remote.get_by_id("r-3")
    assert caught.value.seq is not None

    def flip_page_proof(method: str, path: str, body: bytes) -> bytes:
        if path.startswith("/entries/query"):
            doc = json.loads(body)
            doc["proof"]["hashes"][0] = _flip_hex(doc["proof"]["hashes"][0])
            return json.dumps(doc).encode()
        return body

    front.rewrite = flip_page_proof
    with pytest.raises(InclusionProofError):
        remote.query({"stream": "notes", "limit": 3})

    def drop_page_proof(method: str, path: str, body: bytes) -> bytes:
        if path.startswith("/entries/query"):
            doc = json.loads(body)
            del doc["proof"]
            return json.dumps(doc).encode()
        return body

    front.rewrite = drop_page_proof
    with pytest.raises(InclusionProofError, match="without the proof"):
        remote.query({"stream": "notes", "limit": 3})
    front.rewrite = None
    trusted = remote.trusted_checkpoint
    assert trusted is not None

    def flip_consistency(method: str, path: str, body: bytes) -> bytes:
        if path.startswith("/proof/consistency"):
            doc = json.loads(body)
            doc["hashes"][-1] = _flip_hex(doc["hashes"][-1])
            return json.dumps(doc).encode()
        return body

    ledger.append_batch([rec(i) for i in range(9, 14)], RequestContext(oid=ALICE, source="auth.dev"))
    front.rewrite = flip_consistency
    with pytest.raises(InconsistentLogError):
        remote.refresh()
    assert remote.trusted_checkpoint == trusted  # unchanged by the refusal
    front.rewrite = None
    assert remote.refresh().size > trusted.size


@pytest.mark.parametrize("line", [0, 1, 2, 4])
def test_a_checkpoint_byte_changed_in_transit_is_refused(
    tamper: tuple[Ledger, Proxy, RemoteLedger], line: int
) -> None:
    """One byte of the origin, size, root or signature line changed (line 3 is the blank one)."""
    _ledger, front, remote = tamper
    before = remote.trusted_checkpoint

    def change(method: str, path: str, body: bytes) -> bytes:
        if not path.startswith("/checkpoint") or path.startswith("/checkpoint/key"):
            return body
        lines = body.split(b"\n")
        target = bytearray(lines[line])
        pos = len(target) // 2 if line != 1 else len(target) - 1
        target[pos] = ord("2") if target[pos] != ord("2") else ord("3")
        lines[line] = bytes(target)
        return b"\n".join(lines)

    front.rewrite = change
    with pytest.raises(CheckpointSignatureError):
        remote.refresh()
    with pytest.raises(CheckpointSignatureError):
        remote.checkpoint()
    assert remote.trusted_checkpoint == before


# --- rollback and split views ---------------------------------------------------------------
def test_a_server_restarted_on_an_older_copy_is_a_rollback_naming_both_sizes(
    open_ledger: Callable[..., Ledger], serve: Callable[..., Any], tmp_path: Path, proxy: Callable[[str], Proxy]
) -> None:
    ledgers = Ledgers("sqlite", open_ledger, tmp_path, None)
    ledger = ledgers.open("main")
    ledger.append(rec(1), RequestContext(oid=ALICE, source="auth.dev"))
    ledgers.sqlite_copy("main", "old")  # early: the operator's backup
    server = serve(ledger)
    front = proxy(server.url)
    state = tmp_path / "trusted.checkpoint"
    with client(front.url, ledgers, trusted_state=state) as remote:
        remote.append_batch([rec(i) for i in range(2, 7)])
        synced = remote.refresh()
    server.stop()

    front.upstream = serve(ledgers.open("old")).url
    with client(front.url, ledgers, trusted_state=state) as remote:  # a new client, the same state
        assert remote.trusted_checkpoint == synced
        with pytest.raises(RollbackError) as caught:
            remote.refresh()
        err = caught.value
        assert err.trusted_size == synced.size and err.presented_size is not None and err.presented_size < synced.size
        assert f"{err.presented_size} entries" in str(err) and f"the {synced.size} already trusted" in str(err)
        # Reads are refused too: the old copy cannot prove anything in the trusted tree.
        with pytest.raises(RollbackError):
            remote.get_by_id("r-1")
        with pytest.raises(RollbackError):
            remote.query({"stream": "notes"})  # its page proof asked in the trusted tree
        assert remote.trusted_checkpoint == synced
    assert state.read_bytes().decode("utf-8").split("\n")[1] == str(synced.size)


@pytest.mark.parametrize("same_size", [False, True])
def test_two_histories_under_one_key_are_inconsistent(
    ledgers: Ledgers, serve: Callable[..., Any], proxy: Callable[[str], Proxy], same_size: bool
) -> None:
    alice = RequestContext(oid=ALICE, source="auth.dev")
    honest, forged = ledgers.open("honest"), ledgers.open("forged")
    honest.append_batch([rec(i) for i in range(1, 6)], alice)
    forged.append_batch([rec(i, forged=True) for i in range(1, 6 if same_size else 9)], alice)
    honest_url, forged_url = serve(honest).url, serve(forged).url
    front = proxy(honest_url)
    with client(front.url, ledgers) as remote:
        seen = remote.refresh()
        assert len(remote.query({"stream": "notes"}).entries) == 5
        front.upstream = forged_url  # the same server name, another history signed by the same key
        with pytest.raises(InconsistentLogError) as caught:
            remote.refresh()
        if same_size:
            assert "two histories under one key" in str(caught.value)
        else:
            assert "not consistent" in str(caught.value)
        with pytest.raises(LogVerificationError):
            remote.query({"stream": "notes"})
        assert remote.trusted_checkpoint == seen
    # A client that saw the other (here larger) history first refuses the honest one: as a fork
    # at the same size, as a rollback when it is smaller.
    with client(front.url, ledgers) as remote:
        remote.refresh()
        front.upstream = honest_url
        with pytest.raises(InconsistentLogError if same_size else RollbackError):
            remote.refresh()


# --- trusted state through the client, errors, configuration ---------------------------------
def test_a_corrupt_state_file_is_a_clear_error(ledgers: Ledgers, serve: Callable[..., Any], tmp_path: Path) -> None:
    server = serve(ledgers.open("main"))
    state = tmp_path / "trusted.checkpoint"
    with client(server.url, ledgers, trusted_state=state) as remote:
        remote.append(rec(1))
    good = state.read_bytes()
    state.write_bytes(good.replace(b"\n\n", b"\n", 1))  # no longer a signed note
    with client(server.url, ledgers, trusted_state=state) as remote:
        with pytest.raises(TrustedStateError) as caught:
            remote.get_by_id("r-1")
        assert os.fspath(state) in str(caught.value) and "restore it" in str(caught.value)
        with pytest.raises(TrustedStateError):
            remote.refresh()
    assert state.read_bytes() == good.replace(b"\n\n", b"\n", 1)  # left for the operator to look at


def test_errors_rebuild_as_the_same_classes() -> None:
    for error in (
        RollbackError("the server presents 4, trusted 9", trusted_size=9, presented_size=4),
        InconsistentLogError("fork"),
        CheckpointSignatureError("bad signature"),
        InclusionProofError("entry 3", seq=3),
    ):
        rebuilt = rebuild_error(json.loads(json.dumps(error_document(error))), status=500)
        assert type(rebuilt) is type(error) and str(rebuilt) == str(error)
        assert isinstance(rebuilt, LogVerificationError) and isinstance(rebuilt, IntegrityError)
        assert pickle.loads(pickle.dumps(rebuilt)).__dict__ == rebuilt.__dict__
    rebuilt = rebuild_error(error_document(RollbackError("x", trusted_size=9, presented_size=4)), status=500)
    assert isinstance(rebuilt, RollbackError) and (rebuilt.trusted_size, rebuilt.presented_size) == (9, 4)


def test_verification_configuration() -> None:
    with pytest.raises(ConfigurationError, match="verifier keys"):
        RemoteLedger("http://127.0.0.1:1", verify=True)
    with pytest.raises(ConfigurationError, match="verifying client only"):
        RemoteLedger("http://127.0.0.1:1", trusted_state=MemoryTrustedState())
    vkey = NoteSigner.generate(ORIGIN).vkey
    with pytest.raises(ConfigurationError, match="not one string"):
        RemoteLedger("http://127.0.0.1:1", checkpoint_vkeys=vkey)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        RemoteLedger("http://127.0.0.1:1", checkpoint_vkeys=["not a vkey"])
    with pytest.raises(ConfigurationError, match="trusted_state must be"):
        RemoteLedger("http://127.0.0.1:1", checkpoint_vkeys=[vkey], trusted_state=42)  # type: ignore[arg-type]
    with RemoteLedger("http://127.0.0.1:1", checkpoint_vkeys=[vkey]) as remote:
        assert remote.verifying
    with RemoteLedger("http://127.0.0.1:1", checkpoint_vkeys=[vkey], verify=False) as remote:
        assert not remote.verifying
        with pytest.raises(ConfigurationError):
            remote.refresh()
    with RemoteLedger("http://127.0.0.1:1", checkpoint_vkeys=[vkey], trusted_state="x.checkpoint") as remote:
        assert isinstance(remote._store, FileTrustedState)
    anonymous = RemoteLedger("http://127.0.0.1:1", checkpoint_vkeys=[vkey])
    with anonymous, pytest.raises(ConfigurationError, match="origin"):
        anonymous.refresh()


def test_a_wrong_answer_to_a_read_or_an_append_is_refused(
    ledgers: Ledgers, serve: Callable[..., Any], proxy: Callable[[str], Proxy]
) -> None:
    """Entries that verify, but not the ones asked for: another entry for a hash or a record id,
    another record for an append, a page out of order."""
    server = serve(ledgers.open("main"))
    front = proxy(server.url)
    with client(front.url, ledgers) as remote:
        entries = remote.append_batch([rec(i) for i in range(1, 4)])
        genuine = {e.seq: e for e in entries}
        other = json.loads(httpx.get(f"{server.url}/records/r-1", headers=dev(ALICE)).content)

        def answer_r1(method: str, path: str, body: bytes) -> bytes:
            if (path.startswith(("/records/", "/entries/")) and method == "GET") or path == "/entries":
                return json.dumps(other).encode()
            return body

        front.rewrite = answer_r1
        with pytest.raises(LogVerificationError, match="asked for entry"):
            remote.get(genuine[entries[1].seq].hash)
        with pytest.raises(LogVerificationError, match="asked for record"):
            remote.get_by_id("r-2")
        with pytest.raises(LogVerificationError, match="another record"):
            remote.append(rec(9))

        def reversed_page(method: str, path: str, body: bytes) -> bytes:
            if path.startswith("/entries/query"):
                doc = json.loads(body)
                doc["entries"].reverse()
                return json.dumps(doc).encode()
            return body

        front.rewrite = reversed_page
        with pytest.raises(LogVerificationError, match="out of seq order"):
            remote.query({"stream": "notes"})
        front.rewrite = None
        assert remote.get_by_id("r-9") is not None  # the refused append was committed all the same


# --- a k-of-n witness policy ------------------------------------------------------------------
def test_a_witness_policy_refuses_checkpoints_without_enough_cosignatures(
    ledgers: Ledgers, serve: Callable[..., Any], proxy: Callable[[str], Proxy], tmp_path: Path
) -> None:
    """Three witnesses with real keys, a 2-of-3 policy. Until the server collects cosignatures
    itself, the proxy plays the witnesses: it adds their cosignature lines (made with
    CosignatureSigner.cosign) to every checkpoint it passes on."""
    ledger = ledgers.open("main")
    front = proxy(serve(ledger).url)
    witnesses = [CosignatureSigner.generate(f"witness-{i}.example") for i in range(3)]
    stranger = CosignatureSigner.generate("witness-9.example")
    policy = CosignaturePolicy(2, [w.verifier for w in witnesses])
    cosigning: list[CosignatureSigner] = []
    broken: list[CosignatureSigner] = []

    def cosign(method: str, path: str, body: bytes) -> bytes:
        if not path.startswith("/checkpoint") or path.startswith("/checkpoint/key"):
            return body
        note = body.decode("utf-8")
        text = parse_note(note).text
        lines = []
        for witness in cosigning:
            cosignature = witness.cosign(text, 1_763_942_400)
            if witness in broken:
                cosignature = witness.cosign(text, 1_763_942_401)  # a signature of another timestamp
                cosignature = dataclasses.replace(cosignature, timestamp=1_763_942_400)
            lines.append(cosignature)
        return add_cosignatures(note, lines).encode("utf-8") if lines else body

    front.rewrite = cosign
    state = tmp_path / "trusted.checkpoint"
    with client(front.url, ledgers, trusted_state=state, witness_policy=policy) as remote:
        for cosigners in ([], [witnesses[0]], [witnesses[2], stranger]):
            cosigning[:] = cosigners
            with pytest.raises(WitnessPolicyError) as caught:
                remote.refresh()
            assert "1 of the 3" in str(caught.value) or "0 of the 3" in str(caught.value)
            assert remote.trusted_checkpoint is None and not state.exists()
        cosigning[:] = [witnesses[0], witnesses[2]]
        accepted = remote.refresh()
        assert remote.trusted_checkpoint == accepted
        assert len(policy.check(state.read_bytes())) == 2  # the state keeps the cosigned note
        remote.append(rec(1))  # a newer checkpoint, cosigned by the same two: accepted
        trusted = remote.trusted_checkpoint
        assert trusted is not None and trusted.size > accepted.size
        # A trusted witness's line that does not verify refuses the checkpoint, even with a quorum.
        cosigning[:] = witnesses
        broken[:] = [witnesses[1]]
        ledger.append(rec(2), RequestContext(oid=ALICE, source="auth.dev"))
        with pytest.raises(WitnessPolicyError, match="does not verify"):
            remote.refresh()
        with pytest.raises(WitnessPolicyError):
            remote.get_by_id("r-2")
        assert remote.trusted_checkpoint == trusted
        broken.clear()
        assert remote.get_by_id("r-2") is not None
    with pytest.raises(ConfigurationError, match="verifying client only"):
        RemoteLedger(front.url, witness_policy=policy)


def test_a_page_partly_newer_than_the_trusted_checkpoint(ledgers: Ledgers, serve: Callable[..., Any]) -> None:
    """The entries in the trusted tree are proven by the page's own proof, the newer ones after
    the client moved to a newer checkpoint (consistent with the trusted one)."""
    ledger = ledgers.open("main")
    server = serve(ledger)
    alice = RequestContext(oid=ALICE, source="auth.dev")
    ledger.append_batch([rec(i) for i in range(1, 5)], alice)
    with client(server.url, ledgers) as remote:
        before = remote.refresh()
        ledger.append_batch([rec(i) for i in range(5, 9)], alice)
        page = remote.query({"stream": "notes"})
        assert [e.record.id for e in page] == [f"r-{i}" for i in range(1, 9)]
        after = remote.trusted_checkpoint
        assert after is not None and after.size > before.size and after.size >= page.entries[-1].seq
        assert [e.record.id for e in remote.iter_entries() if e.record.stream == "notes"][-1] == "r-8"


def test_a_witness_policy_asks_for_a_cosigned_checkpoint_and_waits_for_one(
    ledgers: Ledgers, serve: Callable[..., Any], proxy: Callable[[str], Proxy]
) -> None:
    """A server that answers GET /checkpoint?cosigned=K (the latest checkpoint K of its witnesses
    cosigned, 404 while there is none), played by the proxy in front of this server: the client
    asks for its policy's quorum, and a read waits for the cosigned checkpoint."""
    ledger = ledgers.open("main")
    front = proxy(serve(ledger).url)
    witnesses = [CosignatureSigner.generate(f"witness-{i}.example") for i in range(3)]
    policy = CosignaturePolicy(2, [w.verifier for w in witnesses])
    asked: list[str] = []
    cosigned = threading.Event()

    def route(path: str) -> str | tuple[int, bytes]:
        if path.startswith("/checkpoint?"):
            asked.append(path)
            if not cosigned.is_set():
                return 404, json.dumps({"error": {"code": "not_found", "message": "none cosigned yet"}}).encode()
            return "/checkpoint"
        return path

    def cosign(method: str, path: str, body: bytes) -> bytes:
        if not path.startswith("/checkpoint?"):
            return body
        text = parse_note(body.decode("utf-8")).text
        return add_cosignatures(body.decode("utf-8"), [w.cosign(text, 1_763_942_400) for w in witnesses[:2]]).encode()

    front.route, front.rewrite = route, cosign
    with client(front.url, ledgers, witness_policy=policy, checkpoint_wait=60) as remote:
        with pytest.raises(WitnessPolicyError, match="no checkpoint cosigned by 2"):
            remote.refresh()
        assert asked == ["/checkpoint?cosigned=2"]
        threading.Timer(0.3, cosigned.set).start()
        entry = remote.append(rec(1))  # waits until the cosigned checkpoint covers it
        trusted = remote.trusted_checkpoint
        assert trusted is not None and trusted.size >= entry.seq and len(asked) > 2
        assert all(p == "/checkpoint?cosigned=2" for p in asked)



def test_a_witness_policy_against_a_ledger_signing_no_checkpoints_says_so(
    open_ledger: Callable[..., Ledger], serve: Callable[..., Any]
) -> None:
    """The 404 of a ledger without a checkpoint key is not "none cosigned yet": the client says
    the ledger signs no checkpoints instead of waiting for a cosigned one."""
    server = serve(open_ledger("ual", name="unsigned.db", admins=[ALICE]))
    policy = CosignaturePolicy(1, [CosignatureSigner.generate("witness-0.example").verifier])
    vkey = NoteSigner.generate(ORIGIN).vkey
    with RemoteLedger(
        server.url, token=f"dev:{ALICE}", ledger_id=LEDGER, checkpoint_vkeys=[vkey], witness_policy=policy
    ) as remote, pytest.raises(NotFoundError, match="signs no checkpoints"):
        remote.refresh()
