"""``GET /entries/stream`` (Server-Sent Events) and ``RemoteLedger.tail``: against a real
``nucleus serve`` subprocess, 20 subscribers with different tokens and filters, two writer
processes (one through HTTP, one straight to the database) across forced reconnects and a server
restart; the end of streams at shutdown; a slow consumer's bounded cost; the stream limit; errors."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
from nucleus_server import ServerSettings
from nucleus_server.client import RemoteLedger

from nucleus_core import Entry, Ledger, Record, RequestContext, create_ledger, open_ledger

LEDGER = "streams"
ALICE, BOB, CAROL, DAVE, ROOT = (f"oid:test:user:{n}" for n in ("alice", "bob", "carol", "dave", "root"))
PLUGINS = ["auth.dev", "ual"]


def ctx(oid: str) -> RequestContext:
    return RequestContext(oid=oid, source="auth.dev")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sse(lines: Iterator[str]) -> Iterator[tuple[str, str | None, str]]:
    """(event, id, data) of a Server-Sent Events stream: a client of our own, by the spec; a
    comment (keep-alive) is ("", None, "")."""
    name, ident, data = "message", None, []
    for line in lines:
        if line == "":
            if data:
                yield name, ident, "\n".join(data)
            name, ident, data = "message", None, []
        elif line.startswith(":"):
            yield "", None, ""
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "id":
                ident = value
            elif field == "data":
                data.append(value)


class Server:
    """``nucleus serve --config FILE`` as a subprocess, on a fixed port (restartable)."""

    def __init__(self, tmp_path: Path, workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = tmp_path / "nucleus.toml"
        self.config.write_text(textwrap.dedent(f"""
            [ledger]
            id = "{LEDGER}"
            storage = "sqlite:///{tmp_path / 'streams.db'}"
            admins = ["{ROOT}"]
            [plugins."auth.dev"]
            [plugins.ual]
            [server]
            port = {self.port}
            workers = {workers}
            shutdown_timeout = 600
            stream_keepalive = 0.5
            stream_poll_interval = 0.05
            log_level = "warning"
        """))
        self.env = {**os.environ, "NUCLEUS_ENV": "development"}
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> Server:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nucleus_core", "serve", "--config", str(self.config)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(1200):
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: {self.proc.communicate()[1]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(0.05)
        raise AssertionError("server did not become ready")

    def stop(self) -> tuple[int, str]:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        # shutdown_timeout is 600 s: the server exits well before only if its streams end at once.
        _, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, err

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    monkeypatch.setenv("NUCLEUS_ENV", "development")
    storage = f"sqlite:///{tmp_path / 'streams.db'}"
    with create_ledger(id=LEDGER, storage=storage, plugins=PLUGINS, admins=[ROOT]) as ledger:
        grants = [("stream:a", ALICE, "create"), ("stream:b", ALICE, "create"), ("stream:b", BOB, "create"),
                  ("stream:a", CAROL, "read")]
        ledger.acl.grant(
            [{"resource_kind": k, "resource_id": "*", "principal_oid": p, "scope": s} for k, p, s in grants], ctx(ROOT)
        )
    served = Server(tmp_path)
    yield served
    served.kill()


HTTP_WRITER = textwrap.dedent("""
    import sys, time, httpx
    url, token, prefix, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    with httpx.Client(base_url=url, headers={"authorization": f"Bearer {token}"}) as http:
        for i in range(count):
            body = {"id": f"{prefix}-{i}", "stream": "b", "timestamp": 1, "payload": {"i": i}}
            while True:
                try:
                    status = http.post("/entries", json=body).status_code
                except httpx.TransportError:
                    time.sleep(0.05)
                    continue
                if status in (201, 409):  # 409: the answer of a retried request was lost
                    break
                if status != 503:
                    raise SystemExit(f"append answered {status}")
                time.sleep(0.05)
""")

DB_WRITER = textwrap.dedent("""
    import sys
    from nucleus_core import Record, RequestContext, open_ledger
    storage, prefix, count, admin = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    alice = RequestContext(oid="oid:test:user:alice", source="auth.dev")
    with open_ledger(id="streams", storage=storage, plugins=["auth.dev", "ual"], admins=[admin]) as ledger:
        for i in range(count):
            stream = "a" if i % 2 == 0 else "b"
            ledger.append(Record(id=f"{prefix}-{i}", stream=stream, timestamp=1, payload={"i": i}), alice)
""")


def writers(server: Server, tmp_path: Path, phase: int, count: int) -> None:
    """Two writer processes at once: bob through HTTP, alice straight to the database file."""
    procs = [
        subprocess.Popen([sys.executable, "-c", HTTP_WRITER, server.url, f"dev:{BOB}", f"h{phase}", str(count)],
                         stderr=subprocess.PIPE, text=True),
        subprocess.Popen([sys.executable, "-c", DB_WRITER, f"sqlite:///{tmp_path / 'streams.db'}", f"d{phase}",
                          str(count), ROOT], env=server.env, stderr=subprocess.PIPE, text=True),
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err


class RawSubscriber:
    """An SSE client of its own: drops its connection after every ``drop_every`` entries and
    reconnects with Last-Event-ID, as an EventSource does after a network failure."""

    def __init__(self, url: str, oid: str, params: list[tuple[str, str]], drop_every: int) -> None:
        self.url, self.oid, self.params, self.drop_every = url, oid, params, drop_every
        self.got: list[tuple[int, str]] = []
        self.connects = 0
        self.ends = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        last: str | None = None
        while not self.stop.is_set():
            headers = {"authorization": f"Bearer dev:{self.oid}"}
            if last is not None:
                headers["last-event-id"] = last
            try:
                with httpx.stream("GET", f"{self.url}/entries/stream", params=self.params, headers=headers,
                                  timeout=httpx.Timeout(5, read=2)) as response:
                    if response.status_code != 200:
                        self.stop.wait(0.1)
                        continue
                    self.connects += 1
                    since_connect = 0
                    for name, ident, data in sse(response.iter_lines()):
                        if ident is not None:
                            last = ident
                        if name == "entry":
                            doc = json.loads(data)
                            assert ident == str(doc["seq"])
                            self.got.append((doc["seq"], doc["hash"]))
                            since_connect += 1
                            if since_connect >= self.drop_every:
                                break  # drop the connection: the client goes away mid-stream
                        elif name == "end":
                            self.ends += 1
                            break
                        if self.stop.is_set():
                            break
            except httpx.TransportError:
                self.stop.wait(0.05)


def expected_for(ledger: Ledger, oid: str, filters: dict[str, Any], after: int) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    cursor: str | None = f"s{after}" if after else None
    while True:
        page = ledger.query({**filters, "limit": 1000, **({"cursor": cursor} if cursor else {})}, ctx(oid))
        out.extend((e.seq, e.hash) for e in page.entries)
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


def test_twenty_subscribers_get_exactly_what_they_may_read_across_reconnects_and_a_restart(
    server: Server, tmp_path: Path
) -> None:
    server.start()
    with open_ledger(id=LEDGER, storage=f"sqlite:///{tmp_path / 'streams.db'}", plugins=PLUGINS,
                     admins=[ROOT]) as ledger:
        start = ledger.length()
    principals = [ALICE, BOB, CAROL, DAVE, ROOT]
    filter_sets: list[dict[str, Any]] = [{}, {"stream": "a"}, {"stream": "b"}, {"stream": ["a", "b"]}]
    plans = [(principals[i % 5], filter_sets[i % 4]) for i in range(20)]
    raws: list[tuple[RawSubscriber, str, dict[str, Any]]] = []
    tails: list[tuple[list[Entry], RemoteLedger, threading.Thread, str, dict[str, Any]]] = []
    for i, (oid, filters) in enumerate(plans):
        if i % 2 == 0:
            params = [("after", str(start))] + [("stream", s) for s in
                                                 ([filters["stream"]] if isinstance(filters.get("stream"), str)
                                                  else filters.get("stream", []))]
            raw = RawSubscriber(server.url, oid, params, drop_every=7 + i)
            raw.thread.start()
            raws.append((raw, oid, filters))
        else:
            remote = RemoteLedger(server.url, token=f"dev:{oid}", ledger_id=LEDGER)
            got: list[Entry] = []

            def follow(remote: RemoteLedger = remote, got: list[Entry] = got, filters: dict[str, Any] = filters,
                       ) -> None:
                with contextlib.suppress(httpx.HTTPError, RuntimeError):  # the client closed under it at the end
                    for entry in remote.tail(start, filters or None, max_backoff=0.2):
                        got.append(entry)

            thread = threading.Thread(target=follow, daemon=True)
            thread.start()
            tails.append((got, remote, thread, oid, filters))

    writers(server, tmp_path, 1, 25)
    code, err = server.stop()  # every stream ends (event: end); the subscribers reconnect
    assert code == 0, err
    server.start()
    writers(server, tmp_path, 2, 25)

    with open_ledger(id=LEDGER, storage=f"sqlite:///{tmp_path / 'streams.db'}", plugins=PLUGINS,
                     admins=[ROOT]) as ledger:
        expected = {i: expected_for(ledger, oid, filters, start) for i, (oid, filters) in enumerate(plans)}
    assert len(expected[4]) > 100  # root, everything: 100 records and their audit entries
    assert expected[3] == []  # dave may read nothing
    results: dict[int, Callable[[], list[tuple[int, str]]]] = {}
    for n, (raw, _oid, _f) in enumerate(raws):
        results[2 * n] = lambda raw=raw: list(raw.got)
    for n, (got, *_rest) in enumerate(tails):
        results[2 * n + 1] = lambda got=got: [(e.seq, e.hash) for e in got]
    for i, result in results.items():
        for _ in range(1200):
            if len(result()) >= len(expected[i]):
                break
            threading.Event().wait(0.05)
    for raw, *_ in raws:
        raw.stop.set()
    for _got, remote, thread, *_ in tails:
        remote.close()
        thread.join(30)
    for raw, *_ in raws:
        raw.thread.join(30)
    for i, result in results.items():
        assert result() == expected[i], (i, plans[i])
    # The stop ended the streams open at that moment with "event: end"; a subscriber between two of
    # its forced reconnects then was not connected (so: at least one of the ten, not each).
    assert sum(raw.ends for raw, _oid, _filters in raws) >= 1
    for raw, _oid, _filters in raws:
        # Forced reconnects (one every drop_every entries) and the restart: each resumed where it stood.
        assert raw.connects >= 1 + len(raw.got) // raw.drop_every


@pytest.mark.parametrize("workers", [1, 2])
def test_shutdown_ends_open_streams_at_once(server: Server, tmp_path: Path, workers: int) -> None:
    # With 2 workers uvicorn's own server runs each: the app chains its signal handlers.
    server = Server(tmp_path, workers=workers)
    try:
        _shutdown_ends_streams(server.start())
    finally:
        server.kill()


def _shutdown_ends_streams(server: Server) -> None:
    events: list[tuple[str, str | None, str]] = []
    opened = threading.Event()

    def listen() -> None:
        with httpx.stream("GET", f"{server.url}/entries/stream", headers={"authorization": f"Bearer dev:{ROOT}"},
                          timeout=httpx.Timeout(5, read=120)) as response:
            assert response.status_code == 200
            opened.set()
            events.extend(e for e in sse(response.iter_lines()) if e[0])

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert opened.wait(60)
    code, err = server.stop()  # a shutdown_timeout of 600 s: the stream must end on its own
    assert code == 0, err
    thread.join(60)
    assert not thread.is_alive()
    assert events[-1] == ("end", None, '{"reason":"shutdown"}')
    names = [name for name, _, _ in events[:-1]]
    assert names[-1] == "sync" and set(names[:-1]) == {"entry"}  # the entries so far, their sync, the end


def test_a_slow_consumer_costs_the_server_one_page(
    open_ledger: Callable[..., Ledger], serve: Callable[..., Any]
) -> None:
    ledger = open_ledger()
    app_server = serve(ledger, ServerSettings(stream_keepalive=3600))
    alice = ctx(ALICE)
    big = "x" * 4000
    # A client that sends the request and then reads nothing, with a small receive buffer.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", app_server.port))
    sock.sendall(
        f"GET /entries/stream?limit=50 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer dev:{ALICE}\r\n\r\n".encode()
    )
    hub = app_server.app.streams
    while not hub.slots:
        threading.Event().wait(0.01)
    (slot,) = hub.slots
    total = 10_000
    for start in range(0, total, 1000):
        ledger.append_batch(
            [Record(id=f"s-{i}", stream="s", timestamp=1, payload={"pad": big}) for i in range(start, start + 1000)],
            alice,
        )
    # The stream reads a page, hands it to the connection, and waits there while nothing is read:
    # its position stops well short of the 10,000 entries (40 MB) and moves no more.
    before = -1
    while slot.position != before:
        before = slot.position
        threading.Event().wait(0.5)
    assert slot.position < total // 2
    assert slot.largest_chunk <= 50 * 4600  # one page of events is all the stream ever held
    # Reading now, the client gets every entry, in order.
    sock.settimeout(30)
    buffer = b""
    seqs: list[int] = []
    while len(seqs) < total:
        chunk = sock.recv(1 << 20)
        assert chunk
        buffer += chunk
        while b"\nevent: entry\n" in buffer:
            head, _, buffer = buffer.partition(b"\nevent: entry\n")
            seqs.append(int(head.rsplit(b"id: ", 1)[1]))
    sock.close()
    entries = ledger.query({"stream": "s", "limit": 1}, alice).entries
    assert seqs[0] == entries[0].seq and seqs == list(range(seqs[0], seqs[0] + total))


def test_stream_limit_errors_and_openapi(open_ledger: Callable[..., Ledger], serve: Callable[..., Any]) -> None:
    ledger = open_ledger()
    app_server = serve(ledger, ServerSettings(max_streams=2, stream_keepalive=0.2))
    url = app_server.url
    auth = {"authorization": f"Bearer dev:{ALICE}"}
    assert httpx.get(f"{url}/entries/stream").status_code == 401
    for params, headers, status, field in (
        ({"after": "-1"}, {}, 422, "after"), ({"cursor": "s1"}, {}, 422, "cursor"),
        ({"stream": "Bad Name"}, {}, 422, "stream"), ({}, {"last-event-id": "x"}, 400, "last-event-id"),
        ({"bogus": "1"}, {}, 422, "query"),
    ):
        response = httpx.get(f"{url}/entries/stream", params=params, headers={**auth, **headers})
        assert response.status_code == status and response.json()["error"]["field"] == field, response.text
    with contextlib.ExitStack() as stack:
        for _ in range(2):
            opened = stack.enter_context(httpx.stream("GET", f"{url}/entries/stream", headers=auth))
            assert opened.status_code == 200
        refused = httpx.get(f"{url}/entries/stream", headers=auth)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "too_many_streams"
    doc = httpx.get(f"{url}/openapi.json").json()
    op = doc["paths"]["/entries/stream"]["get"]
    assert "text/event-stream" in op["responses"]["200"]["content"]
    assert {p["name"] for p in op["parameters"]} == {"after", "stream", "record_id", "since", "until", "limit"}
    # Last-Event-ID wins over after=: a reconnecting EventSource keeps its original URL.
    made = [ledger.append(Record(id=f"r-{i}", stream="s", timestamp=1, payload={}), ctx(ALICE)) for i in range(3)]
    with httpx.stream("GET", f"{url}/entries/stream", params={"after": "0", "stream": "s"},
                      headers={**auth, "last-event-id": str(made[0].seq)}) as response:
        first = next(e for e in sse(response.iter_lines()) if e[0] == "entry")
    assert first[1] == str(made[1].seq) and json.loads(first[2])["record"]["id"] == "r-1"


class Reader:
    """An SSE client in a thread that cannot hang a test: every read has a timeout, events go to a
    queue, and :meth:`until` gives up after ``within`` seconds (keep-alives keep arriving, so a
    reader waiting for an event that never comes would otherwise block for good)."""

    def __init__(self, url: str, token: str, params: dict[str, str] | None = None) -> None:
        self.events: queue.Queue[tuple[str, str | None, str]] = queue.Queue()
        self.status: int | None = None
        self.ended = threading.Event()
        self.opened = threading.Event()
        self._stop = threading.Event()
        self._args = (url, token, params or {})
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        url, token, params = self._args
        try:
            with httpx.stream("GET", f"{url}/entries/stream", params=params,
                              headers={"authorization": f"Bearer {token}"},
                              timeout=httpx.Timeout(10, read=30)) as response:
                self.status = response.status_code
                self.opened.set()
                for event in sse(response.iter_lines()):
                    self.events.put(event)
                    if self._stop.is_set():
                        return
        except httpx.HTTPError as err:
            self.events.put(("transport-error", None, type(err).__name__))
        finally:
            self.opened.set()
            self.ended.set()

    def until(self, name: str, within: float = 60) -> tuple[str, str | None, str] | None:
        """The next event called ``name`` (the others skipped), None when none came in time or the
        response ended first."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                event = self.events.get(timeout=0.1)
            except queue.Empty:
                if self.ended.is_set() and self.events.empty():
                    return None
                continue
            if event[0] == name:
                return event
        return None

    def close(self) -> None:
        self._stop.set()
        self.thread.join(60)


def test_a_revoked_api_key_ends_its_open_stream(open_ledger: Callable[..., Ledger], serve: Callable[..., Any]) -> None:
    settings = {"auth.api_key": {"pepper": "p" * 32}}
    ledger = open_ledger("auth.api_key", settings=settings)
    parser = ledger.auth.parser("auth.api_key")
    key, record = parser.create_key(ALICE)
    other, _ = parser.create_key(BOB)
    app_server = serve(ledger, ServerSettings(stream_keepalive=0.2, stream_reauth_interval=0.1))
    revoked, kept = Reader(app_server.url, key, {"stream": "s"}), Reader(app_server.url, other, {"stream": "s"})
    try:
        for reader in (revoked, kept):
            assert reader.until("sync") is not None and reader.status == 200
        ledger.append(Record(id="r-1", stream="s", timestamp=1, payload={}), ctx(ALICE))
        assert revoked.until("entry") is not None
        assert parser.revoke_key(record.key_id)
        error = revoked.until("error")
        assert error is not None, "the stream of a revoked key went on"
        assert json.loads(error[2])["error"]["code"] == "invalid_token"
        assert revoked.ended.wait(60)  # and the response ended
        # The other key's stream goes on and gets what is appended after.
        ledger.append(Record(id="r-2", stream="s", timestamp=1, payload={}), ctx(ALICE))
        entry = kept.until("entry")
        assert entry is not None and json.loads(entry[2])["record"]["id"] == "r-1"
        entry = kept.until("entry")
        assert entry is not None and json.loads(entry[2])["record"]["id"] == "r-2"
        assert not kept.ended.is_set()
    finally:
        revoked.close()
        kept.close()
    # A new stream with the revoked key is refused before it starts.
    assert httpx.get(f"{app_server.url}/entries/stream", headers={"authorization": f"Bearer {key}"}).status_code == 401


def test_a_session_expiring_ends_its_open_stream(open_ledger: Callable[..., Ledger], serve: Callable[..., Any]) -> None:
    settings = {"auth.session": {"secret": "s" * 32, "idle_timeout": 1, "absolute_timeout": 1}}
    ledger = open_ledger("auth.session", settings=settings)
    token, _ = ledger.auth.parser("auth.session").create_session(ALICE)
    app_server = serve(ledger, ServerSettings(stream_keepalive=0.2, stream_reauth_interval=0.1))
    reader = Reader(app_server.url, token)
    try:
        error = reader.until("error")
        assert error is not None, "the stream of an expired session went on"
        assert json.loads(error[2])["error"]["code"] == "token_expired"
        assert reader.ended.wait(60)
    finally:
        reader.close()


def test_a_stream_credential_ends_at_its_exp_and_on_another_requester() -> None:
    from nucleus_server.api.stream import Credential

    from nucleus_core.asgi import Denial
    from nucleus_core.errors import TokenExpiredError, TokenInvalidError

    answers: list[RequestContext | Denial | None] = []

    async def authenticate(_scope: Any) -> RequestContext | Denial | None:
        return answers.pop(0)

    def credential(context: RequestContext) -> Credential:
        return Credential(authenticate=authenticate, scope={}, context=context, interval=0)

    past = RequestContext(oid=ALICE, source="auth.connect", claims={"exp": time.time() - 1})
    assert credential(past).due_in() == 0
    # At its deadline the credential is checked again (a session other requests kept alive has a
    # later one); one past its time ends the stream.
    answers.append(Denial(status=401, error="invalid_token", description="the access token expired"))
    assert isinstance(asyncio.run(credential(past).refused()), TokenExpiredError) and not answers
    answers.append(attrs.evolve(past, claims={"exp": time.time() - 1}))  # still accepted, still past
    assert isinstance(asyncio.run(credential(past).refused()), TokenExpiredError) and not answers
    later = attrs.evolve(past, expires_at=time.time() + 3600)
    answers.append(later)
    kept = credential(past)
    assert asyncio.run(kept.refused()) is None and kept.expires_at == later.expires_at and not answers
    # The deadline is the context's expires_at (exp plus the parser's leeway) when it has one: a
    # token accepted within the leeway is not ended at once, nor checked before the interval.
    lenient = RequestContext(oid=ALICE, source="auth.connect", claims={"exp": time.time() - 10},
                             expires_at=time.time() + 20)
    patient = Credential(authenticate=authenticate, scope={}, context=lenient, interval=3600)
    assert asyncio.run(patient.refused()) is None and 0 < patient.due_in() <= 20 and not answers
    alice = RequestContext(oid=ALICE, source="auth.connect", claims={"exp": time.time() + 3600})
    answers.extend([RequestContext(oid=ALICE, source="auth.connect", claims={"exp": time.time() + 3600})])
    assert asyncio.run(credential(alice).refused()) is None
    for changed in (RequestContext(oid=BOB, source="auth.connect"),
                    RequestContext(oid=ALICE, source="auth.connect", role="auditor"),
                    RequestContext(oid=ALICE, source="auth.connect", scopes=frozenset({"read"}))):
        answers.append(changed)
        assert isinstance(asyncio.run(credential(alice).refused()), TokenInvalidError)
    answers.append(Denial(status=401, error="invalid_token", description="the access token expired"))
    assert isinstance(asyncio.run(credential(alice).refused()), TokenExpiredError)
    # A service JWT is checked again too (passively: its jti is not spent again).
    service = RequestContext(oid=ALICE, source="auth.service", claims={"exp": time.time() + 3600})
    answers.append(service)
    assert asyncio.run(credential(service).refused()) is None and not answers


def test_a_stream_does_not_keep_an_idle_session_alive(
    open_ledger: Callable[..., Ledger], serve: Callable[..., Any]
) -> None:
    settings = {"auth.session": {"secret": "s" * 32, "idle_timeout": 2, "absolute_timeout": 3600,
                                 "touch_interval": 0.05}}
    ledger = open_ledger("auth.session", settings=settings)
    sessions = ledger.auth.parser("auth.session")
    idle, _ = sessions.create_session(ALICE)
    busy, _ = sessions.create_session(ALICE)
    app_server = serve(ledger, ServerSettings(stream_keepalive=0.2, stream_reauth_interval=0.05))
    url = app_server.url
    lone, used = Reader(url, idle, {"stream": "s"}), Reader(url, busy, {"stream": "s"})
    stop = threading.Event()
    answers: list[int] = []

    def keep_using() -> None:  # ordinary requests with the busy session, far more often than its idle timeout
        with httpx.Client(base_url=url, headers={"authorization": f"Bearer {busy}"}, timeout=30) as http:
            while not stop.wait(0.05):
                answers.append(http.get("/whoami").status_code)

    user = threading.Thread(target=keep_using, daemon=True)
    user.start()
    try:
        # Only the stream uses the idle session: checked every 0.05 s, it still expires at its idle timeout.
        error = lone.until("error", within=60)
        assert error is not None, "an open stream kept an idle session alive"
        assert json.loads(error[2])["error"]["code"] == "token_expired"
        assert lone.ended.wait(60)
        response = httpx.get(f"{url}/whoami", headers={"authorization": f"Bearer {idle}"})
        assert response.status_code == 401, response.text
        # The busy session's stream went on past several idle timeouts (its deadline moved with the
        # requests) and gets what is appended now.
        assert not used.ended.is_set()
        ledger.append(Record(id="kept-1", stream="s", timestamp=1, payload={}), ctx(ALICE))
        entry = used.until("entry")
        assert entry is not None and json.loads(entry[2])["record"]["id"] == "kept-1"
        assert answers and set(answers) == {200}
        stop.set()
        user.join(60)
        # Once nothing else uses it, the busy session's stream ends at its idle deadline too.
        error = used.until("error", within=60)
        assert error is not None and json.loads(error[2])["error"]["code"] == "token_expired"
    finally:
        stop.set()
        lone.close()
        used.close()


def test_a_stream_ends_when_its_api_key_expires(open_ledger: Callable[..., Ledger], serve: Callable[..., Any]) -> None:
    ledger = open_ledger("auth.api_key", settings={"auth.api_key": {"pepper": "p" * 32}})
    key, record = ledger.auth.parser("auth.api_key").create_key(ALICE, expires_in=2)
    # Checked again once an hour only: the stream ends at the key's expiry all the same.
    app_server = serve(ledger, ServerSettings(stream_keepalive=0.2, stream_reauth_interval=3600))
    reader = Reader(app_server.url, key, {"stream": "s"})
    try:
        assert reader.until("sync") is not None and reader.status == 200
        error = reader.until("error", within=60)
        assert error is not None, "the stream of an expired API key went on"
        assert json.loads(error[2])["error"]["code"] == "token_expired"
        assert time.time() >= record.expires_at
        assert reader.ended.wait(60)
    finally:
        reader.close()


def test_non_ascii_digits_are_refused_with_the_field(
    open_ledger: Callable[..., Ledger], serve: Callable[..., Any]
) -> None:
    app_server = serve(open_ledger())
    url = app_server.url
    auth = {"authorization": f"Bearer dev:{ALICE}"}
    for value in ("²", "٣", "1²"):
        response = httpx.get(f"{url}/entries/stream", params={"after": value}, headers=auth)
        assert response.status_code == 422 and response.json()["error"]["field"] == "after", response.text
        response = httpx.get(f"{url}/entries", params={"limit": value}, headers=auth)
        assert response.status_code == 422 and response.json()["error"]["field"] == "limit", response.text
        response = httpx.get(f"{url}/entries", params={"cursor": f"s{value}"}, headers=auth)
        assert response.status_code == 422 and response.json()["error"]["field"] == "cursor", response.text
    for raw in (b"\xb2", "٣".encode()):
        response = httpx.get(f"{url}/entries/stream", headers=[*auth.items(), ("last-event-id", raw)])
        assert response.status_code == 400 and response.json()["error"]["field"] == "last-event-id", response.text
    # The client's SSE parser: an id that is not ASCII digits is no seq.
    from nucleus_server.client import _sse_events

    events = list(_sse_events(["id: ٣", "event: sync", "data: {}", "", "id: 7", "event: sync", "data: {}", ""]))
    assert [seq for _name, seq, _data in events] == [None, 7]
    # And the core's: cursors and the CLI's times take ASCII digits only.
    import click

    from nucleus_core.cli import TimeParam
    from nucleus_core.errors import QueryError
    from nucleus_core.query import decode_cursor

    for value in ("²", "٣"):
        with pytest.raises(QueryError):
            decode_cursor(f"s{value}")
        with pytest.raises(click.BadParameter):
            TimeParam().convert(value, None, None)
    assert decode_cursor("s12") == 12 and TimeParam().convert("12", None, None) == 12


def test_streams_leave_threads_for_requests_and_a_principal_has_a_limit(
    open_ledger: Callable[..., Ledger], serve: Callable[..., Any]
) -> None:
    ledger = open_ledger()
    # Two threads: the streams may use one at most, however many are open and however busy.
    app_server = serve(ledger, ServerSettings(threads=2, stream_keepalive=0.2, max_streams_per_principal=3))
    url, hub = app_server.url, app_server.app.streams
    assert hub.poll_threads == 1
    gate = threading.Event()
    reading = threading.Event()
    page = ledger._subscription_page

    def blocked_page(*args: Any) -> Any:  # every stream's reads stay busy until the gate opens
        reading.set()
        assert gate.wait(120)
        return page(*args)

    ledger._subscription_page = blocked_page  # type: ignore[method-assign]
    readers = [Reader(url, f"dev:{oid}") for oid in (ALICE, BOB, CAROL, DAVE, ROOT) for _ in range(2)]
    try:
        assert reading.wait(60)
        for _ in range(6000):  # a hang guard, no timing: the streams open while their reads are busy
            if len(hub.slots) == len(readers):
                break
            threading.Event().wait(0.01)
        assert len(hub.slots) == len(readers), "busy streams kept the others from opening"
        for i in range(5):
            ledger.append(Record(id=f"busy-{i}", stream="s", timestamp=1, payload={}), ctx(ALICE))
        # Ten busy streams and commits: an ordinary request still gets a thread.
        response = httpx.get(f"{url}/entries", params={"limit": "1"}, headers={"authorization": f"Bearer dev:{ALICE}"},
                             timeout=60)
        assert response.status_code == 200
        assert hub.most_running == 1
        # A third stream of one principal is refused (429, Retry-After); another principal's is not.
        with httpx.stream("GET", f"{url}/entries/stream", headers={"authorization": f"Bearer dev:{ALICE}"},
                          timeout=60) as opened:
            assert opened.status_code == 200
            refused = httpx.get(f"{url}/entries/stream", headers={"authorization": f"Bearer dev:{ALICE}"}, timeout=60)
            assert refused.status_code == 429 and refused.headers["retry-after"] == "5"
            error = refused.json()["error"]
            assert error["code"] == "too_many_principal_streams" and "max_streams_per_principal" in error["message"]
        gate.set()
        for reader in readers:  # and every stream delivers what was committed meanwhile
            ids: set[str] = set()
            while "busy-4" not in ids:
                event = reader.until("entry")
                assert event is not None and reader.status == 200
                ids.add(json.loads(event[2])["record"]["id"])
    finally:
        gate.set()
        for reader in readers:
            reader.close()


def test_a_stalled_client_does_not_hold_the_shutdown(
    open_ledger: Callable[..., Ledger], serve: Callable[..., Any]
) -> None:
    ledger = open_ledger()
    app_server = serve(ledger, ServerSettings(stream_keepalive=3600))
    hub = app_server.app.streams
    hub.end_write_timeout = 0.5
    alice = ctx(ALICE)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", app_server.port))
    sock.sendall(f"GET /entries/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer dev:{ALICE}\r\n\r\n".encode())
    try:
        for _ in range(6000):
            if hub.slots:
                break
            threading.Event().wait(0.01)
        (slot,) = hub.slots
        big = "x" * 4000
        ledger.append_batch([Record(id=f"s-{i}", stream="s", timestamp=1, payload={"pad": big}) for i in range(2000)],
                            alice)
        before = -1
        while slot.position != before:  # the stream stops, its write waiting for the client
            before = slot.position
            threading.Event().wait(0.5)
        app_server.app.begin_shutdown()
        for _ in range(1200):  # the stream gives up on the client and ends (a hang guard, no timing)
            if not hub.slots:
                break
            threading.Event().wait(0.05)
        assert not hub.slots, "a client reading nothing held its stream open through the shutdown"
    finally:
        sock.close()


def test_a_failure_while_streaming_is_logged_and_ends_the_response(
    open_ledger: Callable[..., Ledger], serve: Callable[..., Any], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from nucleus_server.api import stream as stream_module

    def broken(seq: int) -> bytes:
        raise RuntimeError("a failure while writing the stream")

    monkeypatch.setattr(stream_module, "sync_event", broken)
    ledger = open_ledger()
    ledger.append(Record(id="r-1", stream="s", timestamp=1, payload={}), ctx(ALICE))
    app_server = serve(ledger)
    with caplog.at_level(logging.ERROR, logger="nucleus_server.app"):
        reader = Reader(app_server.url, f"dev:{ALICE}", {"after": "0"})
        assert reader.ended.wait(60) and reader.status == 200
        reader.close()
        records = [r for r in caplog.records if r.name == "nucleus_server.app"]
        assert records and "unexpected error while streaming GET /entries/stream" in records[0].getMessage()
    assert httpx.get(f"{app_server.url}/health").status_code == 200


def test_the_stream_announces_its_keepalive_and_a_tail_checks_its_read_timeout(
    open_ledger: Callable[..., Ledger], serve: Callable[..., Any]
) -> None:
    from nucleus_core.errors import ValidationError

    ledger = open_ledger()
    made = ledger.append(Record(id="r-1", stream="s", timestamp=1, payload={}), ctx(ALICE))
    app_server = serve(ledger, ServerSettings(stream_keepalive=120))
    with httpx.stream("GET", f"{app_server.url}/entries/stream", headers={"authorization": f"Bearer dev:{ALICE}"},
                      timeout=60) as response:
        assert response.headers["x-nucleus-keepalive"] == "120"
    remote = RemoteLedger(app_server.url, token=f"dev:{ALICE}")
    with pytest.raises(ValidationError) as refused:
        next(remote.tail(0, read_timeout=60))
    assert refused.value.field == "read_timeout" and "120" in str(refused.value)
    first = next(remote.tail(0, read_timeout=200))  # above 1.5 times the keep-alive: it follows
    assert first.seq == made.seq
    # The default adapts: 60 s, then at once again with 1.5 times the keep-alive plus 5 s.
    from nucleus_server.client import _adapted_read_timeout

    assert (_adapted_read_timeout(None), _adapted_read_timeout("15"), _adapted_read_timeout("120")) == (60, 60, 185)
    reads: list[float | None] = []
    opened = remote._http.stream

    def recording(*args: Any, **kwargs: Any) -> Any:
        reads.append(kwargs["timeout"].read)
        return opened(*args, **kwargs)

    remote._http.stream = recording  # type: ignore[method-assign]
    tail = remote.tail(0)
    assert next(tail).seq == made.seq and reads == [60, 185]
    later = ledger.append(Record(id="r-2", stream="s", timestamp=1, payload={}), ctx(ALICE))
    assert next(tail).seq == later.seq and reads == [60, 185]  # the same connection, nothing twice
    tail.close()  # type: ignore[attr-defined]
    with pytest.raises(ValidationError) as bad:
        next(remote.tail(0, read_timeout=0))
    assert bad.value.field == "read_timeout"
    remote.close()
    with pytest.raises(Exception, match="stream_keepalive"):
        ServerSettings(stream_keepalive=3601)
    for name, value in (("stream_reauth_interval", 0), ("max_streams_per_principal", 0)):
        with pytest.raises(Exception, match=name):
            ServerSettings(**{name: value})


def test_a_verifying_tail_holds_one_page_at_most(open_ledger: Callable[..., Ledger], dev_env: None) -> None:
    from nucleus_server.sse import entry_event

    from nucleus_core.checkpoint import NoteSigner, default_origin
    from nucleus_core.errors import AnswerMismatchError

    from .conftest import ServerThread

    ledger = open_ledger()
    ledger.append_batch([Record(id=f"r-{i}", stream="s", timestamp=1, payload={}) for i in range(150)], ctx(ALICE))
    entries = ledger.query({"stream": "s", "limit": 1000}, ctx(ALICE)).entries
    sent: list[int] = []

    async def server_without_sync(scope: Any, receive: Any, send: Any) -> None:
        """A server that streams entries and never says where a page ends."""
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        for entry in entries:
            sent.append(entry.seq)
            await send({"type": "http.response.body", "body": entry_event(entry), "more_body": True})
        await send({"type": "http.response.body", "body": b": keep-alive\n\n" * 1000, "more_body": False})

    fake = ServerThread(server_without_sync).start()
    try:
        vkey = NoteSigner.generate(default_origin(ledger.id)).vkey
        with RemoteLedger(fake.url, token=f"dev:{ALICE}", ledger_id=ledger.id, checkpoint_vkeys=[vkey]) as remote:
            with pytest.raises(AnswerMismatchError, match="more than a page"):
                next(remote.tail(0, {"limit": 100}, reconnect=False, timeout=30))
            with pytest.raises(AnswerMismatchError, match=r"more than a page \(20 entries\)"):
                next(remote.tail(0, {"limit": 20}, reconnect=False, timeout=30))
    finally:
        fake.server.should_exit = True
        fake.thread.join(60)
        fake.sock.close()
    ledger.close()


def test_the_hub_reads_the_head_once_per_wake_up_for_all_streams(
    open_ledger: Callable[..., Ledger], serve: Callable[..., Any]
) -> None:
    ledger = open_ledger()
    ledger.append(Record(id="first", stream="s", timestamp=1, payload={}), ctx(ALICE))
    # No timer reads (poll interval 60 s): the head is read for commits only.
    app_server = serve(ledger, ServerSettings(stream_poll_interval=60, stream_keepalive=0.2))
    hub = app_server.app.streams
    readers = [Reader(app_server.url, f"dev:{oid}", {"stream": "s"}) for oid in (ALICE, BOB, CAROL, DAVE, ROOT)]
    try:
        for reader in readers:
            assert reader.until("sync") is not None
        commits = 10
        for i in range(commits):
            ledger.append(Record(id=f"c-{i}", stream="s", timestamp=1, payload={}), ctx(ALICE))
        for reader in readers:
            ids: set[str] = set()
            while f"c-{commits - 1}" not in ids:
                event = reader.until("entry")
                assert event is not None
                ids.add(json.loads(event[2])["record"]["id"])
        # One read per commit at most (fewer when commits came during a read), not one per stream.
        assert 1 <= hub.head_reads <= commits
    finally:
        for reader in readers:
            reader.close()
