"""Online backups and restores of a ledger file, each verified before it counts.

A copy is taken with SQLite's online backup API in one step: one read transaction on the source,
so the copy is one consistent snapshot even while other processes append (a plain file copy of a
file being written is not), and writers are never blocked (WAL). The copy is written to a
temporary file beside the destination, checked (``PRAGMA integrity_check`` and every ledger's
chain, see :func:`check_copy`), and only then renamed into place; a copy that fails a check is
removed. A restore first makes such a checked copy of the source next to the target, then writes
it into place with one ``rename``: the target file is replaced whole, so a restore needs nothing of
the target (a damaged, garbage or missing file is exactly when a restore is needed), and a crash
midway leaves the old file or the restored one, never a mix.

Both work on the file alone: they never open a ledger, so they need none of the ledger's plugins
(access control, modules, token parsers) and none of their secrets.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import attrs
from nucleus_storage_sql import APPENDER_DEFAULTS, ENTRY_COLUMNS

from nucleus_core.errors import (
    ConfigurationError,
    IntegrityError,
    LedgerClosedError,
    LedgerNotFoundError,
    StorageError,
)
from nucleus_core.verify import verify_rows

from .backend import SQLITE_HEADER, SqliteStorage

SIDE_FILES = ("-wal", "-shm", "-journal")
_BATCH = 2000


@attrs.frozen(kw_only=True)
class LedgerCopy:
    """One ledger found in a checked copy: its id, entry count and head hash."""

    ledger_id: str
    entries: int
    head: str | None


@attrs.frozen(kw_only=True)
class CopyReport:
    """What :func:`backup` or :func:`restore` wrote and checked."""

    path: str
    bytes: int
    ledgers: tuple[LedgerCopy, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "bytes": self.bytes,
            "ledgers": {c.ledger_id: {"entries": c.entries, "head": c.head} for c in self.ledgers},
        }


def _remove(path: Path) -> None:
    for suffix in ("", *SIDE_FILES):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_only(path: Path, timeout: float) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=timeout, isolation_level=None)


def _copy(source: Path, dest: Path, timeout: float, *, single_file: bool) -> None:
    """Copy the database ``source`` into ``dest`` (created or replaced in one write transaction).

    ``single_file``: leave ``dest`` in rollback-journal mode, one self-contained file with no
    ``-wal``/``-shm`` beside it (what a backup should be); otherwise ``dest`` keeps its journal mode
    (a restored ledger stays in WAL mode)."""
    with contextlib.closing(_read_only(source, timeout)) as src, contextlib.closing(
        sqlite3.connect(dest, timeout=timeout, isolation_level=None)
    ) as dst:
        src.backup(dst)  # pages=-1: every page in one step, one read transaction on the source
        if single_file:
            mode = dst.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
            if str(mode).lower() != "delete":
                raise StorageError(f"{str(dest)!r}: could not leave WAL mode (journal mode {mode})")


def _rows(db: sqlite3.Connection, ledger_id: str) -> Iterator[tuple[Any, ...]]:
    """Every entry row of ``ledger_id`` in seq order, batched (as the backend reads them to verify)."""
    present = {row[1] for row in db.execute("PRAGMA table_info(nucleus_entries)")}
    # Fixed names, every value a parameter; a table from before entry format version 2 reads the
    # columns it lacks as their defaults.
    columns = ", ".join(c if c in present else APPENDER_DEFAULTS[c] for c in ENTRY_COLUMNS)
    sql = f"SELECT {columns} FROM nucleus_entries WHERE ledger_id = ? AND seq >= ? ORDER BY seq LIMIT ?"  # noqa: S608
    nxt = -(2**63)
    while True:
        rows = db.execute(sql, (ledger_id, nxt, _BATCH)).fetchall()
        yield from rows
        if len(rows) < _BATCH:
            return
        nxt = rows[-1][0] + 1


def _temporary(near: Path) -> Path:
    return near.with_name(f".{near.name}.{uuid.uuid4().hex[:12]}.partial")


def check_copy(path: Path, *, expect: Mapping[str, tuple[int, str]] | None = None) -> CopyReport:
    """Check the SQLite ledger file ``path`` and describe it.

    ``PRAGMA integrity_check`` must answer ``ok``; every ledger in the file must verify (seq
    continuity, every hash and link, the derived columns; read-only, streaming); and for each
    ``ledger_id -> (seq, hash)`` of ``expect`` the copy must hold that entry (the head the source
    had when the copy started). Raises :class:`~nucleus_core.errors.IntegrityError` otherwise.
    """
    with contextlib.closing(_read_only(path, 5.0)) as db:
        try:
            problems = [row[0] for row in db.execute("PRAGMA integrity_check(5)")]
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            ids = (
                [row[0] for row in db.execute("SELECT DISTINCT ledger_id FROM nucleus_entries ORDER BY ledger_id")]
                if "nucleus_entries" in tables
                else []
            )
        except sqlite3.DatabaseError as err:
            raise IntegrityError(f"{path}: not a usable SQLite database ({err})") from err
    if problems != ["ok"]:
        raise IntegrityError(f"{path}: SQLite integrity check failed: {'; '.join(problems)}")
    if "nucleus_entries" not in tables:
        raise IntegrityError(f"{path}: holds no Nucleus ledger (no nucleus_entries table)")
    found: list[LedgerCopy] = []
    with contextlib.closing(_read_only(path, 5.0)) as db:
        for ledger_id in ids:
            try:
                count = db.execute("SELECT count(*) FROM nucleus_entries WHERE ledger_id = ?", (ledger_id,)).fetchone()
                report = verify_rows(ledger_id, _rows(db, ledger_id), expected_count=count[0])
                if report.ok and expect and ledger_id in expect:
                    seq, entry_hash = expect[ledger_id]
                    got = db.execute(
                        "SELECT hash FROM nucleus_entries WHERE ledger_id = ? AND seq = ?", (ledger_id, seq)
                    ).fetchone()
                    if got is None or got[0] != entry_hash:
                        raise IntegrityError(
                            f"{path}: ledger {ledger_id!r} lacks entry {seq} {entry_hash} that the source held "
                            "when the copy began",
                            seq=seq,
                        )
            except sqlite3.DatabaseError as err:
                raise IntegrityError(f"{path}: reading ledger {ledger_id!r} failed ({err})") from err
            if not report.ok:
                raise IntegrityError(
                    f"{path}: ledger {ledger_id!r} does not verify at entry {report.first_bad_seq}: {report.reason}",
                    seq=report.first_bad_seq,
                    reason=report.reason,
                )
            found.append(LedgerCopy(ledger_id=ledger_id, entries=report.entries_checked, head=report.head_hash))
    missing = sorted(set(expect or {}) - set(ids))
    if missing:
        raise IntegrityError(f"{path}: holds no entries of ledger(s) {', '.join(map(repr, missing))}")
    return CopyReport(path=str(path), bytes=path.stat().st_size, ledgers=tuple(found))


@contextlib.contextmanager
def _partial(near: Path) -> Iterator[Path]:
    """A temporary file name beside ``near``, removed (with its side files) unless renamed away."""
    temp = _temporary(near)
    try:
        yield temp
    finally:
        _remove(temp)


def _head(path: Path, ledger_id: str, timeout: float) -> dict[str, tuple[int, str]]:
    """``{ledger_id: (seq, hash)}`` of the newest entry of ``ledger_id`` in the file ``path`` (read-only,
    before the copy starts); refuses a ledger the file does not hold or that has no entries."""
    try:
        with contextlib.closing(_read_only(path, timeout)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            row = None
            held: list[str] = []
            if "nucleus_entries" in tables:
                row = db.execute(
                    "SELECT seq, hash FROM nucleus_entries WHERE ledger_id = ? ORDER BY seq DESC LIMIT 1", (ledger_id,)
                ).fetchone()
                held = [r[0] for r in db.execute("SELECT DISTINCT ledger_id FROM nucleus_entries ORDER BY ledger_id")]
            registered = False
            if "nucleus_ledgers" in tables:
                registered = db.execute(
                    "SELECT 1 FROM nucleus_ledgers WHERE ledger_id = ?", (ledger_id,)
                ).fetchone() is not None
    except sqlite3.DatabaseError as err:
        raise IntegrityError(f"{path}: not a usable SQLite database ({err})") from err
    if row is None:
        where = f"sqlite:///{path}"
        if registered:
            raise LedgerNotFoundError(
                ledger_id, where=where, detail="the ledger has no entries: nothing to back up (check --ledger-id)"
            )
        raise LedgerNotFoundError(ledger_id, held, where=where)
    return {ledger_id: (int(row[0]), str(row[1]))}


def _ledger_id(storage: SqliteStorage, ledger_id: str | None) -> str:
    if ledger_id is not None:
        return ledger_id
    try:
        return storage.ledger_id
    except LedgerClosedError:  # not opened: the caller must say which ledger
        raise ConfigurationError("name the ledger to back up or restore (ledger_id=...)") from None


def backup(
    storage: SqliteStorage, dest: str | os.PathLike[str], *, overwrite: bool = False, ledger_id: str | None = None
) -> CopyReport:
    """Write a checked copy of the whole file of ``storage`` (every ledger in it) to ``dest``; see
    :func:`_backup`. ``storage`` need not be opened (``ledger_id`` then names the ledger whose head
    the copy must hold). File-system errors become :class:`~nucleus_core.errors.StorageError`."""
    try:
        return _backup(storage, dest, overwrite=overwrite, ledger_id=_ledger_id(storage, ledger_id))
    except OSError as err:
        raise StorageError(f"backing up {str(storage.path)!r} to {os.fspath(dest)!r} failed: {err}") from err


def restore(storage: SqliteStorage, src: str | os.PathLike[str], *, ledger_id: str | None = None) -> CopyReport:
    """Replace the whole file of ``storage`` with the backup ``src``, checked first; see
    :func:`_restore`. ``storage`` need not be opened and its file need not be usable or exist
    (``ledger_id`` then names the ledger the backup must hold). File-system errors become
    :class:`~nucleus_core.errors.StorageError`."""
    try:
        return _restore(storage, src, ledger_id=_ledger_id(storage, ledger_id))
    except OSError as err:
        raise StorageError(f"restoring {os.fspath(src)!r} into {str(storage.path)!r} failed: {err}") from err


def _backup(storage: SqliteStorage, dest: str | os.PathLike[str], *, overwrite: bool, ledger_id: str) -> CopyReport:
    """Write a checked copy of the whole file of ``storage`` (every ledger in it) to ``dest``.

    The file is only read (read-only connections): its ledger ``ledger_id`` must have entries, and
    its head when the copy begins is what the copy must hold. ``dest`` must not exist unless
    ``overwrite``; it is replaced only by a copy that passed :func:`check_copy` (integrity check,
    every ledger's chain, that head). On any failure nothing is left at ``dest`` that was not
    there before.
    """
    target = Path(os.path.abspath(os.fspath(dest)))
    source = storage.path
    if not source.is_file():
        raise LedgerNotFoundError(ledger_id, where=f"sqlite:///{source}", detail="the file does not exist")
    with source.open("rb") as fh:
        if fh.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
            raise IntegrityError(f"{source}: not an SQLite database (its header is wrong)")
    if not target.parent.is_dir():
        raise ConfigurationError(f"backup destination {str(target)!r}: directory {str(target.parent)!r} does not exist")
    if target.is_dir():
        raise ConfigurationError(f"backup destination {str(target)!r} is a directory")
    if target.exists() and os.path.samefile(target, source):
        raise ConfigurationError(f"backup destination {str(target)!r} is the ledger's own file")
    if target.exists() and not overwrite:
        raise ConfigurationError(
            f"backup destination {str(target)!r} exists; remove it or pass overwrite=True (nucleus backup --overwrite)"
        )
    expect = _head(source, ledger_id, storage.busy_timeout)
    with _partial(target) as temp:
        try:
            _copy(source, temp, storage.busy_timeout, single_file=True)
        except sqlite3.Error as err:
            raise StorageError(f"backing up {str(source)!r} to {str(target)!r} failed: {err}") from err
        report = check_copy(temp, expect=expect)
        _fsync(temp)
        if overwrite:
            os.replace(temp, target)
        else:
            try:
                os.link(temp, target)  # never replaces a file that appeared meanwhile
            except FileExistsError:
                raise ConfigurationError(f"backup destination {str(target)!r} appeared while copying") from None
            except OSError:  # a filesystem without hard links
                if target.exists():
                    raise ConfigurationError(f"backup destination {str(target)!r} appeared while copying") from None
                os.replace(temp, target)
    _fsync(target.parent)
    return attrs.evolve(report, path=str(target))


def _restore(storage: SqliteStorage, src: str | os.PathLike[str], *, ledger_id: str) -> CopyReport:
    """Replace the whole file of ``storage`` (every ledger in it) with the backup ``src``, checked first.

    ``src`` is copied beside the target and checked (:func:`check_copy`; it must hold entries of
    ``ledger_id``) before anything is replaced. The target is never opened: it may be damaged,
    not a database at all, or missing. Its ``-wal``, ``-shm`` and ``-journal`` files (which belong
    to the old database and must never be applied to the new one) are moved aside, the checked
    copy is renamed over it (one atomic step; it keeps the old file's permissions), the moved
    side files are removed, and the result is checked again. Processes that have the ledger open
    must be stopped first: they would carry on with the old file.
    """
    source = Path(os.path.abspath(os.fspath(src)))
    target = storage.path
    if not source.is_file():
        raise ConfigurationError(f"restore source {str(source)!r} is not a file")
    with source.open("rb") as fh:
        if fh.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
            raise ConfigurationError(f"restore source {str(source)!r} is not an SQLite database")
    if not target.parent.is_dir():
        raise ConfigurationError(f"restore target {str(target)!r}: directory {str(target.parent)!r} does not exist")
    if target.is_dir() or (os.path.lexists(target) and not target.is_file()):
        raise ConfigurationError(f"restore target {str(target)!r} is not a regular file")
    if target.exists() and os.path.samefile(source, target):
        raise ConfigurationError(f"restore source {str(source)!r} is the ledger's own file")
    with _partial(target) as temp:
        try:
            _copy(source, temp, storage.busy_timeout, single_file=True)
        except sqlite3.Error as err:
            raise StorageError(f"reading the backup {str(source)!r} failed: {err}") from err
        checked = check_copy(temp)
        if ledger_id not in {c.ledger_id for c in checked.ledgers}:
            raise ConfigurationError(
                f"restore source {str(source)!r} holds no entries of ledger {ledger_id!r} "
                f"(it holds: {', '.join(repr(c.ledger_id) for c in checked.ledgers) or 'none'})"
            )
        expect = {c.ledger_id: (c.entries, c.head) for c in checked.ledgers if c.head is not None}
        if target.exists():
            os.chmod(temp, stat.S_IMODE(target.stat().st_mode))
        _fsync(temp)
        aside = _move_side_files(target)
        try:
            os.replace(temp, target)
        except OSError:
            _put_back(aside)
            raise
        _fsync(target.parent)
        for moved in aside.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(moved)
    return check_copy(target, expect=expect)


def _move_side_files(target: Path) -> dict[Path, Path]:
    """Rename the old database's side files out of the way (``{original: moved}``)."""
    moved: dict[Path, Path] = {}
    tag = uuid.uuid4().hex[:12]
    for suffix in SIDE_FILES:
        side = Path(f"{target}{suffix}")
        if os.path.lexists(side):
            away = side.with_name(f".{side.name}.{tag}.partial")
            try:
                os.replace(side, away)
            except OSError:
                _put_back(moved)
                raise
            moved[side] = away
    return moved


def _put_back(moved: Mapping[Path, Path]) -> None:
    for original, away in moved.items():
        with contextlib.suppress(OSError):
            os.replace(away, original)
