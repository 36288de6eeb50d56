"""The ``postgresql`` and ``postgres`` entry points: register the backend for ``postgresql://`` and
``postgres://`` URLs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nucleus_core import hookimpl
from nucleus_core.specs import StorageBackendSpec

from .backend import PostgresStorage, postgres_storage


def _factory(url: str, options: Mapping[str, Any]) -> PostgresStorage:
    return postgres_storage(url, **dict(options))


@hookimpl
def nucleus_register_storage_backends() -> list[StorageBackendSpec]:
    """The PostgreSQL backend (``postgresql://user@host:5432/dbname``; ``postgres://`` also works)."""
    return [
        StorageBackendSpec(
            name="postgresql",
            schemes=("postgresql", "postgres"),
            factory=_factory,
            description="PostgreSQL via psycopg 3 (pooled; appends serialized by a per-ledger row lock)",
        )
    ]
