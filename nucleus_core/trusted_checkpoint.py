"""A trusted checkpoint kept outside the database: what the database alone cannot show.

Whoever can write the database can delete the newest entries, rewrite all of history with every
hash (and the Merkle tree) recomputed, or put back an older copy, and the chain still verifies. A
signed checkpoint taken earlier and kept elsewhere catches each: the stored tree must be at least
as large as the checkpoint's and have the checkpoint's root at its size (then the stored ledger
extends the one the checkpoint committed to, RFC 9162 consistency). :func:`check_trusted_checkpoint`
runs at open when :class:`~nucleus_core.ledger.LedgerConfig` names one (``trusted_checkpoint``
and ``trusted_checkpoint_vkeys`` / ``trusted_checkpoint_vkey_file``), and for
``nucleus verify --checkpoint FILE``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .capabilities import MerkleTreeStorage
from .checkpoint import default_origin
from .errors import CheckpointMismatchError, CheckpointRefusedError, ConfigurationError
from .merkle import root_hash
from .tlog_verify import Checkpoint, NoteVerifier, VerificationError, parse_vkey, verify_checkpoint

__all__ = ["check_trusted_checkpoint", "load_verifiers", "read_checkpoint_file"]


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
    tree: MerkleTreeStorage | None,
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
