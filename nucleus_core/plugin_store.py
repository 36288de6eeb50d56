"""Plugin tables beside the ledger: the storage's SQL database and connection, seen through the
capabilities :class:`~nucleus_core.capabilities.SqlDatabaseStorage` and
:class:`~nucleus_core.capabilities.PooledConnectionStorage`, and :class:`SqlPluginStore`, the base of
the stores that keep one table there (API keys, sessions, service-token replay). peewee is imported
lazily: the core does not depend on it, the distributions that subclass the store do.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Self

from .capabilities import PooledConnectionStorage, SqlDatabaseStorage
from .errors import ConfigurationError, NucleusError, StorageError
from .specs import PluginContext


def plugin_database(context: PluginContext, *, plugin: str) -> Any | None:
    """The peewee ``Database`` of the ledger's storage (``storage.database``, see
    :class:`~nucleus_core.capabilities.SqlDatabaseStorage`) for plugins that keep
    their own tables beside the ledger; None for non-persistent storage (``memory://``), where such
    plugins keep their data in memory. A persistent backend without a database is refused."""
    storage = context.storage
    if isinstance(storage, SqlDatabaseStorage):
        return storage.database
    if storage is None or not storage.persistent:
        return None
    raise ConfigurationError(f"{plugin}: storage {storage.url} keeps no SQL database this plugin can use")


def plugin_connection(context: PluginContext) -> Callable[[], AbstractContextManager[Any]]:
    """How a plugin with tables beside the ledger holds a database connection while its work runs.

    The storage's ``connection()`` when it offers one
    (:class:`~nucleus_core.capabilities.PooledConnectionStorage`; PostgreSQL: a pooled connection is checked
    out for the block and returned afterwards, instead of staying with the calling thread);
    otherwise a no-op (SQLite keeps one connection per thread anyway; memory has none). Use it as
    ``with connection(): ...`` around every query on :func:`plugin_database`.
    """
    storage = context.storage
    return storage.connection if isinstance(storage, PooledConnectionStorage) else contextlib.nullcontext


class SqlPluginStore(abc.ABC):
    """Base of the stores that keep one plugin table in the ledger's SQL database (peewee).

    A subclass sets :attr:`label` (for error messages) and :meth:`make_model` (a model class built
    per database: binding is class-level). The base creates the table (through the backend's
    ``ensure_tables`` when given), and :meth:`_run` runs each unit of work in one transaction while
    holding a connection (see :func:`plugin_connection`), turning peewee errors into
    :class:`~nucleus_core.errors.StorageError` that name the action, never a value. peewee is
    imported lazily: the core itself does not depend on it, the distributions using this do.
    """

    label: str = "plugin store"

    def __init__(
        self,
        database: Any,
        ledger_id: str,
        *,
        ensure_tables: Callable[[list[Any]], None] | None = None,
        connection: Callable[[], AbstractContextManager[Any]] | None = None,
    ) -> None:
        """``database`` is the ledger's peewee database; ``ensure_tables`` the backend's way to
        create plugin tables (``backend.ensure_tables``; without it ``create_tables``);
        ``connection`` is held around every unit of work (default: nothing to hold)."""
        self._db = database
        self._ledger_id = ledger_id
        self._connection = connection or contextlib.nullcontext
        self._model: Any = self.make_model(database)
        if ensure_tables is not None:
            ensure_tables([self._model])
        else:
            self._run(
                f"creating table {self._model._meta.table_name}",
                lambda: self._db.create_tables([self._model], safe=True),
            )
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """Add the nullable columns a newer version of the model declares to a table an older
        version created (``ALTER TABLE ... ADD COLUMN``; rows keep NULL there, and the store
        decides what such rows mean). Any other difference is left to the store."""
        from playhouse.migrate import SchemaMigrator, migrate  # type: ignore[import-untyped]

        table = self._model._meta.table_name

        def add() -> None:
            present = {c.name for c in self._db.get_columns(table)}
            missing = [f for f in self._model._meta.sorted_fields if f.column_name not in present and f.null]
            if missing:
                migrator = SchemaMigrator.from_database(self._db)
                migrate(*(migrator.add_column(table, f.column_name, f) for f in missing))

        self._run(f"adding missing columns to table {table}", add)

    @classmethod
    def for_plugin(cls, context: PluginContext, *, plugin: str, **options: Any) -> Self | None:
        """A store over the ledger's database (see :func:`plugin_database`), or None when the
        ledger has no SQL storage (the plugin then keeps its data in memory)."""
        database = plugin_database(context, plugin=plugin)
        if database is None:
            return None
        return cls(
            database,
            context.ledger_id,
            ensure_tables=context.storage.ensure_tables if isinstance(context.storage, SqlDatabaseStorage) else None,
            connection=plugin_connection(context),
            **options,
        )

    @staticmethod
    @abc.abstractmethod
    def make_model(database: Any) -> Any:
        """The peewee model class of this store's table, bound to ``database``."""

    def _run(
        self,
        what: str,
        fn: Callable[[], Any],
        *,
        conflict: Callable[[], NucleusError] | None = None,
        read: bool = False,
    ) -> Any:
        """``fn()`` in one transaction (a single-statement ``read`` runs without one), holding a
        connection. A uniqueness violation raises ``conflict()`` when given; any other database
        error a :class:`StorageError`."""
        import peewee

        try:
            with self._connection(), contextlib.nullcontext() if read else self._db.atomic():
                return fn()
        except peewee.IntegrityError as err:
            if conflict is not None:
                raise conflict() from None
            raise StorageError(f"{self.label}: {what} failed ({type(err).__name__})") from err
        except peewee.PeeweeException as err:
            raise StorageError(f"{self.label}: {what} failed ({type(err).__name__})") from err
