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
  while streaming, after which the response ends;
* ``: keep-alive`` comments when nothing else was sent for ``stream_keepalive`` seconds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import Callable

import attrs

from nucleus_core.errors import NucleusError
from nucleus_core.ledger import Ledger
from nucleus_core.records import Entry

from . import wire
from .errors import TooManyStreamsError

log = logging.getLogger(__name__)

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


@attrs.define(eq=False)
class StreamSlot:
    """One open stream: woken by commits, the storage poll, a disconnect or the shutdown."""

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
    503, beyond); each is woken when this process commits (the ledger's
    :class:`~nucleus_core.subscribe.CommitSignal`) and when one read of the head every
    ``poll_interval`` seconds (one for all streams, on the thread pool) finds that it moved (the
    commits of other processes); :meth:`begin_shutdown` ends them all."""

    def __init__(
        self,
        ledger: Ledger,
        executor: concurrent.futures.Executor,
        *,
        max_streams: int,
        poll_interval: float,
        keepalive: float,
    ) -> None:
        self.ledger = ledger
        self.max_streams = max_streams
        self.poll_interval = poll_interval
        self.keepalive = keepalive
        self._executor = executor
        self.slots: set[StreamSlot] = set()
        self.stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._remove_listener: Callable[[], None] | None = ledger.commits.add_listener(self._from_any_thread)

    def open(self) -> StreamSlot:
        """A slot for a new stream (in the event loop); :class:`TooManyStreamsError` when
        ``max_streams`` are open or the server is stopping."""
        if self.stopping:
            raise TooManyStreamsError("the server is shutting down")
        if len(self.slots) >= self.max_streams:
            raise TooManyStreamsError(
                f"this server has {self.max_streams} streams open, its limit (server.max_streams); retry later"
            )
        self._loop = asyncio.get_running_loop()
        slot = StreamSlot()
        self.slots.add(slot)
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch_storage())
        return slot

    def release(self, slot: StreamSlot) -> None:
        self.slots.discard(slot)

    def wake_all(self) -> None:
        """Wake every stream (in the event loop)."""
        for slot in self.slots:
            slot.wake.set()

    def _from_any_thread(self) -> None:
        """The ledger committed (in the committing thread) or closed: wake the streams."""
        loop = self._loop
        if loop is None or not self.slots:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: no stream is left to wake
            loop.call_soon_threadsafe(self.wake_all)

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

    async def _watch_storage(self) -> None:
        """While streams are open: read the head every ``poll_interval`` seconds and wake them all
        when it moved (what another process committed)."""
        loop = asyncio.get_running_loop()
        last: int | None = None
        while self.slots and not self.stopping:
            await asyncio.sleep(self.poll_interval)
            try:
                head = await loop.run_in_executor(self._executor, self.ledger.length)
            except NucleusError:
                continue  # storage unavailable or the ledger closing: the streams find out themselves
            except RuntimeError:
                return  # the thread pool is shut down
            if head != last:
                last = head
                self.wake_all()
