"""The grant index (:class:`~nucleus_core.capabilities.GrantIndex`) in the ledger's own SQL
database (SQLite or PostgreSQL): where an access-control plugin such as nucleus-ual keeps its
grants, obtained with :meth:`SqlStorageBackend.grant_index`.

Two tables beside the entries table, keyed by ledger id like it:

* ``nucleus_ual_grants`` (ledger_id, principal_oid, resource_kind, resource_id) -> scope,
  granted_by, expires_at. Primary key on the four key columns; the ``check`` lookup is one
  primary-key probe for the resource and one for ``*``.
* ``nucleus_ual_resources`` (ledger_id, seq) -> kind, resource_id: which resource each entry
  belongs to, with an index on (ledger_id, kind, resource_id).

Values are plain (the capability's ``GrantRow`` and ``IndexRow`` tuples, integer scopes): the plugin
turns them into its own types. Every statement is raw SQL on the cursor, built once per backend
(and, for ``list`` and the filtered ``query``, once per query shape: how many streams, ids and
kinds, which bounds) and cached: peewee's query building cost more than the queries themselves
(about 65% of a ``list`` call). Only fixed identifiers are put into the text; every value is a
bound parameter. peewee models remain for creating the tables.

``list`` and the filtered ``query`` are one SELECT over the entries with the grants (and their
expiry predicate) inside it: nothing is filtered in Python. Writes go through the backend's
database on the writing thread, so they are part of the ledger's write transaction. Reads outside
a write hold a pooled connection only while they run (the backend's ``connection()`` context, where
it has one: PostgreSQL).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import peewee

from nucleus_core.capabilities import GrantRow, IndexRow, PooledConnectionStorage
from nucleus_core.records import Entry
from nucleus_core.storage import StorageQuery

if TYPE_CHECKING:
    from .backend import SqlStorageBackend

T = TypeVar("T")
P = ParamSpec("P")

GRANTS_TABLE = "nucleus_ual_grants"
RESOURCES_TABLE = "nucleus_ual_resources"
_INDEX_BATCH = 5000
_GRANT_COLUMNS = ("principal_oid", "resource_kind", "resource_id", "scope", "granted_by", "expires_at")

Shape = tuple[int, ...]
"""What a list/query statement depends on besides values: see :meth:`SqlGrantIndex._shape`."""


def make_ual_models() -> tuple[type[peewee.Model], type[peewee.Model]]:
    """Fresh (unbound) model classes for one backend; used to create the tables."""

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


def _wrapped(method: Callable[P, T]) -> Callable[P, T]:
    """Turn database errors into the backend's StorageError subclasses (raised ``from`` the original)."""

    @functools.wraps(method)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        store = args[0]
        assert isinstance(store, SqlGrantIndex)
        try:
            return method(*args, **kwargs)
        except store._storage_errors as err:
            raise store._storage._wrap(err, f"access control: {method.__name__}") from err

    return run


class SqlGrantIndex:
    """A :class:`~nucleus_core.capabilities.GrantIndex` in the ledger's SQL database. ``wildcard``
    is the resource id that stands for every resource of its kind; grants of at least
    ``read_scope`` read."""

    def __init__(self, storage: SqlStorageBackend, *, wildcard: str, read_scope: int) -> None:
        self._storage = storage
        # Decided once: a runtime protocol check costs microseconds, and every check and get opens a session.
        self._connection: Callable[[], contextlib.AbstractContextManager[Any]] = (
            storage.connection if isinstance(storage, PooledConnectionStorage) else contextlib.nullcontext
        )
        self._wildcard = wildcard
        self._read_scope = int(read_scope)
        self._storage_errors: tuple[type[BaseException], ...] = (peewee.PeeweeException, *storage.driver_errors)
        self._grants, self._resources = make_ual_models()
        self._sql: dict[str, str] = {}
        self._shapes: dict[Shape, str] = {}
        self._db: Any = None

    def setup(self) -> None:
        self._storage.ensure_tables([self._grants, self._resources])
        self._prepare()

    def session(self) -> contextlib.AbstractContextManager[Any]:
        """Hold one database connection for a read made of several statements (PostgreSQL: a pooled
        connection, returned to the pool when the block ends; nested blocks and a surrounding write
        transaction share it). A no-op where the backend has no such context (SQLite)."""
        return self._connection()

    # statements ---------------------------------------------------------------------------------
    def _q(self, name: str) -> str:
        quote: str = self._db.quote
        return f"{quote[0]}{name}{quote[1]}"

    def _prepare(self) -> None:
        """Build the fixed statements (identifiers are constants; values are parameters)."""
        self._db = self._storage.database
        self._shapes = {}
        q, p = self._q, self._db.param
        grants, resources = q(GRANTS_TABLE), q(RESOURCES_TABLE)
        lid, principal, kind, rid = q("ledger_id"), q("principal_oid"), q("resource_kind"), q("resource_id")
        key = f"{lid} = {p} AND {principal} = {p} AND {kind} = {p} AND {rid} = {p}"
        gcols = ", ".join(q(c) for c in _GRANT_COLUMNS)
        seq, rkind = q("seq"), q("kind")
        rcols = f"{seq}, {rkind}, {rid}"
        self._sql = {
            # The hot path of every check, get and append: two primary-key probes.
            "best_scope": f"SELECT MAX({q('scope')}) FROM {grants} WHERE {lid} = {p} AND {principal} = {p} "  # noqa: S608
            f"AND {kind} = {p} AND {rid} IN ({p}, {p}) AND ({q('expires_at')} IS NULL OR {q('expires_at')} > {p})",
            "get_grant": f"SELECT {gcols} FROM {grants} WHERE {key}",  # noqa: S608
            "put_grant": f"INSERT INTO {grants} ({lid}, {gcols}) VALUES ({', '.join([p] * 7)}) "  # noqa: S608
            f"ON CONFLICT ({lid}, {principal}, {kind}, {rid}) DO UPDATE SET "
            + ", ".join(f"{q(c)} = excluded.{q(c)}" for c in ("scope", "granted_by", "expires_at")),
            "delete_grant": f"DELETE FROM {grants} WHERE {key}",  # noqa: S608
            "grants": f"SELECT {gcols} FROM {grants} WHERE {lid} = {p} ORDER BY {principal}, {kind}, {rid}",  # noqa: S608
            "clear_grants": f"DELETE FROM {grants} WHERE {lid} = {p}",  # noqa: S608
            "clear_index": f"DELETE FROM {resources} WHERE {lid} = {p}",  # noqa: S608
            "index": f"INSERT INTO {resources} ({lid}, {rcols}) VALUES ({p}, {p}, {p}, {p})",  # noqa: S608
            "resource_of": f"SELECT {rcols} FROM {resources} WHERE {lid} = {p} AND {seq} = {p}",  # noqa: S608
            "resource_exists": f"SELECT 1 FROM {resources} WHERE {lid} = {p} AND {rkind} = {p} "  # noqa: S608
            f"AND {rid} = {p} LIMIT 1",
            "max_indexed": f"SELECT MAX({seq}) FROM {resources} WHERE {lid} = {p}",  # noqa: S608
            "iter_index": f"SELECT {rcols} FROM {resources} WHERE {lid} = {p} AND {seq} > {p} "  # noqa: S608
            f"ORDER BY {seq} LIMIT {p}",
        }

    @property
    def _open_db(self) -> Any:
        """The backend's database (peewee, untyped); raises LedgerClosedError once the storage closed."""
        return self._storage.database

    def _exec(self, name: str, params: Sequence[Any]) -> Any:
        """Run a prepared statement on this thread's connection; the DB-API cursor (untyped)."""
        return self._open_db.execute_sql(self._sql[name], params)

    @property
    def _lid(self) -> str:
        return self._storage.ledger_id

    # grants -------------------------------------------------------------------------------------
    @_wrapped
    def best_scope(self, principal: str, kind: str, resource_id: str, now: int) -> int | None:
        with self.session():
            row = self._exec("best_scope", (self._lid, principal, kind, resource_id, self._wildcard, now)).fetchone()
        return int(row[0]) if row is not None and row[0] is not None else None

    @_wrapped
    def get_grant(self, principal: str, kind: str, resource_id: str) -> GrantRow | None:
        with self.session():
            row = self._exec("get_grant", (self._lid, principal, kind, resource_id)).fetchone()
        return _to_grant(row) if row is not None else None

    @_wrapped
    def put_grant(self, grant: GrantRow) -> None:
        self._exec("put_grant", (self._lid, *grant))

    @_wrapped
    def delete_grant(self, principal: str, kind: str, resource_id: str) -> bool:
        return bool(self._exec("delete_grant", (self._lid, principal, kind, resource_id)).rowcount)

    @_wrapped
    def grants(self) -> Iterator[GrantRow]:
        with self.session():
            rows: list[Any] = self._exec("grants", (self._lid,)).fetchall()
        return iter([_to_grant(row) for row in rows])

    @_wrapped
    def clear(self) -> None:
        self._exec("clear_grants", (self._lid,))
        self._exec("clear_index", (self._lid,))

    # the resource index -------------------------------------------------------------------------
    @_wrapped
    def index(self, rows: Sequence[IndexRow]) -> None:
        if not rows:
            return
        lid = self._lid
        data = [(lid, *row) for row in rows]
        if len(data) == 1:
            self._exec("index", data[0])
            return
        cursor: Any = self._open_db.cursor()
        cursor.executemany(self._sql["index"], data)

    @_wrapped
    def resource_of(self, seq: int) -> IndexRow | None:
        with self.session():
            row = self._exec("resource_of", (self._lid, seq)).fetchone()
        return (int(row[0]), str(row[1]), str(row[2])) if row is not None else None

    @_wrapped
    def resource_exists(self, kind: str, resource_id: str) -> bool:
        with self.session():
            return self._exec("resource_exists", (self._lid, kind, resource_id)).fetchone() is not None

    @_wrapped
    def max_indexed_seq(self) -> int:
        with self.session():
            row = self._exec("max_indexed", (self._lid,)).fetchone()
        return int(row[0]) if row is not None and row[0] is not None else 0

    def iter_index(self) -> Iterator[IndexRow]:
        """Every index row in seq order, a batch at a time (a connection is held per batch only)."""
        after = 0
        while True:
            rows = self._index_batch(after)
            yield from rows
            if len(rows) < _INDEX_BATCH:
                return
            after = rows[-1][0]

    @_wrapped
    def _index_batch(self, after: int) -> list[tuple[int, str, str]]:
        with self.session():
            rows: list[Any] = self._exec("iter_index", (self._lid, after, _INDEX_BATCH)).fetchall()
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    # list and the filtered query ----------------------------------------------------------------
    @staticmethod
    def _shape(
        query: StorageQuery, mode: int, kinds: tuple[str, ...] | None, wild: int
    ) -> tuple[Shape, list[Any], list[Any]]:
        """The statement's shape and its parameters: those of the entry filters (in the order
        :meth:`_statement` writes them) and the rest of the query's, without the ledger ids.

        ``mode``: 0 an administrator's kinds-only query, 1 a principal without ``*`` grants on the
        listed kinds, 2 a principal with ``wild`` of them."""
        streams = list(dict.fromkeys(query.streams)) if query.streams is not None else None
        ids = list(dict.fromkeys(query.record_ids)) if query.record_ids is not None else None
        entry: list[Any] = [*(streams or ()), *(ids or ())]
        for value in (query.since, query.until):
            if value is not None:
                entry.append(value)
        after = query.after_seq or 0
        if after:
            entry.append(after)
        shape = (
            mode,
            -1 if streams is None else len(streams),
            -1 if ids is None else len(ids),
            int(query.since is not None),
            int(query.until is not None),
            int(bool(after)),
            -1 if kinds is None else len(kinds),
            wild,
        )
        return shape, entry, [*(kinds or ())]

    def _statement(self, shape: Shape) -> str:
        """The SQL text of one shape (cached). Parameter order: the ledger id, the entry filters
        (streams, ids, since, until, after), then by mode:

        0. the kinds, the limit;
        1. the ledger id, the principal, now, ``*``, the kinds, the cursor (when set), the limit;
        2. the kinds, the ``wild`` wildcard kinds, then as 1.
        """
        sql = self._shapes.get(shape)
        if sql is not None:
            return sql
        mode, n_streams, n_ids, since, until, after, n_kinds, wild = shape
        q, p = self._q, self._db.param

        def marks(n: int) -> str:
            return ", ".join([p] * n)

        e_cols = self._storage.entry_columns_sql("e")
        lid, seq = q("ledger_id"), q("seq")
        where = [f"e.{lid} = {p}"]
        if n_streams >= 0:
            where.append(f"e.{q('stream')} IN ({marks(n_streams)})")
        if n_ids >= 0:
            where.append(f"e.{q('record_id')} IN ({marks(n_ids)})")
        if since:
            where.append(f"e.{q('timestamp')} >= {p}")
        if until:
            where.append(f"e.{q('timestamp')} < {p}")
        if after:
            where.append(f"e.{seq} > {p}")
        source = f"{q(self._storage.entries_model._meta.table_name)} e"
        joined = f"{source} JOIN {q(RESOURCES_TABLE)} r ON r.{lid} = e.{lid} AND r.{seq} = e.{seq}"
        if mode == 0 or mode == 2:
            source = joined
            if n_kinds >= 0:
                where.append(f"r.{q('kind')} IN ({marks(n_kinds)})")
        if mode in (1, 2):
            # The resources the principal holds an active explicit grant on (index probes from its
            # primary-key prefix), never more than the cursor lets through.
            explicit = (
                f"SELECT r2.{seq} FROM {q(GRANTS_TABLE)} g JOIN {q(RESOURCES_TABLE)} r2 "  # noqa: S608
                f"ON r2.{lid} = g.{lid} AND r2.{q('kind')} = g.{q('resource_kind')} "
                f"AND r2.{q('resource_id')} = g.{q('resource_id')} "
                f"WHERE g.{lid} = {p} AND g.{q('principal_oid')} = {p} "
                f"AND (g.{q('expires_at')} IS NULL OR g.{q('expires_at')} > {p}) AND g.{q('resource_id')} <> {p} "
                f"AND g.{q('scope')} >= {self._read_scope}"
            )
            if n_kinds >= 0:
                explicit += f" AND g.{q('resource_kind')} IN ({marks(n_kinds)})"
            if after:
                explicit += f" AND r2.{seq} > {p}"
            if mode == 1:
                where.append(f"e.{seq} IN ({explicit})")
            else:
                where.append(f"(r.{q('kind')} IN ({marks(wild)}) OR e.{seq} IN ({explicit}))")
        sql = f"SELECT {e_cols} FROM {source} WHERE {' AND '.join(where)} ORDER BY e.{seq} LIMIT {p}"  # noqa: S608
        self._shapes[shape] = sql
        return sql

    def _run(self, shape: Shape, params: Sequence[Any]) -> list[Entry]:
        rows: list[Any] = self._open_db.execute_sql(self._statement(shape), params).fetchall()
        return list(map(Entry.from_row, rows))

    @_wrapped
    def query_visible(
        self, query: StorageQuery, principal: str, now: int, kinds: tuple[str, ...] | None
    ) -> list[Entry]:
        """Entries matching ``query`` whose resource ``principal`` holds an active grant on.

        A primary-key-prefix probe of the principal's active ``*`` grants (on the listed kinds)
        picks one of two statements: without any, the explicit grants drive it (``seq IN`` the
        resources they name, a few index probes however long the ledger is); with some, the
        entries are walked in seq order and kept when their kind is one of those or their
        resource is explicitly granted. Either way the filtering happens in the database."""
        lid = self._lid
        with self.session():
            wild = self._wild_kinds(principal, now, kinds)
            shape, entry, kind_params = self._shape(query, 2 if wild else 1, kinds, len(wild))
            tail = [lid, principal, now, self._wildcard, *kind_params]
            if query.after_seq:
                tail.append(query.after_seq)
            if wild:
                params = [lid, *entry, *kind_params, *wild, *tail, query.limit]
            else:
                params = [lid, *entry, *tail, query.limit]
            return self._run(shape, params)

    def _wild_kinds(self, principal: str, now: int, kinds: tuple[str, ...] | None) -> list[str]:
        n = -1 if kinds is None else len(kinds)
        name = f"wild:{n}"
        sql = self._sql.get(name)
        if sql is None:
            q, p = self._q, self._db.param
            sql = (
                f"SELECT {q('resource_kind')} FROM {q(GRANTS_TABLE)} WHERE {q('ledger_id')} = {p} "  # noqa: S608
                f"AND {q('principal_oid')} = {p} AND {q('resource_id')} = {p} "
                f"AND ({q('expires_at')} IS NULL OR {q('expires_at')} > {p}) "
                f"AND {q('scope')} >= {self._read_scope}"  # a scope below read on * reads nothing
            )
            if n >= 0:
                sql += f" AND {q('resource_kind')} IN ({', '.join([p] * n)})"
            self._sql[name] = sql
        params = (self._lid, principal, self._wildcard, now, *(kinds or ()))
        rows: list[Any] = self._open_db.execute_sql(sql, params).fetchall()
        return [str(row[0]) for row in rows]

    @_wrapped
    def query_kinds(self, query: StorageQuery, kinds: tuple[str, ...]) -> list[Entry]:
        """Entries matching ``query`` whose resource kind is in ``kinds`` (an administrator's list)."""
        shape, entry, kind_params = self._shape(query, 0, kinds, 0)
        with self.session():
            return self._run(shape, [self._lid, *entry, *kind_params, query.limit])


def _to_grant(row: Sequence[Any]) -> GrantRow:
    principal, kind, rid, scope, granted_by, expires_at = row
    return (principal, kind, rid, int(scope), granted_by, None if expires_at is None else int(expires_at))
