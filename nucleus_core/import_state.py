"""The mark of an import that is not finished yet (``nucleus import``, :mod:`nucleus_core.importing`).

An import is two steps: the entries are written in one storage transaction
(:func:`~nucleus_core.importing.import_entries`), then the ledger is opened with its plugins in the
rebuild mode (``rebuild_state``), which builds their state from the chain, and verified in full
(:func:`~nucleus_core.importing.finish_import`). The first step writes this mark in its own
transaction, with the entries; the second removes it once verification passed. An ordinary open of
a ledger that holds the mark is refused (:func:`refuse_unfinished_import`), telling how to finish:
the plugins' state (grants, API keys, ...) was never built for those entries. The mark records what
the import wrote (the chain's head hash and size): finishing refuses a ledger whose chain does not
end exactly there (:func:`check_import_head`). The mark is an operator aid, not a security boundary:
an ordinary open looks at it only after the chain verified.

The mark is kept beside the ledger: a row of the table ``nucleus_import_pending`` in the storage's
SQL database (:class:`~nucleus_core.capabilities.SqlDatabaseStorage`; the table exists only where an
import ran), or in the extensions of a storage in memory
(:class:`~nucleus_core.capabilities.ExtensionStorage`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

import attrs

from .capabilities import ExtensionStorage, PooledConnectionStorage, RollbackTransaction, SqlDatabaseStorage
from .errors import ConfigurationError, ConflictError, IntegrityError
from .plugin_store import SqlPluginStore
from .storage import StorageBackend, WriteTransaction

__all__ = [
    "FINISH_HINT",
    "PENDING_TABLE",
    "ImportMark",
    "check_import_head",
    "import_mark",
    "clear_import_pending",
    "import_pending",
    "prepare_import_mark",
    "rebuild_found_differences",
    "refuse_unfinished_import",
]

_log = logging.getLogger("nucleus_core.importing")

PENDING_TABLE = "nucleus_import_pending"


@attrs.frozen(kw_only=True)
class ImportMark:
    """The mark of an unfinished import: its ``source`` (the file's name) and what it wrote, the
    chain's ``head`` hash and ``size`` (None in a mark written before they were recorded)."""

    source: str
    head: str | None
    size: int | None

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
        # What the import wrote: the chain's head hash and size (NULL in a mark written before
        # they were recorded: such a mark cannot be finished, see check_import_head).
        head = peewee.CharField(max_length=64, null=True)
        size = peewee.BigIntegerField(null=True)

        class Meta:
            table_name = PENDING_TABLE

    ImportPending.bind(database)
    return ImportPending


class _PendingStore(SqlPluginStore):
    label = "import state"
    make_model = staticmethod(_model)

    def put(self, mark: ImportMark) -> None:
        self._run(
            "marking the import unfinished",
            lambda: self._model.insert(
                ledger_id=self._ledger_id, source=mark.source, started_at=time.time(), head=mark.head, size=mark.size
            ).execute(),
        )

    def get(self) -> ImportMark | None:
        m = self._model
        row = self._run("reading the import state", lambda: m.get_or_none(m.ledger_id == self._ledger_id), read=True)
        if row is None:
            return None
        return ImportMark(source=str(row.source), head=row.head, size=None if row.size is None else int(row.size))

    def delete(self) -> None:
        m = self._model
        self._run("marking the import finished", lambda: m.delete().where(m.ledger_id == self._ledger_id).execute())


def _connection(storage: object) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    return storage.connection if isinstance(storage, PooledConnectionStorage) else contextlib.nullcontext


def _sql_store(storage: SqlDatabaseStorage, ledger_id: str) -> _PendingStore:
    return _PendingStore(
        storage.database, ledger_id, ensure_tables=storage.ensure_tables, connection=_connection(storage)
    )


def _forget(marks: dict[str, ImportMark], ledger_id: str) -> None:
    marks.pop(ledger_id, None)


def _memory(storage: StorageBackend) -> dict[str, ImportMark] | None:
    if isinstance(storage, ExtensionStorage) and not storage.persistent:
        marks: dict[str, ImportMark] = storage.extensions.setdefault(MEMORY_KEY, {})
        return marks
    return None


def prepare_import_mark(storage: StorageBackend, ledger_id: str) -> Callable[[WriteTransaction, ImportMark], None]:
    """Before the import's write transaction (a table is created in its own): how to mark
    ``ledger_id`` inside it as holding an unfinished import (committed or rolled back with the
    entries). Refuses storage that can keep no mark."""
    marks = _memory(storage)
    if marks is not None:
        held = marks

        def in_memory(tx: WriteTransaction, mark: ImportMark) -> None:
            held[ledger_id] = mark
            if isinstance(tx, RollbackTransaction):
                tx.on_rollback(functools.partial(_forget, held, ledger_id))

        return in_memory
    if not isinstance(storage, SqlDatabaseStorage):
        raise ConfigurationError(
            f"storage {storage.url} can keep no mark of an unfinished import (neither an SQL database nor memory)"
        )
    store = _sql_store(storage, ledger_id)
    return lambda _tx, mark: store.put(mark)


def import_pending(storage: StorageBackend, ledger_id: str) -> str | None:
    """The source of the unfinished import into ``ledger_id`` (open storage), or None. Creates nothing."""
    mark = import_mark(storage, ledger_id)
    return None if mark is None else mark.source


def import_mark(storage: StorageBackend, ledger_id: str) -> ImportMark | None:
    """The mark of the unfinished import into ``ledger_id`` (open storage), or None. Creates nothing."""
    marks = _memory(storage)
    if marks is not None:
        return marks.get(ledger_id)
    if not isinstance(storage, SqlDatabaseStorage):
        return None
    with _connection(storage)():
        database = storage.database
        if not database.table_exists(PENDING_TABLE):
            return None
        present = {column.name for column in database.get_columns(PENDING_TABLE)}
        if not {"head", "size"} <= present:
            # A table of the first version of the mark: read as it is. Every ordinary open reads the
            # mark, and one that cannot write (a read replica, a read-only file) must not have to
            # add the columns first; the next import's write adds them.
            cursor = database.execute_sql(
                f"SELECT source FROM {PENDING_TABLE} WHERE ledger_id = {database.param}",  # noqa: S608 - a constant
                (ledger_id,),
            )
            row = cursor.fetchone()
            return None if row is None else ImportMark(source=str(row[0]), head=None, size=None)
    return _sql_store(storage, ledger_id).get()


def clear_import_pending(storage: StorageBackend, ledger_id: str) -> None:
    """Remove the mark (the import finished: its plugins' state is built and it verified)."""
    marks = _memory(storage)
    if marks is not None:
        marks.pop(ledger_id, None)
    elif isinstance(storage, SqlDatabaseStorage) and import_pending(storage, ledger_id) is not None:
        _sql_store(storage, ledger_id).delete()


def check_import_head(storage: StorageBackend, ledger_id: str, mark: ImportMark) -> None:
    """Refuse (:class:`ConflictError`) to finish an import whose ledger's chain does not end exactly
    where the import wrote it (``mark.head`` at ``mark.size``): a ledger that grew after the mark
    was written, or a mark not written by an import, is not an unfinished import."""
    found = storage.head()
    at = f"seq {found.seq} (head {found.hash})" if found is not None else "no entry"
    if mark.head is None or mark.size is None:
        # A mark of the first version (it recorded no head): finishing is still guarded by the
        # plugins' comparison of the state they hold with the chain (rebuild_refuses_differences).
        _log.warning(
            "ledger %r: the mark of its unfinished import records no head (written before marks recorded one); "
            "finishing it with the chain as it is, at %s", ledger_id, at,
        )
        return
    if found is None or found.seq != mark.size or found.hash != mark.head:
        why = f"the import wrote up to seq {mark.size} (head {mark.head}), the chain ends at {at}"
    else:
        return
    raise ConflictError(
        f"ledger {ledger_id!r} at {storage.url} is not an unfinished import: {why}. A mark of an unfinished "
        "import on a ledger in service is not an import's: nothing was changed (see the import section of "
        "docs/OPERATIONS.md)"
    )


def refuse_unfinished_import(storage: StorageBackend, ledger_id: str) -> None:
    """Raise :class:`ConflictError` when ``ledger_id`` holds an unfinished import (an ordinary open)."""
    source = import_pending(storage, ledger_id)
    if source is not None:
        raise ConflictError(
            f"ledger {ledger_id!r} at {storage.url} holds an unfinished import (of {source}): its entries were "
            "written, but the state its plugins derive from the chain was not built and the ledger was not "
            f"verified with them; {FINISH_HINT}. Nothing was opened"
        )


def rebuild_found_differences(ledger: Any, plugin: str, detail: str) -> None:
    """What a plugin calls in the rebuild mode (``ledger.rebuilding``) when it finds state of its own
    for the ledger that differs from the chain, before changing anything: ``detail`` says what
    would be replaced (how many rows) and the first difference. Finishing an import
    (``rebuild_refuses_differences``: an import wrote into an empty ledger, so its plugins' state
    is empty or what an interrupted finish built from the chain) refuses it,
    :class:`~nucleus_core.errors.IntegrityError`: such state is evidence of tables changed behind
    the ledger's back (or a mark forged on a ledger in service), never replaced quietly. A
    deliberate rebuild logs it as an ERROR and replaces it."""
    config = ledger.config
    if getattr(config, "rebuild_refuses_differences", False):
        raise IntegrityError(
            f"ledger {ledger.id!r}: {plugin}: the state it holds for the ledger differs from the chain ({detail}); "
            "an import being finished finds its plugins' state empty or built from the chain: refused, nothing "
            "was changed (compare the tables with the chain; see the import section of docs/OPERATIONS.md)",
            reason=f"{plugin} state differs from the chain",
        )
    _log.error("ledger %r: %s: the rebuild replaces state that differs from the chain: %s", ledger.id, plugin, detail)
