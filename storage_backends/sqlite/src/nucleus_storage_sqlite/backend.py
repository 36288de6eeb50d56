"""The SQLite backend: one file, WAL, writers serialized with ``BEGIN IMMEDIATE``."""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import peewee
from nucleus_storage_sql import DEFAULT_ITER_BATCH, SqlStorageBackend

from nucleus_core.errors import (
    ConfigurationError,
    ConflictError,
    ReadOnlyLedgerError,
    StorageError,
    StorageUnavailableError,
)

Durability = Literal["full", "normal"]

SYNCHRONOUS: Mapping[str, str] = {"full": "FULL", "normal": "NORMAL"}
"""``durability`` -> ``PRAGMA synchronous`` (in WAL mode)."""

DEFAULT_BUSY_TIMEOUT = 30.0
"""Seconds a writer waits for another process's write transaction before giving up."""

SQLITE_HEADER = b"SQLite format 3\x00"

URL_OPTIONS = frozenset({"durability", "busy_timeout"})
"""Options a ``sqlite://`` URL may carry in its query string (``data_dir`` may not: it is policy)."""


def _refuse(path: str, why: str) -> ConfigurationError:
    return ConfigurationError(f"sqlite path {path!r}: {why}")


def resolve_path(path: str | os.PathLike[str], data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The absolute path of the database file, checked.

    Always refused: an empty path, NUL bytes, ``:memory:`` and ``file:`` URIs. With ``data_dir``
    (a policy set by the deployment, never by a URL): relative paths are taken inside it; ``..``
    components, absolute paths outside it and symlinks that lead out of it are refused.
    """
    raw = os.fspath(path)
    if not isinstance(raw, str) or not raw:
        raise ConfigurationError("sqlite path must be a non-empty string")
    if "\x00" in raw:
        raise _refuse(raw, "contains a NUL byte")
    if raw == ":memory:" or raw.lower().startswith("file:"):
        raise _refuse(raw, "SQLite URIs and in-memory databases are not accepted; give a file path")
    candidate = Path(raw).expanduser() if raw.startswith("~") and data_dir is None else Path(raw)
    if data_dir is None:
        return Path(os.path.abspath(candidate))
    base_raw = os.fspath(data_dir)
    if not base_raw or not os.path.isdir(base_raw):
        raise ConfigurationError(f"data_dir {base_raw!r} is not an existing directory")
    base = Path(os.path.realpath(base_raw))
    if ".." in candidate.parts:
        raise _refuse(raw, "'..' is not allowed when a data directory is configured")
    joined = candidate if candidate.is_absolute() else Path(base_raw) / candidate
    real = Path(os.path.realpath(joined))
    if not real.is_relative_to(base):
        raise _refuse(raw, f"resolves outside the data directory {str(base)!r}")
    return real


def parse_sqlite_url(url: str) -> tuple[str, dict[str, str]]:
    """``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` -> (path, query options)."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "sqlite":
        raise ConfigurationError(f"not a sqlite:// URL: {url!r}")
    if parts.netloc:
        raise ConfigurationError(
            f"sqlite URL {url!r} names a host; use sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    if parts.fragment:
        raise ConfigurationError(f"sqlite URL {url!r} must not have a fragment")
    if not parts.path.startswith("/") or len(parts.path) < 2:
        raise ConfigurationError(f"sqlite URL {url!r} has no file path; e.g. sqlite:///nucleus.db")
    options = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query)))
    unknown = set(options) - URL_OPTIONS
    if unknown:
        raise ConfigurationError(f"sqlite URL option(s) {sorted(unknown)} unknown; allowed: {sorted(URL_OPTIONS)}")
    return unquote(parts.path[1:]), options


def _check_durability(value: object) -> str:
    if value not in SYNCHRONOUS:
        raise ConfigurationError(f"durability must be 'full' or 'normal', got {value!r}")
    return str(value)


def _check_timeout(value: object) -> float:
    try:
        timeout = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigurationError(f"busy_timeout must be a number of seconds, got {value!r}") from None
    if not 0 <= timeout <= 3600:
        raise ConfigurationError("busy_timeout must be from 0 to 3600 seconds")
    return timeout


class SqliteStorage(SqlStorageBackend):
    """A ledger in one SQLite file (``sqlite:///path``). Use :func:`sqlite_storage` to make one.

    The file is in WAL mode. Appends run in ``BEGIN IMMEDIATE`` transactions and re-read the head
    inside them, so several processes may append to one file without forking the chain.
    ``durability="full"`` (``synchronous=FULL``): an acknowledged append survives power loss;
    ``"normal"`` (``synchronous=NORMAL``): it survives a crash of the process, but the last
    transactions may be lost on power loss or an OS crash; appends are faster (no fsync per commit).

    A file this process may not write opens read-only: reads and verification work, writes raise
    :class:`~nucleus_core.errors.ReadOnlyLedgerError`.
    """

    driver_errors: ClassVar[tuple[type[BaseException], ...]] = (sqlite3.Error,)
    statement_rollback_keeps_transaction: ClassVar[bool] = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        durability: Durability = "full",
        data_dir: str | os.PathLike[str] | None = None,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        iter_batch_size: int = DEFAULT_ITER_BATCH,
    ) -> None:
        self.path = resolve_path(path, data_dir)
        self.durability = _check_durability(durability)
        self.busy_timeout = _check_timeout(busy_timeout)
        super().__init__(f"sqlite:///{self.path}", iter_batch_size=iter_batch_size)

    def read_only_opener(self) -> Callable[[], SqliteStorage]:
        """The same file and settings, for a worker process of parallel verification."""
        return functools.partial(
            SqliteStorage, self.path, durability=self.durability, busy_timeout=self.busy_timeout,
            iter_batch_size=self._iter_batch,
        )

    # hooks --------------------------------------------------------------------------------------
    def _check_file(self) -> None:
        path = self.path
        parent = path.parent
        if not parent.exists():
            raise ConfigurationError(f"sqlite path {str(path)!r}: directory {str(parent)!r} does not exist")
        if not parent.is_dir():
            raise ConfigurationError(f"sqlite path {str(path)!r}: {str(parent)!r} is not a directory")
        if path.is_dir():
            raise ConfigurationError(f"sqlite path {str(path)!r} is a directory, not a database file")
        if path.exists():
            if not path.is_file():
                raise ConfigurationError(f"sqlite path {str(path)!r} is not a regular file")
            try:
                with path.open("rb") as fh:
                    header = fh.read(len(SQLITE_HEADER))
            except OSError as err:
                raise StorageUnavailableError(f"sqlite path {str(path)!r} cannot be read: {err.strerror}") from err
            if header and header != SQLITE_HEADER:
                raise ConfigurationError(f"sqlite path {str(path)!r} exists but is not an SQLite database")

    def _writable(self) -> bool:
        if self.path.exists():
            return os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK)
        return os.access(self.path.parent, os.W_OK)

    def _make_database(self) -> peewee.Database:
        self._check_file()
        if not self._writable():
            if not self.path.exists():
                raise ConfigurationError(
                    f"sqlite path {str(self.path)!r}: cannot create the file (directory not writable)"
                )
            # Read-only: a URI opened with mode=ro (built here from a checked path, never from input).
            uri = f"file:{quote(str(self.path))}?mode=ro"
            return peewee.SqliteDatabase(uri, timeout=self.busy_timeout, uri=True, autoconnect=True)
        pragmas = [
            ("journal_mode", "wal"),
            ("synchronous", SYNCHRONOUS[self.durability]),
            ("cache_size", -16_000),
        ]
        return peewee.SqliteDatabase(str(self.path), pragmas=pragmas, timeout=self.busy_timeout, autoconnect=True)

    def _begin_write(self) -> contextlib.AbstractContextManager[Any]:
        # BEGIN IMMEDIATE takes the write lock up front: the head read inside is the real head.
        return self.database.atomic("IMMEDIATE")

    def _classify_error(self, err: BaseException, action: str) -> StorageError:
        text = str(err).lower()
        where = f"the SQLite file {str(self.path)!r}"
        if "readonly" in text or "read-only" in text:
            return ReadOnlyLedgerError(f"{action}: {where} is read-only; nothing was written")
        if "disk is full" in text:
            return StorageError(f"{action}: {where} is full (disk or max_page_count); nothing was written")
        if "locked" in text or "busy" in text:
            return ConflictError(
                f"{action}: the SQLite file is locked by another writer (waited {self.busy_timeout:g}s); retry"
            )
        if "not a database" in text or "malformed" in text:
            return StorageUnavailableError(f"{action}: {str(self.path)!r} is not a usable SQLite database ({err})")
        if "unable to open" in text:
            return StorageUnavailableError(f"{action}: cannot open {str(self.path)!r} ({err})")
        return super()._classify_error(err, action)


def sqlite_storage(
    path: str | os.PathLike[str],
    *,
    durability: Durability = "full",
    data_dir: str | os.PathLike[str] | None = None,
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
) -> SqliteStorage:
    """An unopened SQLite backend for ``create_ledger(storage=...)``.

    ``durability``: ``"full"`` (default, survives power loss) or ``"normal"`` (survives a process
    crash). ``data_dir``: when given, the file must lie inside it (no ``..``, no symlink out).
    ``busy_timeout``: seconds to wait for another process's write.
    """
    return SqliteStorage(path, durability=durability, data_dir=data_dir, busy_timeout=busy_timeout)


def storage_from_url(url: str, options: Mapping[str, Any]) -> SqliteStorage:
    """The factory behind ``sqlite://`` URLs. ``options``: ``durability``, ``busy_timeout``, ``data_dir``."""
    path, url_options = parse_sqlite_url(url)
    allowed = URL_OPTIONS | {"data_dir"}
    unknown = set(options) - allowed
    if unknown:
        raise ConfigurationError(f"sqlite storage option(s) {sorted(unknown)} unknown; allowed: {sorted(allowed)}")
    merged: dict[str, Any] = dict(url_options)
    for key, value in options.items():
        if key in url_options and str(url_options[key]) != str(value):
            raise ConfigurationError(f"sqlite option {key!r} given twice with different values (URL and options)")
        merged[key] = value
    return SqliteStorage(
        path,
        durability=merged.get("durability", "full"),
        data_dir=merged.get("data_dir"),
        busy_timeout=_check_timeout(merged.get("busy_timeout", DEFAULT_BUSY_TIMEOUT)),
    )
