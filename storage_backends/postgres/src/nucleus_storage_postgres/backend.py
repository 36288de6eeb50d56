"""The PostgreSQL storage backend, on the shared peewee base of ``nucleus-storage-sql``.

What this class adds to :class:`~nucleus_storage_sql.SqlStorageBackend`:

* a pooled psycopg 3 database (:mod:`.connection`); every operation checks a connection out of the
  pool and returns it when done, so any number of threads can share one backend;
* **serialized appends**: the write transaction starts by locking this ledger's row in the
  ``nucleus_ledgers`` table (``SELECT ... FOR UPDATE``). Every writer of the ledger, in any thread,
  process or host, queues on that row lock until the holder commits or rolls back, then reads the
  head and chains after it. The primary key (ledger_id, seq) backs it up: a writer that bypassed
  the lock could not insert a second entry with the same seq. Other ledgers have other rows, so
  they never wait for each other. Cost: one extra indexed ``SELECT`` per write transaction, and
  writes to one ledger are one at a time for the duration of each transaction (batch to amortize);
* **schema changes under a transaction-scoped advisory lock**, so processes opening a new database
  at the same moment cannot both create or migrate it (PostgreSQL DDL is transactional);
* **verification streamed through a server-side cursor** on a dedicated connection, in one
  ``REPEATABLE READ READ ONLY`` transaction: constant memory, one consistent snapshot, and no
  transaction left on the caller's pooled connection;
* error translation by SQLSTATE: a lost connection (``pg_terminate_backend``, server down) is a
  :class:`~nucleus_core.errors.StorageUnavailableError`, lock and uniqueness conflicts are
  :class:`~nucleus_core.errors.ConflictError`, anything else a
  :class:`~nucleus_core.errors.StorageError`, each naming the server (never the password).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import attrs
import peewee
import psycopg
from nucleus_storage_sql import (
    DEFAULT_ITER_BATCH,
    ENTRIES_TABLE,
    SCHEMA_TABLE,
    SqlStorageBackend,
    SqlWriteTransaction,
    WriteState,
)
from playhouse.pool import MaxConnectionsExceeded  # type: ignore[import-untyped]

from nucleus_core.errors import (
    ConfigurationError,
    ConflictError,
    DuplicateRecordError,
    StorageError,
    StorageUnavailableError,
)
from nucleus_core.merkle import NodeKey
from nucleus_core.records import Entry
from nucleus_core.storage import ChainHead, StorageQuery

from .connection import (
    DEFAULT_CONNECT_TIMEOUT,
    NucleusPool,
    check_schema,
    connect_kwargs,
    driver_error,
    make_database,
    parse_dsn,
    translate,
)

LEDGERS_TABLE = "nucleus_ledgers"
"""One row per ledger in the database; writers lock their ledger's row (the append lock)."""

LEDGERS_COMPONENT = "postgres_ledgers"
"""The key of the ledgers table in the schema-version table."""

LEDGERS_VERSION = 1

SCHEMA_LOCK_KEY = 0x6E75636C65757331  # b"nucleus1": the advisory lock taken around schema changes
"""Key of the transaction-scoped advisory lock held while tables are created or migrated."""

DEFAULT_POOL_SIZE = 10
DEFAULT_POOL_TIMEOUT = 30.0
DEFAULT_STALE_TIMEOUT = 300


def _positive_int(name: str, value: object, high: int) -> int:
    if type(value) is not int or not 1 <= value <= high:
        raise ConfigurationError(f"{name}: must be an integer from 1 to {high}, got {value!r}")
    return value


class PostgresStorage(SqlStorageBackend):
    """Ledger storage in a PostgreSQL database (``postgresql://`` URLs).

    ``dsn``: a libpq connection string, URL or ``key=value`` form (``sslmode``, ``connect_timeout``
    and other libpq parameters pass through). ``schema``: keep the tables in this schema (created
    if missing) instead of the connection's default. ``pool_size``: most connections this backend
    holds at once; ``pool_timeout``: seconds an operation waits for a free one. ``stale_timeout``:
    seconds after which an idle connection is replaced. ``connect_timeout``: seconds to wait for the
    server before :class:`~nucleus_core.errors.StorageUnavailableError` (libpq's minimum is 2).
    """

    driver_errors: ClassVar[tuple[type[BaseException], ...]] = (psycopg.Error,)
    blob_type: ClassVar[str] = "BYTEA"

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
        pool_timeout: float = DEFAULT_POOL_TIMEOUT,
        stale_timeout: int = DEFAULT_STALE_TIMEOUT,
        connect_timeout: int = DEFAULT_CONNECT_TIMEOUT,
        application_name: str = "nucleus",
        iter_batch_size: int = DEFAULT_ITER_BATCH,
        entries_table: str = ENTRIES_TABLE,
        schema_table: str = SCHEMA_TABLE,
    ) -> None:
        params, url = parse_dsn(dsn)
        self._schema = check_schema(schema)
        if self._schema is not None:
            url = f"{url}?schema={self._schema}"
        self._pool_size = _positive_int("pool_size", pool_size, 1000)
        if not isinstance(pool_timeout, (int, float)) or isinstance(pool_timeout, bool) or not 0 < pool_timeout <= 3600:
            raise ConfigurationError(f"pool_timeout: must be seconds from 0 to 3600, got {pool_timeout!r}")
        self._pool_timeout = float(pool_timeout)
        self._stale_timeout = _positive_int("stale_timeout", stale_timeout, 86400)
        self._connect_timeout = _positive_int("connect_timeout", connect_timeout, 3600)
        if not isinstance(application_name, str) or not application_name.isprintable() or len(application_name) > 63:
            raise ConfigurationError("application_name: must be printable text of at most 63 characters")
        super().__init__(url, entries_table=entries_table, schema_table=schema_table, iter_batch_size=iter_batch_size)
        self._connect = connect_kwargs(
            params, schema=self._schema, connect_timeout=self._connect_timeout, application_name=application_name
        )
        self._ledgers_table = LEDGERS_TABLE
        self._created_schema = False
        # How a worker of parallel verification builds the same backend (one connection is enough there).
        self._opener = functools.partial(
            PostgresStorage, dsn, schema=schema, pool_size=1, pool_timeout=pool_timeout, stale_timeout=stale_timeout,
            connect_timeout=connect_timeout, application_name=application_name, iter_batch_size=iter_batch_size,
            entries_table=entries_table, schema_table=schema_table,
        )

    def read_only_opener(self) -> Callable[[], PostgresStorage]:
        """The same backend's settings, for a worker process of parallel verification."""
        return self._opener

    @property
    def schema(self) -> str | None:
        """The schema holding the tables (None: the connection's default ``search_path``)."""
        return self._schema

    # hooks of the base class ------------------------------------------------------------------
    def _make_database(self) -> peewee.Database:
        database: peewee.Database = make_database(
            self._connect, pool_size=self._pool_size, pool_timeout=self._pool_timeout, stale_timeout=self._stale_timeout
        )
        return database

    def _writable(self) -> bool:
        """False on a hot standby (read replica) or a read-only session: the ledger opens read-only."""
        row = self.database.execute_sql(
            "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')"
        ).fetchone()
        if row is not None and row[0]:
            self._read_only_reason = (
                "the server is a hot standby (a read replica: pg_is_in_recovery() is true); "
                "append through the primary"
            )
            return False
        if row is None or row[1] != "off":
            self._read_only_reason = (
                "the session is read-only (default_transaction_read_only is on); "
                "append through a read-write connection"
            )
            return False
        return True

    @contextlib.contextmanager
    def _begin_write(self) -> Iterator[Any]:
        db = self.database
        with db.atomic() as txn:
            if db.transaction_depth() == 1:
                self._lock_ledger()
            yield txn

    def _lock_table(self, table: str) -> None:
        # Writers wait until the drop commits; one that inserted first makes the table non-empty.
        self.database.execute_sql(f"LOCK TABLE {self._quote(table)} IN ACCESS EXCLUSIVE MODE")

    @contextlib.contextmanager
    def _begin_schema(self) -> Iterator[Any]:
        db = self.database
        with db.atomic() as txn:
            db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
            if self._schema is not None:
                if db.execute_sql("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self._schema,)).fetchone() is None:
                    self._created_schema = True  # discard() drops it again when nothing is left in it
                db.execute_sql(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"')
            yield txn

    @contextlib.contextmanager
    def _begin_write_reading_state(self) -> Iterator[WriteState | None]:
        """``BEGIN``, the append lock and the head with the tree size in one round trip (pipeline
        mode: three statements sent together, run in order; the head is read by a statement of its
        own, after the lock is granted, so it sees what the previous holder committed)."""
        db = self.database
        if db.transaction_depth() > 0:
            with self._begin_write():
                yield None
            return
        txn = db.transaction()
        lid = self.ledger_id
        try:
            with db.connection().pipeline():
                db.begin()
                lock = db.execute_sql(self._sql["lock"], (lid,))
                state = db.execute_sql(self._sql["state"], (lid, lid))
            locked, row = lock.fetchone(), state.fetchone()
        except BaseException:
            with contextlib.suppress(*self._errors):
                db.rollback()
            raise
        db.push_transaction(txn)  # peewee's stack: nested atomic() blocks become savepoints
        try:
            if locked is None:  # no row to lock yet (a ledger from before the ledgers table): make it
                self._lock_ledger()
                row = db.execute_sql(self._sql["state"], (lid, lid)).fetchone()
            state_read = self._parse_state(row)
        except BaseException as exc:
            txn.__exit__(type(exc), exc, exc.__traceback__)
            raise
        try:
            yield state_read
        except BaseException as exc:
            txn.__exit__(type(exc), exc, exc.__traceback__)  # pops it and rolls back
            raise
        txn.__exit__(None, None, None)  # pops it and commits

    def _write_tail(
        self, rows: list[tuple[Any, ...]], size: int | None, nodes: Sequence[tuple[NodeKey, bytes]]
    ) -> None:
        """The entry rows, the tree's nodes and its size, sent with the COMMIT that follows (one
        round trip, :meth:`NucleusPool.hold_pipeline
        <nucleus_storage_postgres.connection.NucleusPool.hold_pipeline>`); inside a savepoint
        (a nested write) one after the other. A record id stored already fails the COMMIT's round
        trip with a unique violation, raised as :class:`~nucleus_core.errors.DuplicateRecordError`
        (:meth:`_classify_error`)."""
        db = self.database
        if db.transaction_depth() == 1 and isinstance(db, NucleusPool):
            db.hold_pipeline()
        if len(rows) == 1 and size is not None and all(level < self._tree.min_level for (level, _), _ in nodes):
            # The common append (one entry, no stored node completed): the entry and the tree size
            # in one statement, which the server runs as one (a data-modifying WITH).
            sql = self._sql.get("insert+size")
            if sql is None:
                sql = self._sql["insert+size"] = f"WITH e AS ({self._sql['insert']}) {self._tree.set_size_sql}"
            db.cursor().execute(sql, (*rows[0], self.ledger_id, size))
            return
        super()._write_tail(rows, size, nodes)

    def _classify_error(self, err: BaseException, action: str) -> StorageError:
        driver = driver_error(err)
        if isinstance(driver, psycopg.errors.UniqueViolation) and self._ledger_id is not None:
            record_id = _duplicate_record_id(driver, self._ledger_id)
            if record_id is not None:
                return DuplicateRecordError(record_id)
        return translate(err, action, self.url)

    # connections ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def connection(self) -> Iterator[None]:
        """Hold a pooled connection for the duration of the block (nested blocks share it).

        Plugins that query :attr:`database` directly (outside :meth:`write`) wrap their work in it,
        so the connection goes back to the pool afterwards instead of staying with the thread.
        """
        db = self.database
        try:
            ctx = db.connection_context()
            ctx.__enter__()
        except MaxConnectionsExceeded as err:
            raise StorageUnavailableError(
                f"PostgreSQL at {self.url}: all {self._pool_size} pooled connections stayed in use for "
                f"{self._pool_timeout:g} s (raise pool_size or pool_timeout)"
            ) from err
        except self._errors as err:
            raise self._wrap(err, "connecting") from err
        try:
            yield
        finally:
            with contextlib.suppress(*self._errors):
                ctx.__exit__(None, None, None)

    def _read_context(self) -> contextlib.AbstractContextManager[Any]:
        return self.connection()

    def _lock_ledger(self) -> None:
        """Take this ledger's append lock (its row in ``nucleus_ledgers``), creating the row if missing."""
        db = self.database
        sql = self._sql["lock"]
        if db.execute_sql(sql, (self.ledger_id,)).fetchone() is None:
            db.execute_sql(self._sql["add_ledger"], (self.ledger_id, int(time.time() * 1000)))
            if db.execute_sql(sql, (self.ledger_id,)).fetchone() is None:
                raise StorageError(f"PostgreSQL at {self.url}: could not lock ledger {self.ledger_id!r}")

    def _prepare_statements(self) -> None:
        super()._prepare_statements()
        table = self._quote(self._ledgers_table)
        cols = self.entry_columns_sql()
        entries = self._quote(self._entries_table)
        # Only table and column names are interpolated, all validated identifiers; values are parameters.
        self._sql.update(
            lock=f'SELECT 1 FROM {table} WHERE "ledger_id" = %s FOR UPDATE',  # noqa: S608
            add_ledger=f'INSERT INTO {table} ("ledger_id", "created_ms") VALUES (%s, %s) ON CONFLICT DO NOTHING',  # noqa: S608
            stream=f'SELECT {cols} FROM {entries} WHERE "ledger_id" = %s AND "seq" >= %s ORDER BY "seq"',  # noqa: S608
            # One statement per batch whatever its size, probing the unique (ledger_id, record_id)
            # index with an array. A long IN list was planned as a bitmap scan of all the ledger's
            # rows while the statistics were stale (a new or fast-growing ledger); an unnest join
            # got a generic plan scanning the table once psycopg prepared it (after 5 executions).
            ids=f'SELECT "record_id" FROM {entries} WHERE "record_id" = ANY(%s) AND "ledger_id" = %s',  # noqa: S608
        )

    def _insert_rows(self, rows: list[tuple[Any, ...]]) -> None:
        # No savepoint (two round trips per append): the ledger checked the ids inside this locked
        # transaction already, so a unique violation is a rare race with a writer that ignores the
        # lock. The aborted transaction is rolled back by the caller; the duplicate id is named from
        # the server's error detail.
        cursor = self.database.cursor()
        try:
            if len(rows) == 1:
                cursor.execute(self._sql["insert"], rows[0])
            else:
                cursor.executemany(self._sql["insert"], rows)
        except psycopg.errors.UniqueViolation as err:
            record_id = _duplicate_record_id(err, self.ledger_id)
            if record_id is not None:
                raise DuplicateRecordError(record_id) from None  # expected: one clear error
            constraint = err.diag.constraint_name
            raise ConflictError(f"insert: refused by a unique constraint ({constraint}); nothing was written") from err

    def _find_record_ids(self, unique_ids: list[str]) -> set[str]:
        ids = [r for r in unique_ids if "\x00" not in r]  # PostgreSQL text cannot hold NUL: such ids are absent
        if not ids:
            return set()
        cursor = self._execute(self._sql["ids"], (ids, self.ledger_id))
        return {r for (r,) in cursor.fetchall()}

    def _ensure_ledgers_table(self) -> None:
        db = self.database
        table = self._quote(self._ledgers_table)
        # A model class built per database: mypy cannot see its fields.
        sv: Any = self.models.schema_version
        if not db.table_exists(self._ledgers_table):
            self._created_tables.append(self._ledgers_table)
        with self._begin_schema():
            db.execute_sql(
                f"CREATE TABLE IF NOT EXISTS {table} "
                '("ledger_id" VARCHAR(128) PRIMARY KEY, "created_ms" BIGINT NOT NULL)'
            )
            (
                sv.insert(component=LEDGERS_COMPONENT, version=LEDGERS_VERSION)
                .on_conflict(conflict_target=[sv.component], preserve=[sv.version])
                .execute()
            )

    # lifecycle --------------------------------------------------------------------------------
    def open(self, ledger_id: str, *, read_only: bool = False, create: bool = True) -> None:
        """Connect, create or migrate the tables (under the schema lock) and register ``ledger_id``
        (with ``create`` false: nothing is created, the ledger must exist). ``read_only``: every
        connection is a read-only session (``default_transaction_read_only``), so the server itself
        refuses any write."""
        if read_only:
            extra = "-c default_transaction_read_only=on"
            current = self._connect.get("options")
            self._connect["options"] = f"{current} {extra}" if current else extra
        try:
            super().open(ledger_id, read_only=read_only, create=create)
        finally:
            # The base held this thread's pooled connection while opening; give it back.
            if self._database is not None:
                with contextlib.suppress(*self._errors):
                    self._database.close()

    def ledger_ids(self) -> tuple[str, ...]:
        with self.connection():
            return super().ledger_ids()

    def discard(self) -> None:
        """Close, removing what :meth:`open` created (see the base class); a schema this open may have
        created goes too when nothing is left in it."""
        if self._database is not None and not self._closed:
            with self.connection(), contextlib.suppress(*self._errors):
                self._remove_created()
                if self._created_schema and self._schema is not None:
                    # RESTRICT (the default): refused, and kept, when anything is left in the schema.
                    with self.database.atomic():
                        self.database.execute_sql(f'DROP SCHEMA IF EXISTS "{self._schema}"')
        self.close()

    def close(self) -> None:
        """Close every pooled connection. Idempotent."""
        database = self._database
        super().close()
        if database is not None:
            with contextlib.suppress(*self._errors):
                database.close_all()  # type: ignore[attr-defined]

    # every operation holds a pooled connection only while it runs -----------------------------
    @contextlib.contextmanager
    def write(self) -> Iterator[SqlWriteTransaction]:
        """The exclusive write transaction of this ledger (see the module docstring)."""
        with self.connection(), super().write() as tx:
            yield tx

    def ensure_tables(self, models: Sequence[type[peewee.Model]]) -> None:
        """Bind a plugin's model classes to :attr:`database` and create their tables (in :attr:`schema`)."""
        with self.connection():
            super().ensure_tables(models)

    def _fetch(self, query: peewee.Select, action: str) -> list[Entry]:
        with self.connection():
            return super()._fetch(query, action)

    def _fetch_raw(self, sql: str, params: Sequence[Any], action: str) -> list[Entry]:
        # Every entry read of the base (lookups, range, query) goes through here: hold a pooled
        # connection only while it runs.
        with self.connection():
            return super()._fetch_raw(sql, params, action)

    # PostgreSQL text cannot hold NUL; no record id, stream or hash contains one, so such a value
    # matches nothing (it is answered here instead of failing in the driver).
    def query(self, query: StorageQuery) -> list[Entry]:
        """Entries matching ``query`` in ascending seq order, at most ``query.limit``."""
        if query.record_ids is not None:
            ids = tuple(r for r in query.record_ids if "\x00" not in r)
            if not ids:
                return []
            query = attrs.evolve(query, record_ids=ids)
        if query.streams is not None and any("\x00" in s for s in query.streams):
            query = attrs.evolve(query, streams=tuple(s for s in query.streams if "\x00" not in s))
            if not query.streams:
                return []
        return super().query(query)

    def get_by_id(self, record_id: str) -> Entry | None:
        """The entry of this record id, or None."""
        return None if "\x00" in record_id else super().get_by_id(record_id)

    def get_by_hash(self, entry_hash: str) -> Entry | None:
        """The entry with this hash, or None."""
        return None if "\x00" in entry_hash else super().get_by_hash(entry_hash)

    def head(self) -> ChainHead | None:
        """The last committed entry of this ledger."""
        with self.connection():
            return super().head()

    def count(self) -> int:
        """Number of stored entries of this ledger."""
        with self.connection():
            return super().count()

    @property
    def schema_version(self) -> int:
        """The schema version stored in the database."""
        with self.connection():
            return super().schema_version

    def iter_entry_rows(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[tuple[Any, ...]]:
        """Every entry with ``seq >= from_seq`` in seq order as row tuples, streamed through a
        server-side cursor (:meth:`iter_entries` builds its entries from these; verification reads
        the tuples directly).

        Runs on a dedicated connection in one ``REPEATABLE READ READ ONLY`` transaction, taken when
        iteration starts: it sees one consistent snapshot, holds ``iter_batch_size`` rows in memory
        at a time, and never ties up the pool or the caller's own transaction. ``to_seq``: stop after
        that seq (one chunk of parallel verification).
        """
        ledger_id = self.ledger_id
        sql = self._sql["stream"]
        size = self._iter_batch
        try:
            conn = psycopg.connect(**self._connect)
        except psycopg.Error as err:
            raise self._wrap(err, "connecting to stream entries") from err
        try:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            with conn.cursor(name="nucleus_iter_entries") as cur:
                cur.execute(sql, (ledger_id, max(from_seq, 1)))
                while True:
                    rows = cur.fetchmany(size)
                    if not rows:
                        break
                    if to_seq is not None and rows[-1][0] > to_seq:
                        yield from (row for row in rows if row[0] <= to_seq)
                        break
                    yield from rows
        except psycopg.Error as err:
            raise self._wrap(err, "streaming entries") from err
        finally:
            with contextlib.suppress(psycopg.Error):
                conn.close()


def postgres_storage(dsn: str, **options: Any) -> PostgresStorage:
    """An unopened PostgreSQL backend for ``dsn`` (options: see :class:`PostgresStorage`).

    Pass it as ``create_ledger(id=..., storage=postgres_storage("postgresql://..."))``.
    """
    return PostgresStorage(dsn, **_check_options(options))


OPTIONS = frozenset(
    {
        "schema",
        "pool_size",
        "pool_timeout",
        "stale_timeout",
        "connect_timeout",
        "application_name",
        "iter_batch_size",
        "entries_table",
        "schema_table",
    }
)
"""Option names :class:`PostgresStorage` accepts (``storage_options`` of a ledger configuration)."""


def _check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - OPTIONS)
    if unknown:
        raise ConfigurationError(
            f"storage_options: unknown PostgreSQL option(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(sorted(OPTIONS))}"
        )
    return dict(options)


def _duplicate_record_id(err: psycopg.errors.UniqueViolation, ledger_id: str) -> str | None:
    """The record id named by a unique violation on (ledger_id, record_id), else None.

    The server's detail reads ``Key (ledger_id, record_id)=(<ledger id>, <record id>) already exists.``
    """
    detail = err.diag.message_detail or ""
    head = f"=({ledger_id}, "
    if "record_id" not in detail.split("=", 1)[0] or head not in detail or not detail.endswith(") already exists."):
        return None
    return detail[detail.index(head) + len(head) : -len(") already exists.")]
