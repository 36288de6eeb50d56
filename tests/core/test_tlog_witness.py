"""The witness protocol's log side (c2sp.org/tlog-witness add-checkpoint): the request body both
ways, and WitnessClient against an HTTP server on loopback answering each status of the spec."""

from __future__ import annotations

import base64
import http.server
import threading
from collections.abc import Callable, Iterator

import pytest

from nucleus_core.checkpoint import CosignatureSigner, NoteSigner, sign_checkpoint
from nucleus_core.tlog_verify import parse_note
from nucleus_core.tlog_witness import (
    MAX_PROOF_LINES,
    SIZE_CONTENT_TYPE,
    AddCheckpointRequest,
    WitnessBadRequestError,
    WitnessClient,
    WitnessConflictError,
    WitnessError,
    WitnessForbiddenError,
    WitnessProofError,
    WitnessResponseError,
    WitnessUnavailableError,
    WitnessUnknownLogError,
    parse_add_checkpoint,
    parse_size_body,
    submit_checkpoint,
)

ORIGIN = "sigsum.org/v1/tree/e796172b92befd62d9dc67e41c2f5bc9d3100a3023b20b1ca40288dd1c679e69"
LOG = NoteSigner(name=ORIGIN, seed=bytes([0x11]) + bytes(31))
PROOF_6_8 = tuple(
    base64.b64decode(h)
    for h in (
        "DrxdNDf74tsVi58Sah0RjjCBgQMdCpSfje3t68VY72o=",
        "yoVOoSjtBQtBs1/8G4e46yveRh6eO1WW7Oa51ZdaCuA=",
        "037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc=",
    )
)
NOTE8 = sign_checkpoint(ORIGIN, 8, base64.b64decode("XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg="), [LOG])
# The add-checkpoint body from size 6 to 8 of the transparency formats notes (derived vectors).
BODY_6_8 = (
    "old 6\n"
    "DrxdNDf74tsVi58Sah0RjjCBgQMdCpSfje3t68VY72o=\n"
    "yoVOoSjtBQtBs1/8G4e46yveRh6eO1WW7Oa51ZdaCuA=\n"
    "037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc=\n"
    "\n"
    f"{ORIGIN}\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n\n"
    f"\u2014 {ORIGIN} gJ2ho/5YBSEdA8yXbf8FM3q7xPIM/zf9YIBQB/NqHgsKb4SW8NWtV9b/WLFa4m1JtmG26MvRHNUpbGe6CQjsHF3RSA8=\n"
).encode()
WITNESS = CosignatureSigner(name="witness.example/w1", seed=bytes(range(32)))


def test_request_body_vector_both_ways() -> None:
    request = AddCheckpointRequest(old_size=6, proof=PROOF_6_8, checkpoint=NOTE8)
    assert request.body() == BODY_6_8
    assert parse_add_checkpoint(BODY_6_8) == request
    first = AddCheckpointRequest(old_size=0, proof=(), checkpoint=NOTE8)
    assert first.body().startswith(b"old 0\n\n" + ORIGIN.encode())
    assert parse_add_checkpoint(first.body()) == first


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"", "no blank line"),
        (b"old 6\n" + NOTE8.encode(), "consistency proof line 1"),  # the note's blank line ends the header
        (b"old 06\n\n" + NOTE8.encode(), "old <size>"),
        (b"old -1\n\n" + NOTE8.encode(), "old <size>"),
        (b"old  6\n\n" + NOTE8.encode(), "old <size>"),
        (b"Old 6\n\n" + NOTE8.encode(), "old <size>"),
        (b"old 9223372036854775808\n\n" + NOTE8.encode(), "2\\^63-1"),
        (b"old 6\nnot base64!\n\n" + NOTE8.encode(), "not base64"),
        (b"old 6\nAAAA\n\n" + NOTE8.encode(), "not a 32-byte hash"),
        (b"old 6\r\n" + BODY_6_8[6:], "old <size>"),
        (b"old 6\n" + b"".join(base64.b64encode(bytes(32)) + b"\n" for _ in range(64)) + b"\n" + NOTE8.encode(), "63"),
        (b"old 0\n\nno signatures\n", "not a signed note"),
        (b"old 0\n\n" + NOTE8.encode()[:-1], "not a signed note"),
        (b"old 0\n\n\xff" + NOTE8.encode(), "not UTF-8"),
        (b"old 0\n\n" + b"x" * 1_100_000 + b"\n\n" + NOTE8.encode(), "larger than"),
    ],
)
def test_malformed_request_bodies(body: bytes, match: str) -> None:
    with pytest.raises(WitnessBadRequestError, match=match):
        parse_add_checkpoint(body)


def test_request_values_are_checked() -> None:
    for request in (
        AddCheckpointRequest(old_size=-1, proof=(), checkpoint=NOTE8),
        AddCheckpointRequest(old_size=0, proof=(b"short",), checkpoint=NOTE8),
        AddCheckpointRequest(old_size=0, proof=(bytes(32),) * (MAX_PROOF_LINES + 1), checkpoint=NOTE8),
        AddCheckpointRequest(old_size=0, proof=(), checkpoint=NOTE8[:-1]),
    ):
        with pytest.raises(WitnessBadRequestError):
            request.body()


def test_size_body() -> None:
    assert parse_size_body(b"6\n") == 6
    assert parse_size_body(b"0\n") == 0
    for bad in (b"6", b"06\n", b"-1\n", b"six\n", b"6\n\n", b"\xff\n", b"9223372036854775808\n"):
        with pytest.raises(WitnessResponseError):
            parse_size_body(bad)


# -- the client on loopback ------------------------------------------------------------------------------

Answer = tuple[int, dict[str, str], bytes]


class _Server:
    """A loopback HTTP/1.1 server whose answer a test sets; it records the requests it got."""

    def __init__(self) -> None:
        self.answer: Callable[[bytes], Answer] = lambda body: (500, {}, b"unset")
        self.requests: list[tuple[str, str, bytes]] = []
        self.connections: set[tuple[str, int]] = set()
        self.hang_up = False
        self.cut_off = False
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                hang_up = outer.hang_up  # read before answering: the test changes it once answered
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((self.path, self.headers.get("Content-Type", ""), body))
                outer.connections.add(self.client_address)
                status, headers, data = outer.answer(body)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if outer.cut_off:  # stop in the middle of the answer, as a crashing witness does
                    self.wfile.write(data[: len(data) // 2])
                    self.close_connection = True
                    return
                self.wfile.write(data)
                if hang_up:  # close the connection without saying so, as an idle timeout would
                    self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/witness/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    yield s
    s.stop()


def _cosign(body: bytes, timestamp: int = 1_800_000_000) -> bytes:
    request = parse_add_checkpoint(body)
    return WITNESS.cosign(parse_note(request.checkpoint).text, timestamp).line().encode()


def test_cosignatures_come_back_verified_on_one_kept_alive_connection(server: _Server) -> None:
    other = CosignatureSigner.generate("witness.example/other")
    server.answer = lambda body: (200, {}, other.cosign(parse_note(NOTE8).text, 5).line().encode() + _cosign(body))
    with WitnessClient(server.url, WITNESS.verifier) as client:
        first = client.add_checkpoint(NOTE8, 6, PROOF_6_8)
        second = client.add_checkpoint(NOTE8, 8, [])
    assert [c.line() for c in first] == [_cosign(BODY_6_8).decode()]
    assert second[0].timestamp == 1_800_000_000
    assert [(path, body) for path, _type, body in server.requests] == [
        ("/witness/add-checkpoint", BODY_6_8),
        ("/witness/add-checkpoint", b"old 8\n\n" + NOTE8.encode()),
    ]
    assert len(server.connections) == 1  # keep-alive, as the spec asks of clients


def test_a_closed_kept_alive_connection_is_replaced(server: _Server) -> None:
    server.answer = lambda body: (200, {}, _cosign(body))
    with WitnessClient(server.url, WITNESS.verifier) as client:
        server.hang_up = True
        client.add_checkpoint(NOTE8, 6, PROOF_6_8)
        server.hang_up = False
        assert client.add_checkpoint(NOTE8, 6, PROOF_6_8)
    assert len(server.requests) == 2
    assert len(server.connections) == 2


@pytest.mark.parametrize("status", [200, 409])
def test_an_answer_cut_off_is_no_answer(server: _Server, status: int) -> None:
    server.cut_off = True
    headers = {"Content-Type": SIZE_CONTENT_TYPE}
    server.answer = lambda body: (status, headers, b"16\n" if status == 409 else _cosign(body))
    with pytest.raises(WitnessUnavailableError, match="IncompleteRead"):
        submit_checkpoint(server.url, WITNESS.verifier, NOTE8, 6, PROOF_6_8)


def test_conflict_names_the_witness_size(server: _Server) -> None:
    server.answer = lambda body: (409, {"Content-Type": SIZE_CONTENT_TYPE}, b"6\n")
    with pytest.raises(WitnessConflictError, match="has size 6, not 0") as info:
        submit_checkpoint(server.url, WITNESS.verifier, NOTE8, 0, [])
    assert info.value.size == 6 and info.value.status == 409
    server.answer = lambda body: (409, {"Content-Type": SIZE_CONTENT_TYPE}, b"six\n")
    with pytest.raises(WitnessResponseError, match="not a tree size"):
        submit_checkpoint(server.url, WITNESS.verifier, NOTE8, 0, [])


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, WitnessBadRequestError),
        (403, WitnessForbiddenError),
        (404, WitnessUnknownLogError),
        (422, WitnessProofError),
    ],
)
def test_refusals(server: _Server, status: int, error: type[WitnessError]) -> None:
    server.answer = lambda body: (status, {"Content-Type": "text/plain"}, b"the witness says why\n\x1b[31m")
    with pytest.raises(error, match=f"refused the checkpoint \\({status}\\): the witness says why") as info:
        submit_checkpoint(server.url, WITNESS.verifier, NOTE8, 6, PROOF_6_8)
    assert "\x1b" not in str(info.value)
    assert info.value.status == status


@pytest.mark.parametrize("status", [500, 503, 429, 302, 201])
def test_other_statuses_are_unavailable(server: _Server, status: int) -> None:
    server.answer = lambda body: (status, {}, b"")
    with pytest.raises(WitnessUnavailableError, match=f"answered {status}") as info:
        submit_checkpoint(server.url, WITNESS.verifier, NOTE8, 6, PROOF_6_8)
    assert info.value.http_status == status


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        (b"", "not signature lines"),
        (b"hello\n", "not signature lines"),
        (b"\xff\n", "not signature lines"),
        ("\u2014 someone AAAAAAA=\n".encode(), "holds no cosignature by witness.example/w1"),
    ],
)
def test_answers_outside_the_protocol(server: _Server, answer: bytes, match: str) -> None:
    server.answer = lambda body: (200, {}, answer)
    with pytest.raises(WitnessResponseError, match=match):
        submit_checkpoint(server.url, WITNESS.verifier, NOTE8, 6, PROOF_6_8)


def test_a_cosignature_over_something_else_or_without_time_is_refused(server: _Server) -> None:
    other_note = sign_checkpoint(ORIGIN, 9, bytes(32), [LOG])
    server.answer = lambda body: (200, {}, WITNESS.cosign(parse_note(other_note).text, 7).line().encode())
    with pytest.raises(WitnessResponseError, match="does not verify over the checkpoint"):
        submit_checkpoint(server.url, WITNESS.verifier, NOTE8, 6, PROOF_6_8)
    server.answer = lambda body: (200, {}, _cosign(body, timestamp=0))
    with pytest.raises(WitnessResponseError, match="no timestamp"):
        submit_checkpoint(server.url, WITNESS.verifier, NOTE8, 6, PROOF_6_8)
    server.answer = lambda body: (200, {}, b"x" * 70_000)
    with pytest.raises(WitnessResponseError):
        submit_checkpoint(server.url, WITNESS.verifier, NOTE8, 6, PROOF_6_8)


def test_unreachable_and_silent_witnesses() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with pytest.raises(WitnessUnavailableError, match="no answer"):
            submit_checkpoint(f"http://127.0.0.1:{port}", WITNESS.verifier, NOTE8, 6, PROOF_6_8)
        sock.listen()  # accepts, never answers
        with pytest.raises(WitnessUnavailableError, match="no answer"):
            submit_checkpoint(f"http://127.0.0.1:{port}", WITNESS.verifier, NOTE8, 6, PROOF_6_8, timeout=0.5)


def test_client_arguments() -> None:
    for url in ("ftp://x", "witness.example", "http://", "http://x/?q=1", "http://u:p@x/"):
        with pytest.raises(ValueError, match="witness URL"):
            WitnessClient(url, WITNESS.verifier)
    with pytest.raises(TypeError):
        WitnessClient("http://x", LOG.verifier)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        WitnessClient("http://x", WITNESS.verifier, timeout=0)
    with pytest.raises(WitnessBadRequestError, match="not a signed note"):
        WitnessClient("http://x", WITNESS.verifier).add_checkpoint("nope\n", 0, [])
