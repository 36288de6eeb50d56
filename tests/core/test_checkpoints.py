"""Issuing checkpoints (nucleus_core.checkpoints): real trees (merkle.MemoryNodeStore), real
signatures, verified with nucleus_core.tlog_verify alone; and the signing keys' configuration."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import pytest

from nucleus_core import merkle
from nucleus_core.checkpoint import NoteSigner, default_origin, write_key_file
from nucleus_core.checkpoints import (
    CheckpointConfig,
    CheckpointIssuer,
    CheckpointKeys,
    MemoryCheckpointStore,
    checkpoint_config,
)
from nucleus_core.errors import ConfigurationError, IntegrityError
from nucleus_core.testing import ManualClock
from nucleus_core.tlog_verify import (
    EMPTY_ROOT,
    InvalidSignatureError,
    UnverifiedNoteError,
    parse_vkey,
    verify_checkpoint,
    verify_consistency,
)

ORIGIN = "example.com/issuer-test"


def grow(store: merkle.MemoryNodeStore, n: int, *, salt: bytes = b"") -> None:
    """Append ``n`` leaves (entry hashes made up from their index) to the tree in ``store``."""
    start = store.size
    hashes = [hashlib.sha256(salt + i.to_bytes(8, "big")).digest() for i in range(start, start + n)]
    for chunk in merkle.build_node_writes(hashes, builder=merkle.MerkleBuilder.from_store(store, start)):
        store.write(chunk)


def make_issuer(
    tree: merkle.MemoryNodeStore,
    signers: list[NoteSigner],
    checkpoints: MemoryCheckpointStore | None = None,
    clock: ManualClock | None = None,
    interval: float = 1.0,
) -> CheckpointIssuer:
    return CheckpointIssuer(
        CheckpointKeys(origin=ORIGIN, signers=tuple(signers)),
        checkpoints if checkpoints is not None else MemoryCheckpointStore(),
        lambda size: merkle.root_hash(tree, size),
        lambda: tree.size,
        interval=interval,
        clock=clock or ManualClock(),
    )


def verified(note: str, signer: NoteSigner) -> tuple[int, bytes]:
    """Size and root of ``note``, verified with nothing but the published vkey and tlog_verify."""
    checkpoint = verify_checkpoint(note, [parse_vkey(signer.vkey)], origin=ORIGIN)
    return checkpoint.size, checkpoint.root_hash


def test_issued_checkpoints_verify_and_are_kept_per_size() -> None:
    tree = merkle.MemoryNodeStore()
    signer = NoteSigner.generate(ORIGIN)
    issuer = make_issuer(tree, [signer])
    size, empty = issuer.issue()
    assert size == 0 and verified(empty, signer) == (0, EMPTY_ROOT)
    notes = {0: empty}
    for n in (1, 2, 7, 64, 100):
        grow(tree, n - tree.size)
        size, note = issuer.issue()
        assert size == n and verified(note, signer) == (n, merkle.root_hash(tree, n))
        notes[n] = note
    for n, note in notes.items():
        assert issuer.at(n) == note
    assert issuer.at(3) is None
    assert issuer.latest() == (100, notes[100])
    # consecutive checkpoints are consistent: the tree's proof connects them
    _, old_root = verified(notes[7], signer)
    _, new_root = verified(notes[100], signer)
    verify_consistency(7, 100, old_root, new_root, merkle.consistency_proof(tree, 7, 100))


def test_a_size_is_signed_once() -> None:
    tree = merkle.MemoryNodeStore()
    grow(tree, 5)
    checkpoints = MemoryCheckpointStore()
    first = make_issuer(tree, [NoteSigner.generate(ORIGIN)], checkpoints).issue()
    # another key (a restarted server after a rotation) gets the stored checkpoint, not a new signature
    assert make_issuer(tree, [NoteSigner.generate(ORIGIN)], checkpoints).issue() == first


def test_refuses_to_sign_a_truncated_tree() -> None:
    tree = merkle.MemoryNodeStore()
    grow(tree, 10)
    issuer = make_issuer(tree, [NoteSigner.generate(ORIGIN)])
    issuer.issue()
    tree.truncate(7)
    with pytest.raises(IntegrityError, match="has 7 entries but a checkpoint was issued at size 10"):
        issuer.issue()
    grow(tree, 5, salt=b"new")  # growing past the old size with other entries 8 to 10 is a rewrite
    with pytest.raises(IntegrityError, match=r"root at size 10 .* rewritten"):
        issuer.issue()


def test_refuses_to_sign_a_rewritten_tree() -> None:
    honest, forged = merkle.MemoryNodeStore(), merkle.MemoryNodeStore()
    grow(honest, 20)
    grow(forged, 20, salt=b"forged")
    checkpoints = MemoryCheckpointStore()
    signer = NoteSigner.generate(ORIGIN)
    make_issuer(honest, [signer], checkpoints).issue()
    with pytest.raises(IntegrityError, match="rewritten"):
        make_issuer(forged, [signer], checkpoints).issue()
    grow(forged, 5)
    with pytest.raises(IntegrityError, match="rewritten"):
        make_issuer(forged, [signer], checkpoints).issue()
    assert checkpoints.latest() is not None and checkpoints.latest()[0] == 20  # type: ignore[index]


def test_a_concurrent_issuer_of_a_larger_size_wins() -> None:
    """Two issuers of one ledger (two server processes): the one that read a smaller tree meets the
    other's larger checkpoint at its put, reads the tree again and answers with the larger size."""
    tree = merkle.MemoryNodeStore()
    grow(tree, 4)
    shared = MemoryCheckpointStore()
    signer = NoteSigner.generate(ORIGIN)
    other = make_issuer(tree, [signer], shared)

    class Racing(MemoryCheckpointStore):
        raced = False

        def put(self, size: int, note: str) -> str:
            if not self.raced:  # between this issuer's read of the tree and its put, the other issues
                self.raced = True
                grow(tree, 3)
                other.issue()
            return shared.put(size, note)

        def get(self, size: int) -> str | None:
            return shared.get(size)

        def latest(self) -> tuple[int, str] | None:
            return shared.latest()

    size, note = make_issuer(tree, [signer], Racing()).issue()
    assert size == 7 and note == shared.get(7) and shared.get(4) is None
    assert verified(note, signer)[0] == 7


def test_another_writers_commit_and_checkpoint_between_the_reads_is_no_removal() -> None:
    """Another process commits and issues a checkpoint of the larger tree while this issuer reads
    the store and the tree size: that is growth, never "entries were removed" (seen with two
    server workers on one PostgreSQL database)."""
    tree = merkle.MemoryNodeStore()
    grow(tree, 4)
    shared = MemoryCheckpointStore()
    signer = NoteSigner.generate(ORIGIN)
    other = make_issuer(tree, [signer], shared)
    other.issue()
    raced = False

    def size() -> int:
        nonlocal raced
        seen = tree.size
        if not raced:  # right after this issuer's read of the size, the other writer commits and issues
            raced = True
            grow(tree, 2)
            other.issue()
        return seen

    issuer = CheckpointIssuer(
        CheckpointKeys(origin=ORIGIN, signers=(signer,)), shared, lambda n: merkle.root_hash(tree, n), size,
        clock=ManualClock(),
    )
    issued, note = issuer.issue()  # the tree it read: 4 entries, already checkpointed
    assert issued == 4 and note == shared.get(4) and shared.latest() == (6, shared.get(6))


def test_issues_after_commits_at_most_once_per_interval() -> None:
    tree = merkle.MemoryNodeStore()
    clock = ManualClock()
    issuer = make_issuer(tree, [NoteSigner.generate(ORIGIN)], clock=clock, interval=2.0)
    grow(tree, 1)
    assert issuer.due_in() is None
    assert issuer.after_commit() is not None and issuer.latest() is not None
    grow(tree, 1)
    assert issuer.after_commit() is None  # within the interval: pending
    assert issuer.due_in() == 2.0 and issuer.flush() is None
    clock.now += 1.5
    grow(tree, 1)
    assert issuer.after_commit() is None and issuer.due_in() == pytest.approx(0.5)
    assert issuer.latest()[0] == 1  # type: ignore[index]
    clock.now += 0.5
    assert issuer.latest()[0] == 3  # type: ignore[index]  # a reader's request issues what became due
    assert issuer.due_in() is None and issuer.flush() is None
    clock.now += 5
    grow(tree, 2)
    assert issuer.after_commit() is not None and issuer.at(5) is not None  # interval passed: at once
    grow(tree, 1)
    assert issuer.after_commit() is None
    clock.now += 2
    flushed = issuer.flush()  # a server's timer
    assert flushed is not None and flushed[0] == 6
    assert issuer.issue()[0] == 6  # on demand, and the current size was issued already
    every = make_issuer(tree, [NoteSigner.generate(ORIGIN)], clock=clock, interval=0)
    grow(tree, 1)
    assert every.after_commit() is not None
    grow(tree, 1)
    assert every.after_commit() is not None


def test_several_keys_sign_and_rotate() -> None:
    tree = merkle.MemoryNodeStore()
    grow(tree, 3)
    checkpoints = MemoryCheckpointStore()
    old, new = NoteSigner.generate(ORIGIN), NoteSigner.generate(ORIGIN)
    _, before = make_issuer(tree, [old], checkpoints).issue()
    grow(tree, 3)
    _, during = make_issuer(tree, [old, new], checkpoints).issue()
    assert verified(during, old) == verified(during, new)  # a verifier with either key accepts it
    grow(tree, 3)
    _, after = make_issuer(tree, [new], checkpoints).issue()
    assert verified(after, new)[0] == 9
    with pytest.raises(UnverifiedNoteError):
        verified(after, old)
    assert checkpoints.get(3) == before and verified(before, old)[0] == 3
    tampered = during.replace(f"{ORIGIN}\n6\n", f"{ORIGIN}\n5\n")
    with pytest.raises(InvalidSignatureError):
        verified(tampered, new)


def test_issuer_needs_a_key() -> None:
    with pytest.raises(ConfigurationError, match="at least one signing key"):
        make_issuer(merkle.MemoryNodeStore(), [])


# -- key configuration ---------------------------------------------------------------------------


def _seed(signer: NoteSigner) -> str:
    return signer.skey.split("+", 4)[4]


def test_keys_from_files_environment_and_code(tmp_path: Path) -> None:
    origin = default_origin("keys")
    a, b, c, d = (NoteSigner.generate(origin) for _ in range(4))
    write_key_file(tmp_path / "a.key", a)
    environ = {"NUCLEUS_CHECKPOINT_KEY": f"{b.skey}\n\n{c.skey}\n"}
    keys = CheckpointConfig(key_files=[tmp_path / "a.key"], signers=[d]).load("keys", environ=environ)
    assert keys.origin == origin
    assert keys.signers == (d, a, b, c)
    assert keys.vkeys == tuple(s.vkey for s in (d, a, b, c))
    assert all(_seed(s) not in repr(keys) for s in (a, b, c, d))
    assert CheckpointConfig(key_env=None).load("keys", environ=environ).signers == ()
    assert CheckpointConfig().load("keys", environ={"NUCLEUS_CHECKPOINT_KEY": ""}).signers == ()
    assert CheckpointConfig(key_env="MY_KEY").load("keys", environ={"MY_KEY": a.skey}).signers == (a,)
    custom = CheckpointConfig(origin="example.com/mine", interval=0.25)
    assert custom.load("keys", environ={}).origin == "example.com/mine" and custom.interval == 0.25
    assert checkpoint_config({"origin": "example.com/x"}).origin == "example.com/x"
    assert checkpoint_config(None) == CheckpointConfig()


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_key_files_others_may_read_are_refused(tmp_path: Path) -> None:
    signer = NoteSigner.generate(default_origin("keys"))
    path = tmp_path / "shared.key"
    write_key_file(path, signer)
    assert path.stat().st_mode & 0o777 == 0o600
    for mode in (0o640, 0o604, 0o620):
        path.chmod(mode)
        expected = f"permissions 0{mode:o} .*chmod 600.*insecure_key_permissions"
        with pytest.raises(ConfigurationError, match=expected) as caught:
            CheckpointConfig(key_files=[path]).load("keys", environ={})
        assert _seed(signer)[:20] not in str(caught.value)
    assert CheckpointConfig(key_files=[path], insecure_key_permissions=True).load("keys", environ={}).signers == (
        signer,
    )
    link = tmp_path / "link.key"
    path.chmod(0o600)
    link.symlink_to(path)  # a mounted secret is a symbolic link: the file's own mode counts
    assert CheckpointConfig(key_files=[link]).load("keys", environ={}).signers == (signer,)


def test_key_configuration_errors_name_the_source_never_the_key(tmp_path: Path) -> None:
    signer = NoteSigner.generate(default_origin("keys"))
    write_key_file(tmp_path / "k.key", signer)
    broken = signer.skey[:-3]
    cases = [
        (CheckpointConfig(key_files=[tmp_path / "k.key"]), {"NUCLEUS_CHECKPOINT_KEY": signer.skey}, "configured twice"),
        (CheckpointConfig(), {"NUCLEUS_CHECKPOINT_KEY": f"{signer.skey}\n{broken}"}, "NUCLEUS_CHECKPOINT_KEY, line 2"),
        (CheckpointConfig(key_files=[tmp_path / "missing.key"]), {}, "missing.key.*cannot be read"),
        (CheckpointConfig(key_files=[tmp_path]), {}, "not a regular file"),
    ]
    for config, environ, message in cases:
        with pytest.raises(ConfigurationError, match=message) as caught:
            config.load("keys", environ=environ)
        assert _seed(signer)[:20] not in str(caught.value)
    with pytest.raises(ConfigurationError, match="already exists"):
        write_key_file(tmp_path / "k.key", NoteSigner.generate("other"))
    assert CheckpointConfig(key_files=[tmp_path / "k.key"]).load("keys", environ={}).signers == (signer,)
    for bad in ({"origin": "has space"}, {"interval": -1}, {"interval": True}, {"key_env": ""}, {"colour": 1}):
        with pytest.raises(ConfigurationError):
            checkpoint_config(bad)


def test_a_key_not_named_after_the_origin_is_used_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    signer = NoteSigner.generate("another.example/log")
    with caplog.at_level(logging.WARNING, logger="nucleus_core.checkpoints"):
        keys = CheckpointConfig(signers=[signer]).load("keys", environ={})
    assert keys.signers == (signer,)
    assert "SHOULD be the origin" in caplog.text and "nucleus.invalid/keys" in caplog.text
    assert _seed(signer) not in caplog.text


def test_an_issuer_never_signs_what_does_not_extend_its_own_checkpoints_even_if_the_store_forgets() -> None:
    """Whoever can write the database can delete the stored checkpoints and rewrite the tree: a
    running issuer still refuses, from what it signed itself (tlog-checkpoint's consistency duty)."""
    tree = merkle.MemoryNodeStore()
    grow(tree, 10)
    signer = NoteSigner.generate(ORIGIN)
    issuer = make_issuer(tree, [signer], MemoryCheckpointStore())
    issuer.issue()
    issuer._store = MemoryCheckpointStore()  # the rows are gone
    tree.truncate(4)
    with pytest.raises(IntegrityError, match="signed a checkpoint at size 10"):
        issuer.issue()
    grow(tree, 8, salt=b"rewritten")
    with pytest.raises(IntegrityError, match="root at size 10 is not the one this ledger signed"):
        issuer.issue()
