"""A trusted checkpoint kept outside the database: what the database alone cannot show.

Whoever can write the database can delete the newest entries, rewrite all of history with every
hash (and the Merkle tree) recomputed, or put back an older copy, and the chain still verifies. A
signed checkpoint taken earlier and kept elsewhere catches each: the stored tree must be at least
as large as the checkpoint's and have the checkpoint's root at its size (then the stored ledger
extends the one the checkpoint committed to, RFC 9162 consistency). :func:`check_trusted_checkpoint`
runs at open when :class:`~nucleus_core.ledger.LedgerConfig` names one (``trusted_checkpoint``
and ``trusted_checkpoint_vkeys`` / ``trusted_checkpoint_vkey_file``), and for
``nucleus verify --checkpoint FILE``.

With ``verify_from_trusted_checkpoint`` the open verifies only what the checkpoint does not vouch
for (:func:`verify_after_checkpoint`): the entries after it and the tree nodes they complete, in a
time that depends on how many entries were appended since, not on the ledger's size. What that
leaves unchecked is in ``docs/TRANSPARENCY.md`` ("Opening from a trusted checkpoint").
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .checkpoint import default_origin
from .errors import CheckpointMismatchError, CheckpointRefusedError, ConfigurationError
from .hashing import GENESIS_HASH
from .merkle import consistency_proof, inclusion_proof, root_hash
from .storage import entry_rows
from .tlog_verify import (
    Checkpoint,
    NoteVerifier,
    VerificationError,
    leaf_hash,
    parse_vkey,
    verify_checkpoint,
    verify_consistency,
    verify_inclusion,
)
from .tree import check_tree, raw_hash, tree_storage
from .verify import START_STATE, VerificationReport, verify_rows

if TYPE_CHECKING:
    from .merkle import MerkleNodeStore
    from .storage import StorageBackend


class SizedTree(Protocol):
    """What :func:`check_trusted_checkpoint` reads of a tree: a
    :class:`~nucleus_core.capabilities.MerkleTreeStorage` (the committed tree) or a
    :class:`~nucleus_core.capabilities.MerkleTreeTransaction` (the tree inside a write, before it
    commits: ``nucleus import``)."""

    def merkle_size(self) -> int: ...

    def merkle_store(self) -> MerkleNodeStore: ...

__all__ = ["SizedTree", "check_trusted_checkpoint", "load_verifiers", "read_checkpoint_file", "verify_after_checkpoint"]


def load_verifiers(vkeys: Iterable[str] = (), key_file: str | os.PathLike[str] | None = None) -> list[NoteVerifier]:
    """The verifier keys ``vkeys`` (signed-note vkey strings) and those of ``key_file`` (one per
    line; blank lines and lines starting with ``#`` are skipped). At least one is required."""
    texts = list(vkeys)
    if key_file is not None:
        try:
            lines = Path(key_file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            where = f"verifier key file {os.fspath(key_file)!r}"
            raise ConfigurationError(f"{where}: cannot be read ({type(err).__name__})") from None
        texts.extend(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))
    if not texts:
        raise ConfigurationError("a trusted checkpoint needs the verifier key(s) to check it with")
    verifiers = []
    for text in texts:
        try:
            verifiers.append(parse_vkey(text))
        except VerificationError as err:
            raise ConfigurationError(f"verifier key {text.split('+', 1)[0]!r}: {err}") from None
    return verifiers


def read_checkpoint_file(path: str | os.PathLike[str]) -> bytes:
    """The signed checkpoint note in the file ``path``, its bytes exactly as stored: read as text,
    Python would turn CRLF and lone CRs into newlines, and a note holding a CR is malformed
    (c2sp.org/signed-note), so the strict parser must see them."""
    try:
        return Path(path).read_bytes()
    except OSError as err:
        where = f"trusted checkpoint {os.fspath(path)!r}"
        raise ConfigurationError(f"{where}: cannot be read ({type(err).__name__})") from None


def check_trusted_checkpoint(
    ledger_id: str,
    tree: SizedTree | None,
    note: str | bytes,
    verifiers: Iterable[NoteVerifier],
    *,
    origin: str | None = None,
    where: str = "the trusted checkpoint",
) -> Checkpoint:
    """Verify the signed checkpoint ``note`` with ``verifiers`` (for ``origin``, default the ledger's
    :func:`~nucleus_core.checkpoint.default_origin`), then refuse, with an
    :class:`~nucleus_core.errors.CheckpointMismatchError` naming both sizes, a stored tree that is
    smaller or whose root at the checkpoint's size differs (a note that does not verify:
    :class:`~nucleus_core.errors.CheckpointRefusedError`; both are integrity errors). Returns the
    checkpoint."""
    expected_origin = origin if origin is not None else default_origin(ledger_id)
    try:
        checkpoint = verify_checkpoint(note, verifiers, origin=expected_origin)
    except VerificationError as err:
        raise CheckpointRefusedError(
            f"ledger {ledger_id!r}: {where} does not verify: {err}", reason="checkpoint"
        ) from None
    if tree is None:
        raise ConfigurationError(f"ledger {ledger_id!r}: its storage keeps no Merkle tree to check {where} against")
    size = tree.merkle_size()
    if size < checkpoint.size:
        raise CheckpointMismatchError(
            f"ledger {ledger_id!r}: the stored Merkle tree covers {size} entries, fewer than the {checkpoint.size} "
            f"of {where} (entries were removed, or this is an older copy of the ledger)",
            seq=size + 1, reason="checkpoint",
        )
    stored = root_hash(tree.merkle_store(), checkpoint.size)
    if stored != checkpoint.root_hash:
        raise CheckpointMismatchError(
            f"ledger {ledger_id!r}: at tree size {checkpoint.size} (of {size} stored) the root hash is {stored.hex()}, "
            f"not {checkpoint.root_hash.hex()} as {where} says (history was rewritten, or this is another ledger)",
            reason="checkpoint",
        )
    return checkpoint


def verify_after_checkpoint(ledger_id: str, storage: StorageBackend, checkpoint: Checkpoint) -> VerificationReport:
    """Verify the part of the stored ledger that ``checkpoint`` (verified, and whose root the stored
    tree has at its size: :func:`check_trusted_checkpoint`) does not vouch for, in time
    proportional to the entries after it:

    - entry ``m`` (the checkpoint's size) is the leaf ``m - 1`` of the checkpoint's tree (an
      inclusion proof from the stored tree, checked against the checkpoint's root), and its stored
      bytes hash to its hash: the chain after it starts from a verified hash and state;
    - every entry after it: seq, link, hash, strict parse, derived columns (as
      :func:`~nucleus_core.verify.verify_rows`), up to storage's head;
    - the stored tree nodes those entries complete, recomputed from the frontier of the
      checkpoint's tree (:func:`~nucleus_core.tree.check_tree` with ``start``), and the RFC 9162
      consistency proof from the checkpoint's tree to the stored tree of the verified entries.

    Entries ``1..m - 1`` are taken as the checkpoint's root vouches for them: their bytes are not
    read. The report counts them as checked (``entries_checked`` is the chain's length); its
    failures name the first bad seq as full verification would, for the entries it reads."""
    tree = tree_storage(storage)
    if tree is None:
        raise ConfigurationError(f"ledger {ledger_id!r}: its storage keeps no Merkle tree to open from a checkpoint")
    size = checkpoint.size
    # Storage's claim of how many entries there are: the head's seq (an index probe), not count()
    # (a scan of the ledger's rows on SQLite); the entries before the checkpoint are not read.
    head = storage.head()
    count = head.seq if head is not None else 0
    rows = entry_rows(storage, max(size, 1))
    start_hash, first_seq = GENESIS_HASH, 1
    if size > 0:
        row = next(rows, None)
        if row is None or row[0] != size:
            return VerificationReport(
                ok=False, entries_checked=size - 1, first_bad_seq=size,
                reason=f"entry {size}, the last of the trusted checkpoint's tree, is not stored",
            )
        raw = raw_hash(row[1]) if type(row[1]) is str else None
        problem = None
        if raw is None or raw.hex() != row[1]:
            problem = "its hash is not 64 lowercase hex digits"
        else:
            try:
                verify_inclusion(
                    leaf_hash(raw), size - 1, size, inclusion_proof(tree.merkle_store(), size - 1, size),
                    checkpoint.root_hash,
                )
            except VerificationError as err:
                problem = f"its hash is not the last leaf of the trusted checkpoint's tree ({err})"
        prev = row[2]
        prev_raw = raw_hash(prev) if type(prev) is str else None
        if problem is None and (prev_raw is None or prev_raw.hex() != prev):
            problem = "its prev_hash is not 64 lowercase hex digits"
        if problem is not None:
            return VerificationReport(
                ok=False, entries_checked=size - 1, first_bad_seq=size, reason=f"entry {size}: {problem}"
            )
        # Entry m itself is verified (its hash binds its prev_hash, bytes and appender columns),
        # then the chain continues from it. Entry m - 1's state is not read: the transition check
        # between m - 1 and m is the one check of the chain this leaves to full verification.
        start_hash, first_seq = prev, size
        rows = itertools.chain((row,), rows)
    report = verify_rows(
        ledger_id, rows, expected_count=count, first_seq=first_seq, start_hash=start_hash, start_state=START_STATE
    )
    if not report.ok:
        return report
    problem_at = check_tree(storage, entries=report.entries_checked, start=size)
    if problem_at is not None:
        return VerificationReport(
            ok=False, entries_checked=problem_at.seq - 1, first_bad_seq=problem_at.seq, reason=problem_at.reason,
            head_hash=report.head_hash,
        )
    # The stored tree of the verified entries extends the checkpoint's (implied by the node check
    # above, which grew it from the checkpoint's frontier; checked as a client would, by proof).
    current = min(tree.merkle_size(), report.entries_checked)
    if current > size:
        store = tree.merkle_store()
        try:
            verify_consistency(
                size, current, checkpoint.root_hash, root_hash(store, current), consistency_proof(store, size, current)
            )
        except VerificationError as err:
            return VerificationReport(
                ok=False, entries_checked=size, first_bad_seq=size + 1, head_hash=report.head_hash,
                reason=f"the stored tree of {current} entries is not consistent with the trusted checkpoint ({err})",
            )
    return report
