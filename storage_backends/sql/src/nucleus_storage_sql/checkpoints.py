"""The signed checkpoints of a ledger in its SQL database (SQLite or PostgreSQL): the
:class:`~nucleus_core.capabilities.CheckpointStore` that :meth:`SqlStorageBackend.checkpoint_store`
hands out.

One table beside the entries, keyed by ledger id like them, created (if missing) when a backend
opens writable::

    nucleus_checkpoints (ledger_id VARCHAR(128), tree_size BIGINT, note TEXT, created_ms BIGINT)
    primary key (ledger_id, tree_size)

A note is the signed note's text, verbatim. :meth:`SqlCheckpointStore.put` runs in the backend's
exclusive write transaction (the one appends take), so "the first checkpoint of a size stays" and
"no smaller size after a larger one" hold across processes. Statements are raw SQL with bound
values; the identifiers are fixed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from nucleus_core.capabilities import PooledConnectionStorage
from nucleus_core.checkpoints import check_checkpoint_put
from nucleus_core.errors import ConflictError

if TYPE_CHECKING:
    from .backend import SqlStorageBackend

CHECKPOINTS_TABLE = "nucleus_checkpoints"


def create_checkpoints_table(storage: SqlStorageBackend) -> bool:
    """Create the checkpoints table unless it exists (in the schema transaction); True when created."""
    db = storage.database
    if db.table_exists(CHECKPOINTS_TABLE):
        return False
    q = storage._quote
    with storage._begin_schema():
        db.execute_sql(
            f"CREATE TABLE IF NOT EXISTS {q(CHECKPOINTS_TABLE)} ({q('ledger_id')} VARCHAR(128) NOT NULL, "
            f"{q('tree_size')} BIGINT NOT NULL, {q('note')} TEXT NOT NULL, {q('created_ms')} BIGINT NOT NULL, "
            f"PRIMARY KEY ({q('ledger_id')}, {q('tree_size')}))"
        )
    return True


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

    def _read(self, key: str, params: Sequence[Any], action: str) -> Any:
        storage = self._storage
        try:
            with self._connection():
                if not storage.database.table_exists(CHECKPOINTS_TABLE):
                    return None  # a database opened read-only before the table existed holds none
                return storage.database.execute_sql(self._sql[key], params).fetchone()
        except storage._errors as err:
            raise storage._wrap(err, action) from err

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
