"""The witness's durable state: per log, the latest checkpoint it cosigned, in a SQLite file.

One row per origin: the tree size and root hash it cosigned last, the timestamp of that
cosignature, and the checkpoint as served on the monitoring path (the log's signatures the witness
verified and its own cosignature). :meth:`WitnessState.update` reads a log's row and writes its
successor in one ``BEGIN IMMEDIATE`` transaction, so the check of the old size and the write are
atomic across threads and processes (tlog-witness: otherwise two requests can roll the state
back); the write is also guarded by the row it replaces (compare and swap), and it is durable
(WAL, ``synchronous = FULL``) before the transaction returns, so before the witness answers.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import attrs

from nucleus_core.errors import ConfigurationError, StorageError

__all__ = ["BUSY_TIMEOUT", "Cosigned", "WitnessState"]

BUSY_TIMEOUT = 10.0
"""Seconds a write waits for another process's transaction on the same file."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cosigned (
    origin TEXT PRIMARY KEY,
    size INTEGER NOT NULL CHECK (size >= 0),
    root BLOB NOT NULL CHECK (length(root) = 32),
    timestamp INTEGER NOT NULL CHECK (timestamp > 0),
    checkpoint TEXT NOT NULL
) STRICT
"""


@attrs.frozen(kw_only=True)
class Cosigned:
    """The latest checkpoint cosigned for one log."""

    origin: str
    size: int
    root: bytes
    timestamp: int
    checkpoint: str
    """The checkpoint note: the log's verified signatures and the witness's cosignature."""


class WitnessState:
    """The state file at ``path`` (created with its table when missing). Thread-safe: one connection,
    one transaction at a time in this process; other processes wait up to :data:`BUSY_TIMEOUT`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT
            )
        except sqlite3.Error as err:
            raise ConfigurationError(f"witness state {str(self.path)!r} cannot be opened: {err}") from None
        self._lock = threading.Lock()
        try:
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute(_SCHEMA)
        except sqlite3.Error as err:
            self._db.close()
            raise ConfigurationError(f"witness state {str(self.path)!r} is not usable: {err}") from None

    def close(self) -> None:
        """Close the file (idempotent)."""
        with self._lock:
            self._db.close()

    def get(self, origin: str) -> Cosigned | None:
        """The latest checkpoint cosigned for ``origin``, or None if there was none."""
        with self._lock:
            try:
                return self._read(origin)
            except sqlite3.Error as err:
                raise StorageError(f"witness state: cannot be read: {err}") from None

    def _read(self, origin: str) -> Cosigned | None:
        row = self._db.execute(
            "SELECT size, root, timestamp, checkpoint FROM cosigned WHERE origin = ?", (origin,)
        ).fetchone()
        if row is None:
            return None
        return Cosigned(origin=origin, size=row[0], root=row[1], timestamp=row[2], checkpoint=row[3])

    def update(self, origin: str, decide: Callable[[Cosigned | None], Cosigned]) -> Cosigned:
        """Run ``decide`` on the log's current row (None before its first cosignature) and store the
        row it returns, in one transaction: nobody else reads or writes the row in between. An
        exception from ``decide`` rolls back and propagates; nothing is written."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as err:
                raise StorageError(f"witness state: cannot start a transaction: {err}") from None
            try:
                current = self._read(origin)
                new = decide(current)
                if new.origin != origin:
                    raise ValueError("a log's state is replaced by the same log's")
                self._write(current, new)
                self._db.execute("COMMIT")
            except sqlite3.Error as err:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise StorageError(f"witness state: the update failed: {err}") from None
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise
            return new

    def _write(self, current: Cosigned | None, new: Cosigned) -> None:
        values = (new.size, new.root, new.timestamp, new.checkpoint)
        try:
            if current is None:
                cursor = self._db.execute(
                    "INSERT INTO cosigned (origin, size, root, timestamp, checkpoint) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (origin) DO NOTHING",
                    (new.origin, *values),
                )
            else:
                cursor = self._db.execute(
                    "UPDATE cosigned SET size = ?, root = ?, timestamp = ?, checkpoint = ? "
                    "WHERE origin = ? AND size = ? AND root = ? AND timestamp = ?",
                    (*values, new.origin, current.size, current.root, current.timestamp),
                )
        except sqlite3.Error as err:
            raise StorageError(f"witness state: cannot be written: {err}") from None
        if cursor.rowcount != 1:  # the row changed under the transaction: never write over it
            raise StorageError(f"witness state: the row of {new.origin!r} changed during its update")
