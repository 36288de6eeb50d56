"""A slow JWKS endpoint (a real loopback server sending one byte every 0.25 s) stalls nothing: a
fetch has a total deadline (not one per socket read), one fetch runs at a time outside the cache's
lock (tokens whose key is cached are verified meanwhile), and over HTTP a connect login waiting
for keys never delays an API-key request (each parser kind has its own authentication threads).

No timed assertions: each bound is checked by ordering against the dribbling server, whose whole
answer takes far longer than any deadline used here (it records when it has sent everything)."""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from nucleus_token_connect import ConnectParser

from nucleus_core import Ledger, PluginContext
from nucleus_core.auth import KeySourceUnavailableError
from nucleus_core.errors import TokenInvalidError

ISSUER = "https://id.test"
AUDIENCE = "books"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
SLOW_BYTES = 80
"""Bytes sent one every 0.25 s before the rest of the answer: 20 s, against deadlines of 1-5 s."""


class Dribbler:
    """A JWKS endpoint on 127.0.0.1. ``slow`` False: the whole answer at once. ``slow`` True: the
    first :data:`SLOW_BYTES` bytes one every 0.25 s, then the rest; ``finished`` is set when a slow
    answer was sent completely, ``started`` when one began."""

    def __init__(self) -> None:
        jwk = {**json.loads(RSAAlgorithm.to_jwk(RSA_KEY.public_key())), "kid": "rsa1", "alg": "RS256", "use": "sig"}
        body = json.dumps({"keys": [jwk]}).encode()
        self.answer = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        self.slow = False
        self.requests = 0
        self.started = threading.Event()
        self.finished = threading.Event()
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = sock.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                outer.requests += 1
                try:
                    if not outer.slow:
                        sock.sendall(outer.answer)
                        return
                    outer.started.set()
                    for i in range(SLOW_BYTES):
                        sock.sendall(outer.answer[i : i + 1])
                        time.sleep(0.25)
                    sock.sendall(outer.answer[SLOW_BYTES:])
                    outer.finished.set()
                except OSError:
                    return  # the client gave up

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def dribbler() -> Iterator[Dribbler]:
    server = Dribbler()
    yield server
    server.close()


def token(key: Any = RSA_KEY, kid: str = "rsa1") -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "oid:test:user:alice", "iat": now, "exp": now + 300}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def connect(url: str, clock: Callable[[], float] = time.monotonic, **over: Any) -> ConnectParser:
    settings = {"issuer": ISSUER, "audience": AUDIENCE, "algorithms": ["RS256"], "jwks_url": url, **over}
    return ConnectParser(PluginContext(ledger_id="books", environment="production", settings=settings), clock=clock)


def test_a_jwks_fetch_has_a_total_deadline_not_one_per_read(dribbler: Dribbler) -> None:
    dribbler.slow = True
    parser = connect(dribbler.url, jwks_timeout=1)
    with pytest.raises(KeySourceUnavailableError):
        parser.parse(token())
    # The login failed while the endpoint was still sending (its answer takes 20 s in all).
    assert dribbler.started.is_set() and not dribbler.finished.is_set()


def test_one_fetch_at_a_time_outside_the_lock(dribbler: Dribbler) -> None:
    clock = Clock()
    parser = connect(dribbler.url, clock, jwks_timeout=5, jwks_cooldown=30, jwks_lifespan=300)
    assert parser.parse(token()) is not None  # the keys are cached
    dribbler.slow = True
    clock.now += 31  # past the cooldown, inside the lifespan: an unknown kid triggers a refresh
    results: dict[str, Any] = {}

    def unknown(name: str) -> None:
        try:
            results[name] = parser.parse(token(OTHER_KEY, kid=f"new-{name}"))
        except Exception as err:
            results[name] = err

    first = threading.Thread(target=unknown, args=("a",))
    first.start()
    assert dribbler.started.wait(10)
    # While that fetch is dribbling, a token whose key is cached is verified at once (no lock held).
    assert parser.parse(token()) is not None
    assert first.is_alive() and not dribbler.finished.is_set()
    second = threading.Thread(target=unknown, args=("b",))
    second.start()  # needs the fetch: waits for the running one, starts none of its own
    first.join(30)
    second.join(30)
    assert not dribbler.finished.is_set()
    assert isinstance(results["a"], TokenInvalidError) and isinstance(results["b"], TokenInvalidError)
    assert dribbler.requests == 2  # the priming fetch and one refresh
    assert parser.jwks is not None and parser.jwks.fetches == 2


def test_a_slow_jwks_never_delays_an_api_key_request(
    dribbler: Dribbler, open_ledger: Callable[..., Ledger], serve: Callable[..., Any]
) -> None:
    dribbler.slow = True
    ledger = open_ledger(
        "auth.connect",
        "auth.api_key",
        settings={
            "auth.connect": {
                "issuer": ISSUER,
                "audience": AUDIENCE,
                "algorithms": ["RS256"],
                "jwks_url": dribbler.url,
                "jwks_timeout": 5,
            },
            "auth.api_key": {"pepper": "p" * 40},
        },
    )
    api_key, _ = ledger.auth.parser("auth.api_key").create_key("oid:test:user:bob")
    server = serve(ledger)
    logins: list[int] = []

    def login() -> None:
        response = httpx.get(f"{server.url}/whoami", headers={"authorization": f"Bearer {token()}"}, timeout=60)
        logins.append(response.status_code)

    # More connect logins than any authentication pool has threads, all waiting for the keys.
    threads = [threading.Thread(target=login) for _ in range(20)]
    for t in threads:
        t.start()
    assert dribbler.started.wait(10)
    response = httpx.get(f"{server.url}/whoami", headers={"authorization": f"Bearer {api_key}"}, timeout=60)
    assert response.status_code == 200 and response.json()["oid"] == "oid:test:user:bob"
    # Answered while the one JWKS fetch was still running (before its deadline), not after a thread
    # blocked on the keys came free.
    jwks = ledger.auth.parser("auth.connect").jwks
    assert jwks.fetching and not dribbler.finished.is_set()
    for t in threads:
        t.join(60)
    assert logins == [503] * 20  # fail closed, each within the fetch deadline
    assert not dribbler.finished.is_set()


@pytest.mark.parametrize("slow", [False, True])
def test_the_fetch_honours_proxy_settings_and_its_deadline_through_them(
    dribbler: Dribbler, monkeypatch: pytest.MonkeyPatch, slow: bool
) -> None:
    # The dribbler plays a forward proxy: the configured URL's own port has nothing listening.
    proxy = dribbler.url.rsplit("/", 1)[0]
    for name in ("no_proxy", "NO_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy)
    dribbler.slow = slow
    parser = connect("http://127.0.0.1:9/jwks.json", jwks_timeout=1)
    if slow:
        with pytest.raises(KeySourceUnavailableError):
            parser.parse(token())
        assert dribbler.started.is_set() and not dribbler.finished.is_set()
    else:
        assert parser.parse(token()) is not None
    assert dribbler.requests == 1
