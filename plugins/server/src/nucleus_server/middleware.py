"""The two ASGI layers around the authentication middleware: the access log and the rewriting of
the middleware's refusals into the server's error shape."""

from __future__ import annotations

import logging
import re
from typing import ClassVar
from urllib.parse import quote, unquote

from nucleus_core.auth import redact_secrets
from nucleus_core.errors import ValidationError

from . import wire
from .asgi import ASGIApp, Message, Receive, Scope, Send
from .errors import MalformedRequestError, RequestTooLargeError

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
    """The server's access log: one INFO line per HTTP request on ``nucleus_server.access``,
    written after the response started (``client - "METHOD target HTTP/v" status``), never with a
    query value, a header or a body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not access_log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        status = 500

        async def logging_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, logging_send)
        finally:
            client = scope.get("client")
            who = f"{client[0]}:{client[1]}" if client else "-"
            access_log.info(
                '%s - "%s %s HTTP/%s" %d',
                who,
                scope.get("method", "-"),
                loggable_target(scope),
                scope.get("http_version", "1.1"),
                status,
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
