"""The ``sqlite`` entry point: registers the SQLite backend for ``sqlite://`` URLs. No module state."""

from __future__ import annotations

from nucleus_core import StorageBackendSpec, hookimpl

from .backend import storage_from_url


@hookimpl
def nucleus_register_storage_backends() -> list[StorageBackendSpec]:
    """The SQLite backend, for ``sqlite:///relative/path.db`` and ``sqlite:////absolute/path.db``."""
    return [
        StorageBackendSpec(
            name="sqlite",
            schemes=("sqlite",),
            factory=storage_from_url,
            description="one SQLite file in WAL mode (the embedded default)",
        )
    ]
