"""The base class of the peewee-based storage backends (SQLite, PostgreSQL).

A subclass supplies the database (:meth:`SqlStorageBackend._make_database`) and, where its engine
needs it, the way an exclusive write transaction starts (:meth:`SqlStorageBackend._begin_write`),
the schema lock (:meth:`SqlStorageBackend._begin_schema`), the driver's exception classes
(:attr:`SqlStorageBackend.driver_errors`) and finer error messages
(:meth:`SqlStorageBackend._classify_error`). Everything else (schema and migrations, inserts,
lookups, queries, streaming iteration, error wrapping, tables of other plugins) is here.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any, ClassVar

import peewee

from nucleus_core.errors import (
    ConfigurationError,
    ConflictError,
    DuplicateRecordError,
    LedgerClosedError,
    LedgerNotFoundError,
    NucleusError,
    ReadOnlyLedgerError,
    StorageError,
    StorageUnavailableError,
)
from nucleus_core.hashing import GENESIS_HASH, validate_ledger_id
from nucleus_core.merkle import NodeKey
from nucleus_core.records import Entry
from nucleus_core.storage import ChainHead, StorageQuery
from nucleus_core.tree import DerivedLevelsStore

from .checkpoints import (
    CHECKPOINTS_TABLE,
    COSIGNATURES_TABLE,
    SqlCheckpointStore,
    create_checkpoints_table,
    create_cosignatures_table,
)
from .grants import SqlGrantIndex
from .models import (
    APPENDER_DEFAULTS,
    ENTRIES_TABLE,
    ENTRY_COLUMNS,
    SCHEMA_TABLE,
    EntryModels,
    entry_to_row,
    make_models,
)
from .schema import (
    CURRENT_VERSION,
    HASH_PREFIX_LENGTH,
    READABLE_VERSIONS,
    ensure_appender_columns,
    entry_table_columns,
    hash_prefix_sql,
    read_version,
    upgrade,
)
from .tree import MERKLE_SIZE_TABLE, MERKLE_TABLE, SqlMerkleTree

log = logging.getLogger(__name__)

DEFAULT_ITER_BATCH = 2000
"""Rows fetched per round trip by :meth:`SqlStorageBackend.iter_entries`."""

ID_CHUNK = 500
"""Record ids per ``IN (...)`` list (well below every engine's parameter limit)."""

_MIN_SEQ = -(2**63)
"""The smallest BIGINT: where a scan "from the start" begins."""

LEDGERS_TABLE = "nucleus_ledgers"
"""One row per ledger in the database: which ledgers exist (created by ``create=True`` opens only)."""

LEDGERS_COMPONENT = "ledgers"
"""The key of the ledgers table in the schema-version table."""

LEDGERS_VERSION = 1

_TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

WriteState = tuple[ChainHead | None, int]
"""The head and the Merkle tree size, as a write transaction reads them when it starts."""

_RECORD_ID = 1 + ENTRY_COLUMNS.index("record_id")
"""The record id's place in a row of (ledger_id, *ENTRY_COLUMNS)."""


@contextlib.contextmanager
def _guarded(
    cm: contextlib.AbstractContextManager[Any],
    errors: tuple[type[BaseException], ...],
    wrap: Callable[[BaseException, str], BaseException] | None = None,
) -> Iterator[Any]:
    """Run the block inside a transaction or savepoint context manager ``cm`` (the block gets what
    entering ``cm`` returned).

    Every phase is accounted for. When the block raises and rolling back fails too (SQLite has
    already rolled the whole transaction back after SQLITE_FULL, for example), the block's
    exception is the one that propagates, not the failed rollback's. When the block succeeds but
    ending the transaction fails (COMMIT on a full disk, a dead connection), peewee rolls back, and
    if that rollback fails as well its error hides the commit's: the commit's error is dug out
    (:func:`_first_failure`) and, with ``wrap``, raised as ``wrap(error, "commit")``.
    """
    value = cm.__enter__()
    try:
        yield value
    except BaseException as exc:
        try:
            cm.__exit__(type(exc), exc, exc.__traceback__)
        except errors:
            log.debug("rollback after %s failed: the database had already rolled back", type(exc).__name__)
        raise
    ambient = sys.exc_info()[1]
    try:
        cm.__exit__(None, None, None)
    except errors as exc:
        first = _first_failure(exc, ambient, errors)
        if wrap is None:
            if first is exc:
                raise
            raise first from None
        wrapped = wrap(first, "commit")
        if isinstance(wrapped, DuplicateRecordError):
            raise wrapped from None  # expected: one clear error (a record id stored already)
        raise wrapped from first


def _first_failure(
    err: BaseException, ambient: BaseException | None, errors: tuple[type[BaseException], ...]
) -> BaseException:
    """The first database error in ``err``'s context chain, stopping at ``ambient`` (the exception
    being handled before the transaction ended, if any, which is none of its business): what failed
    first when ending a transaction, e.g. the COMMIT whose failure peewee's failing rollback hides."""
    first = err
    seen = {id(err)}
    current = err.__context__
    while current is not None and current is not ambient and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, errors):
            first = current
        current = current.__context__
    return first


def _dbapi_kind(err: BaseException) -> str | None:
    """The DB-API exception class name of ``err`` (peewee and drivers share these names)."""
    for cls in type(err).__mro__:
        if cls.__name__ in {"IntegrityError", "OperationalError", "InterfaceError", "DataError", "ProgrammingError",
                            "InternalError", "NotSupportedError"}:
            return cls.__name__
    return None


class SqlStorageBackend(abc.ABC):
    """A :class:`~nucleus_core.storage.StorageBackend` on a peewee database.

    Many ledgers may share one database: every row is keyed by ``ledger_id`` and each ledger
    verifies on its own. After :meth:`open`, plugins that keep tables beside the ledger use
    :attr:`database`, :attr:`entries_model`, :attr:`ledger_id` and :meth:`ensure_tables`.
    """

    persistent: bool = True

    driver_errors: ClassVar[tuple[type[BaseException], ...]] = ()
    """The DB-API driver's base exception class(es); they are wrapped like peewee's own."""

    statement_rollback_keeps_transaction: ClassVar[bool] = False
    """True when a failed statement is undone on its own and the transaction stays usable (SQLite):
    a one-row insert then needs no savepoint. False for PostgreSQL (an error aborts the transaction)."""

    blob_type: ClassVar[str] = "BLOB"
    """The column type of raw bytes (the Merkle tree's hashes)."""

    clustered_table: ClassVar[str] = ""
    """What follows ``CREATE TABLE (...)`` for a table stored in its primary key's order (SQLite:
    ``WITHOUT ROWID``)."""

    def __init__(
        self,
        url: str,
        *,
        entries_table: str = ENTRIES_TABLE,
        schema_table: str = SCHEMA_TABLE,
        iter_batch_size: int = DEFAULT_ITER_BATCH,
    ) -> None:
        for name, value in (("entries_table", entries_table), ("schema_table", schema_table)):
            if not isinstance(value, str) or not _TABLE_NAME.fullmatch(value):
                raise ConfigurationError(f"{name}: {value!r} is not a plain lowercase SQL table name")
        if type(iter_batch_size) is not int or not 1 <= iter_batch_size <= 100_000:
            raise ConfigurationError("iter_batch_size must be an integer from 1 to 100000")
        self.url = url
        self._entries_table = entries_table
        self._schema_table = schema_table
        self._iter_batch = iter_batch_size
        self._database: peewee.Database | None = None
        self._models: EntryModels | None = None
        self._ledger_id: str | None = None
        self._read_only = False
        self._read_only_reason: str | None = None  # set by open(); a subclass's _writable() may say why
        self._closed = False
        self._sql: dict[str, str] = {}
        self._ledgers_table = LEDGERS_TABLE
        self._create = True
        self._created_ledger = False
        self._created_tables: list[str] = []
        # The seqs of this ledger's entries written through this object (committed, and in the
        # transaction under way): discard() removes a ledger only while it holds nothing else.
        self._written_seqs: set[int] = set()
        self._uncommitted_seqs: list[int] = []
        self._plugin_tables: list[str] = []
        # Plugin tables another object on this ledger ensured (and those it created), taken over by
        # discard_with: the rows of this ledger there are deleted, the created tables dropped when empty.
        self._adopted_tables: list[str] = []
        # The entries table's columns (set by open): a read-only open of a table from before entry
        # format version 2 reads the missing columns as their defaults (APPENDER_DEFAULTS).
        self._columns: frozenset[str] = frozenset(ENTRY_COLUMNS)
        self._tree = SqlMerkleTree(self)
        self._writing = threading.local()  # .tx: this thread's innermost open SqlWriteTransaction

    # hooks for subclasses ---------------------------------------------------------------------
    @abc.abstractmethod
    def _make_database(self) -> peewee.Database:
        """A new, unconnected peewee database for this backend (called once, by :meth:`open`)."""

    def _writable(self) -> bool:
        """Whether the database can be written (False opens it read-only). Checked by :meth:`open`;
        a subclass that knows why not sets ``self._read_only_reason`` (see :attr:`read_only_reason`)."""
        return True

    def _begin_write(self) -> contextlib.AbstractContextManager[Any]:
        """Start the exclusive write transaction (nested calls become savepoints).

        Subclasses make it exclusive across processes: SQLite with ``BEGIN IMMEDIATE``,
        PostgreSQL with a lock held until commit.
        """
        return self.database.atomic()

    @contextlib.contextmanager
    def _begin_write_reading_state(self) -> Iterator[WriteState | None]:
        """The write transaction of :meth:`write`: :meth:`_begin_write`, yielding the head and tree
        size when the engine reads them in the same round trip as it starts the transaction
        (PostgreSQL); None here: :class:`SqlWriteTransaction` reads them (one statement) when asked."""
        with self._begin_write():
            yield None

    def _write_state(self) -> WriteState:
        """The head and the tree size, in one statement (inside the write transaction)."""
        return self._parse_state(self._execute(self._sql["state"], (self.ledger_id, self.ledger_id)).fetchone())

    def _parse_state(self, row: Sequence[Any] | None) -> WriteState:
        """A row of the ``state`` statement: (head seq, hash, committed_at, tree size), the head's
        columns NULL for an empty ledger and the size NULL before the first tree write."""
        if row is None:  # the statement always answers one row; none only when the tree tables are absent
            return None, 0
        head = None if row[0] is None else ChainHead(seq=row[0], hash=row[1], committed_at=row[2])
        return head, int(row[3] or 0)

    def _write_tail(
        self, rows: list[tuple[Any, ...]], size: int | None, nodes: Sequence[tuple[NodeKey, bytes]]
    ) -> None:
        """The last writes of a write transaction: insert the entry ``rows`` (all or none, see
        :meth:`_insert_rows`), then, unless ``size`` is None, the tree's ``nodes`` and its new
        size. Here one statement after the other; PostgreSQL sends them with the COMMIT that follows
        (one round trip)."""
        if rows:
            self._insert_rows(rows)
        if size is not None:
            self._tree.write(size, nodes)

    def _begin_schema(self) -> contextlib.AbstractContextManager[Any]:
        """The transaction in which tables are created and migrated (excludes other openers)."""
        return self._begin_write()

    def _read_context(self) -> contextlib.AbstractContextManager[Any]:
        """Around a read outside the entry lookups (the Merkle tree's): PostgreSQL holds a pooled
        connection for it."""
        return contextlib.nullcontext()

    def _after_commit(self) -> None:
        """Called after the outermost write transaction committed (housekeeping such as bounding
        SQLite's WAL). The write is durable by then: this must not raise."""
        return None

    def _classify_error(self, err: BaseException, action: str) -> StorageError:
        """The Nucleus error for a database error ``err`` raised while doing ``action``."""
        kind = _dbapi_kind(err)
        detail = str(err) or type(err).__name__
        if kind == "IntegrityError":
            return ConflictError(f"{action}: refused by a database constraint ({detail}); nothing was written")
        if kind == "InterfaceError":
            return StorageUnavailableError(f"{action}: the database is not reachable ({detail})")
        return StorageError(f"{action}: database error ({detail})")

    # wiring -----------------------------------------------------------------------------------
    @property
    def _errors(self) -> tuple[type[BaseException], ...]:
        return (peewee.PeeweeException, *self.driver_errors)

    def _wrap(self, err: BaseException, action: str) -> NucleusError:
        if isinstance(err, NucleusError):
            return err
        return self._classify_error(err, action)

    @property
    def database(self) -> peewee.Database:
        """The peewee database (open). Writes on it from the thread inside :meth:`write` join that
        transaction; the entries inserted in it so far are written first (see
        :class:`SqlWriteTransaction`), so that every statement run through it sees them."""
        if self._database is None or self._closed:
            raise LedgerClosedError(f"storage {self.url} is not open")
        tx = self._writing.__dict__.get("tx")
        if tx is not None and tx._pending:
            tx.flush()
        return self._database

    @property
    def models(self) -> EntryModels:
        """This instance's bound model classes."""
        if self._models is None or self._closed:
            raise LedgerClosedError(f"storage {self.url} is not open")
        return self._models

    @property
    def entries_model(self) -> type[peewee.Model]:
        """The entries model class, bound to :attr:`database` (for joins by other plugins)."""
        return self.models.entries

    @property
    def ledger_id(self) -> str:
        """The ledger this backend serves (set by :meth:`open`)."""
        if self._ledger_id is None:
            raise LedgerClosedError(f"storage {self.url} is not open")
        return self._ledger_id

    @property
    def read_only(self) -> bool:
        """True when writes are refused (opened read-only, or the database is not writable)."""
        return self._read_only

    @property
    def read_only_reason(self) -> str | None:
        """Why writes are refused, as a phrase for an error message (None when they are not)."""
        return self._read_only_reason if self._read_only else None

    @property
    def schema_version(self) -> int:
        """The schema version stored in the database."""
        try:
            return read_version(self.models)
        except self._errors as err:
            raise self._wrap(err, "reading the schema version") from err

    def _execute(self, sql: str, params: Sequence[Any]) -> Any:
        """Run ``sql`` on this thread's connection and return the DB-API cursor."""
        return self.database.execute_sql(sql, params)

    def _quote(self, name: str) -> str:
        q = self.database.quote
        return f"{q[0]}{name}{q[1]}"

    def entry_columns_sql(self, alias: str = "") -> str:
        """The select list of :data:`ENTRY_COLUMNS` (each prefixed ``alias.`` when given), for raw
        selects that rows become entries of; a column the table lacks (a read-only open of a table
        from before entry format version 2) is its default literal."""
        prefix = f"{alias}." if alias else ""
        return ", ".join(
            f"{prefix}{self._quote(c)}" if c in self._columns else APPENDER_DEFAULTS[c] for c in ENTRY_COLUMNS
        )

    def _prepare_statements(self) -> None:
        db = self.database
        p = db.param
        table = self._quote(self._entries_table)
        cols = self.entry_columns_sql()
        insert_cols = ", ".join(self._quote(c) for c in ENTRY_COLUMNS)
        lid, seq = self._quote("ledger_id"), self._quote("seq")
        values = ", ".join([p] * (len(ENTRY_COLUMNS) + 1))
        committed = self._quote("committed_at") if "committed_at" in self._columns else "NULL"
        hsh, at = self._quote("hash"), self._quote("committed_at")
        # Hot paths run as raw SQL on the cursor: peewee's per-row model overhead dominated them
        # (insert of a batch, streaming every row during verification, reading the head).
        # Identifiers are fixed or checked against _TABLE_NAME; every value is a bound parameter.
        self._sql = {
            "insert": f"INSERT INTO {table} ({lid}, {insert_cols}) VALUES ({values})",  # noqa: S608
            "iter": f"SELECT {cols} FROM {table} WHERE {lid} = {p} AND {seq} >= {p} ORDER BY {seq} LIMIT {p}",  # noqa: S608
            "head": f"SELECT {seq}, {self._quote('hash')}, {committed} FROM {table} "  # noqa: S608
            f"WHERE {lid} = {p} ORDER BY {seq} DESC LIMIT 1",
            # The head and the Merkle tree size, in one statement (the start of every write): one
            # row whether the ledger is empty or not (the head's columns NULL then), the size NULL
            # before the first tree write.
            "state": f"SELECT h.{seq}, h.{hsh}, h.{at}, s.{self._quote('size')} "  # noqa: S608
            f"FROM (SELECT 1 AS {self._quote('one')}) AS o "
            f"LEFT JOIN (SELECT {seq}, {hsh}, {committed} AS {at} FROM {table} "
            f"WHERE {lid} = {p} ORDER BY {seq} DESC LIMIT 1) AS h ON 1 = 1 "
            f"LEFT JOIN {self._quote(MERKLE_SIZE_TABLE)} AS s ON s.{lid} = {p}",
            "add_ledger": f"INSERT INTO {self._quote(self._ledgers_table)} ({lid}, {self._quote('created_ms')}) "  # noqa: S608
            f"VALUES ({p}, {p}) ON CONFLICT DO NOTHING",
        }
        for column in ("record_id", "seq"):
            self._sql[f"by_{column}"] = (
                f"SELECT {cols} FROM {table} WHERE {lid} = {p} AND {self._quote(column)} = {p} LIMIT 1"  # noqa: S608
            )
        # The hash index keys on the hash's first digits (schema version 3): the prefix finds the
        # rows, the whole hash picks the one.
        self._sql["by_hash"] = (
            f"SELECT {cols} FROM {table} WHERE {lid} = {p} AND {hash_prefix_sql(self._quote)} = {p} "  # noqa: S608
            f"AND {self._quote('hash')} = {p} LIMIT 1"
        )

    def _ids_sql(self, n: int) -> str:
        """``SELECT record_id ... IN (n placeholders)``; raw because peewee spent ~40 us per value
        building the IN list (measured: 40 ms of a 1000-record append_batch)."""
        key = f"ids{n}"
        sql = self._sql.get(key)
        if sql is None:
            rid = self._quote("record_id")
            marks = ", ".join([self.database.param] * n)
            sql = self._sql[key] = (
                f"SELECT {rid} FROM {self._quote(self._entries_table)} "  # noqa: S608 - checked identifiers
                f"WHERE {self._quote('ledger_id')} = {self.database.param} AND {rid} IN ({marks})"
            )
        return sql

    # lifecycle --------------------------------------------------------------------------------
    def open(self, ledger_id: str, *, read_only: bool = False, create: bool = True) -> None:
        """Connect, create or migrate the schema (in the schema transaction) and bind to ``ledger_id``.

        With ``create`` false nothing is created: the database must already hold the ledger, else
        :class:`~nucleus_core.errors.LedgerNotFoundError` lists the ledger ids it holds (an existing
        schema of an older version is still migrated)."""
        validate_ledger_id(ledger_id)
        if self._closed:
            raise LedgerClosedError(f"storage {self.url} was closed; create a new backend to reopen")
        if self._ledger_id is not None:
            if self._ledger_id != ledger_id:
                raise ConfigurationError(f"this storage is open for ledger {self._ledger_id!r}, not {ledger_id!r}")
            return
        self._create = create
        database = self._make_database()
        self._database = database
        try:
            database.connect(reuse_if_open=True)
            self._models = make_models(database, entries_table=self._entries_table, schema_table=self._schema_table)
            self._read_only_reason = None
            if read_only:
                self._read_only, self._read_only_reason = True, "it was opened read-only"
            else:
                self._read_only = not self._writable()
                if self._read_only and self._read_only_reason is None:
                    self._read_only_reason = "the database is not writable"
            found = read_version(self._models)
            if not create and found == 0:
                raise LedgerNotFoundError(ledger_id, (), where=self.url)
            if self._read_only:
                if found not in READABLE_VERSIONS:
                    raise ConfigurationError(
                        f"storage {self.url} has schema version {found} (current: {CURRENT_VERSION}) and is opened "
                        "read-only, so it cannot be created or migrated; open it writable once"
                    )
            else:
                if found == 0:
                    self._created_tables.extend([self._schema_table, self._entries_table])
                with self._begin_schema():
                    upgrade(self._models)
                    self._columns = ensure_appender_columns(self._models)
                if create_checkpoints_table(self):
                    self._created_tables.append(CHECKPOINTS_TABLE)
                if create_cosignatures_table(self):
                    self._created_tables.append(COSIGNATURES_TABLE)
            if self._read_only:
                self._columns = entry_table_columns(self._models)
            self._prepare_statements()
            self._tree.prepare()
            if (not create or self._read_only) and not self._holds_ledger(ledger_id):
                # Read-only (a replica), a missing ledger is an error even when asked to create it:
                # not an empty ledger served under a mistyped id.
                held = self._stored_ledger_ids()
                detail = None
                if create:
                    listing = f"it holds {', '.join(repr(i) for i in held)}" if held else "it holds no ledger"
                    detail = f"{listing}, and none can be created there: {self._read_only_reason}"
                raise LedgerNotFoundError(ledger_id, held, where=self.url, detail=detail)
            elif not self._read_only:
                self._created_ledger = self._register_ledger(ledger_id)
            if not self._read_only:
                self._tree.ensure_tables()
        except BaseException as err:
            self._database = None
            self._models = None
            with contextlib.suppress(*self._errors):
                database.close()
                # A pooled database (PostgreSQL) also closes the connections it keeps.
                close_all = getattr(database, "close_all", None)
                if close_all is not None:
                    close_all()
            if isinstance(err, self._errors):
                raise self._wrap(err, f"opening {self.url}") from err
            raise
        self._ledger_id = ledger_id

    # the ledgers a database holds ---------------------------------------------------------------
    def _ensure_ledgers_table(self) -> None:
        """Create the ledgers table (one row per ledger) if missing, registering every ledger that
        already has entries (databases written before the table existed)."""
        db = self.database
        table = self._quote(self._ledgers_table)
        if db.table_exists(self._ledgers_table):
            return
        self._created_tables.append(self._ledgers_table)
        # A model class built per database: mypy cannot see its fields.
        sv: Any = self.models.schema_version
        lid, entries = self._quote("ledger_id"), self._quote(self._entries_table)
        with self._begin_schema():
            db.execute_sql(
                f"CREATE TABLE IF NOT EXISTS {table} "
                f'({lid} VARCHAR(128) PRIMARY KEY, "created_ms" BIGINT NOT NULL)'
            )
            db.execute_sql(
                f"INSERT INTO {table} ({lid}, {self._quote('created_ms')}) "  # noqa: S608 - checked identifiers
                f"SELECT DISTINCT {lid}, 0 FROM {entries} WHERE {lid} NOT IN (SELECT {lid} FROM {table})"
            )
            (
                sv.insert(component=LEDGERS_COMPONENT, version=LEDGERS_VERSION)
                .on_conflict(conflict_target=[sv.component], preserve=[sv.version])
                .execute()
            )

    def _register_ledger(self, ledger_id: str) -> bool:
        """Record ``ledger_id`` in the ledgers table; True when this call added it (it was new)."""
        self._ensure_ledgers_table()
        with self._begin_schema():
            cursor = self.database.execute_sql(self._sql["add_ledger"], (ledger_id, int(time.time() * 1000)))
        return bool(cursor.rowcount == 1)

    def _holds_ledger(self, ledger_id: str) -> bool:
        """Whether the database holds ``ledger_id`` (entries or its row in the ledgers table): an
        index probe each, where :meth:`_stored_ledger_ids` reads every entry's ledger id."""
        db = self.database
        lid, p = self._quote("ledger_id"), db.param
        tables = [self._entries_table]
        if db.table_exists(self._ledgers_table):
            tables.append(self._ledgers_table)
        for table in tables:
            sql = f"SELECT 1 FROM {self._quote(table)} WHERE {lid} = {p} LIMIT 1"  # noqa: S608 - checked identifiers
            if db.execute_sql(sql, (ledger_id,)).fetchone() is not None:
                return True
        return False

    def _stored_ledger_ids(self) -> tuple[str, ...]:
        db = self.database
        lid = self._quote("ledger_id")
        sql = f"SELECT DISTINCT {lid} FROM {self._quote(self._entries_table)}"  # noqa: S608 - checked identifiers
        if db.table_exists(self._ledgers_table):
            sql += f" UNION SELECT {lid} FROM {self._quote(self._ledgers_table)}"  # noqa: S608
        return tuple(sorted(str(r) for (r,) in db.execute_sql(sql).fetchall()))

    def ledger_ids(self) -> tuple[str, ...]:
        """The ids of every ledger this (open) database holds, sorted."""
        try:
            return self._stored_ledger_ids()
        except self._errors as err:
            raise self._wrap(err, "listing ledgers") from err

    def discard(self) -> None:
        """Close, removing what :meth:`open` created for a ledger that then failed to open: its row in
        the ledgers table, and the tables this open created when they hold nothing. Called by the
        ledger instead of :meth:`close` when opening fails after storage was opened."""
        if self._closed or self._database is None or self._ledger_id is None:
            self.close()
            return
        try:
            self._remove_created()
        except self._errors as err:
            log.warning("could not remove what opening %s created: %s", self.url, err)
        finally:
            self.close()

    def discard_with(self, other: object) -> None:
        """:meth:`discard`, also removing what ``other`` (another, closed backend object of this
        class on the same database and ledger: the second step of an import, which opened the
        ledger with its plugins) put there: the rows of this ledger in the plugin tables it ensured,
        and the tables it created while they are empty. Only for a ledger whose every writer was
        this import's (the mark of an unfinished import kept ordinary openers out): the rows of
        this ledger in those tables are taken as written by it. Still nothing is removed when the
        ledger holds entries this object did not write."""
        if isinstance(other, SqlStorageBackend) and other.url == self.url and other._ledger_id == self._ledger_id:
            self._adopted_tables.extend(t for t in other._plugin_tables if t not in self._plugin_tables)
            self._created_tables.extend(t for t in other._created_tables if t not in self._created_tables)
        self.discard()

    def _remove_created(self) -> None:
        """Remove the ledger this open registered, and the tables it created, but only what it wrote:
        decided under the writers' lock, and skipped (logged) as soon as the ledger holds an entry
        this object did not write or a plugin's table holds rows of it (another process opened the
        new ledger and wrote to it meanwhile)."""
        db = self.database
        lid = self._quote("ledger_id")
        if self._created_ledger:
            with self._begin_write():
                foreign = self._foreign_data()
                if foreign:
                    log.warning(
                        "opening ledger %r on %s failed; it was kept: %s (written by another opener)",
                        self._ledger_id, self.url, foreign,
                    )
                    self._created_tables.clear()
                    return
                tables = (
                    self._entries_table, self._ledgers_table, MERKLE_TABLE, MERKLE_SIZE_TABLE, CHECKPOINTS_TABLE,
                    COSIGNATURES_TABLE, *dict.fromkeys(self._adopted_tables),
                )
                for table in tables:
                    if db.table_exists(table) and (
                        table not in self._adopted_tables or "ledger_id" in {c.name for c in db.get_columns(table)}
                    ):
                        db.execute_sql(
                            f"DELETE FROM {self._quote(table)} WHERE {lid} = {db.param}",  # noqa: S608 - checked names
                            (self._ledger_id,),
                        )
        with self._begin_schema():
            for table in reversed(self._created_tables):
                if db.table_exists(table):
                    # Another opener may have written to it since: it goes only while empty, checked
                    # under a lock that keeps writers out until the drop commits.
                    self._lock_table(table)
                    empty = db.execute_sql(f"SELECT 1 FROM {self._quote(table)} LIMIT 1").fetchone() is None  # noqa: S608
                    if table == self._schema_table:
                        empty = not db.table_exists(self._entries_table)
                    if empty:
                        db.execute_sql(f"DROP TABLE {self._quote(table)}")
            self._created_tables.clear()

    def _foreign_data(self) -> str | None:
        """Why this ledger holds data this object did not write (None when it holds none): entries
        beyond those it wrote, or rows of a plugin's table. Run under the writers' lock."""
        db = self.database
        lid = self._quote("ledger_id")
        if db.table_exists(self._entries_table):
            (count,) = db.execute_sql(
                f"SELECT COUNT(*) FROM {self._quote(self._entries_table)} WHERE {lid} = {db.param}",  # noqa: S608
                (self._ledger_id,),
            ).fetchone()
            if int(count) > len(self._written_seqs):
                return f"it holds {int(count)} entries, {len(self._written_seqs)} of them written by this open"
        for table in dict.fromkeys(self._plugin_tables):
            if not db.table_exists(table):
                continue
            if "ledger_id" in {c.name for c in db.get_columns(table)}:
                sql = f"SELECT 1 FROM {self._quote(table)} WHERE {lid} = {db.param} LIMIT 1"  # noqa: S608
                row = db.execute_sql(sql, (self._ledger_id,)).fetchone()
            else:
                row = db.execute_sql(f"SELECT 1 FROM {self._quote(table)} LIMIT 1").fetchone()  # noqa: S608
            if row is not None:
                return f"the plugin table {table!r} holds rows"
        return None

    def _lock_table(self, table: str) -> None:
        """Keep writers out of ``table`` until the transaction ends (a no-op where the transaction
        already excludes every writer, as SQLite's ``BEGIN IMMEDIATE`` does)."""
        return None

    def close(self) -> None:
        """Close this thread's connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._database is not None:
            with contextlib.suppress(*self._errors):
                self._database.close()

    # writes -----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def write(self) -> Iterator[SqlWriteTransaction]:
        """The exclusive write transaction: commits when the block exits normally, rolls back otherwise.

        Nested use (from the same thread) becomes a savepoint of the outer transaction.
        """
        self.database  # noqa: B018 - raises when closed
        if self._read_only:
            raise ReadOnlyLedgerError(f"storage {self.url} is read-only: {self.read_only_reason}; nothing was written")
        try:
            with _guarded(self._begin_write_reading_state(), self._errors, self._wrap) as state:
                tx = SqlWriteTransaction(self, state)
                outer = self._writing.__dict__.get("tx")
                self._writing.tx = tx
                try:
                    yield tx
                    tx.flush()
                finally:
                    self._writing.tx = outer
        except BaseException as err:
            if self._database is not None and self._database.transaction_depth() == 0:
                self._uncommitted_seqs.clear()
            if isinstance(err, self._errors):
                wrapped = self._wrap(err, "write")
                if isinstance(wrapped, DuplicateRecordError):
                    raise wrapped from None  # expected: one clear error
                raise wrapped from err
            raise
        if self.database.transaction_depth() == 0:
            self._written_seqs.update(self._uncommitted_seqs)
            self._uncommitted_seqs.clear()
            self._after_commit()

    def ensure_tables(self, models: Sequence[type[peewee.Model]]) -> None:
        """Bind a plugin's model classes to :attr:`database` and create their tables if missing.

        The classes must be made for this backend (e.g. by a factory, as :func:`make_models`
        does): binding is class-level, so a class already bound to another database is refused.
        """
        db = self.database
        for model in models:
            bound = model._meta.database
            if bound is not None and bound is not db:
                raise ConfigurationError(
                    f"model {model.__name__} is already bound to another database; build model classes per backend"
                )
        db.bind(list(models), bind_refs=False, bind_backrefs=False)
        try:
            if self._read_only:
                missing = [m._meta.table_name for m in models if not db.table_exists(m._meta.table_name)]
                if missing:
                    raise ConfigurationError(f"storage {self.url} is read-only and lacks table(s) {', '.join(missing)}")
                return
            self._plugin_tables.extend(m._meta.table_name for m in models)
            missing = [m._meta.table_name for m in models if not db.table_exists(m._meta.table_name)]
            with self._begin_schema():
                db.create_tables(list(models), safe=True)
            self._created_tables.extend(missing)
        except self._errors as err:
            raise self._wrap(err, "creating tables") from err

    # the Merkle tree (MerkleTreeStorage; see .tree) ---------------------------------------------
    @property
    def merkle_min_level(self) -> int:
        """The lowest level of the tree stored (lower nodes come from the entry hashes)."""
        return self._tree.min_level

    def merkle_size(self) -> int:
        """How many entries the committed tree covers."""
        self.database  # noqa: B018 - raises when closed
        return self._tree.size()

    def merkle_store(self) -> DerivedLevelsStore:
        """The committed tree's nodes (every level) for roots and proofs."""
        self.database  # noqa: B018 - raises when closed
        return self._tree.store()

    def entry_and_merkle_nodes(self, seq: int, keys: Collection[NodeKey]) -> tuple[Entry | None, dict[NodeKey, bytes]]:
        """``(get_by_seq(seq), merkle_store().nodes(keys))`` in one statement (the
        :class:`~nucleus_core.capabilities.MerkleEntryReadStorage` capability: an inclusion proof
        by seq in one round trip)."""
        self.database  # noqa: B018 - raises when closed
        return self._tree.entry_and_nodes(seq, keys)

    def iter_merkle_nodes(self, start: int = 0) -> Iterator[tuple[int, bytes]]:
        """The stored nodes with number ``>= start`` by number, in batches (constant memory)."""
        self.database  # noqa: B018 - raises when closed
        return self._tree.iter_nodes(start)

    def iter_entry_hashes(self, from_seq: int = 1) -> Iterator[tuple[int, str]]:
        """``(seq, hash)`` of the entries from ``from_seq`` in seq order, in batches."""
        self.database  # noqa: B018 - raises when closed
        return self._tree.iter_entry_hashes(from_seq)

    def grant_index(self, *, wildcard: str, read_scope: int) -> SqlGrantIndex:
        """An access-control plugin's grants and resource index in this database (the
        :class:`~nucleus_core.capabilities.GrantIndexStorage` capability); see :mod:`.grants`."""
        return SqlGrantIndex(self, wildcard=wildcard, read_scope=read_scope)

    def checkpoint_store(self) -> SqlCheckpointStore:
        """The open ledger's signed checkpoints in this database (the
        :class:`~nucleus_core.capabilities.CheckpointStorage` capability); see :mod:`.checkpoints`."""
        return SqlCheckpointStore(self)

    # reads ------------------------------------------------------------------------------------
    def _fetch(self, query: peewee.Select, action: str) -> list[Entry]:
        """Run a peewee select of :data:`ENTRY_COLUMNS` (built SQL goes through :meth:`_fetch_raw`)."""
        try:
            sql, params = query.sql()
        except self._errors as err:
            raise self._wrap(err, action) from err
        return self._fetch_raw(sql, params, action)

    def _fetch_raw(self, sql: str, params: Sequence[Any], action: str) -> list[Entry]:
        """Run a select of :data:`ENTRY_COLUMNS`. Every entry read except :meth:`iter_entries`,
        :meth:`head` and :meth:`count` ends here: subclasses that manage connections per operation
        wrap this method."""
        try:
            return list(map(Entry.from_row, self._execute(sql, params).fetchall()))
        except self._errors as err:
            raise self._wrap(err, action) from err

    def select_entries(self) -> peewee.Select:
        """A select of this ledger's entries (the :data:`ENTRY_COLUMNS`), to refine and pass to :meth:`fetch`."""
        e: Any = self.entries_model
        columns = (getattr(e, c) if c in self._columns else peewee.SQL(APPENDER_DEFAULTS[c]) for c in ENTRY_COLUMNS)
        select: peewee.Select = e.select(*columns).where(e.ledger_id == self.ledger_id)
        return select

    def build_query(self, query: StorageQuery) -> peewee.Select:
        """:meth:`select_entries` with the filters, cursor, order and limit of ``query``.

        Access-control providers add their EXISTS / join condition to it and call :meth:`fetch`.
        """
        e: Any = self.entries_model
        sel = self.select_entries()
        if query.streams is not None:
            streams = list(dict.fromkeys(query.streams))
            sel = sel.where(e.stream == streams[0]) if len(streams) == 1 else sel.where(e.stream.in_(streams))
        if query.record_ids is not None:
            ids = list(dict.fromkeys(query.record_ids))
            sel = sel.where(e.record_id == ids[0]) if len(ids) == 1 else sel.where(e.record_id.in_(ids))
        if query.since is not None:
            sel = sel.where(e.timestamp >= query.since)
        if query.until is not None:
            sel = sel.where(e.timestamp < query.until)
        if query.after_seq:
            sel = sel.where(e.seq > query.after_seq)
        return sel.order_by(e.seq).limit(query.limit)

    def fetch(self, query: peewee.Select) -> list[Entry]:
        """Run a select of :data:`ENTRY_COLUMNS` (see :meth:`select_entries`) and return stored entries."""
        return self._fetch(query, "query")

    def head(self) -> ChainHead | None:
        """The last committed entry of this ledger."""
        try:
            row = self._execute(self._sql["head"], (self.ledger_id,)).fetchone()
        except self._errors as err:
            raise self._wrap(err, "reading the head") from err
        return None if row is None else ChainHead(seq=row[0], hash=row[1], committed_at=row[2])

    def count(self) -> int:
        """Number of stored entries of this ledger."""
        e: Any = self.entries_model
        try:
            return int(e.select().where(e.ledger_id == self.ledger_id).count())
        except self._errors as err:
            raise self._wrap(err, "counting entries") from err

    def _get_one(self, column: str, value: object, action: str) -> Entry | None:
        rows = self._fetch_raw(self._sql[f"by_{column}"], (self.ledger_id, value), action)
        return rows[0] if rows else None

    def get_by_hash(self, entry_hash: str) -> Entry | None:
        """The entry with this hash, or None."""
        rows = self._fetch_raw(
            self._sql["by_hash"], (self.ledger_id, entry_hash[:HASH_PREFIX_LENGTH], entry_hash), "get by hash"
        )
        return rows[0] if rows else None

    def get_by_id(self, record_id: str) -> Entry | None:
        """The entry of this record id, or None."""
        return self._get_one("record_id", record_id, "get by id")

    def get_by_seq(self, seq: int) -> Entry | None:
        """The entry at ``seq``, or None."""
        return self._get_one("seq", seq, "get by seq")

    def range(self, from_seq: int, limit: int) -> list[Entry]:
        """Up to ``limit`` entries with ``seq >= from_seq`` in seq order."""
        return self._fetch_raw(self._sql["iter"], (self.ledger_id, from_seq, limit), "range")

    def iter_entries(self, from_seq: int = 1) -> Iterator[Entry]:
        """Every entry with ``seq >= from_seq`` in seq order, fetched in batches by seq (constant memory).

        From the start (``from_seq <= 1``) rows with a seq below 1, which only tampering can
        create, are yielded too, so that verification names them.
        """
        return map(Entry.from_row, self.iter_entry_rows(from_seq))

    def iter_entry_rows(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[tuple[Any, ...]]:
        """:meth:`iter_entries` as the driver's row tuples (:data:`ENTRY_COLUMNS` order), without
        building a :class:`~nucleus_core.records.Entry` per row: what verification reads
        (see :func:`nucleus_core.storage.entry_rows`). ``to_seq``: stop after that seq (parallel
        verification reads one chunk, :class:`~nucleus_core.storage.SeqRangeStorage`)."""
        self.database  # noqa: B018 - raises when closed
        execute = self._execute
        sql = self._sql["iter"]
        ledger_id = self.ledger_id
        size = self._iter_batch
        nxt = from_seq if from_seq > 1 else _MIN_SEQ
        while True:
            try:
                rows = execute(sql, (ledger_id, nxt, size)).fetchall()
            except self._errors as err:
                raise self._wrap(err, "reading entries") from err
            if to_seq is not None and rows and rows[-1][0] > to_seq:
                yield from (row for row in rows if row[0] <= to_seq)
                return
            yield from rows
            if len(rows) < size:
                return
            nxt = rows[-1][0] + 1

    def read_only_opener(self) -> Callable[[], SqlStorageBackend] | None:
        """A picklable callable building an unopened backend on the same data, for a worker of
        parallel verification (:class:`~nucleus_core.storage.SeqRangeStorage`); None here, the
        engines' subclasses supply one."""
        return None

    def query(self, query: StorageQuery) -> list[Entry]:
        """Entries matching ``query`` in ascending seq order, at most ``query.limit``.

        The SQL peewee builds (:meth:`build_query`) is cached per shape of query (how many streams
        and ids, which bounds): building it took ~1 ms, most of a small query's time.
        """
        streams = list(dict.fromkeys(query.streams)) if query.streams is not None else []
        ids = list(dict.fromkeys(query.record_ids)) if query.record_ids is not None else []
        params: list[Any] = [self.ledger_id, *streams, *ids]
        shape = [len(streams) if query.streams is not None else -1, len(ids) if query.record_ids is not None else -1]
        for value, present in ((query.since, query.since is not None), (query.until, query.until is not None),
                               (query.after_seq, bool(query.after_seq))):
            shape.append(int(present))
            if present:
                params.append(value)
        params.append(query.limit)
        key = "query:" + ",".join(map(str, shape))
        sql = self._sql.get(key)
        if sql is None:
            try:
                sql, built = self.build_query(query).sql()
            except self._errors as err:
                raise self._wrap(err, "query") from err
            if list(built) != params:  # never cache what does not match the parameter order above
                return self._fetch_raw(sql, built, "query")
            self._sql[key] = sql
        return self._fetch_raw(sql, params, "query")

    def _insert_rows(self, rows: list[tuple[Any, ...]]) -> None:
        """Insert rows of (ledger_id, *ENTRY_COLUMNS) inside the write transaction, all or none.

        Default: a savepoint around the batch, so a failed statement leaves the outer transaction
        usable (to name the duplicate record id afterwards) and no part of the batch behind."""
        db = self.database
        if len(rows) == 1 and self.statement_rollback_keeps_transaction:
            self._execute(self._sql["insert"], rows[0])
            return
        with _guarded(db.atomic(), self._errors):
            db.cursor().executemany(self._sql["insert"], rows)

    def _find_record_ids(self, unique_ids: list[str]) -> set[str]:
        """Which of ``unique_ids`` this ledger holds (inside the write transaction). Default: chunked
        ``IN`` lists on the unique (ledger_id, record_id) index; engines may probe it better."""
        found: set[str] = set()
        for i in range(0, len(unique_ids), ID_CHUNK):
            chunk = unique_ids[i : i + ID_CHUNK]
            cursor = self._execute(self._ids_sql(len(chunk)), (self.ledger_id, *chunk))
            found.update(r for (r,) in cursor.fetchall())
        return found


# One name serves every savepoint of a write transaction: each is released before the next is taken.
_SAVEPOINT = 'SAVEPOINT "nucleus_call"'
_ROLLBACK_TO_SAVEPOINT = 'ROLLBACK TO SAVEPOINT "nucleus_call"'
_RELEASE_SAVEPOINT = 'RELEASE SAVEPOINT "nucleus_call"'


class SqlWriteTransaction:
    """The write transaction handed out by :meth:`SqlStorageBackend.write`.

    Inserted entries are kept back and written with the transaction's last writes (the Merkle
    tree's, or just before the commit), so that an engine can send them in one round trip with
    the COMMIT (PostgreSQL: two round trips per append in all, see :meth:`write_merkle`).
    :meth:`flush` writes them at once, and so does the first statement run meanwhile through the
    backend's :attr:`~SqlStorageBackend.database` (a plugin's, a nested transaction's), so that
    whatever runs in the transaction sees them.
    """

    def __init__(self, backend: SqlStorageBackend, state: WriteState | None = None) -> None:
        self._backend = backend
        self._head: ChainHead | None = None
        self._head_read = False
        self._tree_size = 0
        self._pending: list[tuple[Any, ...]] = []
        self._pending_seqs: list[int] = []
        if state is not None:
            self._head, self._tree_size = state
            self._head_read = True
        self._aborted = False

    # savepoints (SavepointTransaction) ----------------------------------------------------------
    @property
    def aborted(self) -> bool:
        """True once a savepoint could not be undone or released: the transaction must roll back."""
        return self._aborted

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested block (``SAVEPOINT``), undone on its own when it raises (``ROLLBACK TO``, then
        ``RELEASE``, so savepoints never pile up), with the head this transaction reads and the seqs
        it wrote. Undoing that fails (the database already rolled the whole transaction back, a
        dead connection) marks the transaction :attr:`aborted`; the block's exception propagates."""
        backend = self._backend
        db = backend.database  # writes the entries kept back so far (earlier calls'), outside it
        head, head_read, tree_size = self._head, self._head_read, self._tree_size
        seqs = len(backend._uncommitted_seqs)
        try:
            db.execute_sql(_SAVEPOINT)
        except backend._errors as err:
            self._aborted = True
            raise backend._wrap(err, "savepoint") from err
        try:
            yield
            # The block's entries are written inside it: a record id stored already is its error.
            self.flush()
        except BaseException:
            self._head, self._head_read, self._tree_size = head, head_read, tree_size
            self._pending, self._pending_seqs = [], []
            del backend._uncommitted_seqs[seqs:]
            try:
                db.execute_sql(_ROLLBACK_TO_SAVEPOINT)
                db.execute_sql(_RELEASE_SAVEPOINT)
            except backend._errors:
                log.debug("rolling back to a savepoint failed: the transaction is lost", exc_info=True)
                self._aborted = True
            raise
        try:
            db.execute_sql(_RELEASE_SAVEPOINT)
        except backend._errors as err:
            self._aborted = True
            raise backend._wrap(err, "savepoint") from err

    @property
    def database(self) -> peewee.Database:
        """The database of the transaction (writes on it from this thread are part of it; the
        entries inserted so far are written first)."""
        return self._backend.database

    def _read_state(self) -> None:
        backend = self._backend
        try:
            self._head, self._tree_size = backend._write_state()
        except backend._errors as err:
            raise backend._wrap(err, "reading the head") from err
        self._head_read = True

    def head(self) -> ChainHead | None:
        """The head, read inside this transaction (once, with the tree size; :meth:`insert`
        advances it). The write lock is held, so no other writer can move it meanwhile; the
        primary key guards the rest."""
        if not self._head_read:
            self._read_state()
        return self._head

    def existing_ids(self, record_ids: Sequence[str]) -> set[str]:
        """Which of ``record_ids`` this ledger already holds."""
        backend = self._backend
        try:
            return backend._find_record_ids(list(dict.fromkeys(record_ids)))
        except backend._errors as err:
            raise backend._wrap(err, "checking record ids") from err

    def insert(self, entries: Sequence[Entry]) -> None:
        """Insert contiguous entries after the head, all or none (written with the transaction's
        last writes, or by :meth:`flush`: a record id stored already raises
        :class:`~nucleus_core.errors.DuplicateRecordError` there, or at the commit)."""
        if not entries:
            return
        backend = self._backend
        head = self.head()
        expected, prev = (head.seq + 1, head.hash) if head else (1, GENESIS_HASH)
        if entries[0].prev_hash != prev:
            raise StorageError(f"entry seq {entries[0].seq} does not link to the head (seq {expected - 1})")
        for entry in entries:
            if entry.seq != expected:
                raise StorageError(f"entry seq {entry.seq} does not follow the head (expected {expected})")
            expected += 1
        ledger_id = backend.ledger_id
        self._pending.extend(entry_to_row(ledger_id, entry) for entry in entries)
        self._pending_seqs.extend(entry.seq for entry in entries)
        last = entries[-1]
        self._head, self._head_read = ChainHead(seq=last.seq, hash=last.hash, committed_at=last.committed_at), True

    def _take_pending(self) -> list[tuple[Any, ...]]:
        rows = self._pending
        if rows:
            self._backend._uncommitted_seqs.extend(self._pending_seqs)
            self._pending, self._pending_seqs = [], []
        return rows

    def _written(self, rows: list[tuple[Any, ...]], write: Callable[[], None], action: str) -> None:
        """Run ``write``, which inserts the entry ``rows`` (and maybe more); a record id stored
        already is a :class:`~nucleus_core.errors.DuplicateRecordError`."""
        backend = self._backend
        try:
            write()
        except DuplicateRecordError as err:
            # An engine that pipelines the writes may report the insert's failure at a later
            # statement of ``write`` (wrapped there): still one clear error.
            raise err from None
        except backend._errors as err:
            if rows and _dbapi_kind(err) == "IntegrityError":
                known = backend._find_record_ids(list(dict.fromkeys(row[_RECORD_ID] for row in rows)))
                if known:
                    raise DuplicateRecordError(sorted(known)[0]) from None  # expected: one clear error
            raise backend._wrap(err, action) from err

    def flush(self) -> None:
        """Write the entries inserted so far now (all or none)."""
        if not self._pending:
            return
        rows = self._take_pending()
        self._written(rows, lambda: self._backend._insert_rows(rows), "insert")

    # the Merkle tree (MerkleTreeTransaction) ----------------------------------------------------
    def merkle_size(self) -> int:
        """The tree size inside this transaction (read with the head; :meth:`write_merkle` sets it)."""
        if not self._head_read:
            self._read_state()
        return self._tree_size

    def merkle_store(self) -> DerivedLevelsStore:
        """The tree's nodes inside this transaction (reading them writes the entries kept back by
        :meth:`insert` first, as every statement does)."""
        return self._backend._tree.store()

    def write_merkle(self, size: int, nodes: Sequence[tuple[NodeKey, bytes]]) -> None:
        """Store the nodes of levels >= ``MIN_LEVEL`` and the new size, in this transaction, with
        the entries kept back (the transaction's last writes: see the class docstring)."""
        if not self._head_read:
            self._read_state()
        rows = self._take_pending()
        self._written(rows, lambda: self._backend._write_tail(rows, size, nodes), "writing the Merkle tree")
        self._tree_size = size
