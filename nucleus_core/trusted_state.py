"""A verifying client's trusted state: the last checkpoint it verified, and how it moves forward.

A client that checks what a ledger server tells it keeps the latest signed checkpoint it verified
(its *trusted state*, the note's bytes exactly as served) and accepts a newer one only when the
newer one is signed by a trusted key, is for the same log (origin), and extends the trusted one
(an RFC 9162 consistency proof between the two verifies). So the server can neither roll the
client back to an older tree (:class:`~nucleus_core.errors.RollbackError`) nor show it a history
that forks from the one it saw (:class:`~nucleus_core.errors.InconsistentLogError`) without the
client noticing. :class:`TrustedLog` does this for one log, transport-free: it is given the note
and a way to fetch the consistency proof it needs.

Where the state is kept is a :class:`TrustedStateStore`: :class:`FileTrustedState` (a file
holding the note, replaced atomically; the same file ``LedgerConfig(trusted_checkpoint=...)`` and
``nucleus verify --checkpoint`` read) or :class:`MemoryTrustedState` (for the life of the object).
A state that cannot be read, or does not verify, is a
:class:`~nucleus_core.errors.TrustedStateError`, never silently replaced.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from .cosignature import CosignaturePolicy, CosignaturePolicyError
from .errors import (
    CheckpointSignatureError,
    InconsistentLogError,
    RollbackError,
    TrustedStateError,
    WitnessPolicyError,
)
from .tlog_verify import (
    Checkpoint,
    NoteVerifier,
    VerificationError,
    parse_checkpoint,
    parse_note,
    verify_checkpoint,
    verify_consistency,
)

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no advisory lock between processes
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "FileTrustedState", "MemoryTrustedState", "NotePolicy", "TrustedLog", "TrustedStateStore", "witness_policy",
]


@runtime_checkable
class TrustedStateStore(Protocol):
    """Where a verifying client keeps the last checkpoint it verified (the signed note's bytes)."""

    def load(self) -> bytes | None:
        """The note saved last, None when nothing was saved yet; raises
        :class:`~nucleus_core.errors.TrustedStateError` when the state exists but cannot be read."""

    def save(self, note: bytes) -> None:
        """Keep ``note`` (a verified checkpoint that extends the one saved before) durably, replacing
        the one saved before; raises :class:`~nucleus_core.errors.TrustedStateError` on failure."""


class MemoryTrustedState:
    """Trusted state in memory: lost with the object (a client verifying for its own lifetime)."""

    def __init__(self, note: bytes | None = None) -> None:
        self._note = note
        self._lock = threading.Lock()

    def load(self) -> bytes | None:
        with self._lock:
            return self._note

    def save(self, note: bytes) -> None:
        with self._lock:
            self._note = bytes(note)


def _size_of(note: bytes) -> int | None:
    """The tree size of a checkpoint note, unverified (None when it is not one)."""
    try:
        return parse_checkpoint(parse_note(note).text).size
    except VerificationError:
        return None


class FileTrustedState:
    """Trusted state in the file ``path``: the checkpoint note's bytes and nothing else, so the
    file is also a kept checkpoint for ``nucleus verify --checkpoint``.

    Saving writes a temporary file in the same directory, flushes it to disk (fsync), renames it
    over ``path`` and fsyncs the directory: a crash leaves the old state or the new one, never a
    mix. On POSIX an advisory lock (``path`` + ``.lock``) serializes savers in several processes,
    and a save never replaces a larger checkpoint another process saved meanwhile. A missing file
    is an empty state; any other file that cannot be read is a
    :class:`~nucleus_core.errors.TrustedStateError`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"FileTrustedState({os.fspath(self.path)!r})"

    def _where(self) -> str:
        return f"trusted state file {os.fspath(self.path)!r}"

    def load(self) -> bytes | None:
        try:
            note = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise TrustedStateError(f"{self._where()}: cannot be read ({type(err).__name__}: {err.strerror})") from None
        if not note:
            raise TrustedStateError(
                f"{self._where()}: is empty, not a checkpoint (restore it from a copy, or remove it to trust "
                "the next checkpoint on its signature alone)"
            )
        return note

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if fcntl is None:
            yield
            return
        try:
            fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as err:
            raise TrustedStateError(f"{self._where()}: cannot open its lock file ({err.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def save(self, note: bytes) -> None:
        new_size = _size_of(note)
        if new_size is None:
            raise TrustedStateError(f"{self._where()}: refusing to save something that is not a checkpoint note")
        directory = self.path.parent
        with self._locked():
            try:
                current = self.path.read_bytes()
            except FileNotFoundError:
                current = None
            except OSError as err:
                raise TrustedStateError(f"{self._where()}: cannot be read ({err.strerror})") from None
            if current is not None:
                current_size = _size_of(current)
                if current_size is not None and current_size > new_size:
                    return  # another client advanced further meanwhile: never move the file back
            try:
                fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.", suffix=".tmp")
            except OSError as err:
                raise TrustedStateError(f"{self._where()}: cannot write in its directory ({err.strerror})") from None
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(note)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, self.path)
            except OSError as err:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise TrustedStateError(f"{self._where()}: cannot be written ({err.strerror})") from None
            _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as err:
        raise TrustedStateError(f"directory {os.fspath(directory)!r}: cannot be flushed ({err.strerror})") from None
    finally:
        os.close(fd)


class NotePolicy(Protocol):
    """A further requirement on a checkpoint note already verified with the log's keys (a witness
    policy): returns when the note meets it, raises a
    :class:`~nucleus_core.errors.LogVerificationError` subclass naming why not otherwise."""

    def __call__(self, note: bytes, checkpoint: Checkpoint) -> None: ...


def witness_policy(policy: CosignaturePolicy) -> NotePolicy:
    """The :class:`NotePolicy` requiring ``policy``'s k of n witness cosignatures
    (c2sp.org/tlog-cosignature) on a checkpoint: fewer, or a trusted witness's line that does not
    verify, is a :class:`~nucleus_core.errors.WitnessPolicyError`."""

    def check(note: bytes, checkpoint: Checkpoint) -> None:
        try:
            policy.check(note)
        except CosignaturePolicyError as err:
            raise WitnessPolicyError(
                f"the checkpoint of {checkpoint.origin!r} at size {checkpoint.size} is refused: {err}"
            ) from None
        except VerificationError as err:
            raise WitnessPolicyError(
                f"the checkpoint of {checkpoint.origin!r} at size {checkpoint.size} is refused: a trusted witness's "
                f"cosignature line does not verify ({err})"
            ) from None

    return check


ConsistencyFetch = Callable[[int, int], Sequence[bytes]]
"""``fetch(old_size, new_size)``: the consistency proof's hashes, as the server sent them."""


class TrustedLog:
    """The trusted state of one log (``origin``, checkpoints signed by ``verifiers``), kept in
    ``store``. Thread-safe; the store is read again before each advance, so several clients
    sharing one store see each other's progress, checked as an answer of the server would be: a
    larger checkpoint found there is adopted once proven to extend the one trusted, one of the same
    size with another root is a fork (:class:`~nucleus_core.errors.InconsistentLogError`). ``policy``:
    checked on every checkpoint received (not on the stored one, checked when it was received).
    """

    def __init__(
        self,
        verifiers: Iterable[NoteVerifier],
        origin: str,
        store: TrustedStateStore,
        *,
        policy: NotePolicy | None = None,
    ) -> None:
        self.verifiers = tuple(verifiers)
        if not self.verifiers:
            raise TrustedStateError("a trusted log needs at least one verifier key")
        self.origin = origin
        self.store = store
        self.policy = policy
        self._lock = threading.RLock()
        self._trusted: tuple[Checkpoint, bytes] | None = None
        self._loaded = False

    # -- state ---------------------------------------------------------------------------------
    def _load(self, consistency: ConsistencyFetch | None = None) -> tuple[Checkpoint, bytes] | None:
        """The stored state, verified. Once this client trusts a checkpoint, one that another
        client sharing the store saved since must agree with it: the same size with another root is
        an :class:`~nucleus_core.errors.InconsistentLogError`; a larger one is adopted only once
        proven to extend it (with ``consistency``; without it the trusted one stays until
        :meth:`accept` can prove it); a smaller one leaves it as it is."""
        note = self.store.load()
        if note is None:
            if self._trusted is not None:
                raise TrustedStateError(
                    f"{self.store!r} lost the trusted checkpoint of size {self._trusted[0].size} this client "
                    "saved (removed while in use?)"
                )
            return None
        if self._trusted is not None and note == self._trusted[1]:
            return self._trusted
        try:
            checkpoint = verify_checkpoint(note, self.verifiers, origin=self.origin)
        except VerificationError as err:
            raise TrustedStateError(
                f"{self.store!r} does not hold a valid checkpoint of {self.origin!r} signed by the given keys: {err} "
                "(restore it from a copy; never remove it to get past this without knowing why)"
            ) from None
        if self._trusted is None:
            self._trusted = (checkpoint, note)
            return self._trusted
        mine = self._trusted[0]
        if checkpoint.size == mine.size and checkpoint.root_hash != mine.root_hash:
            raise InconsistentLogError(
                f"{self.store!r} now holds a checkpoint of {checkpoint.size} entries with root "
                f"{checkpoint.root_hash.hex()}, but this client trusts {mine.root_hash.hex()} at that size: two "
                "histories under one key (a fork), seen by clients sharing the trusted state"
            )
        if checkpoint.size > mine.size and consistency is not None:
            self._check_consistent(mine, checkpoint, consistency)
            self._trusted = (checkpoint, note)
        return self._trusted

    @property
    def checkpoint(self) -> Checkpoint | None:
        """The trusted checkpoint (None before the first one was accepted)."""
        with self._lock:
            if not self._loaded:
                self._load()
                self._loaded = True
            return None if self._trusted is None else self._trusted[0]

    @property
    def note(self) -> bytes | None:
        """The trusted checkpoint's note, its bytes as received."""
        with self._lock:
            self.checkpoint  # noqa: B018 - loads the store once
            return None if self._trusted is None else self._trusted[1]

    # -- checking ------------------------------------------------------------------------------
    def verify_note(self, note: bytes) -> Checkpoint:
        """``note`` as a checkpoint of this log signed by a trusted key and meeting the policy:
        :class:`~nucleus_core.errors.CheckpointSignatureError` (or the policy's error) otherwise."""
        try:
            checkpoint = verify_checkpoint(note, self.verifiers, origin=self.origin)
        except VerificationError as err:
            raise CheckpointSignatureError(
                f"the checkpoint of {self.origin!r} the server sent is refused: {err}"
            ) from None
        if self.policy is not None:
            self.policy(note, checkpoint)
        return checkpoint

    def accept(self, note: bytes, consistency: ConsistencyFetch, *, latest: bool = True) -> Checkpoint:
        """Verify ``note`` (:meth:`verify_note`) and relate it to the trusted checkpoint: a larger
        one must extend it (the proof from ``consistency(trusted, new)``), and becomes the trusted
        state; one of the same size must have the same root. A smaller one is a
        :class:`~nucleus_core.errors.RollbackError` when ``latest`` (it was presented as the
        server's latest); otherwise (an older checkpoint asked for) it must be a prefix of the
        trusted one. With no trusted state yet, the note becomes it on its signature alone.
        Returns the verified checkpoint."""
        checkpoint = self.verify_note(note)
        with self._lock:
            trusted = self._load(consistency)
            self._loaded = True
            if trusted is None:
                self._save(checkpoint, note)
                return checkpoint
            old = trusted[0]
            if checkpoint.size < old.size:
                if latest:
                    raise RollbackError(
                        f"the server presents a tree of {checkpoint.size} entries, smaller than the {old.size} "
                        f"already trusted for {self.origin!r} (an older copy of the ledger, or entries removed)",
                        trusted_size=old.size, presented_size=checkpoint.size,
                    )
                self._check_consistent(checkpoint, old, consistency)
            elif checkpoint.size == old.size:
                if checkpoint.root_hash != old.root_hash:
                    raise InconsistentLogError(
                        f"the server presents a tree of {checkpoint.size} entries with root "
                        f"{checkpoint.root_hash.hex()}, but the trusted checkpoint of that size has "
                        f"{old.root_hash.hex()}: two histories under one key (a fork or a rewrite)"
                    )
            else:
                self._check_consistent(old, checkpoint, consistency)
                self._save(checkpoint, note)
            return checkpoint

    def _check_consistent(self, first: Checkpoint, second: Checkpoint, consistency: ConsistencyFetch) -> None:
        proof: Sequence[bytes] = [] if first.size == 0 else consistency(first.size, second.size)
        try:
            verify_consistency(first.size, second.size, first.root_hash, second.root_hash, proof)
        except VerificationError as err:
            raise InconsistentLogError(
                f"the checkpoint of {second.size} entries is not consistent with the one of {first.size} "
                f"({err}): the log forked or was rewritten, or the server shows different histories to different "
                "clients"
            ) from None

    def _save(self, checkpoint: Checkpoint, note: bytes) -> None:
        self.store.save(note)
        self._trusted = (checkpoint, bytes(note))
