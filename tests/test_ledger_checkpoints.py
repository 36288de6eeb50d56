"""The ledger issues signed checkpoints after its commits (at most one per interval), on demand,
and lazily when asked; each verifies with the published verifier keys and tlog_verify alone, signs
the tree's root at its size, and stays retrievable by size. Memory, SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nucleus_storage_postgres import postgres_storage
from nucleus_storage_sqlite import sqlite_storage

from nucleus_core import Record, RequestContext, assembly, create_ledger, open_ledger
from nucleus_core.checkpoint import NoteSigner, default_origin
from nucleus_core.checkpoints import CheckpointIssuer
from nucleus_core.errors import ConfigurationError, NotFoundError, ReadOnlyLedgerError
from nucleus_core.testing import ManualClock
from nucleus_core.testing.postgres import temporary_database
from nucleus_core.tlog_verify import parse_vkey, verify_checkpoint

CTX = RequestContext(oid="oid:test:user:alice", source="dev")
LEDGER = "cp"
ORIGIN = default_origin(LEDGER)


def rec(i: int) -> Record:
    return Record(id=f"r{i:04d}", stream="s", timestamp=1_700_000_000_000 + i, payload={"i": i})


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    clock = ManualClock()
    monkeypatch.setattr(assembly, "checkpoint_clock", clock)
    return clock


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    with temporary_database("nucleus_ledger_cp") as dsn:
        yield dsn


def _storage(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "memory":
        return lambda: "memory://"
    if request.param == "sqlite":
        return lambda: sqlite_storage(tmp_path / "ledger.db")
    dsn = request.getfixturevalue("pg_dsn")
    schema = f"cp_{uuid.uuid4().hex[:12]}"
    return lambda: postgres_storage(dsn, schema=schema)


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    return _storage(request, tmp_path)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def persistent(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """Storage that keeps the ledger after close (memory does not)."""
    return _storage(request, tmp_path)


def verified(note: str, vkeys: tuple[str, ...]) -> tuple[int, bytes]:
    checkpoint = verify_checkpoint(note, [parse_vkey(v) for v in vkeys], origin=ORIGIN)
    return checkpoint.size, checkpoint.root_hash


def test_checkpoints_follow_commits_at_most_once_per_interval(storage: Any, clock: ManualClock) -> None:
    signer = NoteSigner.generate(ORIGIN)
    checkpoint = {"signers": (signer,), "key_env": None, "interval": 10.0}
    with create_ledger(id=LEDGER, storage=storage(), checkpoint=checkpoint) as ledger:
        vkeys = ledger.checkpoint_keys()
        assert vkeys == (signer.vkey,)
        ledger.append_batch([rec(i) for i in range(5)], CTX)  # the first commit issues at once
        note = ledger.checkpoint()
        assert verified(note, vkeys) == (5, ledger.root_hash(5))
        ledger.append(rec(5), CTX)
        ledger.append(rec(6), CTX)
        clock.now += 9.5
        assert verified(ledger.checkpoint(), vkeys)[0] == 5  # within the interval: the latest issued stays
        assert ledger.checkpoint_issuer is not None and ledger.checkpoint_issuer.due_in() == pytest.approx(0.5)
        clock.now += 0.5
        assert verified(ledger.checkpoint(), vkeys) == (7, ledger.root_hash(7))  # due: issued when asked
        clock.now += 10
        ledger.append(rec(7), CTX)  # the interval passed: this commit issues
        assert ledger.checkpoint_issuer.due_in() is None
        ledger.append(rec(8), CTX)
        assert ledger.checkpoint(8) == ledger.checkpoint()
        assert verified(ledger.checkpoint(8), vkeys) == (8, ledger.root_hash(8))
        assert ledger.issue_checkpoint() == ledger.checkpoint(9)  # on demand, regardless of the interval
        assert verified(ledger.checkpoint(9), vkeys) == (9, ledger.root_hash(9))
        for size in (5, 7, 8, 9):
            assert verified(ledger.checkpoint(size), vkeys) == (size, ledger.root_hash(size))
        for size in (0, 6, 10):
            with pytest.raises(NotFoundError, match=f"no checkpoint was issued at size {size}"):
                ledger.checkpoint(size)


def test_checkpoints_outlive_the_process(persistent: Any, clock: ManualClock) -> None:
    storage = persistent
    old, new = NoteSigner.generate(ORIGIN), NoteSigner.generate(ORIGIN)
    with create_ledger(id=LEDGER, storage=storage(), checkpoint={"signers": (old,), "key_env": None}) as ledger:
        ledger.append_batch([rec(i) for i in range(3)], CTX)
        first = ledger.checkpoint()
    # Reopened with a second key beside the first (a rotation): the stored checkpoint is kept, and
    # the writes of another process (none covered yet) get one when asked.
    with open_ledger(id=LEDGER, storage=storage(), checkpoint={"signers": (old, new), "key_env": None}) as ledger:
        assert ledger.checkpoint(3) == first
        ledger.checkpoint_issuer = None  # writes that issue nothing, as another process's writes
        ledger.append(rec(3), CTX)
    with open_ledger(id=LEDGER, storage=storage(), checkpoint={"signers": (old, new), "key_env": None}) as ledger:
        note = ledger.checkpoint()
        assert verified(note, (new.vkey,)) == (4, ledger.root_hash(4))
        assert verified(note, (old.vkey,)) == (4, ledger.root_hash(4))
    with open_ledger(
        id=LEDGER, storage=storage(), verify_on_open=False, checkpoint={"signers": (old,), "key_env": None}
    ) as ledger:
        assert ledger.read_only and ledger.checkpoint() == note
        with pytest.raises(ReadOnlyLedgerError):
            ledger.issue_checkpoint()


def test_no_key_no_checkpoints(storage: Any) -> None:
    with create_ledger(id=LEDGER, storage=storage(), checkpoint={"key_env": None}) as ledger:
        ledger.append(rec(0), CTX)
        assert ledger.checkpoint_issuer is None
        with pytest.raises(ConfigurationError, match="no checkpoint signing key configured"):
            ledger.checkpoint()
        with pytest.raises(ConfigurationError, match="no checkpoint signing key configured"):
            ledger.issue_checkpoint()


def test_a_failing_issue_never_fails_the_write(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    signer = NoteSigner.generate(ORIGIN)
    with create_ledger(id=LEDGER, storage="memory://", checkpoint={"signers": (signer,), "key_env": None}) as ledger:

        def broken(self: CheckpointIssuer) -> None:
            raise OSError("disk full")

        monkeypatch.setattr(CheckpointIssuer, "after_commit", broken)
        with caplog.at_level(logging.ERROR):
            entry = ledger.append(rec(0), CTX)
        assert ledger.length() == 1 and ledger.get(entry.hash, CTX) is not None
        assert "issuing a checkpoint after a commit failed" in caplog.text
        monkeypatch.undo()
        assert verified(ledger.checkpoint(), (signer.vkey,)) == (1, ledger.root_hash(1))
