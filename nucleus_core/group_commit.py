"""Group commit: concurrent appends share one storage transaction and its commit.

A durable commit costs one fsync (SQLite ``synchronous=FULL``) or one round trip that waits for the
WAL flush (PostgreSQL), whatever it holds. Appends that arrive while a commit is in flight (threads
of one process, requests of one server) wait for it, then share the next transaction, as the
group commit of databases and Tessera's sequencer batches do. Leader and followers:

1. a call (:meth:`GroupCommitter.append`) joins the queue; the first one that finds no commit in
   flight becomes the leader, the others wait;
2. the leader may wait a little for more calls: when the last transaction committed N calls and M
   were queued, it waits until N + M calls are queued (their threads are likely to append again),
   for at most ``LedgerConfig.group_commit_window`` seconds (default 1 ms; 0: never) and never
   longer than the last transaction took (waiting pays only while commits cost more than it: not
   on memory, hardly with ``durability="normal"``). A lone writer never waits (N + M = 1);
3. it takes the queued calls, in the order they joined (at most ``group_commit_max_calls`` calls
   and ``group_commit_max_entries`` records, the first call whatever its size; at most one call with
   records in a module's streams, since a module validates against the state its committed
   entries built), and runs each call's stages (:meth:`Ledger._stages
   <nucleus_core.ledger.Ledger._stages>`: access policy, modules, chain, audit records) in one
   transaction, each call's entries chained after the previous call's, each call's entries bound
   to its own requester;
4. when a call fails, the transaction rolls back, that call keeps its error, and the others run
   again in a new transaction, each in a savepoint
   (:class:`~nucleus_core.capabilities.SavepointTransaction`) that undoes only its own call when
   it fails (storage without savepoints runs them again without the failed call, until one
   commits). Errors are rare, so the common case pays for no savepoint;
5. the transaction commits once (the Merkle tree's nodes for all of it, then one checkpoint check);
   the leader hands leadership to the first call that queued meanwhile, runs the modules'
   ``committed`` callbacks of every call in chain order, then wakes each caller with its entries
   or its error.

Nothing changes in what a call means: each returns only after its entries are durable, is all or
nothing on its own, and gets only its own errors. When the shared transaction cannot commit (a
failed commit, a savepoint that could not be undone, the ledger closed), every call of the group
fails and nothing of it is written.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from typing import TYPE_CHECKING

import attrs

from .capabilities import SavepointTransaction, WriteBehindTransaction
from .errors import StorageError
from .observe import GroupCommitted

if TYPE_CHECKING:
    from .context import RequestContext
    from .ledger import Ledger
    from .records import Entry, Record
    from .required import RequiredPlugin

__all__ = [
    "DEFAULT_GROUP_MAX_CALLS", "DEFAULT_GROUP_MAX_ENTRIES", "DEFAULT_GROUP_WINDOW",
    "GroupCommitStats", "GroupCommitter",
]

DEFAULT_GROUP_MAX_CALLS = 64
"""Most calls one shared transaction takes (``LedgerConfig.group_commit_max_calls``)."""

DEFAULT_GROUP_MAX_ENTRIES = 10000
"""Most records one shared transaction takes (``LedgerConfig.group_commit_max_entries``); a call
larger than that still commits, alone."""

DEFAULT_GROUP_WINDOW = 0.001
"""How long, in seconds, a leader waits for the calls expected (``LedgerConfig.group_commit_window``)."""


@attrs.frozen(kw_only=True)
class GroupCommitStats:
    """What a ledger's group commit did since it opened: ``groups`` transactions committed for
    ``calls`` appends holding ``entries`` records (the calls' own, without audit records),
    ``largest`` calls in one transaction, and ``failed`` calls that raised (their own error, or
    their transaction's)."""

    groups: int
    calls: int
    entries: int
    largest: int
    failed: int


@attrs.define(eq=False)
class _Call:
    """One append waiting in the queue, and then its outcome."""

    batch: list[Record]
    ctx: RequestContext
    modules: bool
    """Whether a record of it is in a module's stream."""
    wake: threading.Event = attrs.field(factory=threading.Event)
    lead: bool = False
    """Woken to lead (rather than with its outcome)."""
    entries: list[Entry] | None = None
    error: BaseException | None = None

    def outcome(self) -> list[Entry]:
        if self.error is not None:
            raise self.error
        assert self.entries is not None
        return self.entries


class GroupCommitter:
    """The leader/follower committer of one ledger (see the module docstring). Thread-safe."""

    def __init__(self, ledger: Ledger, *, max_calls: int, max_entries: int, window: float = 0.0) -> None:
        self._ledger = ledger
        self._max_calls = max_calls
        self._max_entries = max_entries
        self._window = window
        self._mutex = threading.Lock()
        self._arrived = threading.Condition(self._mutex)
        # The calls a leader waits for (at most the window): those that were in flight when the
        # last group committed (its calls, whose threads may append again, and those queued).
        self._expected = 1
        self._waiting_for = 0  # a leader waits until the queue holds this many (0: none waits)
        self._last_run = 0.0  # seconds the last transaction took, from taking its calls to its commit
        self._queue: collections.deque[_Call] = collections.deque()
        self._leading = False  # a leader runs, or was woken to
        self._leader_thread: int | None = None
        self._groups = self._calls = self._entries = self._largest = self._failed = 0

    def leading_here(self) -> bool:
        """True in the leader's thread while it runs a group: an append made from inside it (a
        plugin's hook) runs in the group's transaction, as it would in the caller's own."""
        return self._leader_thread == threading.get_ident()

    @property
    def queued(self) -> int:
        """Calls waiting for a transaction (the one running excluded)."""
        return len(self._queue)

    def stats(self) -> GroupCommitStats:
        """What group commit did so far (:class:`GroupCommitStats`)."""
        with self._mutex:
            return GroupCommitStats(
                groups=self._groups, calls=self._calls, entries=self._entries, largest=self._largest,
                failed=self._failed,
            )

    def append(self, batch: list[Record], ctx: RequestContext) -> list[Entry]:
        """Append ``batch`` (checked by :meth:`Ledger.append_batch <nucleus_core.ledger.Ledger.append_batch>`)
        for ``ctx``, in a transaction shared with the calls queued beside it; returns its entries
        once they are durable, or raises its own error."""
        registry = self._ledger.modules
        call = _Call(batch, ctx, modules=any(registry.owner_of(r.stream) is not None for r in batch))
        with self._mutex:
            self._queue.append(call)
            lead = not self._leading
            self._leading = True
            if self._waiting_for and len(self._queue) >= self._waiting_for:
                self._arrived.notify()
        if not lead:
            call.wake.wait()
            if not call.lead:
                return call.outcome()
        self._lead()
        return call.outcome()

    def _take(self) -> list[_Call]:
        """The next group, from the front of the queue (the leader's own call first). Under the mutex."""
        queue = self._queue
        group = [queue.popleft()]
        limit = self._max_calls
        entries, modules = len(group[0].batch), group[0].modules
        while queue and len(group) < limit:
            call = queue[0]
            if entries + len(call.batch) > self._max_entries or (modules and call.modules):
                break
            group.append(queue.popleft())
            entries += len(call.batch)
            modules = modules or call.modules
        return group

    def _gather(self) -> None:
        """Wait (at most the window) until the calls expected have queued. Under the mutex."""
        target = min(self._expected, self._max_calls)
        # Waiting pays only while it is shorter than a transaction: never longer than the last one took.
        window = min(self._window, self._last_run)
        if window <= 0 or len(self._queue) >= target:
            return
        deadline = time.monotonic() + window
        self._waiting_for = target
        try:
            while len(self._queue) < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._arrived.wait(remaining)
        finally:
            self._waiting_for = 0

    def _lead(self) -> None:
        with self._mutex:
            self._gather()
            group = self._take()
        committed: list[_Call] = []
        plugins: tuple[RequiredPlugin, ...] | None = None
        added: list[Entry] = []
        self._leader_thread = threading.get_ident()
        began = time.monotonic()
        try:
            committed, added, plugins = self._run(group)
        except BaseException as err:  # noqa: BLE001 - handed to every call of the group, the leader re-raises it
            shared = err if isinstance(err, Exception) else StorageError(
                f"the leader of the shared transaction was interrupted ({type(err).__name__}) before it could "
                "tell whether the transaction committed: read the ledger to find out"
            )
            for call in group:
                if call.error is None:
                    call.error = err if call is group[0] else shared
            committed = []
        finally:
            self._leader_thread = None
            self._last_run = time.monotonic() - began
            with self._mutex:
                self._count(group, committed)
                self._expected = len(group) + len(self._queue)
                successor = self._queue[0] if self._queue else None
                if successor is not None:
                    successor.lead = True
                else:
                    self._leading = False
            if successor is not None:
                successor.wake.set()
        ledger = self._ledger
        if committed and ledger.observers:
            ledger.observers.emit(GroupCommitted(len(committed), sum(len(c.batch) for c in committed)))
        try:
            if committed:
                ledger._plugins_written(added, plugins)
                for call in committed:
                    assert call.entries is not None
                    ledger.modules.committed(call.entries, call.ctx)
        finally:  # the entries are durable: every caller is woken, whatever happens here
            for call in group[1:]:
                call.wake.set()

    def _count(self, group: list[_Call], committed: list[_Call]) -> None:
        if committed:
            self._groups += 1
            self._calls += len(committed)
            self._entries += sum(len(c.batch) for c in committed)
            self._largest = max(self._largest, len(group))
        self._failed += sum(1 for c in group if c.error is not None)

    def _run(self, group: list[_Call]) -> tuple[list[_Call], list[Entry], tuple[RequiredPlugin, ...] | None]:
        """Run ``group`` and commit: the calls committed, every entry added, the plugins recorded.

        Optimistic first: the calls run one after the other in one transaction, without savepoints
        (each costs two statements, two round trips on PostgreSQL). When one fails, the transaction
        rolls back, that call keeps its error and the others run again in a new transaction, each in
        a savepoint (:class:`~nucleus_core.capabilities.SavepointTransaction`), where a failure
        undoes only its own call; storage without savepoints runs them optimistically again, the
        failed call left out, until a transaction commits. Raises when the transaction as a whole
        fails (each call that failed on its own keeps its own error)."""
        pending, isolate = group, False
        while True:
            try:
                return self._attempt(pending, isolate=isolate)
            except _CallFailed:
                pending = [c for c in pending if c.error is None]
                if not pending:
                    return [], [], None
                isolate = True

    def _attempt(
        self, group: list[_Call], *, isolate: bool
    ) -> tuple[list[_Call], list[Entry], tuple[RequiredPlugin, ...] | None]:
        ledger = self._ledger
        plugins: tuple[RequiredPlugin, ...] | None = None
        with ledger._lock:
            ledger._check_writable()
            with ledger._chain_write(group[0].ctx) as (tx, chain):
                savepoints = tx if isolate and isinstance(tx, SavepointTransaction) else None
                # Rows a storage keeps back are written at the end of each call of a shared
                # transaction (a savepoint does it itself), so that a refusal is that call's error.
                flush = (
                    tx.flush if len(group) > 1 and savepoints is None and isinstance(tx, WriteBehindTransaction)
                    else None
                )
                recorded = False
                # The modules fold in what other writers committed once, before any call and outside
                # every savepoint: a call refused (its savepoint undone) must not take it with it.
                ledger._registry.catch_up()
                for call in group:
                    mark = chain.mark()
                    chain.bind(call.ctx)
                    try:
                        with savepoints.savepoint() if savepoints is not None else contextlib.nullcontext():
                            # The plugins are recorded by the first call that succeeds.
                            call.entries, found = ledger._stages(
                                tx, chain, call.batch, call.ctx, within=None, system=False,
                                catch_up=False, record_plugins=not recorded,
                            )
                            if flush is not None:
                                flush()
                    except Exception as err:
                        call.error, call.entries = err, None
                        if len(group) == 1:
                            raise  # its own error, and nothing else to commit
                        if savepoints is None or savepoints.aborted:
                            raise _CallFailed from err  # the transaction rolls back
                        chain.reset(mark)
                        continue
                    if not recorded:
                        plugins, recorded = found, True
                added = chain.added
            ledger._checkpoint_after_commit()
        return [c for c in group if c.error is None], added, plugins


class _CallFailed(Exception):
    """A call of an optimistic transaction failed: roll it back and run the others again."""
