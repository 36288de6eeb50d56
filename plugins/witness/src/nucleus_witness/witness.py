"""The witness's decisions: c2sp.org/tlog-witness ``add-checkpoint``, step by step.

:meth:`Witness.add_checkpoint` takes a request body and returns the answer's body (the cosignature
line), or raises the :class:`~nucleus_core.tlog_witness.WitnessError` whose status the answer
carries. In order:

1. the body is an old size line, at most 63 proof lines, a blank line and a signed note (else 400);
2. the note's origin is a log this witness is configured for (else 404);
3. one of that log's configured keys signed it, and no signature line of those keys fails
   (else 403); lines by other keys (other witnesses' cosignatures, unknown keys) are ignored;
4. its text is a checkpoint (else 400; a size-0 checkpoint without the empty tree's root, 422);
5. the old size is at most the checkpoint's size (else 400);

then, in one transaction of the state file (:meth:`~nucleus_witness.state.WitnessState.update`):

6. the old size is the size of the latest checkpoint cosigned for the origin, 0 before the first
   (else 409, with that size);
7. from 0 the proof is empty (else 422): the first checkpoint is trusted on first use; from a
   larger size the proof is an RFC 9162 consistency proof from the stored root to the new one
   (else 422), which at equal sizes means the same root and no proof;
8. the cosignature is made (its timestamp is now, never earlier than the stored one's, so that
   the witness never says that a smaller tree was the largest it had seen after it cosigned a
   larger one) and the new state is written: size, root, timestamp and the checkpoint with the
   log's verified signatures and the cosignature; the transaction commits, durably,

and only then is the cosignature line returned. The stored size never decreases, and a checkpoint
is cosigned only when it extends the stored one, so two inconsistent checkpoints of one log are
never both cosigned.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterable, Mapping

import attrs

from nucleus_core.checkpoint import CosignatureSigner
from nucleus_core.errors import ConfigurationError
from nucleus_core.tlog_verify import (
    EMPTY_ROOT,
    Checkpoint,
    CheckpointError,
    NoteError,
    NoteSignature,
    NoteVerifier,
    ProofError,
    parse_checkpoint,
    parse_note,
    verify_consistency,
    verify_note,
)
from nucleus_core.tlog_witness import (
    WitnessBadRequestError,
    WitnessConflictError,
    WitnessForbiddenError,
    WitnessProofError,
    WitnessUnknownLogError,
    parse_add_checkpoint,
)

from .state import Cosigned, WitnessState

__all__ = ["FAULT_AFTER_COMMIT", "FAULT_ENV", "Witness", "WitnessedLog", "origin_hash"]

log = logging.getLogger(__name__)

FAULT_ENV = "NUCLEUS_WITNESS_TEST_FAULT"
"""For tests only: ``nucleus witness serve`` reads this environment variable at start."""

FAULT_AFTER_COMMIT = "kill-after-commit"
"""The value of :data:`FAULT_ENV` that makes the process SIGKILL itself after every state commit,
before it answers: the crash the witness's durability is tested against."""


def origin_hash(origin: str) -> str:
    """The path segment of a log on the monitoring path: lowercase hex SHA-256 of its origin."""
    return hashlib.sha256(origin.encode("utf-8")).hexdigest()


@attrs.frozen(kw_only=True)
class WitnessedLog:
    """A log this witness cosigns for: its origin and the keys its checkpoints are signed with."""

    origin: str
    verifiers: tuple[NoteVerifier, ...]


class Witness:
    """A witness: its cosignature key, the logs it witnesses and its state file. ``clock`` gives
    POSIX seconds; ``fault`` is :data:`FAULT_AFTER_COMMIT` in crash tests, None otherwise."""

    def __init__(
        self,
        signer: CosignatureSigner,
        logs: Iterable[WitnessedLog],
        state: WitnessState,
        *,
        clock: Callable[[], float] = time.time,
        fault: str | None = None,
    ) -> None:
        if fault not in (None, FAULT_AFTER_COMMIT):
            raise ConfigurationError(f"{FAULT_ENV}: unknown fault {fault!r} (tests only: {FAULT_AFTER_COMMIT!r})")
        self.signer = signer
        witnessed: dict[str, WitnessedLog] = {}
        for entry in logs:
            if entry.origin in witnessed:
                raise ConfigurationError(f"the log {entry.origin!r} is witnessed twice")
            if not entry.verifiers:
                raise ConfigurationError(f"the log {entry.origin!r} has no verifier key")
            witnessed[entry.origin] = entry
        self.logs: Mapping[str, WitnessedLog] = witnessed
        self.by_hash: Mapping[str, str] = {origin_hash(origin): origin for origin in self.logs}
        self.state = state
        self._clock = clock
        self._fault = fault

    def add_checkpoint(self, body: bytes) -> bytes:
        """The 200 answer's body to the add-checkpoint request ``body`` (steps in the module
        docstring); a :class:`~nucleus_core.tlog_witness.WitnessError` otherwise."""
        request = parse_add_checkpoint(body)
        text = parse_note(request.checkpoint).text
        origin = text.split("\n", 1)[0]
        witnessed = self.logs.get(origin)
        if witnessed is None:
            raise WitnessUnknownLogError(f"this witness does not witness the log {origin!r}")
        try:
            verified = verify_note(request.checkpoint, witnessed.verifiers)
        except NoteError as err:
            raise WitnessForbiddenError(f"the checkpoint is not signed by the log's key: {err}") from None
        checkpoint = _checkpoint(verified.text)
        if request.old_size > checkpoint.size:
            raise WitnessBadRequestError(
                f"the old size {request.old_size} is larger than the checkpoint's size {checkpoint.size}"
            )

        made: list[str] = []  # the cosignature line of the state written

        def decide(current: Cosigned | None) -> Cosigned:
            stored = 0 if current is None else current.size
            if request.old_size != stored:
                raise WitnessConflictError(
                    f"the latest checkpoint cosigned for {origin!r} has size {stored}, not {request.old_size}",
                    size=stored,
                )
            if current is None or request.old_size == 0:
                if request.proof:
                    raise WitnessProofError("a consistency proof from size 0 is empty")
            else:
                try:
                    verify_consistency(current.size, checkpoint.size, current.root, checkpoint.root_hash, request.proof)
                except ProofError as err:
                    log.warning(
                        "refused a checkpoint of %r at size %d that is not consistent with the one cosigned at "
                        "size %d (%s): possible evidence of a log's misbehaviour: %r",
                        origin, checkpoint.size, current.size, err, request.checkpoint,
                    )
                    raise WitnessProofError(
                        f"the checkpoint is not consistent with the one cosigned at size {current.size}: {err}"
                    ) from None
            timestamp = max(int(self._clock()), 1 if current is None else current.timestamp)
            made[:] = [self.signer.cosign(verified.text, timestamp).line()]
            return Cosigned(
                origin=origin,
                size=checkpoint.size,
                root=checkpoint.root_hash,
                timestamp=timestamp,
                checkpoint=_served(verified.text, verified.verified, made[0]),
            )

        self.state.update(origin, decide)
        if self._fault == FAULT_AFTER_COMMIT:
            os.kill(os.getpid(), signal.SIGKILL)
        return made[0].encode()

    def latest(self, origin_digest: str) -> str | None:
        """The checkpoint last cosigned for the log whose origin hashes to ``origin_digest`` (the
        monitoring path), or None when the witness never cosigned one for it."""
        origin = self.by_hash.get(origin_digest)
        if origin is None:
            return None
        current = self.state.get(origin)
        return None if current is None else current.checkpoint


def _checkpoint(text: str) -> Checkpoint:
    try:
        return parse_checkpoint(text)
    except CheckpointError as err:
        lines = text.split("\n")
        if len(lines) > 2 and lines[1] == "0" and _other_root(lines[2]):  # well formed, size 0, another root: 422
            raise WitnessProofError(
                f"a checkpoint of size 0 must carry the empty tree's root hash (SHA-256 of nothing, {EMPTY_ROOT.hex()})"
            ) from None
        raise WitnessBadRequestError(f"the note is not a checkpoint: {err}") from None


def _other_root(line: str) -> bool:
    """True when ``line`` is the strict base64 of 32 bytes other than the empty tree's root (what
    tlog-witness answers 422 for in a size-0 checkpoint; anything malformed is a 400)."""
    try:
        root = base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(root) == len(EMPTY_ROOT) and root != EMPTY_ROOT and base64.b64encode(root).decode() == line


def _served(text: str, log_signatures: Iterable[NoteSignature], cosignature_line: str) -> str:
    """The checkpoint as stored and served: its text, the log signatures verified, the cosignature."""
    return text + "\n" + "".join(sig.line() for sig in log_signatures) + cosignature_line
