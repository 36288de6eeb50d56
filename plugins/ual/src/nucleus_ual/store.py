"""Where grants and the resource index live: in memory, or in the ledger's SQL database."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

import attrs

from nucleus_core.capabilities import RollbackTransaction
from nucleus_core.records import Entry
from nucleus_core.storage import StorageBackend, StorageQuery

from .model import WILDCARD, Grant, Scope


@attrs.frozen(kw_only=True)
class IndexedResource:
    """Which resource one entry belongs to."""

    seq: int
    kind: str
    resource_id: str


class GrantStore(Protocol):
    """Grants and the entry -> resource index of one ledger. Writes happen inside the ledger's
    write transaction; the UAL decides, the store only keeps."""

    def setup(self) -> None: ...

    def track(self, tx: Any) -> None:
        """Called at the start of every change made inside the write transaction ``tx``."""

    def session(self) -> contextlib.AbstractContextManager[Any]:
        """A block in which several reads share one database connection (and return it after)."""

    def best_scope(self, principal: str, kind: str, resource_id: str, now: int) -> Scope | None:
        """The highest active scope ``principal`` holds on the resource (its own grant or ``*``)."""

    def get_grant(self, principal: str, kind: str, resource_id: str) -> Grant | None: ...

    def put_grant(self, grant: Grant) -> None:
        """Insert or replace the grant of (principal, kind, resource_id)."""

    def delete_grant(self, principal: str, kind: str, resource_id: str) -> bool: ...

    def grants(self) -> Iterator[Grant]:
        """Every stored grant (expired ones included), in a stable order."""

    def clear(self) -> None: ...

    def index(self, rows: Sequence[IndexedResource]) -> None: ...

    def resource_of(self, seq: int) -> IndexedResource | None: ...

    def resource_exists(self, kind: str, resource_id: str) -> bool: ...

    def max_indexed_seq(self) -> int: ...

    def iter_index(self) -> Iterator[IndexedResource]:
        """Every row of the resource index in seq order, streamed (for verification)."""

    def query_visible(
        self, storage: StorageBackend, query: StorageQuery, principal: str, now: int, kinds: tuple[str, ...] | None
    ) -> list[Entry]:
        """Entries matching ``query`` whose resource ``principal`` may read, filtered inside the store."""

    def query_kinds(self, storage: StorageBackend, query: StorageQuery, kinds: tuple[str, ...]) -> list[Entry]:
        """Entries matching ``query`` whose resource kind is in ``kinds`` (for administrators)."""


class MemoryGrantStore:
    """Grants for ``memory://`` ledgers, kept beside the in-memory entries."""

    def __init__(self) -> None:
        self._grants: dict[tuple[str, str, str], Grant] = {}
        self._by_seq: dict[int, IndexedResource] = {}
        self._resources: set[tuple[str, str]] = set()
        self._journal: list[Callable[[], None]] = []
        # Whether each transaction type offers on_rollback, decided once per type (a runtime
        # protocol check costs microseconds, and every write with the UAL calls track).
        self._rollback: dict[type, bool] = {}

    def setup(self) -> None:
        pass

    def session(self) -> contextlib.AbstractContextManager[Any]:
        """Nothing to hold: the grants are in memory."""
        return contextlib.nullcontext()

    def track(self, tx: Any) -> None:
        """Undo this store's changes if ``tx`` (a memory transaction) rolls back: grants and the
        index change together with the entries, or not at all."""
        journal: list[Callable[[], None]] = []
        self._journal = journal

        def undo() -> None:
            for action in reversed(journal):
                action()

        rollback = self._rollback.get(type(tx))
        if rollback is None:
            rollback = self._rollback[type(tx)] = isinstance(tx, RollbackTransaction)
        if rollback:
            tx.on_rollback(undo)

    def best_scope(self, principal: str, kind: str, resource_id: str, now: int) -> Scope | None:
        best: Scope | None = None
        for rid in (resource_id, WILDCARD):
            g = self._grants.get((principal, kind, rid))
            if g is not None and (g.expires_at is None or g.expires_at > now) and (best is None or g.scope > best):
                best = g.scope
        return best

    def get_grant(self, principal: str, kind: str, resource_id: str) -> Grant | None:
        return self._grants.get((principal, kind, resource_id))

    def _remember(self, key: tuple[str, str, str]) -> None:
        old = self._grants.get(key)
        grants = self._grants

        def undo() -> None:
            if old is not None:
                grants[key] = old
            else:
                grants.pop(key, None)

        self._journal.append(undo)

    def put_grant(self, grant: Grant) -> None:
        key = (grant.principal_oid, grant.resource_kind, grant.resource_id)
        self._remember(key)
        self._grants[key] = grant

    def delete_grant(self, principal: str, kind: str, resource_id: str) -> bool:
        key = (principal, kind, resource_id)
        self._remember(key)
        return self._grants.pop(key, None) is not None

    def grants(self) -> Iterator[Grant]:
        return iter(sorted(self._grants.values(), key=lambda g: (g.principal_oid, g.resource_kind, g.resource_id)))

    def clear(self) -> None:
        self._grants.clear()
        self._by_seq.clear()
        self._resources.clear()

    def index(self, rows: Sequence[IndexedResource]) -> None:
        added: list[tuple[str, str]] = []
        for row in rows:
            res = (row.kind, row.resource_id)
            if res not in self._resources:
                self._resources.add(res)
                added.append(res)
            self._by_seq[row.seq] = row
        seqs = [row.seq for row in rows]

        def undo() -> None:
            self._resources.difference_update(added)
            for seq in seqs:
                self._by_seq.pop(seq, None)

        self._journal.append(undo)

    def resource_of(self, seq: int) -> IndexedResource | None:
        return self._by_seq.get(seq)

    def resource_exists(self, kind: str, resource_id: str) -> bool:
        return (kind, resource_id) in self._resources

    def max_indexed_seq(self) -> int:
        return max(self._by_seq, default=0)

    def iter_index(self) -> Iterator[IndexedResource]:
        for seq in sorted(self._by_seq):
            yield self._by_seq[seq]

    def _scan(self, storage: StorageBackend, query: StorageQuery, keep: Any) -> list[Entry]:
        # The memory backend has no query engine: the predicate is applied inside the scan, so
        # pages are filled with visible entries only and cursors never skip or leak.
        out: list[Entry] = []
        batch = StorageQuery(
            streams=query.streams,
            record_ids=query.record_ids,
            since=query.since,
            until=query.until,
            after_seq=query.after_seq,
            limit=1000,
        )
        while len(out) < query.limit:
            rows = storage.query(batch)
            if not rows:
                break
            for row in rows:
                if keep(row):
                    out.append(row)
                    if len(out) >= query.limit:
                        break
            batch = attrs.evolve(batch, after_seq=rows[-1].seq)
        return out

    def query_visible(
        self, storage: StorageBackend, query: StorageQuery, principal: str, now: int, kinds: tuple[str, ...] | None
    ) -> list[Entry]:
        def keep(row: Entry) -> bool:
            res = self._by_seq.get(row.seq)
            if res is None or (kinds is not None and res.kind not in kinds):
                return False
            best = self.best_scope(principal, res.kind, res.resource_id, now)
            return best is not None and best >= Scope.READ  # create on * reads nothing

        return self._scan(storage, query, keep)

    def query_kinds(self, storage: StorageBackend, query: StorageQuery, kinds: tuple[str, ...]) -> list[Entry]:
        def keep(row: Entry) -> bool:
            res = self._by_seq.get(row.seq)
            return res is not None and res.kind in kinds

        return self._scan(storage, query, keep)


def grants_equal(a: Iterable[Grant], b: Iterable[Grant]) -> bool:
    key = lambda g: (g.principal_oid, g.resource_kind, g.resource_id)  # noqa: E731
    return sorted(a, key=key) == sorted(b, key=key)
