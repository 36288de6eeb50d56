"""What every handler gets besides its request: :class:`Api`, the ledger with the server's
settings and thread pool; the handler and endpoint types; helpers shared by several areas."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs

from nucleus_core.asgi import Denial
from nucleus_core.auth import redact_secrets
from nucleus_core.context import RequestContext
from nucleus_core.errors import QueryError
from nucleus_core.ledger import Ledger

from ..asgi import Request, Response, Scope
from ..openapi import Route
from ..settings import ServerSettings
from ..sse import StreamHub

Authenticate = Callable[[Scope], Awaitable[RequestContext | Denial | None]]
""":meth:`AuthMiddleware.authenticate_scope <nucleus_core.asgi.AuthMiddleware.authenticate_scope>` with
``passive=True``: a check of a request's credential again that changes no parser's state."""


@attrs.define(kw_only=True)
class Api:
    """The served ledger, the server's settings and the pool that runs blocking ledger calls."""

    ledger: Ledger
    settings: ServerSettings
    executor: concurrent.futures.ThreadPoolExecutor
    openapi: bytes
    """The served OpenAPI document, built once from the route table."""
    streams: StreamHub
    """The open ``GET /entries/stream`` responses."""
    authenticate: Authenticate
    """The auth middleware's decision on a request's credential, made again (an open stream's)."""
    modules: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    """Per module id, its ``handle_types`` and ``operations`` (fixed while the ledger is open)."""
    verify_lock: asyncio.Lock | None = None
    """One full verification at a time (made on first use, inside the event loop)."""

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on the thread pool, so the event loop keeps serving meanwhile; in a copy of
        the caller's context, so what ``fn`` logs carries the request id."""
        call = functools.partial(contextvars.copy_context().run, fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self.executor, call)


Handler = Callable[[Api, Request], Awaitable[Response]]
"""A route's handler: ``async def name(api, request) -> Response``; errors are raised as
:class:`~nucleus_core.errors.NucleusError` and become error documents."""

Endpoint = tuple[Route, Handler]
"""A route (for the router and ``/openapi.json``) with the handler that answers it."""

_QUERY_INT = {"since", "until", "limit"}
MAX_INT_DIGITS = 16
"""Most digits of an integer in a query string or header (a seq, a time, a limit)."""


def ascii_int(text: str) -> int | None:
    """``text`` as a non-negative integer when it is 1 to :data:`MAX_INT_DIGITS` ASCII digits, else
    None. Only ASCII: ``"²"`` and ``"٣"`` are digits to :meth:`str.isdigit`, but ``int()`` refuses
    the first and reads the second as 3."""
    if not text.isascii() or not text.isdigit() or len(text) > MAX_INT_DIGITS:
        return None
    return int(text)


def filters_from_query(items: list[tuple[str, str]], *, allow_kind: bool) -> dict[str, Any]:
    """Query-string filters: ``stream``, ``record_id`` and ``kind`` repeat; the rest appear once."""
    allowed = {"stream", "record_id", "since", "until", "limit", "cursor"} | ({"kind"} if allow_kind else set())
    lists: dict[str, list[str]] = {}
    filters: dict[str, Any] = {}
    for key, value in items:
        if key not in allowed:
            raise QueryError(f"unknown query parameter {redact_secrets(key[:64])!r}", field="query")
        if key in ("stream", "record_id", "kind"):
            lists.setdefault(key, []).append(value)
            continue
        if key in filters:
            raise QueryError("given more than once", field=key)
        if key in _QUERY_INT:
            number = ascii_int(value)
            if number is None:
                raise QueryError("must be a non-negative integer", field=key)
            filters[key] = number
        else:
            filters[key] = value
    for key, values in lists.items():
        name = "record_ids" if key == "record_id" else key
        filters[name] = values if (len(values) > 1 or key == "record_id") else values[0]
    return filters
