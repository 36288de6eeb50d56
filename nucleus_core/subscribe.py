"""Subscriptions: follow the entries appended after a seq as they arrive (:meth:`Ledger.subscribe
<nucleus_core.ledger.Ledger.subscribe>`).

A subscription is a cursor (``position``: the seq up to which it has looked) and the filters of a
query. Each page it reads is a query of the entries after its position, through the same
access-checked path as :meth:`Ledger.query <nucleus_core.ledger.Ledger.query>` (the policy's
``query``, filtering inside the storage), so a subscriber gets exactly the entries a query would
give it at that moment, in seq order, never one twice. Before the query it reads the head (one
indexed read): when nothing was committed after its position there is no query at all, and when a
page comes back shorter than its size the position moves to that head, so the next page never
scans again what this one looked at (entries another stream or another reader's).

New entries are noticed two ways: a commit by this process wakes the subscriptions at once
(:class:`CommitSignal`, notified after every commit of the ledger), and the storage is read again
every ``poll_interval`` seconds for the commits of other processes (other ``nucleus serve``
workers, other writers on the same SQLite file or PostgreSQL database).

Memory is bounded by one page per subscription: the next page is read only once the previous one
was consumed. A consumer that falls behind is simply further behind the head; nothing is queued
for it, nothing is dropped, and it catches up from the storage at its own pace.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterator

from .errors import NucleusError, ValidationError
from .records import Entry

log = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL = 0.2
"""Seconds between two reads of the storage for the commits of other processes."""
DEFAULT_PAGE_SIZE = 100
"""Entries a subscription reads at most at once (the ``limit`` filter sets it, up to 1000)."""
MAX_POLL_INTERVAL = 60.0

PageReader = Callable[[int], tuple[list[Entry], int]]
"""Reads the page after a position: ``(entries, new position)`` (see :meth:`Ledger.subscribe
<nucleus_core.ledger.Ledger.subscribe>`)."""


class CommitSignal:
    """Tells subscribers that this process committed entries: a generation counter under a
    condition (:meth:`wait`) and callbacks (:meth:`add_listener`) run after each commit.

    One per ledger, notified by the ledger after every commit of a write transaction and closed
    when the ledger closes (which wakes every waiter for good)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._generation = 0
        self._closed = False
        self._listeners: list[Callable[[], None]] = []

    @property
    def generation(self) -> int:
        """How many commits this process made since the ledger opened (compare with :meth:`wait`)."""
        return self._generation

    @property
    def closed(self) -> bool:
        return self._closed

    def notify(self) -> None:
        """A commit happened: wake the waiters, then run the listeners (in this thread; one that
        raises is logged, the others still run)."""
        self._signal(closing=False)

    def close(self) -> None:
        """The ledger closed: wake every waiter; :meth:`wait` returns at once from now on."""
        self._signal(closing=True)

    def _signal(self, *, closing: bool) -> None:
        with self._cond:
            if closing:
                self._closed = True
            else:
                self._generation += 1
            self._cond.notify_all()
            listeners = tuple(self._listeners)
        for listener in listeners:
            try:
                listener()
            except Exception:
                log.exception("a commit listener failed (the commit stands)")

    def wait(self, generation: int, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds (None: no limit) for a commit after ``generation`` (a value
        of :attr:`generation` read before looking at the storage, so that no commit is missed in
        between); True when one happened or the signal is closed."""
        with self._cond:
            if self._generation == generation and not self._closed:
                self._cond.wait(timeout)
            return self._generation != generation or self._closed

    def add_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Run ``listener()`` after every commit (in the committing thread: it must be quick, e.g.
        ``loop.call_soon_threadsafe``) and once at close; returns the function that removes it."""
        with self._cond:
            self._listeners.append(listener)

        def remove() -> None:
            with self._cond:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove


def check_seconds(value: object, name: str, *, most: float | None = None) -> float:
    """``value`` as a number of seconds: not negative, and with ``most`` more than 0 and at most
    ``most``; :class:`~nucleus_core.errors.ValidationError` naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise ValidationError("must be a number of seconds", field=name)
    if most is not None and not 0 < value <= most:
        raise ValidationError(f"must be more than 0 and at most {most:g} seconds", field=name)
    if value < 0:
        raise ValidationError("must not be negative", field=name)
    return float(value)


class Subscription(Iterator[Entry]):
    """The entries after a seq that a requester may read, as they are committed: an iterator that
    blocks until the next one (made by :meth:`Ledger.subscribe <nucleus_core.ledger.Ledger.subscribe>`).

    Iteration ends (``StopIteration``) when ``timeout`` seconds pass without an entry (an idle
    timeout, counted from the start and from each entry delivered; None: never), when
    :meth:`close` is called (from any thread) or when the ledger closes. :attr:`position` is the seq
    up to which the subscription has looked: hand it to a new subscription as ``after_seq`` to go
    on where this one stopped. :meth:`poll` reads the next page without waiting (the HTTP server's
    streams use it). Used by one thread at a time; :meth:`close` may come from another.
    """

    def __init__(
        self,
        read_page: PageReader,
        signal: CommitSignal,
        *,
        after_seq: int,
        timeout: float | None,
        poll_interval: float,
    ) -> None:
        self._read_page = read_page
        self._signal = signal
        self._timeout = timeout
        self._poll_interval = poll_interval
        self._buffer: collections.deque[Entry] = collections.deque()
        self._scanned = after_seq
        self._position = after_seq
        self._stopped = False

    @property
    def position(self) -> int:
        """The seq up to which this subscription has delivered or looked: every entry after it is
        still to come (the entries of a page read but not yet delivered are not counted)."""
        return self._position

    @property
    def closed(self) -> bool:
        return self._stopped or self._signal.closed

    def close(self) -> None:
        """End the iteration: a blocked ``next()`` returns (``StopIteration``) at its next wake-up,
        within ``poll_interval`` seconds."""
        self._stopped = True

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Subscription:
        return self

    def poll(self) -> list[Entry]:
        """The next page (at most the page size) of entries after :attr:`position` that the requester
        may read, without waiting: empty when there is none yet. Moves :attr:`position` past them
        (and past what the read looked at). :class:`~nucleus_core.errors.LedgerClosedError` once the
        ledger is closed."""
        if self._buffer:
            out = list(self._buffer)
            self._buffer.clear()
            self._position = max(self._scanned, out[-1].seq)
            return out
        entries, self._scanned = self._read_page(self._scanned)
        self._position = self._scanned
        return entries

    def __next__(self) -> Entry:
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        while True:
            if self._buffer:
                entry = self._buffer.popleft()
                self._position = entry.seq if self._buffer else max(entry.seq, self._scanned)
                return entry
            if self.closed:
                raise StopIteration
            generation = self._signal.generation
            try:
                entries, self._scanned = self._read_page(self._scanned)
            except NucleusError:
                if self._signal.closed:  # the ledger closed under the read: the end, not an error
                    raise StopIteration from None
                raise
            if entries:
                self._buffer.extend(entries)
                continue
            self._position = self._scanned
            wait = self._poll_interval
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StopIteration
                wait = min(wait, remaining)
            self._signal.wait(generation, wait)
