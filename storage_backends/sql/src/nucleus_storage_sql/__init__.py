"""Nucleus: what every peewee-based SQL storage backend shares.

The entries table and the schema-version table (:mod:`.models`), schema versions and migrations
(:mod:`.schema`), the base backend class (:mod:`.backend`) that SQLite and PostgreSQL subclass, and
the grant index access-control plugins keep beside the entries (:mod:`.grants`).
"""

from __future__ import annotations

import logging

from .backend import DEFAULT_ITER_BATCH, SqlStorageBackend, SqlWriteTransaction, WriteState
from .grants import GRANTS_TABLE, RESOURCES_TABLE, SqlGrantIndex
from .models import (
    APPENDER_DEFAULTS,
    ENTRIES_TABLE,
    ENTRY_COLUMNS,
    SCHEMA_TABLE,
    EntryModels,
    entry_to_row,
    make_models,
)
from .schema import CURRENT_VERSION, MIGRATIONS, Migration, read_version, upgrade

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "APPENDER_DEFAULTS", "CURRENT_VERSION", "DEFAULT_ITER_BATCH", "ENTRIES_TABLE", "ENTRY_COLUMNS", "EntryModels",
    "GRANTS_TABLE",
    "MIGRATIONS", "Migration", "RESOURCES_TABLE", "SCHEMA_TABLE", "SqlGrantIndex", "SqlStorageBackend",
    "SqlWriteTransaction", "WriteState", "__version__", "entry_to_row", "make_models", "read_version", "upgrade",
]
