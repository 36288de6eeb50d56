"""The request and response plumbing between ASGI and the handlers.

A handler gets a :class:`Request` (scope, path parameters, the authenticated context, a bounded
body reader) and returns a :class:`Response` (status, JSON body bytes, extra headers);
:func:`send_response` writes it with the headers every answer carries, and
:func:`error_response` turns a :class:`~nucleus_core.errors.NucleusError` into the server's error
document with its status and ``WWW-Authenticate`` or ``Allow`` header.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any

import attrs

from nucleus_core.context import RequestContext, require_context
from nucleus_core.errors import InsufficientScopeError, MissingRequesterError, NucleusError

from . import wire
from .errors import (
    INTERNAL_ERROR_CODE,
    MalformedRequestError,
    RequestTooLargeError,
    TooManyStreamsError,
    error_document,
    status_for,
)
from .routing import RouteMethodNotAllowedError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


_PERCENT = re.compile(rb"%([0-9A-Fa-f]{2})")
_SHOWN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _unquote(raw: bytes, what: str, field: str) -> str:
    """``raw`` (one name or value of a query string) decoded: ``+`` is a space, ``%XX`` a byte,
    the bytes UTF-8; a ``%`` not followed by two hex digits, or bytes that are not UTF-8, are a
    :class:`MalformedRequestError` naming ``field``."""
    spaced = raw.replace(b"+", b" ")
    if spaced.count(b"%") != len(_PERCENT.findall(spaced)):
        raise MalformedRequestError(f"the {what} has a '%' not followed by two hex digits", field=field)
    try:
        return _PERCENT.sub(lambda m: bytes((int(m[1], 16),)), spaced).decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedRequestError(f"the {what} is not UTF-8 once percent-decoded", field=field) from None


def parse_query(raw: bytes) -> list[tuple[str, str]]:
    """The ``(name, value)`` pairs of a query string, decoded strictly (every route reads its query
    through this): pairs are separated by ``&`` (``;`` is no separator), an empty pair (``a=1&&b=2``,
    a trailing ``&``) is skipped, ``name=`` is the empty value and a pair without ``=`` is refused
    (write ``name=`` for an empty value; its ``field`` is ``query``: a bare name is never echoed,
    it may be a token); names and values are form-encoded (``+`` is a space, ``%XX`` a byte) UTF-8.
    A malformed value is a :class:`MalformedRequestError` (400) naming the parameter (``query``
    when the name is malformed or not name-shaped)."""
    items: list[tuple[str, str]] = []
    for pair in raw.split(b"&") if raw else ():
        if not pair:
            continue
        name_raw, equals, value_raw = pair.partition(b"=")
        if not equals:
            # Never echoed: a bare ``?<name>`` is how a token sent in the query often looks.
            raise MalformedRequestError(
                "a query parameter has no '=' (write 'name=' for an empty value)", field="query"
            )
        name = _unquote(name_raw, "name of a query parameter", "query")
        field = name if _SHOWN_NAME.fullmatch(name) else "query"
        items.append((name, _unquote(value_raw, "value", field)))
    return items


@attrs.frozen(kw_only=True)
class Request:
    """What a handler gets: the scope, path parameters, the authenticated context (None on a public
    path without a token) and a way to read the body (bounded)."""

    scope: Scope
    params: Mapping[str, str]
    context: RequestContext | None
    read_body: Callable[[], Awaitable[bytes]]

    @property
    def requester(self) -> RequestContext:
        """The authenticated requester; :class:`MissingRequesterError` (401) when there is none."""
        if self.context is None:
            raise MissingRequesterError("this route needs a bearer token")
        return require_context(self.context)

    def query_items(self) -> list[tuple[str, str]]:
        """The query string's ``(name, value)`` pairs in order (:func:`parse_query`)."""
        return parse_query(self.scope.get("query_string", b""))

    async def json(self) -> Any:
        """The body parsed as JSON (:class:`MalformedRequestError` when it is not)."""
        return wire.loads_body(await self.read_body())


@attrs.frozen(kw_only=True)
class Response:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = "application/json"


@attrs.frozen(kw_only=True)
class StreamResponse(Response):
    """A response that writes itself: ``stream(send, receive)`` sends the start and the body
    (the entry stream's Server-Sent Events), after the handler returned without error."""

    stream: Callable[[Send, Receive], Awaitable[None]]


def json_response(status: int, value: Any) -> Response:
    """A response whose body is ``value`` as JSON."""
    return Response(status=status, body=wire.dumps(value))


def raw_response(status: int, body: bytes) -> Response:
    """A response whose body is already JSON bytes (entries written from their stored bytes)."""
    return Response(status=status, body=body)


TEXT_PLAIN = "text/plain; charset=utf-8"


def text_response(status: int, lines: Iterable[str]) -> Response:
    """A ``text/plain`` response of ``lines``, each ending with a newline (verifier keys)."""
    return Response(status=status, body="".join(f"{line}\n" for line in lines).encode("utf-8"), content_type=TEXT_PLAIN)


INTERNAL_ERROR = Response(
    status=500, body=wire.dumps({"error": {"code": INTERNAL_ERROR_CODE, "message": "internal server error"}})
)
"""The answer to an unexpected exception (its details go to the log, never to the client)."""


def error_response(err: NucleusError, *, realm: str) -> Response:
    """The error document for ``err`` with its status and, for 401/403, the bearer challenge of
    ``realm``, for 405 the ``Allow`` header."""
    status = status_for(err)
    headers: tuple[tuple[str, str], ...] = ()
    if status == 401:
        headers = (("www-authenticate", f'Bearer realm="{realm}"'),)
    elif status == 403:
        needed = getattr(err, "scope", None) if isinstance(err, InsufficientScopeError) else None
        extra = f', scope="{needed}"' if needed else ""
        headers = (("www-authenticate", f'Bearer realm="{realm}", error="insufficient_scope"{extra}'),)
    elif status == 405 and isinstance(err, RouteMethodNotAllowedError):
        headers = (("allow", ", ".join(err.allowed)),)
    elif isinstance(err, TooManyStreamsError):
        headers = (("retry-after", str(err.retry_after)),)
    return Response(status=status, body=wire.dumps(error_document(err)), headers=headers)


NOSNIFF = (b"x-content-type-options", b"nosniff")


class NoSniff:
    """The one place every answer gets ``X-Content-Type-Options: nosniff`` (the app's, the
    explorer's, the auth middleware's refusals): a browser never reads a JSON body as another type."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if not any(k.lower() == NOSNIFF[0] for k, _v in headers):
                    headers.append(NOSNIFF)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, sending)


async def send_response(send: Send, response: Response) -> None:
    """Write ``response``: its content type (JSON unless it says otherwise), its length,
    ``no-store``, then its own headers."""
    headers = [
        (b"content-type", response.content_type.encode("latin-1")),
        (b"content-length", str(len(response.body)).encode("ascii")),
        (b"cache-control", b"no-store"),
    ]
    headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers)
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


async def read_body(scope: Scope, receive: Receive, *, limit: int) -> bytes:
    """The request body, refused with :class:`RequestTooLargeError` (413) once it is larger than
    ``limit`` bytes (from ``content-length`` before reading, or while reading a chunked body)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            if not value.isdigit():
                raise MalformedRequestError("content-length is not a number", field="body")
            if int(value) > limit:
                raise RequestTooLargeError(f"the body is larger than this server's {limit} bytes", field="body")
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise MalformedRequestError("the client disconnected before sending the body", field="body")
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            raise RequestTooLargeError(f"the body is larger than this server's {limit} bytes", field="body")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
