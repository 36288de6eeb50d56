"""The witness over HTTP on loopback, fed checkpoints and proofs by real Nucleus ledgers: it cosigns
the first checkpoint and every consistent successor, answers each refusal of c2sp.org/tlog-witness
with its status, never cosigns a fork, and keeps what it cosigned across restarts. Every
cosignature is checked by the tests' own C2SP verifier."""

from __future__ import annotations

import base64
import concurrent.futures
import http.client
import socket
import urllib.parse
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from nucleus_witness import WitnessedLog, WitnessState, origin_hash

from nucleus_core.checkpoint import CosignatureSigner, NoteSigner, sign_checkpoint, sign_note
from nucleus_core.cosignature import verify_cosignatures
from nucleus_core.tlog_verify import EMPTY_ROOT, parse_note
from nucleus_core.tlog_witness import (
    SIZE_CONTENT_TYPE,
    AddCheckpointRequest,
    WitnessClient,
    WitnessConflictError,
    WitnessForbiddenError,
    WitnessUnknownLogError,
)

ORIGIN = "ledger.test/witnessed"  # conftest's ORIGIN: the histories' checkpoints are for this log
History = Any  # conftest.History
ServedWitness = Any  # conftest.ServedWitness


def test_the_origin_is_conftests(origin: str) -> None:
    assert origin == ORIGIN


def post(url: str, body: bytes, path: str = "/add-checkpoint", method: str = "POST") -> tuple[int, str, bytes]:
    """One raw HTTP request: status, Content-Type, body."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request(method, parts.path + path, body=body)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


def cosigned_note(note: str, answer: bytes) -> str:
    return note + answer.decode()


def test_cosigns_the_first_checkpoint_then_consistent_ones(
    histories: Any, serve_witness: Any, witness_key: CosignatureSigner, log_key: NoteSigner, ref: ModuleType
) -> None:
    history: History = histories().grow(5)
    served: ServedWitness = serve_witness()
    note5 = history.checkpoint()
    status, content_type, answer = post(served.url, history.body(0))
    assert (status, content_type) == (200, "text/plain; charset=utf-8"), answer
    assert answer.count(b"\n") == 1 and answer.startswith("\u2014 witness.test/w1 ".encode())
    (t5,) = ref.cosignature_timestamps(cosigned_note(note5, answer), witness_key.vkey)
    assert t5 > 1_700_000_000
    assert ref.checkpoint(cosigned_note(note5, answer), log_key.vkey).size == 5

    history.grow(3)
    note8 = history.checkpoint()
    with WitnessClient(served.url, witness_key.verifier) as client:
        (cosignature,) = client.add_checkpoint(note8, 5, history.proof(5))
        assert cosignature.timestamp >= t5
        assert ref.cosignature_timestamps(note8 + cosignature.line(), witness_key.vkey) == [cosignature.timestamp]
        # The same checkpoint again (old == size == stored size): cosigned again, never earlier.
        (again,) = client.add_checkpoint(note8, 8, [])
        assert again.timestamp >= cosignature.timestamp
    body = ref.parse_checkpoint_text(ref.split_note(note8).text)
    assert body.root == ref.merkle_root(history.leaves)  # the ledger's root, by the reference's tree

    # The monitoring path serves the latest checkpoint with the log's signature and the cosignature.
    status, _type, served_note = post(served.url, b"", path=f"/{origin_hash(ORIGIN)}/checkpoint", method="GET")
    assert status == 200
    assert ref.note_signed_by(served_note, log_key.vkey)
    assert ref.cosignature_timestamps(served_note, witness_key.vkey) == [again.timestamp]
    assert ref.parse_checkpoint_text(ref.split_note(served_note).text).size == 8


def test_conflict_answers_the_stored_size(histories: Any, serve_witness: Any, witness_key: CosignatureSigner) -> None:
    history: History = histories().grow(4)
    served = serve_witness()
    assert post(served.url, history.body(0))[0] == 200
    history.grow(2)
    for old in (0, 3, 5):
        status, content_type, answer = post(served.url, history.body(old))
        assert (status, content_type, answer) == (409, SIZE_CONTENT_TYPE, b"4\n")
    with WitnessClient(served.url, witness_key.verifier) as client:
        with pytest.raises(WitnessConflictError) as info:
            client.add_checkpoint(history.checkpoint(), 0, [])
        assert info.value.size == 4
        # What a log does with a 409: send again from the size the witness has.
        assert client.add_checkpoint(history.checkpoint(), info.value.size, history.proof(4))
    assert served.witness.state.get(ORIGIN).size == 6


def test_bad_proofs_are_422(histories: Any, serve_witness: Any) -> None:
    history: History = histories().grow(6)
    served = serve_witness()
    assert post(served.url, history.body(0))[0] == 200
    history.grow(5)
    proof = history.proof(6)
    for bad in (
        [proof[0][:-1] + bytes([proof[0][-1] ^ 1]), *proof[1:]],  # a flipped bit
        proof[:-1],  # one hash short
        [*proof, proof[0]],  # one hash too many
        list(reversed(proof)),
    ):
        body = AddCheckpointRequest(old_size=6, proof=tuple(bad), checkpoint=history.checkpoint()).body()
        status, _type, answer = post(served.url, body)
        assert status == 422, answer
    assert served.witness.state.get(ORIGIN).size == 6  # nothing moved
    # A proof "from 0" must be empty.
    fresh = serve_witness(state=served.witness.state.path.with_name("fresh.db"))
    body = AddCheckpointRequest(old_size=0, proof=tuple(proof[:1]), checkpoint=history.checkpoint()).body()
    assert post(fresh.url, body)[0] == 422
    assert fresh.witness.state.get(ORIGIN) is None


def test_unknown_logs_and_bad_signatures(
    histories: Any, serve_witness: Any, log_key: NoteSigner, tmp_path: Path
) -> None:
    history: History = histories().grow(3)
    served = serve_witness()
    other = sign_checkpoint("ledger.test/other", 3, bytes(32), [NoteSigner.generate("ledger.test/other")])
    status, _type, answer = post(served.url, AddCheckpointRequest(0, (), other).body())
    assert status == 404 and b"ledger.test/other" in answer
    # The right origin signed by another key (same name, another key ID): no trusted signature.
    impostor = NoteSigner.generate(ORIGIN)
    forged = sign_checkpoint(ORIGIN, 3, EMPTY_ROOT[:31] + b"x", [impostor])
    assert post(served.url, AddCheckpointRequest(0, (), forged).body())[0] == 403
    # The right key's signature line over another text: a trusted key's signature fails.
    note = history.checkpoint()
    text = parse_note(note).text
    tampered = note.replace(text, text.replace("\n3\n", "\n4\n"))
    assert post(served.url, AddCheckpointRequest(0, (), tampered).body())[0] == 403
    # ... even when another trusted key's valid signature is on the note too.
    second = NoteSigner.generate(ORIGIN)
    both = serve_witness(
        state=tmp_path / "both.db", logs=[WitnessedLog(origin=ORIGIN, verifiers=(log_key.verifier, second.verifier))]
    )
    good = sign_checkpoint(ORIGIN, 3, EMPTY_ROOT, [second])
    mixed = good + parse_note(sign_checkpoint(ORIGIN, 4, EMPTY_ROOT, [log_key])).signatures[0].line()
    assert post(both.url, AddCheckpointRequest(0, (), mixed).body())[0] == 403
    with WitnessClient(served.url, CosignatureSigner.generate("x").verifier) as client:
        with pytest.raises(WitnessForbiddenError):
            client.add_checkpoint(tampered, 0, [])
        with pytest.raises(WitnessUnknownLogError):
            client.add_checkpoint(other, 0, [])
    assert served.witness.state.get(ORIGIN) is None and both.witness.state.get(ORIGIN) is None


def test_malformed_requests_are_400(histories: Any, serve_witness: Any, log_key: NoteSigner) -> None:
    history: History = histories().grow(3)
    served = serve_witness()
    note = history.checkpoint()
    not_a_checkpoint = sign_note(f"{ORIGIN}\nthree\nroot\n", [log_key])  # signed by the log, but no checkpoint
    for body in (
        b"",
        b"old 0\n" + note.encode(),  # no blank line after the header: the note's lines read as proof lines
        b"old 00\n\n" + note.encode(),
        b"old 0\n\nnot a note\n",
        AddCheckpointRequest(old_size=4, proof=(), checkpoint=note).body(),  # old size above the checkpoint's
        AddCheckpointRequest(old_size=0, proof=(), checkpoint=not_a_checkpoint).body(),
    ):
        status, _type, answer = post(served.url, body)
        assert status == 400, (body, answer)
    assert post(served.url, b"", method="GET")[0] == 405
    assert post(served.url, b"", path="/elsewhere")[0] == 404
    assert post(served.url, b"x" * 1_010_000)[0] == 413
    assert served.witness.state.get(ORIGIN) is None


def test_a_size_zero_checkpoint_needs_the_empty_root(serve_witness: Any, log_key: NoteSigner, tmp_path: Path) -> None:
    served = serve_witness()
    text = f"{ORIGIN}\n0\n{base64.b64encode(bytes(32)).decode()}\n"
    note = text + "\n" + log_key.sign(text).line()
    assert post(served.url, AddCheckpointRequest(0, (), note).body())[0] == 422
    for root in ("!!!notbase64", base64.b64encode(bytes(31)).decode(), base64.b64encode(bytes(32)).decode()[:-1]):
        malformed = f"{ORIGIN}\n0\n{root}\n"  # not a checkpoint at all: 400, not the 422 of a wrong root
        status, _type, answer = post(
            served.url, AddCheckpointRequest(0, (), malformed + "\n" + log_key.sign(malformed).line()).body()
        )
        assert status == 400, (root, answer)
    empty = sign_checkpoint(ORIGIN, 0, EMPTY_ROOT, [log_key])
    assert post(served.url, AddCheckpointRequest(0, (), empty).body())[0] == 200
    assert served.witness.state.get(ORIGIN).size == 0


def test_a_request_cut_off_midway_is_not_acted_on(histories: Any, serve_witness: Any) -> None:
    """A sender that goes away before its body ended: nothing is cosigned or stored, even when what
    arrived (the checkpoint cut after a signature line) would be a valid request."""
    history: History = histories().grow(2)
    served = serve_witness()
    body = history.body(0)
    parts = urllib.parse.urlsplit(served.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        head = f"POST {parts.path}/add-checkpoint HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body) + 100}\r\n\r\n"
        sock.sendall(head.encode() + body)
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(4096) == b""  # closed without an answer
    assert served.witness.state.get(ORIGIN) is None
    assert post(served.url, body)[0] == 200  # the same request, whole, is cosigned


def test_a_fork_is_never_cosigned(
    histories: Any, serve_witness: Any, witness_key: CosignatureSigner, ref: ModuleType
) -> None:
    honest: History = histories("honest").grow(3)
    fork: History = honest.fork("fork")  # the same three entries, then another history, one key
    honest.grow(2, tag="a")
    served = serve_witness()
    assert post(served.url, honest.body(0))[0] == 200  # the witness has seen the honest 5
    fork.grow(6, tag="b")
    assert fork.leaves[:3] == honest.leaves[:3] and fork.leaves[3] != honest.leaves[3]
    # The fork's own consistency proof from 5 is valid for the fork, not against what was cosigned.
    status, _type, answer = post(served.url, fork.body(5))
    assert status == 422, answer
    # From the shared prefix: the witness has moved past it.
    assert post(served.url, fork.body(3)) == (409, SIZE_CONTENT_TYPE, b"5\n")
    honest.grow(4, tag="a")
    status, _type, answer = post(served.url, honest.body(5))
    assert status == 200
    # At the same size with another root: 422, not 409.
    assert post(served.url, fork.body(9))[0] == 422
    # The fork at a size below the one cosigned: a conflict (the witness is at 9).
    fork_at_5 = AddCheckpointRequest(old_size=5, proof=(), checkpoint=fork.checkpoint()).body()
    assert post(served.url, fork_at_5)[0] == 409
    latest = served.witness.state.get(ORIGIN)
    assert (latest.size, latest.root) == (9, ref.merkle_root(honest.leaves))
    assert ref.cosignature_timestamps(honest.checkpoint() + answer.decode(), witness_key.vkey)
    assert ref.merkle_root(fork.leaves) != latest.root


def test_concurrent_requests_from_one_state_advance_it_once(histories: Any, serve_witness: Any) -> None:
    honest: History = histories("honest").grow(3)
    fork: History = honest.fork("fork")
    served = serve_witness()
    assert post(served.url, honest.body(0))[0] == 200
    # From the cosigned 3, each of these is a valid next step on its own: honest ones and the
    # fork's (which shares those 3 entries) alike.
    bodies = []
    for _ in range(4):
        honest.grow(1, tag="a")
        bodies.append(honest.body(3))
        fork.grow(1, tag="b")
        bodies.append(fork.body(3))
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda body: post(served.url, body), bodies))
    statuses = [status for status, _type, _body in answers]
    # Exactly one advanced from size 3; every other found the state moved on (the spec's race).
    assert sorted(statuses) == [200] + [409] * 7, statuses
    winner = bodies[statuses.index(200)]
    stored = served.witness.state.get(ORIGIN)
    assert {body for status, _type, body in answers if status == 409} == {f"{stored.size}\n".encode()}
    assert stored.checkpoint.startswith(parse_note(winner.split(b"\n\n", 1)[1].decode()).text)


def test_state_survives_a_restart(
    histories: Any, serve_witness: Any, witness_key: CosignatureSigner, tmp_path: Path
) -> None:
    history: History = histories().grow(7)
    first = serve_witness(state=tmp_path / "kept.db")
    assert post(first.url, history.body(0))[0] == 200
    first.stop()
    first.witness.state.close()
    second = serve_witness(state=tmp_path / "kept.db")
    assert post(second.url, history.body(0)) == (409, SIZE_CONTENT_TYPE, b"7\n")
    history.grow(1)
    status, _type, answer = post(second.url, history.body(7))
    assert status == 200
    assert verify_cosignatures(history.checkpoint() + answer.decode(), [witness_key.verifier])


def test_timestamps_never_go_back(
    histories: Any, serve_witness: Any, ref: ModuleType, witness_key: CosignatureSigner
) -> None:
    history: History = histories().grow(2)
    now = [2_000_000_000.0]
    served = serve_witness(clock=lambda: now[0])
    first = post(served.url, history.body(0))[2]
    now[0] -= 3600  # the clock is set back an hour
    history.grow(1)
    second = post(served.url, history.body(2))[2]
    note = history.checkpoint()
    assert ref.cosignature_timestamps(note + second.decode(), witness_key.vkey) == [2_000_000_000]
    assert first != second


def test_a_prefix(histories: Any, serve_witness: Any) -> None:
    history: History = histories().grow(1)
    served = serve_witness(prefix="/witness")
    assert served.url.endswith("/witness")
    assert post(served.url, history.body(0))[0] == 200
    assert post(served.url.removesuffix("/witness"), history.body(1))[0] == 404


def test_the_state_is_written_before_the_answer(histories: Any, tmp_path: Path, serve_witness: Any) -> None:
    history: History = histories().grow(2)
    served = serve_witness(state=tmp_path / "w.db")
    assert post(served.url, history.body(0))[0] == 200
    # Another connection to the file (another process would see the same) sees the new state.
    other = WitnessState(tmp_path / "w.db")
    try:
        assert other.get(ORIGIN).size == 2
    finally:
        other.close()
