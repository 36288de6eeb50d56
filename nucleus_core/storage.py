"""The storage interface every backend implements, and the in-memory backend.

A backend stores the :class:`~nucleus_core.records.Entry` rows of one ledger and reads them back
with :meth:`Entry.from_row <nucleus_core.records.Entry.from_row>`. The ledger computes hashes; the
backend keeps the bytes verbatim and serializes writers: :meth:`StorageBackend.write` opens an
exclusive write transaction (across threads, processes and hosts, as far as the backend reaches)
in which the ledger re-reads the head, chains the new entries and inserts them. Either the whole
transaction commits or nothing does.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from .capabilities import EntryRowStorage
from .checkpoints import MemoryCheckpointStore
from .errors import ConfigurationError, DuplicateRecordError, LedgerNotFoundError, ReadOnlyLedgerError, StorageError
from .hashing import GENESIS_HASH
from .merkle import MemoryNodeStore, NodeKey
from .records import ENTRY_FIELDS, Entry, EntryRow, entry_row

__all__ = [
    "DEFAULT_QUERY_LIMIT", "ENTRY_FIELDS", "MAX_QUERY_LIMIT", "ChainHead", "EntryRow", "MemoryStorage",
    "SeqRangeStorage", "StorageBackend", "StorageQuery", "WriteTransaction", "entry_rows",
]

MAX_QUERY_LIMIT = 1000
"""The largest page a query may ask for."""

DEFAULT_QUERY_LIMIT = 100


def entry_rows(storage: StorageBackend, from_seq: int = 1) -> Iterator[EntryRow]:
    """Every entry with ``seq >= from_seq`` as a plain tuple in :data:`ENTRY_FIELDS` order, in seq
    order, streamed: what verification reads.

    A backend may offer :class:`~nucleus_core.capabilities.EntryRowStorage`
    (``iter_entry_rows(from_seq)``, such tuples straight from its driver); verification then skips
    building an :class:`~nucleus_core.records.Entry` per row, which cost about a third of verifying.
    Otherwise the tuples are read off :meth:`StorageBackend.iter_entries` (with
    :data:`~nucleus_core.records.entry_row`). Lazy: nothing is read before the first row is
    asked for.
    """
    if isinstance(storage, EntryRowStorage):
        return iter(storage.iter_entry_rows(from_seq))
    return map(entry_row, storage.iter_entries(from_seq))


@attrs.frozen(kw_only=True)
class ChainHead:
    """The last committed entry: its sequence number, hash and, for a version-2 entry, its
    ``committed_at`` (the ledger never assigns an earlier one to the entries after it)."""

    seq: int
    hash: str
    committed_at: int | None = None


@attrs.frozen(kw_only=True)
class StorageQuery:
    """A validated query, as backends receive it. All filters are combined with AND.

    ``streams`` / ``record_ids``: match any of them (None: no filter). ``since`` / ``until``:
    timestamp range, ``since <= timestamp < until``. ``after_seq``: only entries with a larger
    seq (the cursor). ``limit``: at most this many, in ascending seq order.
    """

    streams: tuple[str, ...] | None = None
    record_ids: tuple[str, ...] | None = None
    since: int | None = None
    until: int | None = None
    after_seq: int = 0
    limit: int = DEFAULT_QUERY_LIMIT


class WriteTransaction(Protocol):
    """An open, exclusive write transaction. Obtained from :meth:`StorageBackend.write`."""

    def head(self) -> ChainHead | None:
        """The head as committed in storage, read inside this transaction (None when empty)."""

    def insert(self, entries: Sequence[Entry]) -> None:
        """Insert entries (contiguous seqs after the head). A record id that exists already raises
        :class:`~nucleus_core.errors.DuplicateRecordError`, here or, for a backend that writes the
        rows with the transaction's last writes (the SQL backends), at the latest when the
        transaction ends; the transaction then rolls back."""


@runtime_checkable
class SeqRangeStorage(Protocol):
    """What parallel verification (:mod:`nucleus_core.verify_parallel`) needs of a backend: a way
    for another process to open the same data read-only by itself, and rows by seq range.

    The SQL backends implement it; the in-memory backend does not (its data lives in one process),
    so it is always verified serially.
    """

    def read_only_opener(self) -> Callable[[], SeqRangeStorage] | None:
        """A picklable callable, without arguments, that builds an unopened backend on the same data
        (to be opened with ``read_only=True`` in a worker process); None when there is none."""

    def iter_entry_rows(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[EntryRow]:
        """Entry rows with ``from_seq <= seq <= to_seq`` (``to_seq`` None: to the end) in seq order,
        streamed, as :func:`entry_rows` yields them (from the start, ``from_seq <= 1``, rows with a
        seq below 1 come first, as for a full scan)."""

    def open(self, ledger_id: str, *, read_only: bool = False, create: bool = True) -> None:
        """As :meth:`StorageBackend.open`."""

    def close(self) -> None:
        """As :meth:`StorageBackend.close`."""


@runtime_checkable
class StorageBackend(Protocol):
    """What a storage plugin provides. One instance serves one ledger."""

    url: str
    """A display form of where the data lives (never containing a password)."""

    persistent: bool
    """True when data outlives the process."""

    def open(self, ledger_id: str, *, read_only: bool = False, create: bool = True) -> None:
        """Connect, create or migrate the schema, and bind to ``ledger_id``.

        With ``create`` false nothing is created (no file, table or ledger): a storage that does not
        exist or does not hold ``ledger_id`` raises :class:`~nucleus_core.errors.LedgerNotFoundError`
        listing the ledger ids it holds. A backend may also offer
        :class:`~nucleus_core.capabilities.DiscardableStorage` (``discard()``: close, removing what
        this open created); the ledger calls it instead of ``close()`` when it fails to open."""

    def close(self) -> None:
        """Release connections. Idempotent."""

    def write(self) -> contextlib.AbstractContextManager[WriteTransaction]:
        """An exclusive write transaction: commits when the block exits normally, rolls back otherwise."""

    def head(self) -> ChainHead | None:
        """The last committed entry (None when the ledger is empty)."""

    def count(self) -> int:
        """Number of stored entries."""

    def get_by_hash(self, entry_hash: str) -> Entry | None: ...

    def get_by_id(self, record_id: str) -> Entry | None: ...

    def get_by_seq(self, seq: int) -> Entry | None: ...

    def range(self, from_seq: int, limit: int) -> list[Entry]:
        """Up to ``limit`` entries with ``seq >= from_seq`` in seq order."""

    def iter_entries(self, from_seq: int = 1) -> Iterator[Entry]:
        """Every entry with ``seq >= from_seq`` in seq order, streamed in constant memory."""

    def query(self, query: StorageQuery) -> list[Entry]:
        """Entries matching ``query`` in ascending seq order, at most ``query.limit``."""


class MemoryStorage:
    """Keeps entries in process memory: fast, and gone when the process ends (``memory://``)."""

    persistent = False

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._entries: list[Entry] = []
        self._by_hash: dict[str, Entry] = {}
        self._by_id: dict[str, Entry] = {}
        self._lock = threading.RLock()
        self._ledger_id: str | None = None
        self._read_only = False
        self.extensions: dict[str, Any] = {}
        self._checkpoints: MemoryCheckpointStore | None = None
        self._tree = MemoryNodeStore()

    def open(self, ledger_id: str, *, read_only: bool = False, create: bool = True) -> None:
        if not create and self._ledger_id != ledger_id:
            held = (self._ledger_id,) if self._ledger_id is not None else ()
            raise LedgerNotFoundError(ledger_id, held, where=self.url)
        if self._ledger_id is not None and self._ledger_id != ledger_id:
            raise ConfigurationError(
                f"this memory storage belongs to ledger {self._ledger_id!r}, not {ledger_id!r}"
            )
        self._ledger_id = ledger_id
        self._read_only = read_only

    def close(self) -> None:
        pass

    @contextlib.contextmanager
    def write(self) -> Iterator[_MemoryTransaction]:
        if self._read_only:
            raise ReadOnlyLedgerError("this ledger was opened read-only")
        with self._lock:
            tx = _MemoryTransaction(self)
            try:
                yield tx
            except BaseException:
                tx.roll_back()
                raise
            # Commit: only reached when the block did not raise. The tree first: it checks its
            # nodes' order and refuses them all, rolling back, before anything changed.
            try:
                self._tree.write(tx.pending_nodes)
            except BaseException:
                tx.roll_back()
                raise
            for entry in tx.pending:
                self._entries.append(entry)
                self._by_hash[entry.hash] = entry
                self._by_id[entry.record_id] = entry

    def checkpoint_store(self) -> MemoryCheckpointStore:
        """The ledger's checkpoints, kept with this storage object (the
        :class:`~nucleus_core.capabilities.CheckpointStorage` capability)."""
        with self._lock:
            if self._checkpoints is None:
                self._checkpoints = MemoryCheckpointStore()
            return self._checkpoints

    def head(self) -> ChainHead | None:
        with self._lock:
            if not self._entries:
                return None
            last = self._entries[-1]
            return ChainHead(seq=last.seq, hash=last.hash, committed_at=last.committed_at)

    def count(self) -> int:
        return len(self._entries)

    # the Merkle tree (MerkleTreeStorage): every level, in memory -------------------------------
    merkle_min_level = 0

    def merkle_size(self) -> int:
        return self._tree.size

    def merkle_store(self) -> MemoryNodeStore:
        return self._tree

    def iter_merkle_nodes(self, start: int = 0) -> Iterator[tuple[int, bytes]]:
        # Node numbers (nucleus_core.tree.node_number with min_level 0): the first n leaves
        # complete 2n - popcount(n) nodes; start at the last leaf whose nodes come before ``start``.
        low, high = 0, self._tree.size
        while low < high:
            mid = (low + high + 1) // 2
            if 2 * mid - mid.bit_count() <= start:
                low = mid
            else:
                high = mid - 1
        number = 2 * low - low.bit_count()
        leaf = low
        while leaf < self._tree.size:
            keys = [(0, leaf)]
            level = 0
            while (leaf >> level) & 1:
                level += 1
                keys.append((level, leaf >> level))
            found = self._tree.nodes(keys)
            for key in keys:
                if number >= start:
                    yield number, found[key]
                number += 1
            leaf += 1

    def iter_entry_hashes(self, from_seq: int = 1) -> Iterator[tuple[int, str]]:
        for entry in self.iter_entries(from_seq):
            yield entry.seq, entry.hash

    def get_by_hash(self, entry_hash: str) -> Entry | None:
        return self._by_hash.get(entry_hash)

    def get_by_id(self, record_id: str) -> Entry | None:
        return self._by_id.get(record_id)

    def get_by_seq(self, seq: int) -> Entry | None:
        entries = self._entries
        if 1 <= seq <= len(entries):
            return entries[seq - 1]
        return None

    def range(self, from_seq: int, limit: int) -> list[Entry]:
        start = max(from_seq, 1) - 1
        return self._entries[start : start + limit]

    def iter_entries(self, from_seq: int = 1) -> Iterator[Entry]:
        i = max(from_seq, 1) - 1
        entries = self._entries
        while i < len(entries):
            yield entries[i]
            i += 1

    def query(self, query: StorageQuery) -> list[Entry]:
        streams = set(query.streams) if query.streams is not None else None
        if query.record_ids is not None:
            candidates: Iterator[Entry] | list[Entry] = sorted(
                (e for e in (self._by_id.get(r) for r in set(query.record_ids)) if e is not None),
                key=lambda e: e.seq,
            )
        else:
            candidates = self.iter_entries(query.after_seq + 1)
        out: list[Entry] = []
        for e in candidates:
            if e.seq <= query.after_seq:
                continue
            if streams is not None and e.stream not in streams:
                continue
            if query.since is not None and e.timestamp < query.since:
                continue
            if query.until is not None and e.timestamp >= query.until:
                continue
            out.append(e)
            if len(out) >= query.limit:
                break
        return out


class _MemoryTransaction:
    def __init__(self, storage: MemoryStorage) -> None:
        self._storage = storage
        self.pending: list[Entry] = []
        self.rollback_actions: list[Callable[[], None]] = []
        self.pending_nodes: list[tuple[NodeKey, bytes]] = []
        self._pending_size: int | None = None

    def roll_back(self) -> None:
        """Run the undo actions (the transaction is not committed)."""
        for undo in reversed(self.rollback_actions):
            undo()

    aborted = False
    """A memory transaction can always commit (see :class:`~nucleus_core.capabilities.SavepointTransaction`)."""

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested block, undone on its own when it raises: its entries, tree nodes and undo
        actions (run newest first) are dropped; what came before stays."""
        marks = (len(self.pending), len(self.rollback_actions), len(self.pending_nodes), self._pending_size)
        try:
            yield
        except BaseException:
            entries, actions, nodes, self._pending_size = marks
            undo = self.rollback_actions[actions:]
            del self.pending[entries:], self.rollback_actions[actions:], self.pending_nodes[nodes:]
            for action in reversed(undo):
                action()
            raise

    def merkle_size(self) -> int:
        return self._storage.merkle_size() if self._pending_size is None else self._pending_size

    def merkle_store(self) -> _PendingNodes:
        return _PendingNodes(self._storage.merkle_store(), self.pending_nodes)

    def write_merkle(self, size: int, nodes: Sequence[tuple[NodeKey, bytes]]) -> None:
        self.pending_nodes.extend(nodes)
        self._pending_size = size

    def on_rollback(self, undo: Callable[[], None]) -> None:
        """Run ``undo`` if this transaction rolls back (for plugins keeping state in memory beside
        the memory backend; SQL backends roll their tables back themselves)."""
        self.rollback_actions.append(undo)

    def head(self) -> ChainHead | None:
        if self.pending:
            last = self.pending[-1]
            return ChainHead(seq=last.seq, hash=last.hash, committed_at=last.committed_at)
        return self._storage.head()

    def _existing_ids(self, record_ids: Sequence[str]) -> set[str]:
        pending = {e.record_id for e in self.pending}
        return {r for r in record_ids if r in self._storage._by_id or r in pending}

    def insert(self, entries: Sequence[Entry]) -> None:
        known = self._existing_ids([e.record_id for e in entries])
        if known:
            raise DuplicateRecordError(sorted(known)[0])
        head = self.head()
        expected = (head.seq if head else 0) + 1
        prev = head.hash if head else GENESIS_HASH
        for e in entries:
            if e.seq != expected:
                raise StorageError(f"entry seq {e.seq} does not follow the head (expected {expected})")
            if e.prev_hash != prev:
                raise StorageError(f"entry {e.seq} does not link to the head (prev_hash mismatch)")
            expected += 1
            prev = e.hash
        self.pending.extend(entries)


class _PendingNodes:
    """The committed tree with a transaction's nodes over it."""

    def __init__(self, committed: MemoryNodeStore, pending: Sequence[tuple[NodeKey, bytes]]) -> None:
        self._committed = committed
        self._pending = pending

    def nodes(self, keys: Collection[NodeKey]) -> dict[NodeKey, bytes]:
        found = self._committed.nodes(keys)
        if self._pending and len(found) < len(keys):
            pending = dict(self._pending)
            found.update({key: pending[key] for key in keys if key in pending})
        return found
