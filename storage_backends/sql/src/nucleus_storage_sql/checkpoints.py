"""The signed checkpoints of a ledger in its SQL database (SQLite or PostgreSQL): the
:class:`~nucleus_core.capabilities.CheckpointStore` that :meth:`SqlStorageBackend.checkpoint_store`
hands out.

One table beside the entries, keyed by ledger id like them, created (if missing) when a backend
opens writable::

    nucleus_checkpoints (ledger_id VARCHAR(128), tree_size BIGINT, note TEXT, created_ms BIGINT)
    primary key (ledger_id, tree_size)

A note is the signed note's text, verbatim. :meth:`SqlCheckpointStore.put` runs in the backend's
exclusive write transaction (the one appends take), so "the first checkpoint of a size stays" and
"no smaller size after a larger one" hold across processes.

The witnesses' cosignatures of those checkpoints (:class:`~nucleus_core.capabilities.CosignatureStore`,
written by :mod:`nucleus_core.witnessing` once verified) are a second table, one row per
checkpoint and witness (its verifier key), the signature line verbatim::

    nucleus_cosignatures (ledger_id VARCHAR(128), tree_size BIGINT, witness TEXT, line TEXT, created_ms BIGINT)
    primary key (ledger_id, tree_size, witness)

It is created like the first (a database from before it gets it when opened writable). Statements
are raw SQL with bound values; the identifiers are fixed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

from nucleus_core.capabilities import PooledConnectionStorage
from nucleus_core.checkpoints import check_checkpoint_put, check_cosignature_put, check_cosigned_count
from nucleus_core.errors import ConflictError, NotFoundError

if TYPE_CHECKING:
    from .backend import SqlStorageBackend

CHECKPOINTS_TABLE = "nucleus_checkpoints"
COSIGNATURES_TABLE = "nucleus_cosignatures"


def _create_table(storage: SqlStorageBackend, table: str, columns: str) -> bool:
    """Create ``table`` with ``columns`` (SQL) unless it exists, in the schema transaction; True when created."""
    db = storage.database
    if db.table_exists(table):
        return False
    with storage._begin_schema():
        db.execute_sql(f"CREATE TABLE IF NOT EXISTS {storage._quote(table)} ({columns})")
    return True


def create_checkpoints_table(storage: SqlStorageBackend) -> bool:
    """Create the checkpoints table unless it exists (in the schema transaction); True when created."""
    q = storage._quote
    return _create_table(
        storage, CHECKPOINTS_TABLE,
        f"{q('ledger_id')} VARCHAR(128) NOT NULL, {q('tree_size')} BIGINT NOT NULL, {q('note')} TEXT NOT NULL, "
        f"{q('created_ms')} BIGINT NOT NULL, PRIMARY KEY ({q('ledger_id')}, {q('tree_size')})",
    )


def create_cosignatures_table(storage: SqlStorageBackend) -> bool:
    """Create the cosignatures table unless it exists (in the schema transaction); True when created."""
    q = storage._quote
    return _create_table(
        storage, COSIGNATURES_TABLE,
        f"{q('ledger_id')} VARCHAR(128) NOT NULL, {q('tree_size')} BIGINT NOT NULL, {q('witness')} TEXT NOT NULL, "
        f"{q('line')} TEXT NOT NULL, {q('created_ms')} BIGINT NOT NULL, "
        f"PRIMARY KEY ({q('ledger_id')}, {q('tree_size')}, {q('witness')})",
    )


class SqlCheckpointStore:
    """The checkpoints of the ledger ``storage`` is open for (see the module docstring)."""

    def __init__(self, storage: SqlStorageBackend) -> None:
        self._storage = storage
        self._connection: Callable[[], contextlib.AbstractContextManager[Any]] = (
            storage.connection if isinstance(storage, PooledConnectionStorage) else contextlib.nullcontext
        )
        db = storage.database
        q, p = storage._quote, db.param
        table, lid, size, note = q(CHECKPOINTS_TABLE), q("ledger_id"), q("tree_size"), q("note")
        self._sql = {
            "get": f"SELECT {note} FROM {table} WHERE {lid} = {p} AND {size} = {p}",  # noqa: S608 - fixed names
            "latest": f"SELECT {size}, {note} FROM {table} WHERE {lid} = {p} ORDER BY {size} DESC LIMIT 1",  # noqa: S608
            "insert": f"INSERT INTO {table} ({lid}, {size}, {note}, {q('created_ms')}) VALUES ({p}, {p}, {p}, {p})",  # noqa: S608
        }
        cosig, witness, line = q(COSIGNATURES_TABLE), q("witness"), q("line")
        self._cosig_sql = {
            "get": f"SELECT {line} FROM {cosig} WHERE {lid} = {p} AND {size} = {p} AND {witness} = {p}",  # noqa: S608
            "insert": (
                f"INSERT INTO {cosig} ({lid}, {size}, {witness}, {line}, {q('created_ms')}) "  # noqa: S608
                f"VALUES ({p}, {p}, {p}, {p}, {p})"
            ),
            "of_size": f"SELECT {witness}, {line} FROM {cosig} WHERE {lid} = {p} AND {size} = {p}",  # noqa: S608
            "sizes": f"SELECT {witness}, MAX({size}) FROM {cosig} WHERE {lid} = {p} GROUP BY {witness}",  # noqa: S608
        }
        self._latest_cosigned = (
            f"SELECT {size} FROM {cosig} WHERE {lid} = {p} AND {witness} IN ({{witnesses}}) "  # noqa: S608
            f"GROUP BY {size} HAVING COUNT(*) >= {p} ORDER BY {size} DESC LIMIT 1"
        )

    def _query(self, table: str, sql: str, params: Sequence[Any], action: str, *, rows: bool = False) -> Any:
        storage = self._storage
        try:
            with self._connection():
                if not storage.database.table_exists(table):
                    # A database opened read-only before the table existed holds none.
                    return [] if rows else None
                cursor = storage.database.execute_sql(sql, params)
                return cursor.fetchall() if rows else cursor.fetchone()
        except storage._errors as err:
            raise storage._wrap(err, action) from err

    def _read(self, key: str, params: Sequence[Any], action: str) -> Any:
        return self._query(CHECKPOINTS_TABLE, self._sql[key], params, action)

    def put(self, size: int, note: str) -> str:
        check_checkpoint_put(size, note)
        storage = self._storage
        lid = storage.ledger_id
        with storage.write():
            db = storage.database
            row = db.execute_sql(self._sql["get"], (lid, size)).fetchone()
            if row is not None:
                return str(row[0])
            latest = db.execute_sql(self._sql["latest"], (lid,)).fetchone()
            if latest is not None and int(latest[0]) > size:
                raise ConflictError(f"a checkpoint was stored at size {int(latest[0])}, larger than {size}")
            db.execute_sql(self._sql["insert"], (lid, size, note, int(time.time() * 1000)))
        return note

    def get(self, size: int) -> str | None:
        if type(size) is not int or size < 0:
            return None
        row = self._read("get", (self._storage.ledger_id, size), "reading a checkpoint")
        return None if row is None else str(row[0])

    def latest(self) -> tuple[int, str] | None:
        row = self._read("latest", (self._storage.ledger_id,), "reading the latest checkpoint")
        return None if row is None else (int(row[0]), str(row[1]))

    def put_cosignature(self, size: int, witness: str, line: str) -> bool:
        check_cosignature_put(size, witness, line)
        storage = self._storage
        lid = storage.ledger_id
        with storage.write():
            db = storage.database
            if db.execute_sql(self._sql["get"], (lid, size)).fetchone() is None:
                raise NotFoundError(f"no checkpoint is stored at size {size}")
            if db.execute_sql(self._cosig_sql["get"], (lid, size, witness)).fetchone() is not None:
                return False
            db.execute_sql(self._cosig_sql["insert"], (lid, size, witness, line, int(time.time() * 1000)))
        return True

    def cosignatures(self, size: int) -> dict[str, str]:
        if type(size) is not int or size < 0:
            return {}
        found = self._query(
            COSIGNATURES_TABLE, self._cosig_sql["of_size"], (self._storage.ledger_id, size),
            "reading a checkpoint's cosignatures", rows=True,
        )
        return {str(witness): str(line) for witness, line in found}

    def cosigned_sizes(self) -> dict[str, int]:
        found = self._query(
            COSIGNATURES_TABLE, self._cosig_sql["sizes"], (self._storage.ledger_id,),
            "reading the sizes witnesses cosigned", rows=True,
        )
        return {str(witness): int(size) for witness, size in found}

    def latest_cosigned(self, witnesses: Collection[str], count: int) -> int | None:
        check_cosigned_count(count)
        names = sorted(set(witnesses))
        if len(names) < count:
            return None
        marks = ", ".join([self._storage.database.param] * len(names))
        row = self._query(
            COSIGNATURES_TABLE, self._latest_cosigned.format(witnesses=marks),
            (self._storage.ledger_id, *names, count), "reading the latest cosigned checkpoint",
        )
        return None if row is None else int(row[0])
