"""Grants kept by the storage itself: the :class:`~nucleus_core.capabilities.GrantIndex` capability.

A storage that offers :class:`~nucleus_core.capabilities.GrantIndexStorage` (the SQL backends do)
keeps the grants and the resource index in its own database and answers "what may this principal
see" there, in one query. This module only turns the capability's plain rows into the UAL's types:
the UAL needs no storage distribution.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from nucleus_core.capabilities import GrantIndex, GrantRow
from nucleus_core.records import Entry
from nucleus_core.storage import StorageBackend, StorageQuery

from .model import Grant, Scope
from .store import IndexedResource


class IndexedGrantStore:
    """A :class:`~nucleus_ual.store.GrantStore` over a storage's :class:`GrantIndex`."""

    def __init__(self, index: GrantIndex) -> None:
        self._index = index

    def setup(self) -> None:
        self._index.setup()

    def track(self, tx: Any) -> None:
        """Nothing to do: the index is in the ledger's transaction and rolls back with it."""

    def session(self) -> contextlib.AbstractContextManager[Any]:
        return self._index.session()

    def best_scope(self, principal: str, kind: str, resource_id: str, now: int) -> Scope | None:
        scope = self._index.best_scope(principal, kind, resource_id, now)
        return Scope(scope) if scope is not None else None

    def get_grant(self, principal: str, kind: str, resource_id: str) -> Grant | None:
        row = self._index.get_grant(principal, kind, resource_id)
        return _to_grant(row) if row is not None else None

    def put_grant(self, grant: Grant) -> None:
        g = grant
        row = (g.principal_oid, g.resource_kind, g.resource_id, int(g.scope), g.granted_by, g.expires_at)
        self._index.put_grant(row)

    def delete_grant(self, principal: str, kind: str, resource_id: str) -> bool:
        return self._index.delete_grant(principal, kind, resource_id)

    def grants(self) -> Iterator[Grant]:
        return map(_to_grant, self._index.grants())

    def clear(self) -> None:
        self._index.clear()

    def index(self, rows: Sequence[IndexedResource]) -> None:
        self._index.index([(row.seq, row.kind, row.resource_id) for row in rows])

    def resource_of(self, seq: int) -> IndexedResource | None:
        row = self._index.resource_of(seq)
        return IndexedResource(seq=row[0], kind=row[1], resource_id=row[2]) if row is not None else None

    def resource_exists(self, kind: str, resource_id: str) -> bool:
        return self._index.resource_exists(kind, resource_id)

    def max_indexed_seq(self) -> int:
        return self._index.max_indexed_seq()

    def iter_index(self) -> Iterator[IndexedResource]:
        for seq, kind, rid in self._index.iter_index():
            yield IndexedResource(seq=seq, kind=kind, resource_id=rid)

    def query_visible(
        self, storage: StorageBackend, query: StorageQuery, principal: str, now: int, kinds: tuple[str, ...] | None
    ) -> list[Entry]:
        return self._index.query_visible(query, principal, now, kinds)

    def query_kinds(self, storage: StorageBackend, query: StorageQuery, kinds: tuple[str, ...]) -> list[Entry]:
        return self._index.query_kinds(query, kinds)


def _to_grant(row: GrantRow) -> Grant:
    principal, kind, rid, scope, granted_by, expires_at = row
    return Grant(
        resource_kind=kind,
        resource_id=rid,
        principal_oid=principal,
        scope=Scope(scope),
        granted_by=granted_by,
        expires_at=expires_at,
    )
