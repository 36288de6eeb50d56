"""Server-Sent Events for ``GET /entries/stream``: the event format and :class:`StreamHub`, the
server's open streams (their limit, their wake-ups, their end at shutdown).

The events (https://html.spec.whatwg.org/multipage/server-sent-events.html):

* ``event: entry`` with ``id: <seq>`` and ``data: <entry>``: one entry, the JSON the other entry
  routes send, on one line;
* ``event: sync`` with ``id: <seq>`` and ``data: {"seq": <seq>}``: every entry up to that seq the
  subscriber may read has been sent (sent after each page, and when the stream looked past entries
  it may not read or that its filters leave out), so a client reconnecting with
  ``Last-Event-ID`` does not scan them again;
* ``event: end`` with ``data: {"reason": "shutdown"}`` (the server is stopping) or ``{"reason":
  "closed"}`` (the ledger closed), after which the response ends; a client reconnects later with
  ``Last-Event-ID``;
* ``event: error`` with the error document (``{"error": {"code", "message"}}``) of a failure
  while streaming, or of the requester's credential once it no longer authenticates the same
  requester (``invalid_token``, ``token_expired``: see :class:`~.api.stream.Credential`), after
  which the response ends;
* ``: keep-alive`` comments when nothing else was sent for ``stream_keepalive`` seconds (the
  response's ``X-Nucleus-Keepalive`` header gives that interval).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import contextvars
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import attrs

from nucleus_core.errors import NucleusError
from nucleus_core.ledger import Ledger
from nucleus_core.records import Entry

from . import wire
from .asgi import Message, Send
from .errors import PrincipalStreamLimitError, TooManyStreamsError

log = logging.getLogger(__name__)

T = TypeVar("T")

EVENT_STREAM = "text/event-stream"
KEEPALIVE = b": keep-alive\n\n"


def entry_event(entry: Entry) -> bytes:
    """The ``entry`` event of ``entry`` (its id the entry's seq)."""
    return b"id: %d\nevent: entry\ndata: %s\n\n" % (entry.seq, wire.entry_json(entry))


def sync_event(seq: int) -> bytes:
    """The ``sync`` event: everything up to ``seq`` was sent (its id that seq)."""
    return b'id: %d\nevent: sync\ndata: {"seq":%d}\n\n' % (seq, seq)


def named_event(name: str, data: object) -> bytes:
    """An event without id (``end``, ``error``): ``data`` as one line of JSON."""
    return b"event: %s\ndata: %s\n\n" % (name.encode("ascii"), wire.dumps(data))


END_WRITE_TIMEOUT = 5.0
"""Seconds a stream's writes may still wait for a client that does not read once the server is
stopping; then the connection is closed without its ``end`` event."""


class StalledClientError(Exception):
    """A write to a stream's connection did not finish within :data:`END_WRITE_TIMEOUT` seconds of the
    shutdown: the client reads nothing."""


@attrs.define(eq=False)
class StreamSlot:
    """One open stream: woken by a head past its position, a disconnect or the shutdown."""

    principal: str = ""
    """The requester's OID (the per-principal limit)."""
    wake: asyncio.Event = attrs.field(factory=asyncio.Event)
    gone: bool = False
    """The client disconnected."""
    position: int = 0
    """The seq up to which the stream has sent what the subscriber may read."""
    pages: int = 0
    """Pages read from the ledger."""
    largest_chunk: int = 0
    """The most bytes handed to the connection at once (one page of events): what the stream holds."""


class StreamHub:
    """The server's open streams. At most ``max_streams`` at once (:class:`TooManyStreamsError`,
    503, beyond) and ``max_per_principal`` of one principal (:class:`PrincipalStreamLimitError`,
    429). The hub, not each stream, reads the head: once per wake-up, when this process commits
    (the ledger's :class:`~nucleus_core.subscribe.CommitSignal`) and every ``poll_interval``
    seconds (the commits of other processes), coalesced (one read in flight; commits during it
    cause one more), and it wakes only the streams whose position is behind that head.

    Every read a stream makes (its pages; the hub's head reads) runs on the request thread pool
    through :meth:`run`, at most ``poll_threads`` at once, so however many streams are open the
    pool keeps threads for ordinary requests. :meth:`begin_shutdown` ends them all."""

    def __init__(
        self,
        ledger: Ledger,
        executor: concurrent.futures.Executor,
        *,
        max_streams: int,
        poll_interval: float,
        keepalive: float,
        max_per_principal: int,
        poll_threads: int,
        end_write_timeout: float = END_WRITE_TIMEOUT,
    ) -> None:
        self.ledger = ledger
        self.max_streams = max_streams
        self.max_per_principal = max_per_principal
        self.poll_interval = poll_interval
        self.keepalive = keepalive
        self.end_write_timeout = end_write_timeout
        self.poll_threads = max(1, poll_threads)
        self._executor = executor
        self._polls: asyncio.Semaphore | None = None
        self.slots: set[StreamSlot] = set()
        self._per_principal: collections.Counter[str] = collections.Counter()
        self.head = 0
        """The head the hub read last."""
        self.head_reads = 0
        """Reads of the head so far (one per wake-up, not one per stream)."""
        self.running = 0
        """The streams' calls running on the thread pool now (at most ``poll_threads``)."""
        self.most_running = 0
        """The most of them that ever ran at once."""
        self.stopping = False
        self._stopped: asyncio.Event | None = None
        self._reading = False
        self._again = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._remove_listener: Callable[[], None] | None = ledger.commits.add_listener(self._from_any_thread)

    def open(self, principal: str) -> StreamSlot:
        """A slot for a new stream of ``principal`` (in the event loop); :class:`TooManyStreamsError`
        when ``max_streams`` are open or the server is stopping, :class:`PrincipalStreamLimitError`
        when ``principal`` has ``max_per_principal`` open."""
        if self.stopping:
            raise TooManyStreamsError("the server is shutting down")
        if len(self.slots) >= self.max_streams:
            raise TooManyStreamsError(
                f"this server has {self.max_streams} streams open, its limit (server.max_streams); retry later"
            )
        if self._per_principal[principal] >= self.max_per_principal:
            raise PrincipalStreamLimitError(
                f"this requester has {self.max_per_principal} streams open on this server, the most one principal "
                "may (server.max_streams_per_principal); close one or retry later"
            )
        self._loop = asyncio.get_running_loop()
        if self._polls is None:
            self._polls = asyncio.Semaphore(self.poll_threads)
            self._stopped = asyncio.Event()
        slot = StreamSlot(principal=principal)
        self.slots.add(slot)
        self._per_principal[principal] += 1
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch_storage())
        return slot

    def release(self, slot: StreamSlot) -> None:
        if slot in self.slots:
            self.slots.discard(slot)
            self._per_principal[slot.principal] -= 1
            if self._per_principal[slot.principal] <= 0:
                del self._per_principal[slot.principal]

    def open_for(self, principal: str) -> int:
        """How many streams ``principal`` has open."""
        return self._per_principal[principal]

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the thread pool, at most ``poll_threads`` of the streams' calls at once (in
        a copy of the caller's context: what ``fn`` logs carries the request id)."""
        assert self._polls is not None
        async with self._polls:
            call = functools.partial(contextvars.copy_context().run, fn, *args)
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            try:
                return await asyncio.get_running_loop().run_in_executor(self._executor, call)
            finally:
                self.running -= 1

    def wake_all(self) -> None:
        """Wake every stream (in the event loop)."""
        for slot in self.slots:
            slot.wake.set()

    def wake_behind(self, head: int) -> None:
        """Wake the streams whose position is behind ``head`` (in the event loop)."""
        for slot in self.slots:
            if slot.position < head:
                slot.wake.set()

    def _from_any_thread(self) -> None:
        """The ledger committed (in the committing thread) or closed: read the head (or, closed or
        stopping, wake every stream: they find out themselves)."""
        loop = self._loop
        if loop is None or not self.slots:
            return
        everyone = self.stopping or self.ledger.commits.closed
        with contextlib.suppress(RuntimeError):  # the loop is closed: no stream is left to wake
            loop.call_soon_threadsafe(self._stop_all if everyone else self.read_head)

    def _stop_all(self) -> None:
        if self.stopping and self._stopped is not None:
            self._stopped.set()
        self.wake_all()

    def read_head(self) -> None:
        """Read the head and wake the streams behind it (in the event loop): one read in flight;
        a call while it runs makes one more read after it."""
        if self._reading:
            self._again = True
            return
        self._reading = True
        self._reader = asyncio.create_task(self._read_heads())

    async def _read_heads(self) -> None:
        try:
            while self.slots and not self.stopping:
                self._again = False
                try:
                    head = await self.run(self.ledger.length)
                except NucleusError:
                    self.wake_all()  # storage unavailable or the ledger closing: the streams find out
                    return
                except RuntimeError:
                    return  # the thread pool is shut down
                self.head_reads += 1
                self.head = max(self.head, head)
                self.wake_behind(head)
                if not self._again:
                    return
        finally:
            self._reading = False

    def begin_shutdown(self) -> None:
        """End every stream (each sends ``event: end`` and finishes its response) and refuse new
        ones; from any thread, a signal handler included. Idempotent."""
        self.stopping = True
        self._from_any_thread()

    def close(self) -> None:
        self.begin_shutdown()
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None

    async def send(self, send: Send, message: Message) -> None:
        """``send(message)``, waiting for a client that does not read as long as the server runs,
        and :data:`END_WRITE_TIMEOUT` seconds more once it stops (:class:`StalledClientError`)."""
        stopped = self._stopped
        if self.stopping or stopped is None:
            await self._send_before_end(send(message))
            return
        write = asyncio.ensure_future(send(message))
        stop = asyncio.ensure_future(stopped.wait())
        try:
            await asyncio.wait((write, stop), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled (the server gave up on the request): so is the write
            write.cancel()
            raise
        finally:
            stop.cancel()
        if not write.done():
            await self._send_before_end(write)
        write.result()

    async def _send_before_end(self, write: Awaitable[None]) -> None:
        try:
            await asyncio.wait_for(write, self.end_write_timeout)
        except TimeoutError:
            raise StalledClientError from None

    async def _watch_storage(self) -> None:
        """While streams are open: read the head every ``poll_interval`` seconds (what another
        process committed) and wake the streams behind it."""
        while self.slots and not self.stopping:
            await asyncio.sleep(self.poll_interval)
            self.read_head()
