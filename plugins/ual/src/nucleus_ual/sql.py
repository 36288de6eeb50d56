"""Grants and the resource index in the ledger's own SQL database (SQLite or PostgreSQL).

Two tables beside the entries table, keyed by ledger id like it:

* ``nucleus_ual_grants`` (ledger_id, principal_oid, resource_kind, resource_id) -> scope,
  granted_by, expires_at. Primary key on the four key columns; the ``check`` lookup is one
  primary-key probe for the resource and one for ``*``.
* ``nucleus_ual_resources`` (ledger_id, seq) -> kind, resource_id: which resource each entry
  belongs to, with an index on (ledger_id, kind, resource_id).

``list`` and the filtered ``query`` are one SELECT over the entries joined to the resource index
with an ``EXISTS`` on the grants table carrying the expiry predicate: nothing is filtered in Python.
Writes go through the backend's database on the writing thread, so they are part of the ledger's
write transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import peewee

from nucleus_core.storage import StorageQuery, StoredEntry

from .model import WILDCARD, Grant, Scope
from .store import IndexedResource

T = TypeVar("T")

GRANTS_TABLE = "nucleus_ual_grants"
RESOURCES_TABLE = "nucleus_ual_resources"
_INDEX_BATCH = 5000


def make_ual_models() -> tuple[type[peewee.Model], type[peewee.Model]]:
    """Fresh (unbound) model classes for one backend."""

    class GrantRow(peewee.Model):
        ledger_id = peewee.CharField(max_length=128)
        principal_oid = peewee.CharField(max_length=256)
        resource_kind = peewee.CharField(max_length=96)
        resource_id = peewee.CharField(max_length=256)
        scope = peewee.SmallIntegerField()
        granted_by = peewee.CharField(max_length=256, null=True)
        expires_at = peewee.BigIntegerField(null=True)

        class Meta:
            table_name = GRANTS_TABLE
            primary_key = peewee.CompositeKey("ledger_id", "principal_oid", "resource_kind", "resource_id")

    class ResourceRow(peewee.Model):
        ledger_id = peewee.CharField(max_length=128)
        seq = peewee.BigIntegerField()
        kind = peewee.CharField(max_length=96)
        resource_id = peewee.CharField(max_length=256)

        class Meta:
            table_name = RESOURCES_TABLE
            primary_key = peewee.CompositeKey("ledger_id", "seq")
            indexes = ((("ledger_id", "kind", "resource_id"), False),)

    return GrantRow, ResourceRow


def _wrapped(method: Callable[..., T]) -> Callable[..., T]:
    """Turn database errors into the backend's StorageError subclasses (raised ``from`` the original)."""

    @functools.wraps(method)
    def run(self: SqlGrantStore, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except self._storage_errors as err:
            raise self._storage._wrap(err, f"access control: {method.__name__}") from err

    return run


class SqlGrantStore:
    """A :class:`~nucleus_ual.store.GrantStore` in the ledger's SQL database."""

    def __init__(self, storage: Any) -> None:
        self._storage = storage
        self._storage_errors: tuple[type[BaseException], ...] = (peewee.PeeweeException, *storage.driver_errors)
        self._grants, self._resources = make_ual_models()
        self._sql: tuple[Any, str] | None = None

    def setup(self) -> None:
        self._storage.ensure_tables([self._grants, self._resources])

    def track(self, tx: Any) -> None:
        """Nothing to do: these tables are in the ledger's transaction and roll back with it."""

    @property
    def _lid(self) -> str:
        return str(self._storage.ledger_id)

    def _best_scope_sql(self) -> str:
        # The hot path of every check, get and append: raw SQL on the cursor, since peewee's query
        # building cost more than the primary-key probe itself. Fixed identifiers, bound values.
        db = self._storage.database
        if self._sql is None or self._sql[0] is not db:
            q, p = db.quote, db.param
            col = lambda name: f"{q[0]}{name}{q[1]}"  # noqa: E731
            self._sql = (
                db,
                f"SELECT MAX({col('scope')}) FROM {col(GRANTS_TABLE)} WHERE {col('ledger_id')} = {p} "  # noqa: S608
                f"AND {col('principal_oid')} = {p} AND {col('resource_kind')} = {p} "
                f"AND {col('resource_id')} IN ({p}, {p}) "
                f"AND ({col('expires_at')} IS NULL OR {col('expires_at')} > {p})",
            )
        return self._sql[1]

    @_wrapped
    def best_scope(self, principal: str, kind: str, resource_id: str, now: int) -> Scope | None:
        row = self._storage.database.execute_sql(
            self._best_scope_sql(), (self._lid, principal, kind, resource_id, WILDCARD, now)
        ).fetchone()
        return Scope(row[0]) if row is not None and row[0] is not None else None

    @_wrapped
    def get_grant(self, principal: str, kind: str, resource_id: str) -> Grant | None:
        g = self._grants
        row = (
            g.select()
            .where(
                (g.ledger_id == self._lid)
                & (g.principal_oid == principal)
                & (g.resource_kind == kind)
                & (g.resource_id == resource_id)
            )
            .first()
        )
        return _to_grant(row) if row is not None else None

    @_wrapped
    def put_grant(self, grant: Grant) -> None:
        g = self._grants
        data = {
            "ledger_id": self._lid,
            "principal_oid": grant.principal_oid,
            "resource_kind": grant.resource_kind,
            "resource_id": grant.resource_id,
            "scope": int(grant.scope),
            "granted_by": grant.granted_by,
            "expires_at": grant.expires_at,
        }
        g.insert(**data).on_conflict(
            conflict_target=[g.ledger_id, g.principal_oid, g.resource_kind, g.resource_id],
            update={g.scope: data["scope"], g.granted_by: data["granted_by"], g.expires_at: data["expires_at"]},
        ).execute()

    @_wrapped
    def delete_grant(self, principal: str, kind: str, resource_id: str) -> bool:
        g = self._grants
        n = (
            g.delete()
            .where(
                (g.ledger_id == self._lid)
                & (g.principal_oid == principal)
                & (g.resource_kind == kind)
                & (g.resource_id == resource_id)
            )
            .execute()
        )
        return bool(n)

    def grants(self) -> Iterator[Grant]:
        g = self._grants
        query = g.select().where(g.ledger_id == self._lid).order_by(g.principal_oid, g.resource_kind, g.resource_id)
        for row in query.iterator():
            yield _to_grant(row)

    @_wrapped
    def clear(self) -> None:
        self._grants.delete().where(self._grants.ledger_id == self._lid).execute()
        self._resources.delete().where(self._resources.ledger_id == self._lid).execute()

    @_wrapped
    def index(self, rows: Sequence[IndexedResource]) -> None:
        if not rows:
            return
        r = self._resources
        data = [(self._lid, row.seq, row.kind, row.resource_id) for row in rows]
        for start in range(0, len(data), 500):
            r.insert_many(data[start : start + 500], fields=[r.ledger_id, r.seq, r.kind, r.resource_id]).execute()

    @_wrapped
    def resource_of(self, seq: int) -> IndexedResource | None:
        r = self._resources
        row = r.select(r.kind, r.resource_id).where((r.ledger_id == self._lid) & (r.seq == seq)).tuples().first()
        return IndexedResource(seq=seq, kind=row[0], resource_id=row[1]) if row else None

    @_wrapped
    def resource_exists(self, kind: str, resource_id: str) -> bool:
        r = self._resources
        return bool(
            r.select(peewee.SQL("1"))
            .where((r.ledger_id == self._lid) & (r.kind == kind) & (r.resource_id == resource_id))
            .exists()
        )

    @_wrapped
    def max_indexed_seq(self) -> int:
        r = self._resources
        value = r.select(peewee.fn.MAX(r.seq)).where(r.ledger_id == self._lid).scalar()
        return int(value or 0)

    def iter_index(self) -> Iterator[IndexedResource]:
        r = self._resources
        after = 0
        while True:
            try:
                rows = list(
                    r.select(r.seq, r.kind, r.resource_id)
                    .where((r.ledger_id == self._lid) & (r.seq > after))
                    .order_by(r.seq)
                    .limit(_INDEX_BATCH)
                    .tuples()
                )
            except self._storage_errors as err:
                raise self._storage._wrap(err, "access control: reading the resource index") from err
            for seq, kind, rid in rows:
                yield IndexedResource(seq=seq, kind=kind, resource_id=rid)
            if len(rows) < _INDEX_BATCH:
                return
            after = rows[-1][0]

    def _joined(self, query: StorageQuery, kinds: tuple[str, ...] | None) -> peewee.Select:
        e = self._storage.entries_model
        r = self._resources
        sel = self._storage.build_query(query).join(r, on=((r.ledger_id == e.ledger_id) & (r.seq == e.seq)))
        if kinds is not None:
            sel = sel.where(r.kind.in_(list(kinds)))
        return sel

    @_wrapped
    def query_visible(
        self, storage: Any, query: StorageQuery, principal: str, now: int, kinds: tuple[str, ...] | None
    ) -> list[StoredEntry]:
        """One SELECT of the entries whose resource ``principal`` holds an active grant on.

        Two shapes, chosen by a first primary-key-prefix lookup of the principal's active ``*``
        grants (the same expiry predicate): without any, the explicit grants drive the query
        (``seq IN`` the resources they name, a few index probes however long the ledger is); with
        some, the entries are walked in seq order and kept when their kind is one of those or the
        resource is explicitly granted. Either way the filtering happens in the database."""
        g, r = self._grants, self._resources
        r2 = r.alias("r2")
        active = (
            (g.ledger_id == self._lid)
            & (g.principal_oid == principal)
            & (g.expires_at.is_null() | (g.expires_at > now))
        )
        if kinds is not None:
            active = active & g.resource_kind.in_(list(kinds))
        wild_kinds = [k for (k,) in g.select(g.resource_kind).where(active & (g.resource_id == WILDCARD)).tuples()]
        explicit = (
            g.select(r2.seq)
            .join(
                r2,
                on=((r2.ledger_id == g.ledger_id) & (r2.kind == g.resource_kind) & (r2.resource_id == g.resource_id)),
            )
            .where(active & (g.resource_id != WILDCARD) & (r2.seq > query.after_seq))
        )
        e = storage.entries_model
        if wild_kinds:
            sel = self._joined(query, kinds).where(r.kind.in_(wild_kinds) | e.seq.in_(explicit))
        else:
            sel = storage.build_query(query).where(e.seq.in_(explicit))
        return list(self._storage.fetch(sel))

    @_wrapped
    def query_kinds(self, storage: Any, query: StorageQuery, kinds: tuple[str, ...]) -> list[StoredEntry]:
        return list(self._storage.fetch(self._joined(query, kinds)))


def _to_grant(row: Any) -> Grant:
    return Grant(
        resource_kind=row.resource_kind,
        resource_id=row.resource_id,
        principal_oid=row.principal_oid,
        scope=Scope(row.scope),
        granted_by=row.granted_by,
        expires_at=row.expires_at,
    )
