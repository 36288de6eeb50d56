"""The two ASGI layers around the authentication middleware: the access log and the rewriting of
the middleware's refusals into the server's error shape."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import ClassVar
from urllib.parse import quote, unquote

from nucleus_core.auth import redact_secrets
from nucleus_core.errors import ValidationError

from . import wire
from .asgi import ASGIApp, Message, Receive, Scope, Send
from .errors import MalformedRequestError, RequestTooLargeError
from .logs import (
    REQUEST_FIELDS,
    REQUEST_ID_HEADER,
    RequestLog,
    enter_request,
    leave_request,
    request_id_from,
    requester_hash,
)

access_log = logging.getLogger("nucleus_server.access")


_SAFE_QUERY_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")


def loggable_target(scope: Scope) -> str:
    """The request target as the access log writes it: the path with credential-shaped parts
    redacted, and of the query string only the parameter names (``?stream=…&limit=…``); a name
    that is not a short identifier (it could be a token sent as ``?<token>``) becomes ``…`` too."""
    path = redact_secrets(quote(scope.get("path", ""), safe="/:@!$&'()*+,;=-._~"))
    raw = scope.get("query_string", b"")
    if not raw:
        return path
    names = []
    for part in raw.decode("latin-1").split("&"):
        name = unquote(part.partition("=")[0], errors="replace")
        names.append(f"{name}=…" if _SAFE_QUERY_NAME.fullmatch(name) else "…")
    return f"{path}?{'&'.join(names)}"


class AccessLog:
    """The server's access log and request ids. Every HTTP request gets an id (the client's sane
    ``X-Request-Id``, else a new one: :func:`.logs.request_id_from`), current while it is handled
    (:func:`.logs.current_request`) and returned in the ``X-Request-Id`` header of every response.
    After the response, one INFO line on ``nucleus_server.access``: as text
    ``client - "METHOD target HTTP/v" status``, never with a query value, a header or a body; its
    structured fields (:data:`.logs.REQUEST_FIELDS`: request id, method, route template, status,
    duration, and with a ``requester_key`` the requester's keyed hash) for the JSON format.
    ``route_of(method, raw_path)`` names the route of a request the app did not match itself (one
    the authentication refused)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        route_of: Callable[[str, str], str | None] | None = None,
        requester_key: bytes | None = None,
    ) -> None:
        self.app = app
        self.route_of = route_of
        self.requester_key = requester_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = RequestLog(request_id=request_id_from(scope.get("headers", ())), method=scope.get("method", "-"))
        header = (REQUEST_ID_HEADER.encode("ascii"), request.request_id.encode("ascii"))
        status = 500
        started = time.perf_counter()

        async def logging_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        token = enter_request(request)
        try:
            await self.app(scope, receive, logging_send)
        finally:
            try:
                if access_log.isEnabledFor(logging.INFO):
                    self._log(scope, request, status, time.perf_counter() - started)
            finally:
                leave_request(token)

    def _log(self, scope: Scope, request: RequestLog, status: int, elapsed: float) -> None:
        route = request.route
        if route is None and self.route_of is not None:
            raw = scope.get("raw_path")
            route = self.route_of(request.method, raw.decode("latin-1") if isinstance(raw, bytes) else scope["path"])
        fields: dict[str, object] = {
            "message": f"{request.method} {route or '(no route)'} {status}",
            "request_id": request.request_id,
            "method": request.method,
            "route": route,
            "status": status,
            "duration_ms": round(elapsed * 1000, 3),
        }
        if self.requester_key is not None:
            fields["requester"] = None if request.oid is None else requester_hash(request.oid, self.requester_key)
        client = scope.get("client")
        access_log.info(
            '%s - "%s %s HTTP/%s" %d',
            f"{client[0]}:{client[1]}" if client else "-",
            request.method,
            loggable_target(scope),
            scope.get("http_version", "1.1"),
            status,
            extra={REQUEST_FIELDS: fields},
        )


class DenialRewriter:
    """Rewrites the auth middleware's refusals (``{"error": "invalid_token", ...}``) into the
    server's error shape, keeping status and headers. Responses of the app pass unchanged."""

    _CODES: ClassVar[dict[str | None, str]] = {
        None: "unauthenticated",
        "unauthorized": "unauthenticated",
        "invalid_token": "invalid_token",
        "invalid_request": MalformedRequestError.code,
        "insufficient_scope": "forbidden",
        "temporarily_unavailable": "auth_unavailable",
    }

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: Message | None = None

        async def rewriting_send(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and message["status"] in (400, 401, 403, 431, 503):
                held = message
                return
            if held is not None and message["type"] == "http.response.body":
                start, held = held, None
                body = self._rewrite(start["status"], message.get("body", b""))
                headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode("ascii")))
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app(scope, receive, rewriting_send)

    def _rewrite(self, status: int, body: bytes) -> bytes:
        try:
            doc = wire.loads_body(body)
        except ValidationError:
            return body
        if not isinstance(doc, dict) or isinstance(doc.get("error"), dict) or "error_description" not in doc:
            return body
        description = str(doc.get("error_description", ""))
        code = self._CODES.get(doc.get("error"), "unauthenticated")
        if code == "invalid_token" and "expired" in description:
            code = "token_expired"
        if status == 431:
            code = RequestTooLargeError.code
        return wire.dumps({"error": {"code": code, "message": description}})
