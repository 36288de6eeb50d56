"""The mark of an import that is not finished yet (``nucleus import``, :mod:`nucleus_core.importing`).

An import is two steps: the entries are written in one storage transaction
(:func:`~nucleus_core.importing.import_entries`), then the ledger is opened with its plugins in the
rebuild mode (``rebuild_state``), which builds their state from the chain, and verified in full
(:func:`~nucleus_core.importing.finish_import`). The first step writes this mark in its own
transaction, with the entries; the second removes it once verification passed. An ordinary open of
a ledger that holds the mark is refused (:func:`refuse_unfinished_import`), telling how to finish:
the plugins' state (grants, API keys, ...) was never built for those entries.

The mark is kept beside the ledger: a row of the table ``nucleus_import_pending`` in the storage's
SQL database (:class:`~nucleus_core.capabilities.SqlDatabaseStorage`; the table exists only where an
import ran), or in the extensions of a storage in memory
(:class:`~nucleus_core.capabilities.ExtensionStorage`).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable
from typing import Any

from .capabilities import ExtensionStorage, PooledConnectionStorage, RollbackTransaction, SqlDatabaseStorage
from .errors import ConfigurationError, ConflictError
from .plugin_store import SqlPluginStore
from .storage import StorageBackend, WriteTransaction

__all__ = [
    "FINISH_HINT",
    "PENDING_TABLE",
    "clear_import_pending",
    "import_pending",
    "prepare_import_mark",
    "refuse_unfinished_import",
]

PENDING_TABLE = "nucleus_import_pending"
MEMORY_KEY = "nucleus_import_pending"

FINISH_HINT = (
    "finish it with 'nucleus import --finish' and the options of the import (the ledger's configuration "
    "and plugins; Python: nucleus_core.importing.finish_import), which builds the plugins' state from the "
    "chain and verifies the whole ledger"
)


def _model(database: Any) -> Any:
    import peewee

    class ImportPending(peewee.Model):
        ledger_id = peewee.CharField(max_length=255, primary_key=True)
        source = peewee.TextField()
        started_at = peewee.FloatField()

        class Meta:
            table_name = PENDING_TABLE

    ImportPending.bind(database)
    return ImportPending


class _PendingStore(SqlPluginStore):
    label = "import state"
    make_model = staticmethod(_model)

    def put(self, source: str) -> None:
        self._run(
            "marking the import unfinished",
            lambda: self._model.insert(ledger_id=self._ledger_id, source=source, started_at=time.time()).execute(),
        )

    def get(self) -> str | None:
        m = self._model
        row = self._run("reading the import state", lambda: m.get_or_none(m.ledger_id == self._ledger_id), read=True)
        return None if row is None else str(row.source)

    def delete(self) -> None:
        m = self._model
        self._run("marking the import finished", lambda: m.delete().where(m.ledger_id == self._ledger_id).execute())


def _connection(storage: object) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    return storage.connection if isinstance(storage, PooledConnectionStorage) else contextlib.nullcontext


def _sql_store(storage: SqlDatabaseStorage, ledger_id: str) -> _PendingStore:
    return _PendingStore(
        storage.database, ledger_id, ensure_tables=storage.ensure_tables, connection=_connection(storage)
    )


def _forget(marks: dict[str, str], ledger_id: str) -> None:
    marks.pop(ledger_id, None)


def _memory(storage: StorageBackend) -> dict[str, str] | None:
    if isinstance(storage, ExtensionStorage) and not storage.persistent:
        marks: dict[str, str] = storage.extensions.setdefault(MEMORY_KEY, {})
        return marks
    return None


def prepare_import_mark(storage: StorageBackend, ledger_id: str) -> Callable[[WriteTransaction, str], None]:
    """Before the import's write transaction (a table is created in its own): how to mark
    ``ledger_id`` inside it as holding an unfinished import of a source (committed or rolled back
    with the entries). Refuses storage that can keep no mark."""
    marks = _memory(storage)
    if marks is not None:
        held = marks

        def in_memory(tx: WriteTransaction, source: str) -> None:
            held[ledger_id] = source
            if isinstance(tx, RollbackTransaction):
                tx.on_rollback(functools.partial(_forget, held, ledger_id))

        return in_memory
    if not isinstance(storage, SqlDatabaseStorage):
        raise ConfigurationError(
            f"storage {storage.url} can keep no mark of an unfinished import (neither an SQL database nor memory)"
        )
    store = _sql_store(storage, ledger_id)
    return lambda _tx, source: store.put(source)


def import_pending(storage: StorageBackend, ledger_id: str) -> str | None:
    """The source of the unfinished import into ``ledger_id`` (open storage), or None. Creates nothing."""
    marks = _memory(storage)
    if marks is not None:
        return marks.get(ledger_id)
    if not isinstance(storage, SqlDatabaseStorage):
        return None
    with _connection(storage)():
        if not storage.database.table_exists(PENDING_TABLE):
            return None
    return _sql_store(storage, ledger_id).get()


def clear_import_pending(storage: StorageBackend, ledger_id: str) -> None:
    """Remove the mark (the import finished: its plugins' state is built and it verified)."""
    marks = _memory(storage)
    if marks is not None:
        marks.pop(ledger_id, None)
    elif isinstance(storage, SqlDatabaseStorage) and import_pending(storage, ledger_id) is not None:
        _sql_store(storage, ledger_id).delete()


def refuse_unfinished_import(storage: StorageBackend, ledger_id: str) -> None:
    """Raise :class:`ConflictError` when ``ledger_id`` holds an unfinished import (an ordinary open)."""
    source = import_pending(storage, ledger_id)
    if source is not None:
        raise ConflictError(
            f"ledger {ledger_id!r} at {storage.url} holds an unfinished import (of {source}): its entries were "
            "written, but the state its plugins derive from the chain was not built and the ledger was not "
            f"verified with them; {FINISH_HINT}. Nothing was opened"
        )
