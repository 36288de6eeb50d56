"""Nucleus storage in PostgreSQL: ``create_ledger(id=..., storage="postgresql://user@host/db")``.

Many ledgers share one database (every row is keyed by ledger id) and many processes can append to
one ledger at once: appends are serialized by a row lock per ledger. See ``docs/DEPLOYMENT.md``.
"""

from __future__ import annotations

import logging

from .backend import LEDGERS_TABLE, OPTIONS, PostgresStorage, postgres_storage

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["LEDGERS_TABLE", "OPTIONS", "PostgresStorage", "__version__", "postgres_storage"]
