"""A really full filesystem (a small tmpfs mounted for the test): the error says so, nothing was written,
and the ledger works again once there is space.

``max_page_count`` (see ``test_failed_writes.py``) fails at INSERT; a full disk in WAL mode fails at
COMMIT, after SQLite has already rolled back, which is the case checked here. Mounting needs root
(CI runs as root); elsewhere these tests are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from nucleus_storage_sqlite import sqlite_storage

from nucleus_core import Record, StorageError, create_ledger
from nucleus_core.ledger import Ledger
from nucleus_core.testing import make_context, make_record

CTX = make_context()
SIZE_BYTES = 2 * 1024 * 1024
SIZE = f"{SIZE_BYTES // 1024}k"


class FullDisk:
    """A tmpfs of :data:`SIZE` at ``root``; :meth:`fill` takes every free byte, :meth:`free` gives them back."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.filler = root / "filler"

    def fill(self) -> None:
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (1 << 16, 4096, 512, 1):
                with contextlib.suppress(OSError):
                    while True:
                        os.write(fd, b"\0" * size)
        finally:
            os.close(fd)
        with pytest.raises(OSError) as info, open(self.root / "probe", "wb") as probe:  # really full
            probe.write(b"x" * 4096)
            probe.flush()
        assert info.value.errno == errno.ENOSPC
        (self.root / "probe").unlink()

    def free(self) -> None:
        self.filler.unlink()


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[FullDisk]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    mount = shutil.which("mount")
    if mount is None:
        pytest.skip("no mount command")
    root = tmp_path / "small"
    root.mkdir()
    done = subprocess.run([mount, "-t", "tmpfs", "-o", f"size={SIZE},mode=0700", "tmpfs", str(root)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield FullDisk(root)
    finally:
        subprocess.run(["umount", "-l", str(root)], check=True)


def state(ledger: Ledger) -> tuple[int, str | None, int]:
    return ledger.length(), ledger.latest_hash(), ledger.storage.count()


def big(prefix: str, count: int) -> list[Record]:
    return [Record(id=f"{prefix}-{i}", stream="big", timestamp=1 + i, payload={"pad": "y" * 3000})
            for i in range(count)]


@pytest.mark.parametrize("durability", ["full", "normal"])
def test_full_filesystem_at_commit_is_reported_and_nothing_is_written(full_disk: FullDisk, durability: str) -> None:
    path = full_disk.root / "ledger.db"
    with create_ledger(id="full", storage=sqlite_storage(path, durability=durability)) as ledger:
        first = ledger.append_batch([make_record(i) for i in range(5)], CTX)
        assert ledger.storage.database.execute_sql("pragma journal_mode").fetchone()[0] == "wal"
        before = state(ledger)
        full_disk.fill()
        with pytest.raises(StorageError) as info:
            ledger.append_batch(big("batch", 20), CTX)
        message = str(info.value)
        assert "is full" in message and "nothing was written" in message, message
        assert "rollback" not in message
        assert "full" in str(info.value.__cause__)  # the engine's own error is kept as the cause
        with pytest.raises(StorageError, match=r"is full.*nothing was written"):  # a single append too
            ledger.append(Record(id="one", stream="big", timestamp=1, payload={"pad": "z" * 20_000}), CTX)
        assert state(ledger) == before
        assert ledger.get_by_id("batch-0", CTX) is None and ledger.get_by_id("one", CTX) is None
        full_disk.free()
        # Usable again once there is space: it verifies and continues the chain where it was.
        assert ledger.verify().ok
        entry = ledger.append(make_record(10), CTX)
        assert entry.seq == 6 and entry.prev_hash == first[-1].hash
        assert [e.seq for e in ledger.append_batch(big("again", 3), CTX)] == [7, 8, 9]
    with create_ledger(id="full", storage=sqlite_storage(path)) as again:
        assert again.length() == 9 and again.verify().ok


def test_creating_a_ledger_on_a_full_filesystem_is_reported(full_disk: FullDisk) -> None:
    full_disk.fill()
    with pytest.raises(StorageError) as info:
        create_ledger(id="new", storage=sqlite_storage(full_disk.root / "new.db"))
    assert "full" in str(info.value) and "rollback" not in str(info.value), str(info.value)


def test_backup_to_a_full_filesystem_fails_cleanly(tmp_path: Path, full_disk: FullDisk) -> None:
    path = tmp_path / "source.db"
    with create_ledger(id="src", storage=sqlite_storage(path)) as ledger:
        ledger.append_batch(big("src", 200), CTX)  # ~700 KB: more than the 256 KiB left free below
        full_disk.filler.write_bytes(b"\0" * (SIZE_BYTES - 256 * 1024))
        dest = full_disk.root / "copy.db"
        with pytest.raises(StorageError, match="full"):
            ledger.storage.backup(dest)  # type: ignore[attr-defined]
        assert sorted(p.name for p in full_disk.root.iterdir()) == ["filler"]  # no copy, no temporary file
        assert ledger.verify().ok and ledger.length() == 200
