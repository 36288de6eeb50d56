"""The SQLite backend: one file, WAL, writers serialized with ``BEGIN IMMEDIATE``."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import peewee
from nucleus_storage_sql import DEFAULT_ITER_BATCH, SqlStorageBackend

from nucleus_core.errors import (
    ConfigurationError,
    ConflictError,
    LedgerNotFoundError,
    ReadOnlyLedgerError,
    StorageError,
    StorageUnavailableError,
)

log = logging.getLogger(__name__)

Durability = Literal["full", "normal"]

SYNCHRONOUS: Mapping[str, str] = {"full": "FULL", "normal": "NORMAL"}
"""``durability`` -> ``PRAGMA synchronous`` (in WAL mode)."""

DEFAULT_BUSY_TIMEOUT = 30.0
"""Seconds a writer waits for another process's write transaction before giving up."""

DEFAULT_WAL_SIZE_LIMIT = 64 * 1024 * 1024
"""Bytes the WAL file may keep once no reader holds an old snapshot (``wal_size_limit``)."""

MIN_WAL_SIZE_LIMIT = 1024 * 1024
MAX_WAL_SIZE_LIMIT = 1 << 40

SQLITE_HEADER = b"SQLite format 3\x00"

URL_OPTIONS = frozenset({"durability", "busy_timeout", "wal_size_limit"})
"""Options a ``sqlite://`` URL may carry in its query string (``data_dir`` may not: it is policy)."""


class _Savepoint(peewee._savepoint):
    """peewee's savepoint, except that rolling back to it after SQLite has already rolled the whole
    transaction back (SQLITE_FULL, SQLITE_IOERR...) is a no-op instead of "no such savepoint"."""

    def rollback(self, begin: bool = True) -> None:
        if self.db.connection().in_transaction:
            super().rollback(begin)


class _SqliteDatabase(peewee.SqliteDatabase):
    """peewee's SqliteDatabase whose rollbacks never hide the error that caused them.

    After SQLITE_FULL (a full disk at COMMIT, in WAL mode) or an I/O error SQLite has already
    rolled the transaction back; peewee then rolls back again, fails with "cannot rollback - no
    transaction is active" and that error replaces the real one. Here a rollback with no open
    transaction does nothing, for every transaction on the database (the ledger's, schema changes,
    plugins' own ``atomic()`` blocks), so the first error is the one reported.
    """

    def rollback(self) -> None:
        if not self.is_closed() and not self.connection().in_transaction:  # type: ignore[no-untyped-call]
            return
        super().rollback()

    def savepoint(self) -> _Savepoint:
        return _Savepoint(self)

    def _set_pragmas(self, conn: sqlite3.Connection) -> None:
        """Apply the pragmas; switching a new file to WAL waits out other openers.

        Changing the journal mode needs an exclusive lock, and SQLite answers SQLITE_BUSY at once,
        without its busy handler, when another connection is switching the same new file at that
        moment (two processes creating one ledger together). So the switch is retried here, until
        the busy timeout, and skipped when the file already is in WAL mode (it stays so)."""
        peewee_db: Any = self  # peewee keeps these untyped
        for pragma, value in peewee_db._pragmas:
            if pragma == "journal_mode":
                _switch_journal_mode(conn, str(value), float(peewee_db._timeout))
            else:
                conn.execute(f"PRAGMA {pragma} = {value}")


def _switch_journal_mode(conn: sqlite3.Connection, mode: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        try:
            if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() == mode:
                return
            conn.execute(f"PRAGMA journal_mode = {mode}")
            return
        except sqlite3.OperationalError as err:
            if not _is_lock_error(str(err).lower()) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def _is_lock_error(text: str) -> bool:
    """Whether a (lowercased) SQLite error message says another connection holds the lock."""
    return "locked" in text or "busy" in text


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


def _check_durability(value: object) -> Durability:
    if value == "full" or value == "normal":
        return value
    raise ConfigurationError(f"durability must be 'full' or 'normal', got {value!r}")


def _check_timeout(value: object) -> float:
    try:
        timeout = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigurationError(f"busy_timeout must be a number of seconds, got {value!r}") from None
    if not 0 <= timeout <= 3600:
        raise ConfigurationError("busy_timeout must be from 0 to 3600 seconds")
    return timeout


def _check_wal_limit(value: object) -> int:
    try:
        limit: int = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ConfigurationError(f"wal_size_limit must be a number of bytes, got {value!r}") from None
    if isinstance(value, bool) or str(limit) != str(value).strip() or not (
        MIN_WAL_SIZE_LIMIT <= limit <= MAX_WAL_SIZE_LIMIT
    ):
        raise ConfigurationError(
            f"wal_size_limit must be a whole number of bytes from {MIN_WAL_SIZE_LIMIT} (1 MiB) to "
            f"{MAX_WAL_SIZE_LIMIT} (1 TiB), got {value!r}"
        )
    return limit


class SqliteStorage(SqlStorageBackend):
    """A ledger in one SQLite file (``sqlite:///path``). Use :func:`sqlite_storage` to make one.

    The file is in WAL mode. Appends run in ``BEGIN IMMEDIATE`` transactions and re-read the head
    inside them, so several processes may append to one file without forking the chain.
    ``durability="full"`` (``synchronous=FULL``): an acknowledged append survives power loss;
    ``"normal"`` (``synchronous=NORMAL``): it survives a crash of the process, but the last
    transactions may be lost on power loss or an OS crash; appends are faster (no fsync per commit).

    A file this process may not write opens read-only: reads and verification work, writes raise
    :class:`~nucleus_core.errors.ReadOnlyLedgerError`.

    The WAL is bounded by ``wal_size_limit`` (bytes, default 64 MiB): SQLite's own checkpoints
    copy the WAL into the database after commits; when the WAL file is still larger than the limit
    after a commit, a ``wal_checkpoint(TRUNCATE)`` that never waits (busy timeout 0) empties it,
    and ``journal_size_limit`` caps what a restarted WAL keeps. Neither can shrink the WAL while a
    reader holds a snapshot older than its frames (a long read transaction, in any process): it
    grows by every write meanwhile and is truncated at the first commit after that reader ends.
    """

    driver_errors: ClassVar[tuple[type[BaseException], ...]] = (sqlite3.Error,)
    statement_rollback_keeps_transaction: ClassVar[bool] = True
    clustered_table: ClassVar[str] = " WITHOUT ROWID"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        durability: Durability = "full",
        data_dir: str | os.PathLike[str] | None = None,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        iter_batch_size: int = DEFAULT_ITER_BATCH,
        wal_size_limit: int = DEFAULT_WAL_SIZE_LIMIT,
    ) -> None:
        self.path = resolve_path(path, data_dir)
        self.durability = _check_durability(durability)
        self.busy_timeout = _check_timeout(busy_timeout)
        self.wal_size_limit = _check_wal_limit(wal_size_limit)
        self._wal_path = self.path.with_name(self.path.name + "-wal")
        self._wal_held = False
        self._created_file = False
        self._opening = ""
        self._open_read_only = False
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
        try:
            self._check_file()
            exists = self.path.exists()
            # Opened read-only on request (an audit): the same mode=ro connection as for a file this
            # process may not write, so that nothing (not even the WAL switch) touches the file.
            writable = self._writable() and not self._open_read_only
        except OSError as err:
            # The system refuses the path itself (too long, a loop of symlinks...): a clear error.
            text = str(self.path)
            label = f"{text[:60]}...{text[-60:]} ({len(text)} characters)" if len(text) > 120 else text
            raise ConfigurationError(f"sqlite path {label!r} cannot be used: {err.strerror or err}") from None
        if not exists:
            if not self._create:
                raise LedgerNotFoundError(
                    self._opening,
                    where=f"sqlite:///{self.path}",
                    detail="the file does not exist (nothing was created)",
                )
            self._created_file = True
        if not writable:
            if not self.path.exists():
                raise ConfigurationError(
                    f"sqlite path {str(self.path)!r}: cannot create the file (directory not writable)"
                )
            # Read-only: a URI opened with mode=ro (built here from a checked path, never from input).
            uri = f"file:{quote(str(self.path))}?mode=ro"
            return _SqliteDatabase(uri, timeout=self.busy_timeout, uri=True, autoconnect=True)
        pragmas = [
            ("journal_mode", "wal"),
            ("synchronous", SYNCHRONOUS[self.durability]),
            ("cache_size", -16_000),
            ("journal_size_limit", self.wal_size_limit),
        ]
        return _SqliteDatabase(str(self.path), pragmas=pragmas, timeout=self.busy_timeout, autoconnect=True)

    def open(self, ledger_id: str, *, read_only: bool = False, create: bool = True) -> None:
        self._opening = ledger_id
        self._open_read_only = read_only
        if not create and self.path.is_file():
            # Look before opening for real: connecting writable sets WAL mode, which would change a
            # file that does not hold the ledger (an empty file would become a database).
            held = _ledger_ids_if_missing(self.path, self._entries_table, self._ledgers_table, ledger_id)
            if held is not None:
                raise LedgerNotFoundError(ledger_id, held, where=f"sqlite:///{self.path}")
        super().open(ledger_id, read_only=read_only, create=create)

    def discard(self) -> None:
        """Close, removing what opening created (see the base class: nothing another opener wrote);
        a file this open created goes too (with its WAL and shared-memory files) only while it holds
        no table and no other connection has it open (checked by taking SQLite's exclusive lock on
        it, held while the file is removed)."""
        super().discard()
        if not (self._created_file and self.path.exists()):
            return
        try:
            probe = sqlite3.connect(str(self.path), timeout=0, isolation_level=None)
        except sqlite3.Error:
            return
        try:
            probe.execute("PRAGMA locking_mode=EXCLUSIVE")
            probe.execute("BEGIN EXCLUSIVE")
            if probe.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is not None:
                return
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{self.path}{suffix}")
        except sqlite3.Error as err:
            # Another connection has the file open: it stays (empty), never unlinked under it.
            log.warning("kept %s after a failed open: %s", self.path, err)
        finally:
            probe.close()

    def _begin_write(self) -> contextlib.AbstractContextManager[Any]:
        # BEGIN IMMEDIATE takes the write lock up front: the head read inside is the real head.
        return self.database.atomic("IMMEDIATE")

    def _after_commit(self) -> None:
        # One stat per commit; a checkpoint only when the WAL outgrew its limit.
        try:
            size = self._wal_path.stat().st_size
        except OSError:
            return
        if size > self.wal_size_limit:
            self.truncate_wal()

    def truncate_wal(self) -> bool:
        """Checkpoint the WAL into the database and truncate it to zero bytes, if no reader and no
        writer is in the way; never waits for them (SQLite's busy handler is off meanwhile).
        Returns True when the WAL was emptied. A failure is logged, never raised: it runs after
        commits, whose writes are durable already."""
        db = self.database
        try:
            db.execute_sql("PRAGMA busy_timeout = 0")
            try:
                busy, _frames, _copied = db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                db.execute_sql(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        except self._errors as err:
            log.warning("checkpointing the WAL of %s failed: %s", self.path, err)
            return False
        held = bool(busy)
        if held and not self._wal_held:
            log.info(
                "the WAL of %s is over its limit (%d bytes) and cannot be truncated: a reader holds an older "
                "snapshot (or another process is writing); retried after each commit",
                self.path,
                self.wal_size_limit,
            )
        elif self._wal_held and not held:
            log.info("the WAL of %s was truncated", self.path)
        self._wal_held = held
        return not held

    def backup(
        self, dest: str | os.PathLike[str], *, overwrite: bool = False, ledger_id: str | None = None
    ) -> Any:
        """Write a verified copy of this database file to ``dest`` (SQLite's online backup API,
        one consistent snapshot while writers go on); see :func:`nucleus_storage_sqlite.backup.backup`.
        Works on the file alone, read-only: this backend need not be opened (``ledger_id`` then
        names the ledger whose head the copy must hold). Returns a
        :class:`~nucleus_storage_sqlite.backup.CopyReport`."""
        from .backup import backup

        return backup(self, dest, overwrite=overwrite, ledger_id=ledger_id)

    def restore(self, src: str | os.PathLike[str], *, ledger_id: str | None = None) -> Any:
        """Replace this database file with the backup ``src``, verified before anything is replaced;
        see :func:`nucleus_storage_sqlite.backup.restore`. The file is never opened: it may be
        damaged or missing (``ledger_id``, or the ledger this backend was opened for, is the ledger
        the backup must hold). Returns a :class:`~nucleus_storage_sqlite.backup.CopyReport` of the
        restored file."""
        from .backup import restore

        return restore(self, src, ledger_id=ledger_id)

    def _classify_error(self, err: BaseException, action: str) -> StorageError:
        text = str(err).lower()
        where = f"the SQLite file {str(self.path)!r}"
        if "readonly" in text or "read-only" in text:
            return ReadOnlyLedgerError(f"{action}: {where} is read-only; nothing was written")
        if "disk is full" in text:
            return StorageError(f"{action}: {where} is full (disk or max_page_count); nothing was written")
        if _is_lock_error(text):
            return ConflictError(
                f"{action}: the SQLite file is locked by another writer (waited {self.busy_timeout:g}s); retry"
            )
        if "not a database" in text or "malformed" in text:
            return StorageUnavailableError(f"{action}: {str(self.path)!r} is not a usable SQLite database ({err})")
        if "unable to open" in text:
            return StorageUnavailableError(f"{action}: cannot open {str(self.path)!r} ({err})")
        return super()._classify_error(err, action)


def _ledger_ids_if_missing(
    path: Path, entries_table: str, ledgers_table: str, ledger_id: str
) -> tuple[str, ...] | None:
    """The ledger ids the SQLite file at ``path`` holds when ``ledger_id`` is not among them, read
    through a read-only connection; None when it is (or the file cannot be read that way: the real
    open then decides). Looking for the one id is an index probe; listing them all (for the error)
    reads every entry's ledger id, which on a large ledger costs more than the rest of the open."""
    try:
        con = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        # Table names are checked identifiers (SqlStorageBackend); ids are bound values or read back.
        sources = [table for table in (entries_table, ledgers_table) if table in tables]
        for table in sources:
            if con.execute(f'SELECT 1 FROM "{table}" WHERE "ledger_id" = ? LIMIT 1', (ledger_id,)).fetchone():  # noqa: S608
                return None
        ids: set[str] = set()
        for table in sources:
            ids |= {r[0] for r in con.execute(f'SELECT DISTINCT "ledger_id" FROM "{table}"')}  # noqa: S608
        return tuple(sorted(ids))
    except sqlite3.Error:
        return None
    finally:
        con.close()


def sqlite_storage(
    path: str | os.PathLike[str],
    *,
    durability: Durability = "full",
    data_dir: str | os.PathLike[str] | None = None,
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    wal_size_limit: int = DEFAULT_WAL_SIZE_LIMIT,
) -> SqliteStorage:
    """An unopened SQLite backend for ``create_ledger(storage=...)``.

    ``durability``: ``"full"`` (default, survives power loss) or ``"normal"`` (survives a process
    crash). ``data_dir``: when given, the file must lie inside it (no ``..``, no symlink out).
    ``busy_timeout``: seconds to wait for another process's write. ``wal_size_limit``: bytes the
    WAL file keeps once no reader holds an old snapshot (default 64 MiB; see :class:`SqliteStorage`).
    """
    return SqliteStorage(
        path, durability=durability, data_dir=data_dir, busy_timeout=busy_timeout, wal_size_limit=wal_size_limit
    )


def storage_from_url(url: str, options: Mapping[str, Any]) -> SqliteStorage:
    """The factory behind ``sqlite://`` URLs. ``options``: ``durability``, ``busy_timeout``,
    ``wal_size_limit``, ``data_dir``."""
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
        wal_size_limit=_check_wal_limit(merged.get("wal_size_limit", DEFAULT_WAL_SIZE_LIMIT)),
    )
