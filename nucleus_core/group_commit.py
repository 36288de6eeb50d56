"""Group commit: concurrent appends share one storage transaction and its commit.

A durable commit costs one fsync (SQLite ``synchronous=FULL``) or one round trip that waits for the
WAL flush (PostgreSQL), whatever it holds. Appends that arrive while a commit is in flight (threads
of one process, requests of one server) wait for it, then share the next transaction, as the
group commit of databases and Tessera's sequencer batches do. Leader and followers:

1. a call (:meth:`GroupCommitter.append`) joins the queue; the first one that finds no commit in
   flight becomes the leader, the others wait;
2. the leader takes the queued calls, in the order they joined (at most
   ``LedgerConfig.group_commit_max_calls`` calls and ``group_commit_max_entries`` entries, the first
   call whatever its size; at most one call with records in a module's streams, since a module
   validates against the state its committed entries built), and runs each call's stages
   (:meth:`Ledger._stages <nucleus_core.ledger.Ledger._stages>`: access policy, modules, chain,
   audit records) in a savepoint of one transaction
   (:class:`~nucleus_core.capabilities.SavepointTransaction`), its entries chained after the
   previous call's; a call that fails is rolled back to its savepoint alone and gets its own error;
3. the transaction commits once (the Merkle tree's nodes for all of it, then one checkpoint check);
   the leader hands leadership to the first call that queued meanwhile, runs the modules'
   ``committed`` callbacks of every call in chain order, then wakes each caller with its entries
   or its error.

Nothing changes in what a call means: each returns only after its entries are durable, is all or
nothing on its own (its savepoint), and gets only its own errors. When the shared transaction
cannot commit (a failed commit, a savepoint that could not be undone, the ledger closed), every
call of the group fails and nothing of it is written. Storage whose transactions have no savepoints
commits one call at a time.
"""

from __future__ import annotations

import collections
import threading
from typing import TYPE_CHECKING

import attrs

from .capabilities import SavepointTransaction
from .errors import StorageError

if TYPE_CHECKING:
    from .context import RequestContext
    from .ledger import Ledger
    from .records import Entry, Record
    from .required import RequiredPlugin

__all__ = ["DEFAULT_GROUP_MAX_CALLS", "DEFAULT_GROUP_MAX_ENTRIES", "GroupCommitStats", "GroupCommitter"]

DEFAULT_GROUP_MAX_CALLS = 64
"""Most calls one shared transaction takes (``LedgerConfig.group_commit_max_calls``)."""

DEFAULT_GROUP_MAX_ENTRIES = 10000
"""Most records one shared transaction takes (``LedgerConfig.group_commit_max_entries``), except
that a call larger than that alone still commits, alone."""


@attrs.frozen(kw_only=True)
class GroupCommitStats:
    """What a ledger's group commit did since it opened: ``groups`` transactions committed for
    ``calls`` appends holding ``entries`` records (the calls' own, without audit records),
    ``largest`` calls in one transaction, and ``failed`` calls that got their own error."""

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

    def __init__(self, ledger: Ledger, *, max_calls: int, max_entries: int) -> None:
        self._ledger = ledger
        self._max_calls = max_calls
        self._max_entries = max_entries
        self._mutex = threading.Lock()
        self._queue: collections.deque[_Call] = collections.deque()
        self._leading = False  # a leader runs, or was woken to
        self._leader_thread: int | None = None
        # Whether the storage's transactions have savepoints: known after the first transaction
        # (until then, and without them, a transaction takes one call).
        self._savepoints = False
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
        limit = self._max_calls if self._savepoints else 1
        entries, modules = len(group[0].batch), group[0].modules
        while queue and len(group) < limit:
            call = queue[0]
            if entries + len(call.batch) > self._max_entries or (modules and call.modules):
                break
            group.append(queue.popleft())
            entries += len(call.batch)
            modules = modules or call.modules
        return group

    def _lead(self) -> None:
        with self._mutex:
            group = self._take()
        committed: list[_Call] = []
        plugins: tuple[RequiredPlugin, ...] | None = None
        added: list[Entry] = []
        self._leader_thread = threading.get_ident()
        try:
            committed, added, plugins = self._run(group)
        except BaseException as err:  # noqa: BLE001 - handed to every call of the group, the leader re-raises it
            shared = err if isinstance(err, Exception) else StorageError(
                f"the shared transaction was interrupted ({type(err).__name__}); nothing of it was written"
            )
            for call in group:
                if call.error is None:
                    call.error = err if call is group[0] else shared
            committed = []
        finally:
            self._leader_thread = None
            with self._mutex:
                self._count(group, committed)
                successor = self._queue[0] if self._queue else None
                if successor is not None:
                    successor.lead = True
                else:
                    self._leading = False
            if successor is not None:
                successor.wake.set()
        ledger = self._ledger
        if committed:
            ledger._plugins_written(added, plugins)
            for call in committed:
                assert call.entries is not None
                ledger.modules.committed(call.entries, call.ctx)
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
        """Run ``group`` in one transaction: the calls committed, every entry added, the plugins
        recorded. Raises when the transaction as a whole fails (each call's own error is kept on it)."""
        ledger = self._ledger
        plugins: tuple[RequiredPlugin, ...] | None = None
        with ledger._lock:
            ledger._check_writable()
            with ledger._chain_write(group[0].ctx) as (tx, chain):
                self._savepoints = isinstance(tx, SavepointTransaction)
                if len(group) == 1:
                    call = group[0]
                    call.entries, plugins = ledger._stages(tx, chain, call.batch, call.ctx, within=None, system=False)
                else:
                    assert isinstance(tx, SavepointTransaction)
                    recorded = False
                    for i, call in enumerate(group):
                        mark = chain.mark()
                        chain.bind(call.ctx)
                        try:
                            with tx.savepoint():
                                # The modules catch up once (no other writer commits meanwhile); the
                                # plugins are recorded by the first call that succeeds.
                                call.entries, found = ledger._stages(
                                    tx, chain, call.batch, call.ctx, within=None, system=False,
                                    catch_up=i == 0, record_plugins=not recorded,
                                )
                        except Exception as err:
                            chain.reset(mark)
                            call.error, call.entries = err, None
                            if tx.aborted:
                                raise
                            continue
                        if not recorded:
                            plugins, recorded = found, True
                added = chain.added
            ledger._checkpoint_after_commit()
        return [c for c in group if c.error is None], added, plugins
