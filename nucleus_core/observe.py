"""Observing a ledger: typed events for metrics, without a metrics library in the core.

A ledger, its token registry, its checkpoint issuer, its witnesses and an HTTP server in front of
it tell the ledger's :class:`Observers` what happened, as one small frozen event per occurrence
(:data:`Event`). An observer is anything with ``observe(event)`` (:class:`LedgerObserver`);
``nucleus-metrics`` turns the events into Prometheus metrics, an application may count them its own
way. Register one with ``ledger.observers.add(observer)`` (a plugin does it in
``nucleus_ledger_opened``).

The events carry only what a metric label may hold: counts, durations, outcomes as short fixed
words or error codes, route templates, parser and witness names from the configuration. Never a
record, a record id, a hash, a requester's OID, a token or a raw request path.

With no observer the ledger pays one truth test per call (``if observers:``): no event is built,
no clock is read (``bench/bench_metrics.py`` measures it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import attrs

from .errors import ConfigurationError

log = logging.getLogger(__name__)

OK = "ok"
"""The outcome of a call that succeeded; a failed one has its error's ``code`` (``access_denied``, ...)."""


@attrs.frozen
class Appended:
    """A user append call (``append`` or ``append_batch``) finished: ``records`` in the batch,
    ``seconds`` it took (checks, the transaction, the commit), ``outcome`` :data:`OK` or the
    refusing error's code."""

    records: int
    seconds: float
    outcome: str = OK


@attrs.frozen
class SystemAppended:
    """A plugin's ``append_system`` call finished (records in system streams: access-control
    grants, API key changes, sessions): ``records`` in the batch, ``seconds`` it took,
    ``outcome`` :data:`OK` or the refusing error's code. Not an :class:`Appended`: the user
    append metrics count user records only."""

    records: int
    seconds: float
    outcome: str = OK


@attrs.frozen
class GroupCommitted:
    """One storage transaction of the group committer committed ``calls`` append calls holding
    ``entries`` records together."""

    calls: int
    entries: int


@attrs.frozen
class AccessDenied:
    """Access control refused a requester: ``operation`` is ``append`` (a batch refused) or
    ``read`` (an entry that exists was hidden from a get)."""

    operation: str


@attrs.frozen
class Verified:
    """A verification run ended: ``Ledger.verify``, or the one a ledger runs when it opens
    (``verify_on_open``; only a run that passed, since one that fails stops the open, which raises
    :class:`~nucleus_core.errors.IntegrityError`). ``ok`` whether the chain and tree held,
    ``entries`` it checked, ``seconds`` it took. The open-time run happens before any observer can
    be added: :class:`Observers` gives it to each observer when it is added."""

    ok: bool
    entries: int
    seconds: float


@attrs.frozen
class CheckpointIssued:
    """A new checkpoint was signed and stored at tree ``size``."""

    size: int


@attrs.frozen
class WitnessResponded:
    """A witness answered a checkpoint submission (or failed to): ``witness`` is its configured
    name, ``outcome`` one of ``cosigned``, ``refused``, ``unavailable``, ``error``."""

    witness: str
    outcome: str


@attrs.frozen
class StorageFailed:
    """Storage raised a :class:`~nucleus_core.errors.StorageError` during ``operation`` (``append``,
    ``read``, ``query``, ``verify``): ``kind`` is the error's code (``storage_unavailable``,
    ``conflict``, ``integrity_error``, ...)."""

    operation: str
    kind: str


@attrs.frozen
class Authenticated:
    """The token registry decided on a token: ``parser`` is the spec name of the parser that claimed
    it (``none`` when no parser did), ``outcome`` :data:`OK`, ``invalid``, ``expired``,
    ``unavailable`` (its key source could not be reached) or ``unclaimed``."""

    parser: str
    outcome: str


@attrs.frozen
class HttpRequest:
    """An HTTP server answered a request: ``method``, ``route`` the route *template*
    (``/records/{id}``; ``unmatched`` when no route matched), ``status``, ``seconds``."""

    method: str
    route: str
    status: int
    seconds: float


@attrs.frozen
class Closed:
    """The ledger closed: the last event its observers receive."""


Event = (
    Appended | SystemAppended | GroupCommitted | AccessDenied | Verified | CheckpointIssued | WitnessResponded
    | StorageFailed | Authenticated | HttpRequest | Closed
)
"""Every kind of event an observer receives (more may be added: ignore those you do not know)."""


@runtime_checkable
class LedgerObserver(Protocol):
    """Receives a ledger's events. ``observe`` runs in the thread that caused the event (a request
    thread, a witness thread): it must be quick and thread-safe, and must not call the ledger. An
    exception it raises is logged and never reaches the ledger's caller."""

    def observe(self, event: Event) -> None: ...


@runtime_checkable
class MetricsExposition(Protocol):
    """An observer that can render what it collected for a scraper: an HTTP server serves
    ``GET /metrics`` from the first observer of the ledger that has this."""

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The metrics as bytes and their content type, in the format ``accept`` (an HTTP Accept
        header; None: the Prometheus text format)."""
        ...


class Observers:
    """The observers of one ledger, notified in the order they were added. Thread-safe; false
    while empty, so emitters test it before building an event.

    ``past``: events of what happened before an observer could be added (the verification run
    when the ledger opened, :class:`Verified`); each observer receives them when it is added,
    before the events that follow (an observer removed and added again receives them again)."""

    __slots__ = ("_items", "_lock", "past")

    def __init__(self, past: tuple[Event, ...] = ()) -> None:
        self._items: tuple[LedgerObserver, ...] = ()
        self._lock = threading.Lock()
        self.past = past

    def add(self, observer: LedgerObserver) -> None:
        """Add ``observer`` (once: adding it again does nothing), then give it the :attr:`past`
        events."""
        if not isinstance(observer, LedgerObserver):
            raise ConfigurationError(f"an observer needs an observe(event) method, {observer!r} has none")
        with self._lock:
            if observer in self._items:
                return
            self._items = (*self._items, observer)
        for event in self.past:
            self._give(observer, event)

    def remove(self, observer: LedgerObserver) -> None:
        """Remove ``observer`` (absent: nothing happens)."""
        with self._lock:
            self._items = tuple(o for o in self._items if o is not observer)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[LedgerObserver]:
        return iter(self._items)

    def emit(self, event: Event) -> None:
        """Give ``event`` to every observer; one that raises is logged and the others still run."""
        for observer in self._items:
            self._give(observer, event)

    @staticmethod
    def _give(observer: LedgerObserver, event: Event) -> None:
        try:
            observer.observe(event)
        except Exception:
            log.exception("observer %s failed on %s", type(observer).__name__, type(event).__name__)

    def exposition(self) -> MetricsExposition | None:
        """The first observer that renders metrics (:class:`MetricsExposition`), None if none does."""
        for observer in self._items:
            if isinstance(observer, MetricsExposition):
                return observer
        return None


__all__ = [
    "OK",
    "AccessDenied",
    "Appended",
    "Authenticated",
    "CheckpointIssued",
    "Closed",
    "Event",
    "GroupCommitted",
    "HttpRequest",
    "LedgerObserver",
    "MetricsExposition",
    "Observers",
    "StorageFailed",
    "SystemAppended",
    "Verified",
    "WitnessResponded",
]
