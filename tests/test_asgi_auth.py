"""SECURITY-TESTS "HTTP middleware" (cases 10, 11, 21-24): a real uvicorn server on 127.0.0.1
driven with httpx, plus direct ASGI calls for raw paths a client library would normalise."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from nucleus_core import AccessDeniedError, RequestContext, create_ledger
from nucleus_core.asgi import (
    AuthMiddleware,
    WSGIAuthMiddleware,
    context_from_scope,
    current_context,
    insufficient_scope,
)
from nucleus_core.auth import TokenRegistry
from nucleus_core.errors import ValidationError

PEPPER = "pepper-for-asgi-tests-0123456789abcdef"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Echo the authenticated principal; /admin demands role admin; /slow yields to other requests."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    ctx = context_from_scope(scope)
    if scope["path"] == "/slow":
        await asyncio.sleep(0.01)
    if scope["path"] == "/admin" and (ctx is None or ctx.role != "admin"):
        raise AccessDeniedError("admin only")
    if scope["path"] == "/scope":
        await insufficient_scope("books", "ledger:full")(scope, receive, send)
        return
    current = current_context()
    body = json.dumps(
        {
            "oid": ctx.oid if ctx else None,
            "var": current.oid if current else None,
            "state": scope["state"]["nucleus_context"].oid if scope["state"]["nucleus_context"] else None,
        }
    ).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def ledger() -> Iterator[Any]:
    with create_ledger(
        id="books",
        storage="memory://",
        plugins=["auth.dev", "auth.api_key", "auth.session"],
        settings={"auth.api_key": {"pepper": PEPPER}},
        environment="development",
    ) as led:
        yield led


@pytest.fixture(scope="module")
def server(ledger: Any) -> Iterator[str]:
    wrapped = AuthMiddleware(app, registry=ledger.auth, realm="books", public_paths={"/health"})
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(wrapped, log_level="warning", lifespan="on", h11_max_incomplete_event_size=64 * 1024)
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(scope="module")
def api_key(ledger: Any) -> str:
    key, _ = ledger.auth.parser("auth.api_key").create_key("oid:acme:user:carol", role="reader")
    return str(key)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- case 21: RFC 6750 responses ------------------------------------------------------------------


def test_case21_no_credentials_gets_401_with_challenge_and_no_error(server: str) -> None:
    r = httpx.get(f"{server}/books")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="books"'
    assert r.json()["error_description"] == "authentication required"


def test_case21_other_scheme_counts_as_no_credentials(server: str) -> None:
    r = httpx.get(f"{server}/books", headers={"Authorization": "Basic YWxpY2U6cHc="})
    assert r.status_code == 401 and "error=" not in r.headers["www-authenticate"]


@pytest.mark.parametrize("token", ["dev:oid:bad", "nuk_nonsense", "nss_" + "A" * 43, "garbage", "a.b.c"])
def test_case21_invalid_token_gets_401_invalid_token(server: str, token: str) -> None:
    r = httpx.get(f"{server}/books", headers=bearer(token))
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="books", error="invalid_token"'
    assert r.json()["error"] == "invalid_token"


def test_case21_valid_tokens_reach_the_app_with_the_context(server: str, api_key: str, ledger: Any) -> None:
    session, _ = ledger.auth.parser("auth.session").create_session("oid:acme:user:dave")
    for token, oid in (
        (api_key, "oid:acme:user:carol"),
        (session, "oid:acme:user:dave"),
        ("dev:oid:acme:user:eve", "oid:acme:user:eve"),
    ):
        r = httpx.get(f"{server}/books", headers=bearer(token))
        assert r.status_code == 200
        assert r.json() == {"oid": oid, "var": oid, "state": oid}


def test_case21_authenticated_but_not_allowed_gets_403_insufficient_scope(server: str, api_key: str) -> None:
    r = httpx.get(f"{server}/admin", headers=bearer(api_key))
    assert r.status_code == 403
    assert r.headers["www-authenticate"] == 'Bearer realm="books", error="insufficient_scope"'
    r = httpx.get(f"{server}/scope", headers=bearer(api_key))
    assert r.status_code == 403
    assert r.headers["www-authenticate"] == 'Bearer realm="books", error="insufficient_scope", scope="ledger:full"'


def test_case21_duplicate_or_malformed_bearer_is_a_bad_request(server: str, api_key: str) -> None:
    r = httpx.get(f"{server}/books", headers=[("Authorization", f"Bearer {api_key}"), ("Authorization", "Bearer x")])
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = httpx.get(f"{server}/books", headers={"Authorization": "Bearer a b"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


# --- case 22: public paths are exact --------------------------------------------------------------


def test_case22_exact_public_path_is_open(server: str) -> None:
    r = httpx.get(f"{server}/health")
    assert r.status_code == 200 and r.json()["oid"] is None


def test_case22_public_path_with_an_invalid_token_is_refused(server: str) -> None:
    assert httpx.get(f"{server}/health", headers=bearer("dev:oid:x")).status_code == 401


@pytest.mark.parametrize(
    "raw_path",
    [
        b"/health%3F/x",
        b"/health/../x",
        b"/health/",
        b"//health",
        b"/HEALTH",
        b"/healthz-admin",
        b"/health%2F",
        b"/health;x",
    ],
)
def test_case22_look_alike_paths_require_auth_over_http(server: str, raw_path: bytes) -> None:
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as s:
        s.sendall(b"GET " + raw_path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    assert data.startswith(b"HTTP/1.1 401"), data[:80]


async def call(
    mw: AuthMiddleware, path: str, headers: list[tuple[bytes, bytes]] | None = None, query: bytes = b""
) -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": headers or [],
        "state": {},
    }
    await mw(scope, receive, send)
    start = sent[0]
    return start["status"], dict(start["headers"]), b"".join(m.get("body", b"") for m in sent[1:])


@pytest.mark.parametrize(
    "path",
    ["/health?/x", "/health/../x", "/health/", "//health", "/HEALTH", "/healthz-admin", "/health ", "/health\x00", ""],
)
def test_case22_look_alike_decoded_paths_require_auth_direct(ledger: Any, path: str) -> None:
    mw = AuthMiddleware(app, registry=ledger.auth, public_paths={"/health"}, threaded=False)
    status, headers, _ = asyncio.run(call(mw, path))
    assert status == 401 and headers[b"www-authenticate"] == b'Bearer realm="nucleus"'


# --- cases 10 and 11: oversized header, token in query -------------------------------------------


@pytest.mark.parametrize("size", [8 * 1024 + 1, 12 * 1024, 16 * 1024])
def test_case10_oversized_authorization_header_is_refused_before_parsing(server: str, size: int) -> None:
    r = httpx.get(f"{server}/books", headers=bearer("nuk_" + "a" * size))
    assert r.status_code == 431


def test_case10_oversized_header_never_reaches_a_parser() -> None:
    class Boom:
        def validate_format(self, token: str) -> bool:
            raise AssertionError("parser reached")

        def parse(self, token: str) -> RequestContext | None:
            raise AssertionError("parser reached")

    mw = AuthMiddleware(app, registry=TokenRegistry(parsers=[("boom", Boom())]), threaded=False)
    status, _, _ = asyncio.run(call(mw, "/x", [(b"authorization", b"Bearer " + b"x" * 9000)]))
    assert status == 431


@pytest.mark.parametrize("query", ["access_token=dev:oid:acme:user:eve", "a=1&access_token=x", "ACCESS_TOKEN=x"])
def test_case11_token_in_query_string_is_refused(server: str, api_key: str, query: str) -> None:
    r = httpx.get(f"{server}/books?{query}")
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = httpx.get(f"{server}/health?{query}", headers=bearer(api_key))
    assert r.status_code == 400


# --- case 23: no context leaks between concurrent requests ----------------------------------------


def test_case23_contexts_do_not_leak_between_concurrent_requests(server: str, ledger: Any) -> None:
    users = [f"oid:acme:user:u{i}" for i in range(40)]

    async def run() -> list[tuple[str, dict[str, Any]]]:
        async with httpx.AsyncClient(base_url=server) as client:

            async def one(oid: str) -> tuple[str, dict[str, Any]]:
                r = await client.get("/slow", headers=bearer(f"dev:{oid}"))
                return oid, r.json()

            anonymous = [client.get("/health") for _ in range(10)]
            results = await asyncio.gather(*(one(u) for u in users * 3))
            for r in await asyncio.gather(*anonymous):
                assert r.json() == {"oid": None, "var": None, "state": None}
            return list(results)

    for oid, body in asyncio.run(run()):
        assert body == {"oid": oid, "var": oid, "state": oid}
    assert current_context() is None


# --- case 24: no secrets in bodies or logs --------------------------------------------------------


def test_case24_error_bodies_and_logs_never_contain_tokens(
    server: str, api_key: str, ledger: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    revoked, rec = ledger.auth.parser("auth.api_key").create_key("oid:acme:user:frank")
    ledger.auth.parser("auth.api_key").revoke_key(rec.key_id)
    secret_like = [
        revoked,
        api_key[:-1] + ("A" if api_key[-1] != "A" else "B"),
        "dev:oid:acme:user:" + "x" * 200,
        "nss_" + "S" * 43,
    ]
    mw = AuthMiddleware(app, registry=ledger.auth, threaded=False)
    for token in secret_like:
        r = httpx.get(f"{server}/books", headers=bearer(token))
        assert r.status_code == 401
        _status, headers, body = asyncio.run(call(mw, "/books", [(b"authorization", f"Bearer {token}".encode())]))
        for blob in (r.text, str(r.headers), body.decode(), str(headers)):
            assert token not in blob
            assert token.split("_")[-1] not in blob
    log_text = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    for token in secret_like:
        assert token not in log_text


# --- other scope types, websocket and WSGI ---------------------------------------------------------


def test_websocket_without_token_is_closed_before_accept(ledger: Any) -> None:
    mw = AuthMiddleware(app, registry=ledger.auth, threaded=False)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(mw({"type": "websocket", "path": "/ws", "query_string": b"", "headers": []}, receive, send))
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "unauthorized"}]


def test_wsgi_middleware_applies_the_same_rules(ledger: Any) -> None:
    seen: list[Any] = []

    def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(environ["nucleus.context"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    mw = WSGIAuthMiddleware(wsgi_app, registry=ledger.auth, realm="books", public_paths={"/health"})
    statuses: list[tuple[str, list[tuple[str, str]]]] = []

    def start(status: str, headers: list[tuple[str, str]]) -> None:
        statuses.append((status, headers))

    def get(path: str, auth: str | None = None, query: str = "") -> str:
        env = {"PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": "GET"}
        if auth:
            env["HTTP_AUTHORIZATION"] = auth
        mw(env, start)
        return statuses[-1][0]

    assert get("/books") == "401 Unauthorized"
    assert ("WWW-Authenticate".lower(), 'Bearer realm="books"') in [(k.lower(), v) for k, v in statuses[-1][1]]
    assert get("/books", "Bearer dev:oid:nope") == "401 Unauthorized"
    assert get("/books", "Bearer dev:oid:acme:user:eve") == "200 OK"
    assert seen[-1].oid == "oid:acme:user:eve"
    assert get("/health") == "200 OK" and seen[-1] is None
    assert get("/health/") == "401 Unauthorized"
    assert get("/books", "Bearer dev:oid:acme:user:eve", "access_token=x") == "400 Bad Request"


def test_a_passive_check_asks_check_and_changes_nothing() -> None:
    """``authenticate_scope(scope, passive=True)`` (an open stream's check) asks a parser offering
    ``check`` for it instead of ``parse``; a parser without one is asked ``parse``, in both modes."""
    from nucleus_core.auth import PassiveTokenParser

    calls: list[str] = []

    class Touching:
        def validate_format(self, token: str) -> bool:
            return token.startswith("t:")

        def parse(self, token: str) -> RequestContext:
            calls.append("parse")
            return RequestContext(oid="oid:acme:user:alice", source="touching", expires_at=time.time() + 60)

        def check(self, token: str) -> RequestContext:
            calls.append("check")
            return RequestContext(oid="oid:acme:user:alice", source="touching", expires_at=time.time() + 30)

    class Plain:
        def validate_format(self, token: str) -> bool:
            return token.startswith("p:")

        def parse(self, token: str) -> RequestContext:
            calls.append("plain")
            return RequestContext(oid="oid:acme:user:bob", source="plain")

    assert isinstance(Touching(), PassiveTokenParser) and not isinstance(Plain(), PassiveTokenParser)
    registry = TokenRegistry(parsers=[("touching", Touching()), ("plain", Plain())])
    middleware = AuthMiddleware(lambda *_: None, registry=registry)  # type: ignore[arg-type, return-value]

    def decide(token: bytes, passive: bool) -> Any:
        scope = {"type": "http", "path": "/x", "headers": [(b"authorization", b"Bearer " + token)]}
        return asyncio.run(middleware.authenticate_scope(scope, passive=passive))

    try:
        first, again = decide(b"t:1", False), decide(b"t:1", True)
        assert calls == ["parse", "check"] and first == again  # the same requester; expiry aside
        assert first.expires_at != again.expires_at
        assert decide(b"p:1", True).oid == "oid:acme:user:bob" and calls[-1] == "plain"
    finally:
        middleware.close()
    # The context's deadline is a finite number of seconds or None.
    for bad in (True, float("nan"), float("inf"), "60"):
        with pytest.raises(ValidationError, match="expires_at"):
            RequestContext(oid="oid:acme:user:alice", source="x", expires_at=bad)  # type: ignore[arg-type]
