"""``GET /entries/stream``: the entries after a seq, as they are committed, as Server-Sent Events
(the events: :mod:`nucleus_server.sse`).

The stream is a :class:`~nucleus_core.subscribe.Subscription` of the requester
(:meth:`Ledger.subscribe <nucleus_core.ledger.Ledger.subscribe>`): every page is read through the
access policy as a query is, so it carries exactly the entries the requester may read when the page
is read. One page at a time: the next page is read only once the previous one was handed to the
connection and the connection took it (``send`` waits while the client does not read), so a slow
client holds the server to one page and the connection's write buffer, never a growing queue; it
falls behind and catches up from the storage.

The requester's credential is authenticated again while the stream is open (:class:`Credential`,
every ``stream_reauth_interval`` seconds and before a page when due, and at its deadline), without
changing it (a passive check: the stream does not keep a session alive): one that no longer
authenticates the same requester ends the stream with ``event: error``. The stream's reads
go through :meth:`StreamHub.run <nucleus_server.sse.StreamHub.run>` (a bounded share of the thread
pool) and it reads a page only when the hub's head is past its position.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import attrs

from nucleus_core.asgi import Denial
from nucleus_core.auth import KeySourceUnavailableError
from nucleus_core.context import RequestContext
from nucleus_core.errors import LedgerClosedError, NucleusError, QueryError, TokenExpiredError, TokenInvalidError
from nucleus_core.subscribe import Subscription

from ..asgi import Receive, Request, Response, Scope, Send, StreamResponse
from ..errors import MalformedRequestError, error_document
from ..openapi import Route
from ..sse import (
    EVENT_STREAM,
    KEEPALIVE,
    StalledClientError,
    StreamHub,
    StreamSlot,
    entry_event,
    named_event,
    sync_event,
)
from .base import Api, Authenticate, Endpoint, ascii_int, filters_from_query

log = logging.getLogger(__name__)

RETRY_MS = 1000
"""The reconnection delay the stream suggests to EventSource clients (``retry:``)."""

KEEPALIVE_HEADER = b"x-nucleus-keepalive"
"""The response header announcing the stream's keep-alive interval (seconds): a client's read
timeout must exceed it."""

def _start_seq(request: Request, items: list[tuple[str, str]]) -> int:
    """``Last-Event-ID`` (a reconnecting client) or else ``after`` (0: from the first entry)."""
    for name, value in request.scope.get("headers", ()):
        if name == b"last-event-id":
            seq = ascii_int(value.decode("latin-1").strip())
            if seq is None:
                raise MalformedRequestError("must be the seq of an event of this stream", field="last-event-id")
            return seq
    after = [value for key, value in items if key == "after"]
    if len(after) > 1:
        raise QueryError("given more than once", field="after")
    if not after:
        return 0
    seq = ascii_int(after[0])
    if seq is None:
        raise QueryError("must be a non-negative integer (a seq)", field="after")
    return seq


def _expiry(context: RequestContext) -> float | None:
    """When the credential stops authenticating (Unix seconds): the context's ``expires_at`` (set
    by the parser that accepted it, its leeway included), else a numeric ``exp`` claim, else None."""
    if context.expires_at is not None:
        return float(context.expires_at)
    exp = context.claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float) or exp != exp:
        return None
    return float(exp)


def _refusal(decision: Denial | None) -> NucleusError:
    """The error a stream ends with when its credential no longer authenticates."""
    if decision is not None and decision.status == 503:
        return KeySourceUnavailableError("authentication is temporarily unavailable; reconnect later")
    if decision is not None and decision.description.endswith("expired"):
        return TokenExpiredError("the access token expired while the stream was open")
    return TokenInvalidError("the access token no longer authenticates (revoked or invalid)")


@attrs.define(kw_only=True)
class Credential:
    """The credential of an open stream, authenticated again every ``interval`` seconds through the
    server's auth middleware (``authenticate``: :meth:`AuthMiddleware.authenticate_scope
    <nucleus_core.asgi.AuthMiddleware.authenticate_scope>` with ``passive=True`` on the request's
    own headers, in its threads: the check changes nothing, so the stream never keeps a session
    alive nor spends a service token's ``jti``), and at its deadline (:func:`_expiry`: a JWT's
    ``exp`` plus its parser's leeway, an API key's expiry, a session's idle or absolute deadline).
    At the deadline it is checked again: a session other requests kept alive has a later one, and
    the stream goes on; a credential past its time ends the stream."""

    authenticate: Authenticate
    scope: Scope
    context: RequestContext
    interval: float
    checked_at: float = attrs.field(factory=time.monotonic)
    expires_at: float | None = None
    checks: int = 0
    """Times the credential was authenticated again."""

    def __attrs_post_init__(self) -> None:
        self.expires_at = _expiry(self.context)

    def due_in(self) -> float:
        """Seconds until the next check or the deadline, whichever is first."""
        due = self.interval - (time.monotonic() - self.checked_at)
        if self.expires_at is not None:
            due = min(due, self.expires_at - time.time())
        return max(0.0, due)

    async def refused(self) -> NucleusError | None:
        """None while the credential still authenticates the same requester (checked again when
        due or at its deadline), else the error the stream ends with."""
        at_deadline = self.expires_at is not None and time.time() >= self.expires_at
        if not at_deadline and time.monotonic() - self.checked_at < self.interval:
            return None
        self.checked_at = time.monotonic()
        decision = await self.authenticate(self.scope)
        self.checked_at = time.monotonic()
        self.checks += 1
        if not isinstance(decision, RequestContext):
            return _refusal(decision)
        if decision != self.context:  # principal, source, role and scopes (claims, token, expiry aside)
            return TokenInvalidError(
                "the access token now authenticates another requester, role or scopes; reconnect"
            )
        self.expires_at = _expiry(decision)
        if self.expires_at is not None and time.time() >= self.expires_at:
            return TokenExpiredError("the access token expired while the stream was open")
        return None


async def stream(api: Api, request: Request) -> Response:
    ctx = request.requester
    items = request.query_items()
    after = _start_seq(request, items)
    filters = filters_from_query([(k, v) for k, v in items if k != "after"], allow_kind=False)
    if "cursor" in filters:
        raise QueryError("a stream starts after the seq in after= or Last-Event-ID; it takes no cursor", field="cursor")
    hub = api.streams
    # Requester, scope and filters are checked before the response starts: errors are ordinary ones.
    sub: Subscription = await api.run(api.ledger.subscribe, after, filters, ctx)
    credential = Credential(
        authenticate=api.authenticate, scope=request.scope, context=ctx,
        interval=api.settings.stream_reauth_interval,
    )
    slot = hub.open(ctx.oid)
    slot.position = after

    async def run(send: Send, receive: Receive) -> None:
        try:
            await _run(hub, slot, sub, credential, send, receive)
        except StalledClientError:
            log.warning(
                "an entry stream's client read nothing for %g s after the shutdown began: its response is dropped",
                hub.end_write_timeout,
            )
        finally:
            hub.release(slot)

    return StreamResponse(status=200, body=b"", content_type=EVENT_STREAM, stream=run)


async def _watch_disconnect(receive: Receive, slot: StreamSlot) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            slot.gone = True
            slot.wake.set()
            return


async def _run(
    hub: StreamHub, slot: StreamSlot, sub: Subscription, credential: Credential, send: Send, receive: Receive
) -> None:
    await hub.send(send, {
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-store"),
            (b"x-accel-buffering", b"no"),  # proxies that buffer (nginx) pass each event at once
            (KEEPALIVE_HEADER, b"%g" % hub.keepalive),
        ],
    })

    async def body(data: bytes) -> None:
        slot.largest_chunk = max(slot.largest_chunk, len(data))
        await hub.send(send, {"type": "http.response.body", "body": data, "more_body": True})

    watcher = asyncio.create_task(_watch_disconnect(receive, slot))
    ending: dict[str, Any] | None = None
    try:
        await body(b"retry: %d\n\n" % RETRY_MS)
        quiet_since = time.monotonic()
        due = True  # a page to read: at the start, after a full page, when the head moved past us
        while not slot.gone:
            if hub.stopping:
                ending = {"reason": "shutdown"}
                break
            refused = await credential.refused()
            if refused is not None:
                await body(named_event("error", error_document(refused)))
                break
            if due or hub.head > slot.position:
                due = False
                slot.wake.clear()
                try:
                    entries = await hub.run(sub.poll)
                except LedgerClosedError:
                    ending = {"reason": "closed"}
                    break
                except NucleusError as err:
                    await body(named_event("error", error_document(err)))
                    break
                slot.pages += 1
                if entries or sub.position != slot.position:
                    refused = await credential.refused()  # nothing is sent on a credential past its time
                    if refused is not None:
                        await body(named_event("error", error_document(refused)))
                        break
                    # One page of events in one write; send waits while the client does not read.
                    await body(b"".join(map(entry_event, entries)) + sync_event(sub.position))
                    slot.position = sub.position
                    quiet_since = time.monotonic()
                    if entries:
                        due = True  # the next page at once: there may be more
                        continue
            keepalive_in = hub.keepalive - (time.monotonic() - quiet_since)
            if keepalive_in <= 0:
                await body(KEEPALIVE)
                quiet_since = time.monotonic()
                continue
            wait = min(keepalive_in, credential.due_in())
            if wait <= 0:
                continue  # the credential is due: checked at the top
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(slot.wake.wait(), wait)
                due = True
        if not slot.gone:
            if ending is not None:
                await body(named_event("end", ending))
            await hub.send(send, {"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        watcher.cancel()


ENDPOINTS: tuple[Endpoint, ...] = (
    (
        Route(
            "GET",
            "/entries/stream",
            "stream",
            "The entries after a seq the requester may read, as they are committed (Server-Sent Events); "
            "the token is authenticated again while the stream is open",
            response="EntryEvents",
            query=("after", "stream", "record_id", "since", "until", "limit"),
            media_type=EVENT_STREAM,
        ),
        stream,
    ),
)
