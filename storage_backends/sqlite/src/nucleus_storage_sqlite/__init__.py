"""Nucleus: the SQLite storage backend, the embedded default.

``create_ledger(id="x", storage=sqlite_storage("ledger.db"))`` or ``storage="sqlite:///ledger.db"``;
with this distribution installed, a ledger created without ``storage`` uses ``./nucleus.db``.
"""

from __future__ import annotations

import logging

from .backend import SqliteStorage, parse_sqlite_url, resolve_path, sqlite_storage, storage_from_url

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["SqliteStorage", "__version__", "parse_sqlite_url", "resolve_path", "sqlite_storage", "storage_from_url"]
