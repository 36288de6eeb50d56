"""A verifying client's trusted state (nucleus_core.trusted_state): real trees and signatures; the
file store's atomic replace, persistence and refusal of anything it cannot read; TrustedLog's
forward-only moves (rollback, fork, bad signature, wrong origin), with each refusal leaving the
state as it was. The errors keep their class and details through the HTTP error contract's
shape and through pickle."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import pytest

from nucleus_core import merkle
from nucleus_core.checkpoint import NoteSigner, sign_checkpoint
from nucleus_core.errors import (
    CheckpointSignatureError,
    InclusionProofError,
    InconsistentLogError,
    IntegrityError,
    LogVerificationError,
    RollbackError,
    TrustedStateError,
    WitnessPolicyError,
)
from nucleus_core.tlog_verify import Checkpoint
from nucleus_core.trusted_state import FileTrustedState, MemoryTrustedState, TrustedLog, TrustedStateStore

ORIGIN = "example.com/trusted-state-test"


class Log:
    """A log: a real Merkle tree of made-up entry hashes, and signed checkpoints of it."""

    def __init__(self, signer: NoteSigner, *, salt: bytes = b"") -> None:
        self.signer = signer
        self.salt = salt
        self.store = merkle.MemoryNodeStore()
        self.asked: list[tuple[int, int]] = []

    def grow(self, n: int) -> None:
        start = self.store.size
        hashes = [hashlib.sha256(self.salt + i.to_bytes(8, "big")).digest() for i in range(start, start + n)]
        builder = merkle.MerkleBuilder.from_store(self.store, start)
        for chunk in merkle.build_node_writes(hashes, builder=builder):
            self.store.write(chunk)

    def note(self, size: int | None = None, origin: str = ORIGIN) -> bytes:
        size = self.store.size if size is None else size
        return sign_checkpoint(origin, size, merkle.root_hash(self.store, size), [self.signer]).encode("utf-8")

    def consistency(self, old: int, new: int) -> list[bytes]:
        self.asked.append((old, new))
        return merkle.consistency_proof(self.store, old, new)


@pytest.fixture
def signer() -> NoteSigner:
    return NoteSigner.generate(ORIGIN)


def trusted(signer: NoteSigner, store: TrustedStateStore) -> TrustedLog:
    return TrustedLog([signer.verifier], ORIGIN, store)


def test_forward_only(signer: NoteSigner) -> None:
    log = Log(signer)
    log.grow(3)
    state = trusted(signer, MemoryTrustedState())
    assert state.checkpoint is None
    first = state.accept(log.note(), log.consistency)  # trust on first use: no proof asked
    assert first.size == 3 and log.asked == [] and state.checkpoint == first
    log.grow(10)
    grown = state.accept(log.note(), log.consistency)
    assert grown.size == 13 and log.asked == [(3, 13)] and state.checkpoint == grown
    # The same checkpoint again: nothing to prove, nothing moves.
    assert state.accept(log.note(), log.consistency) == grown and log.asked == [(3, 13)]
    # An older checkpoint asked for as such: it must be a prefix of the trusted tree.
    older = state.accept(log.note(5), log.consistency, latest=False)
    assert older.size == 5 and log.asked[-1] == (5, 13) and state.checkpoint == grown
    # Presented as the latest, it is a rollback naming both sizes.
    with pytest.raises(RollbackError) as caught:
        state.accept(log.note(5), log.consistency)
    assert (caught.value.trusted_size, caught.value.presented_size) == (13, 5)
    assert "tree of 5 entries, smaller than the 13 already trusted" in str(caught.value)
    assert state.checkpoint == grown


def test_the_empty_tree_is_extended_without_a_proof(signer: NoteSigner) -> None:
    log = Log(signer)
    state = trusted(signer, MemoryTrustedState())
    assert state.accept(log.note(), log.consistency).size == 0
    log.grow(4)
    assert state.accept(log.note(), log.consistency).size == 4 and log.asked == []


def test_forks_are_inconsistent(signer: NoteSigner) -> None:
    honest, forged = Log(signer), Log(signer, salt=b"forged")
    honest.grow(6)
    forged.grow(9)
    state = trusted(signer, MemoryTrustedState())
    seen = state.accept(honest.note(), honest.consistency)
    with pytest.raises(InconsistentLogError, match="not consistent with the one of 6"):
        state.accept(forged.note(), forged.consistency)
    with pytest.raises(InconsistentLogError, match="two histories under one key"):
        state.accept(forged.note(6), forged.consistency)
    # A made-up proof changes nothing either.
    with pytest.raises(InconsistentLogError):
        state.accept(forged.note(), lambda old, new: [bytes(32), bytes(32)])
    assert state.checkpoint == seen


def test_bad_signatures_and_other_origins_are_refused(signer: NoteSigner) -> None:
    log = Log(signer)
    log.grow(2)
    state = trusted(signer, MemoryTrustedState())
    stranger = Log(NoteSigner.generate(ORIGIN))
    stranger.grow(2)
    note = log.note()
    flipped = note.replace(b"\n2\n", b"\n3\n", 1)
    for bad in (stranger.note(), flipped, note[:-3] + b"\n", b"not a note", log.note(origin="example.com/other")):
        with pytest.raises(CheckpointSignatureError):
            state.accept(bad, log.consistency)
    assert state.checkpoint is None


def test_policy_runs_on_every_received_checkpoint(signer: NoteSigner) -> None:
    log = Log(signer)
    log.grow(2)
    seen: list[int] = []

    def policy(note: bytes, checkpoint: Checkpoint) -> None:
        seen.append(checkpoint.size)
        if checkpoint.size > 2:
            raise WitnessPolicyError("not enough cosignatures")

    state = TrustedLog([signer.verifier], ORIGIN, MemoryTrustedState(), policy=policy)
    state.accept(log.note(), log.consistency)
    log.grow(1)
    with pytest.raises(WitnessPolicyError):
        state.accept(log.note(), log.consistency)
    assert seen == [2, 3] and state.checkpoint is not None and state.checkpoint.size == 2


# --- the file store ----------------------------------------------------------------------------
def test_file_state_persists_across_instances_and_is_the_note_alone(signer: NoteSigner, tmp_path: Path) -> None:
    log = Log(signer)
    log.grow(3)
    path = tmp_path / "trusted.checkpoint"
    first = trusted(signer, FileTrustedState(path))
    first.accept(log.note(), log.consistency)
    assert path.read_bytes() == log.note()
    log.grow(2)
    second = trusted(signer, FileTrustedState(path))  # another client, later
    assert second.checkpoint is not None and second.checkpoint.size == 3
    second.accept(log.note(), log.consistency)
    assert path.read_bytes() == log.note(5)
    # The first client reads the store again before it moves: it sees the second's progress.
    with pytest.raises(RollbackError):
        first.accept(log.note(3), log.consistency)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trusted.checkpoint", "trusted.checkpoint.lock"]


def test_file_state_never_moves_back(signer: NoteSigner, tmp_path: Path) -> None:
    log = Log(signer)
    log.grow(8)
    store = FileTrustedState(tmp_path / "state")
    store.save(log.note(8))
    store.save(log.note(4))  # another process, slower, saving what it verified earlier
    assert store.load() == log.note(8)
    with pytest.raises(TrustedStateError, match="not a checkpoint note"):
        store.save(b"garbage")
    assert store.load() == log.note(8)


def test_a_failed_save_leaves_the_old_state_and_no_temporary_file(
    signer: NoteSigner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = Log(signer)
    log.grow(2)
    store = FileTrustedState(tmp_path / "state")
    store.save(log.note())
    log.grow(3)

    def failing_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(TrustedStateError, match="cannot be written"):
        store.save(log.note())
    monkeypatch.undo()
    assert store.load() == log.note(2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state", "state.lock"]


@pytest.mark.parametrize("content", [b"", b"garbage\n", "nötig".encode("latin-1"), None, "other key", "truncated"])
def test_a_corrupt_or_unreadable_state_is_a_clear_error_never_a_reset(
    signer: NoteSigner, tmp_path: Path, content: object
) -> None:
    log = Log(signer)
    log.grow(3)
    path = tmp_path / "state"
    if content is None:
        path.mkdir()  # unreadable as a file
    elif content == "other key":
        stranger = Log(NoteSigner.generate(ORIGIN))
        stranger.grow(3)
        path.write_bytes(stranger.note())
    elif content == "truncated":
        path.write_bytes(log.note()[:-20])
    else:
        assert isinstance(content, bytes)
        path.write_bytes(content)
    before = None if content is None else path.read_bytes()
    state = trusted(signer, FileTrustedState(path))
    with pytest.raises(TrustedStateError) as caught:
        state.accept(log.note(), log.consistency)
    assert "trusted state file" in str(caught.value) or repr(state.store) in str(caught.value)
    assert os.fspath(path) in str(caught.value)
    with pytest.raises(TrustedStateError):
        _ = state.checkpoint
    if before is not None:
        assert path.read_bytes() == before  # never replaced


# --- the errors ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "error",
    [
        RollbackError("smaller", trusted_size=9, presented_size=4),
        InconsistentLogError("fork"),
        CheckpointSignatureError("bad"),
        InclusionProofError("no proof", seq=3),
        WitnessPolicyError("1 of 2"),
    ],
)
def test_errors_are_integrity_errors_and_survive_pickle(error: LogVerificationError) -> None:
    assert isinstance(error, IntegrityError) and isinstance(error, LogVerificationError)
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error) and str(again) == str(error) and again.__dict__ == error.__dict__
    codes = {cls.code for cls in (RollbackError, InconsistentLogError, CheckpointSignatureError,
                                  InclusionProofError, WitnessPolicyError, LogVerificationError)}
    assert len(codes) == 6


def test_clients_sharing_a_store_adopt_only_what_extends_what_they_trust(signer: NoteSigner) -> None:
    """Another client's save into a shared store is checked like an answer of the server: a fork at
    the trusted size is refused at once, a larger checkpoint is adopted only once proven consistent."""
    honest, forged = Log(signer), Log(signer, salt=b"forged")
    honest.grow(6)
    forged.grow(9)
    store = MemoryTrustedState()
    alice, bob = trusted(signer, store), trusted(signer, store)
    seen = alice.accept(honest.note(), honest.consistency)
    assert bob.checkpoint == seen  # bob starts from what alice saved
    store.save(forged.note(6))  # a client that was shown the other history saved it
    with pytest.raises(InconsistentLogError, match="clients sharing the trusted state"):
        alice.accept(honest.note(), honest.consistency)
    assert alice.checkpoint == seen
    store.save(forged.note())  # larger, and not an extension of what alice trusts
    with pytest.raises(InconsistentLogError, match="not consistent with the one of 6"):
        alice.accept(honest.note(), forged.consistency)
    assert alice.checkpoint == seen
    honest.grow(4)
    store.save(honest.note())  # larger and consistent: adopted, after its proof
    asked = len(honest.asked)
    assert alice.accept(honest.note(), honest.consistency).size == 10
    assert alice.checkpoint is not None and alice.checkpoint.size == 10 and len(honest.asked) > asked
