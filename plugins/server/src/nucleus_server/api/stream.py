"""``GET /entries/stream``: the entries after a seq, as they are committed, as Server-Sent Events
(the events: :mod:`nucleus_server.sse`).

The stream is a :class:`~nucleus_core.subscribe.Subscription` of the requester
(:meth:`Ledger.subscribe <nucleus_core.ledger.Ledger.subscribe>`): every page is read through the
access policy as a query is, so it carries exactly the entries the requester may read when the page
is read. One page at a time: the next page is read only once the previous one was handed to the
connection and the connection took it (``send`` waits while the client does not read), so a slow
client holds the server to one page and the connection's write buffer, never a growing queue; it
falls behind and catches up from the storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from nucleus_core.errors import LedgerClosedError, NucleusError, QueryError
from nucleus_core.subscribe import Subscription

from ..asgi import Receive, Request, Response, Send, StreamResponse
from ..errors import MalformedRequestError, error_document
from ..openapi import Route
from ..sse import EVENT_STREAM, KEEPALIVE, StreamHub, StreamSlot, entry_event, named_event, sync_event
from .base import Api, Endpoint, filters_from_query

log = logging.getLogger(__name__)

RETRY_MS = 1000
"""The reconnection delay the stream suggests to EventSource clients (``retry:``)."""


def _start_seq(request: Request, items: list[tuple[str, str]]) -> int:
    """``Last-Event-ID`` (a reconnecting client) or else ``after`` (0: from the first entry)."""
    for name, value in request.scope.get("headers", ()):
        if name == b"last-event-id":
            text = value.decode("latin-1").strip()
            if not text.isdigit() or len(text) > 16:
                raise MalformedRequestError("must be the seq of an event of this stream", field="last-event-id")
            return int(text)
    after = [value for key, value in items if key == "after"]
    if len(after) > 1:
        raise QueryError("given more than once", field="after")
    if not after:
        return 0
    if not after[0].isdigit() or len(after[0]) > 16:
        raise QueryError("must be a non-negative integer (a seq)", field="after")
    return int(after[0])


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
    slot = hub.open()
    slot.position = after

    async def run(send: Send, receive: Receive) -> None:
        try:
            await _run(api, hub, slot, sub, send, receive)
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


async def _run(api: Api, hub: StreamHub, slot: StreamSlot, sub: Subscription, send: Send, receive: Receive) -> None:
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-store"),
            (b"x-accel-buffering", b"no"),  # proxies that buffer (nginx) pass each event at once
        ],
    })

    async def body(data: bytes) -> None:
        slot.largest_chunk = max(slot.largest_chunk, len(data))
        await send({"type": "http.response.body", "body": data, "more_body": True})

    watcher = asyncio.create_task(_watch_disconnect(receive, slot))
    ending: dict[str, Any] | None = None
    try:
        await body(b"retry: %d\n\n" % RETRY_MS)
        quiet_since = time.monotonic()
        while not slot.gone:
            if hub.stopping:
                ending = {"reason": "shutdown"}
                break
            slot.wake.clear()
            try:
                entries = await api.run(sub.poll)
            except LedgerClosedError:
                ending = {"reason": "closed"}
                break
            except NucleusError as err:
                await body(named_event("error", error_document(err)))
                break
            slot.pages += 1
            if entries or sub.position != slot.position:
                # One page of events in one write; send waits while the client does not read.
                await body(b"".join(map(entry_event, entries)) + sync_event(sub.position))
                slot.position = sub.position
                quiet_since = time.monotonic()
                if entries:
                    continue  # the next page at once: there may be more
            wait = hub.keepalive - (time.monotonic() - quiet_since)
            if wait <= 0:
                await body(KEEPALIVE)
                quiet_since = time.monotonic()
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(slot.wake.wait(), wait)
        if not slot.gone:
            if ending is not None:
                await body(named_event("end", ending))
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        watcher.cancel()


ENDPOINTS: tuple[Endpoint, ...] = (
    (
        Route(
            "GET",
            "/entries/stream",
            "stream",
            "The entries after a seq the requester may read, as they are committed (Server-Sent Events)",
            response="EntryEvents",
            query=("after", "stream", "record_id", "since", "until", "limit"),
            media_type=EVENT_STREAM,
        ),
        stream,
    ),
)
