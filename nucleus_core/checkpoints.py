"""Issuing a ledger's checkpoints: the signing keys a ledger is configured with, and the issuer.

**Keys** (:class:`CheckpointConfig`, loaded into :class:`CheckpointKeys` when the ledger opens) come
from configuration, never from the ledger's database: key files (one Go-style signer key each,
:func:`~nucleus_core.checkpoint.read_key_file`: a file others may read is refused on POSIX unless
``insecure_key_permissions``), the environment variable ``key_env`` (default
``NUCLEUS_CHECKPOINT_KEY``; one key, or several on separate lines) and signer objects given in
code. Every configured key signs every checkpoint, so a key is rotated by configuring the new key
beside the old one, publishing its verifier key, and dropping the old one once verifiers have the
new one. The origin defaults to :func:`~nucleus_core.checkpoint.default_origin`.

c2sp.org/tlog-checkpoint says the log's key name SHOULD match the origin line. A key named
otherwise is accepted with a warning in the log: verifiers look keys up by (name, key ID), never
by origin, so such a checkpoint still verifies, and logs in use do sign under another name (Rekor
v1); but a mismatch is more often a key made for another ledger, and witnesses configured per
origin may expect the origin's name, hence the warning.

**The issuer** (:class:`CheckpointIssuer`) signs the tree at the ledger's current size, given a
``root_at(size)`` callable and a ``size()`` callable, and stores each checkpoint in a
:class:`~nucleus_core.capabilities.CheckpointStore` so that the one issued at any earlier size can
be read back. It keeps the tlog-checkpoint consistency duty: before signing size ``n`` it checks
that the tree still has the root of the latest stored checkpoint at that checkpoint's size
(:class:`~nucleus_core.errors.IntegrityError` otherwise: the entries were rewritten), it never
signs a size below the latest stored one (the entries were removed), and a size already issued is
answered with the stored checkpoint, never signed again. The store refuses a smaller size after a
larger one atomically, so two processes issuing for one ledger cannot break this either.

*When* it issues needs no thread: the ledger calls :meth:`CheckpointIssuer.after_commit` at the end
of a successful write, which issues when at least ``interval`` seconds passed since the last issue
and otherwise marks the new size as pending; :meth:`CheckpointIssuer.latest` (a reader asking for
the latest checkpoint) first issues a pending size that has become due, and a server may call
:meth:`CheckpointIssuer.flush` from a timer (:meth:`CheckpointIssuer.due_in` says when) so that a
quiet ledger's last writes get a checkpoint within one interval even when nobody asks. At most one
checkpoint is issued per interval by these calls; :meth:`CheckpointIssuer.issue` issues at once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import attrs

from .capabilities import CheckpointStore, CosignatureStore
from .checkpoint import NoteSigner, default_origin, read_key_file, sign_checkpoint, signers_from_text, validate_origin
from .cosignature import CosignaturePolicy
from .errors import ConfigurationError, ConflictError, IntegrityError, NotFoundError, ValidationError
from .observe import CheckpointIssued, Observers
from .tlog_verify import NoteVerifier, VerificationError, parse_checkpoint, parse_note
from .witnessing import DEFAULT_WITNESS_TIMEOUT, WitnessConfig, check_witnesses, witness_config, witness_timeout

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_CHECKPOINT_INTERVAL", "DEFAULT_KEY_ENV", "CheckpointConfig", "CheckpointIssuer", "CheckpointKeys",
    "MemoryCheckpointStore", "check_checkpoint_put", "check_cosignature_put", "check_cosigned_count",
    "checkpoint_config",
]

DEFAULT_KEY_ENV = "NUCLEUS_CHECKPOINT_KEY"
"""The environment variable read for signer keys unless configured otherwise."""

DEFAULT_CHECKPOINT_INTERVAL = 1.0
"""Seconds between two checkpoints issued after commits, unless configured otherwise."""

MAX_CHECKPOINT_INTERVAL = 86_400.0


def _paths(value: Iterable[str | os.PathLike[str]] | str) -> tuple[str, ...]:
    if isinstance(value, str | os.PathLike):
        value = [value]
    return tuple(os.fspath(v) for v in value)


def _interval(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_CHECKPOINT_INTERVAL:
        raise ConfigurationError(
            f"checkpoint interval must be a number of seconds from 0 to {MAX_CHECKPOINT_INTERVAL:g}"
        )
    return float(value)


def _witness_timeout(value: object) -> float:
    return witness_timeout(value, "witness_timeout")


def _witnesses(value: object) -> tuple[WitnessConfig, ...]:
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise ConfigurationError("checkpoint witnesses must be a list of witnesses (url, vkey, name, timeout)")
    return tuple(witness_config(w, i) for i, w in enumerate(value))


@attrs.frozen(kw_only=True)
class CheckpointConfig:
    """How a ledger's checkpoints are signed (``LedgerConfig.checkpoint``; ``[ledger.checkpoint]``
    in the configuration file).

    ``origin``: the checkpoints' origin line (None: :func:`~nucleus_core.checkpoint.default_origin`
    of the ledger id). ``key_files``: files holding one signer key each. ``key_env``: the
    environment variable read for signer keys (one, or several on separate lines); unset or empty
    means none from there; None reads no variable. ``signers``: keys given in code.
    ``insecure_key_permissions``: accept key files that their group or others may read.
    ``interval``: least seconds between two checkpoints issued after commits.
    ``witnesses``: the witnesses each checkpoint is submitted to (:class:`~nucleus_core.witnessing.WitnessConfig`
    objects or mappings of their fields: url, vkey, name, timeout); ``witness_quorum``: how many of
    them must cosign a checkpoint for it to meet the policy (required with witnesses);
    ``witness_timeout``: seconds per network operation of a witness without its own timeout.
    """

    origin: str | None = attrs.field(default=None)
    key_files: tuple[str, ...] = attrs.field(default=(), converter=_paths)
    key_env: str | None = attrs.field(default=DEFAULT_KEY_ENV)
    signers: tuple[NoteSigner, ...] = attrs.field(default=(), converter=tuple)
    insecure_key_permissions: bool = False
    interval: float = attrs.field(default=DEFAULT_CHECKPOINT_INTERVAL, converter=_interval)
    witnesses: tuple[WitnessConfig, ...] = attrs.field(default=(), converter=_witnesses)
    witness_quorum: int | None = None
    witness_timeout: float = attrs.field(default=DEFAULT_WITNESS_TIMEOUT, converter=_witness_timeout)
    witness_policy: CosignaturePolicy | None = attrs.field(init=False, eq=False, repr=False)

    @witness_policy.default
    def _check_witnesses(self) -> CosignaturePolicy | None:
        return check_witnesses(self.witnesses, self.witness_quorum)

    @property
    def witness_vkeys(self) -> tuple[str, ...]:
        """The configured witnesses' verifier keys, in order (how the store names them)."""
        return tuple(w.verifier.vkey for w in self.witnesses)

    @origin.validator
    def _check_origin(self, _attribute: object, value: str | None) -> None:
        if value is not None:
            try:
                validate_origin(value)
            except ValidationError as err:
                raise ConfigurationError(f"checkpoint origin {value!r}: {err}") from None

    @key_env.validator
    def _check_env(self, _attribute: object, value: str | None) -> None:
        if value is not None and (not isinstance(value, str) or not value or "=" in value or "\0" in value):
            raise ConfigurationError("checkpoint key_env must be the name of an environment variable")

    @signers.validator
    def _check_signers(self, _attribute: object, value: tuple[object, ...]) -> None:
        if not all(isinstance(s, NoteSigner) for s in value):
            raise ConfigurationError("checkpoint signers must be NoteSigner objects")

    def load(self, ledger_id: str, *, environ: Mapping[str, str] | None = None) -> CheckpointKeys:
        """The origin and the signers this configuration gives for the ledger ``ledger_id``: read
        from the key files and the environment now. Raises :class:`ConfigurationError` naming the
        file or variable at fault (never a key), also for one key configured twice."""
        origin = self.origin if self.origin is not None else default_origin(ledger_id)
        found: list[tuple[NoteSigner, str]] = [(s, "a signer given in code") for s in self.signers]
        for path in self.key_files:
            signer = read_key_file(path, insecure_permissions=self.insecure_key_permissions)
            found.append((signer, f"key file {path!r}"))
        if self.key_env is not None:
            value = (os.environ if environ is None else environ).get(self.key_env, "")
            if value.strip():
                where = f"signer key variable {self.key_env}"
                found.extend((s, where) for s in signers_from_text(value, where))
        seen: dict[tuple[str, int], str] = {}
        for signer, where in found:
            key = (signer.name, signer.key_id)
            if key in seen:
                raise ConfigurationError(
                    f"checkpoint key {signer.name}+{signer.key_id:08x} is configured twice ({seen[key]} and {where})"
                )
            seen[key] = where
            if signer.name != origin:
                log.warning(
                    "checkpoint key %s+%08x (%s) is named %r, not after the origin %r: checkpoints still verify "
                    "with it, but c2sp.org/tlog-checkpoint says the key name SHOULD be the origin",
                    signer.name, signer.key_id, where, signer.name, origin,
                )
        return CheckpointKeys(origin=origin, signers=tuple(s for s, _ in found))


def checkpoint_config(value: CheckpointConfig | Mapping[str, Any] | None) -> CheckpointConfig:
    """``value`` itself, or a :class:`CheckpointConfig` of a mapping of its fields (None: the defaults)."""
    if value is None:
        return CheckpointConfig()
    if isinstance(value, CheckpointConfig):
        return value
    if isinstance(value, Mapping):
        unknown = set(value) - {a.name for a in attrs.fields(CheckpointConfig)}
        if unknown:
            raise ConfigurationError(f"unknown checkpoint setting(s): {', '.join(sorted(unknown))}")
        return CheckpointConfig(**value)
    raise ConfigurationError(
        f"checkpoint configuration must be a CheckpointConfig or a mapping, not {type(value).__name__}"
    )


@attrs.frozen(kw_only=True)
class CheckpointKeys:
    """A ledger's checkpoint origin and its signers (none: the ledger signs no checkpoints)."""

    origin: str = attrs.field(validator=lambda _i, _a, v: validate_origin(v))
    signers: tuple[NoteSigner, ...] = ()

    @property
    def verifiers(self) -> tuple[NoteVerifier, ...]:
        """The verifiers of the signers, in order (what a client trusts)."""
        return tuple(s.verifier for s in self.signers)

    @property
    def vkeys(self) -> tuple[str, ...]:
        """The verifier key strings to publish, one per signer."""
        return tuple(s.vkey for s in self.signers)


def _stored_checkpoint(note: str, size: int) -> bytes:
    """The root hash of the stored checkpoint ``note``, which must be one of size ``size``."""
    try:
        checkpoint = parse_checkpoint(parse_note(note).text)
    except VerificationError as err:
        raise IntegrityError(f"the checkpoint stored for size {size} is malformed: {err}") from None
    if checkpoint.size != size:
        raise IntegrityError(f"the checkpoint stored for size {size} is one of size {checkpoint.size}")
    return checkpoint.root_hash


class CheckpointIssuer:
    """Issues and stores the signed checkpoints of one ledger (see the module docstring).

    ``keys``: the origin and the signers (at least one). ``store``: where checkpoints are kept.
    ``root_at(size)``: the tree's root hash at ``size`` (32 bytes). ``size()``: the tree's current
    size. ``interval``: least seconds between two issues by :meth:`after_commit` and :meth:`flush`.
    ``clock``: seconds, monotonic (a test passes a hand-set clock). ``on_issue(size, note)``:
    called with each checkpoint issued or found issued (:meth:`nucleus_core.witnessing.Witnessing.submit`;
    it must return at once: it runs under the issuer's lock). Thread-safe.
    """

    def __init__(
        self,
        keys: CheckpointKeys,
        store: CheckpointStore,
        root_at: Callable[[int], bytes],
        size: Callable[[], int],
        *,
        interval: float = DEFAULT_CHECKPOINT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        on_issue: Callable[[int, str], None] | None = None,
    ) -> None:
        if not keys.signers:
            raise ConfigurationError("issuing checkpoints needs at least one signing key")
        self.keys = keys
        self._store = store
        self._on_issue = on_issue
        self.observers = Observers()
        """Told each checkpoint newly signed (:class:`~nucleus_core.observe.CheckpointIssued`); a ledger
        sets its own."""
        self._root_at = root_at
        self._size = size
        self.interval = _interval(interval)
        self._clock = clock
        self._lock = threading.Lock()
        self._issued_at: float | None = None
        self._pending = False
        # (size, root) of the latest checkpoint this issuer signed or returned: kept here as well as
        # in the store, so that one whose rows were deleted or rewritten in the database still never
        # signs a tree that does not extend what it signed (tlog-checkpoint's consistency duty).
        self._signed: tuple[int, bytes] | None = None

    def issue(self) -> tuple[int, str]:
        """The checkpoint of the tree at its current size, issued now (or the stored one, when a
        checkpoint was issued at that size before): ``(size, note)``. Raises
        :class:`~nucleus_core.errors.IntegrityError` when the tree no longer extends the latest
        stored checkpoint (smaller, or another root at that size)."""
        with self._lock:
            return self._issue()

    def after_commit(self) -> tuple[int, str] | None:
        """Called after a successful write: issue when the interval has passed since the last
        issue (returns the checkpoint), else remember that one is due (returns None)."""
        with self._lock:
            if self._due():
                return self._issue()
            self._pending = True
            return None

    def flush(self) -> tuple[int, str] | None:
        """Issue the checkpoint of writes not covered yet, if the interval has passed since the
        last issue (a server's timer calls this); None when nothing was issued."""
        with self._lock:
            if self._pending and self._due():
                return self._issue()
            return None

    def due_in(self) -> float | None:
        """Seconds until :meth:`flush` would issue (0: now), None when no write is waiting."""
        with self._lock:
            if not self._pending:
                return None
            if self._issued_at is None:
                return 0.0
            return max(0.0, self._issued_at + self.interval - self._clock())

    def latest(self) -> tuple[int, str] | None:
        """The latest stored checkpoint, after issuing a pending one that is due; None when none
        was ever issued."""
        self.flush()
        return self._store.latest()

    def at(self, size: int) -> str | None:
        """The checkpoint issued at ``size``, None when none was issued at that size."""
        return self._store.get(size)

    @property
    def cosignature_store(self) -> CosignatureStore | None:
        """The store's witness cosignatures (None: the store keeps none)."""
        return self._store if isinstance(self._store, CosignatureStore) else None

    def _due(self) -> bool:
        return self._issued_at is None or self._clock() - self._issued_at >= self.interval

    def _check_extends_signed(self, size: int) -> None:
        """Refuse a tree that does not extend the latest checkpoint this issuer signed."""
        if self._signed is None:
            return
        signed_size, signed_root = self._signed
        if size < signed_size:
            raise IntegrityError(
                f"the tree has {size} entries but this ledger signed a checkpoint at size {signed_size}: "
                "entries were removed; refusing to sign"
            )
        if self._root_at(signed_size) != signed_root:
            raise IntegrityError(
                f"the tree's root at size {signed_size} is not the one this ledger signed at that size: "
                "the entries were rewritten; refusing to sign"
            )

    def _issue(self) -> tuple[int, str]:
        for _ in range(3):
            # The latest stored checkpoint first, then the tree size (read again after a conflict:
            # the other issuer saw a larger tree). In this order a size below the checkpoint's
            # means entries were removed; in the other, another writer's commit and checkpoint
            # landing between the two reads looked like a removal (seen with two server workers).
            latest = self._store.latest()
            size = self._size()
            if latest is not None:
                last_size, last_note = latest
                if size < last_size:
                    raise IntegrityError(
                        f"the tree has {size} entries but a checkpoint was issued at size {last_size}: "
                        "entries were removed; refusing to sign"
                    )
                if self._root_at(last_size) != _stored_checkpoint(last_note, last_size):
                    raise IntegrityError(
                        f"the tree's root at size {last_size} is not the one the checkpoint issued at that size "
                        "signed: the entries were rewritten; refusing to sign"
                    )
            # And against what this issuer signed itself, whatever the store says now.
            self._check_extends_signed(size)
            if latest is not None and size == latest[0]:
                self._issued(size, latest[1])
                return latest
            note = sign_checkpoint(self.keys.origin, size, self._root_at(size), self.keys.signers)
            try:
                stored = self._store.put(size, note)
            except ConflictError:
                continue  # another issuer stored a larger size meanwhile: check against that one
            root = _stored_checkpoint(note, size)
            if _stored_checkpoint(stored, size) != root:
                raise IntegrityError(f"a checkpoint with another root was already issued at size {size}")
            self._issued(size, stored, root)
            if self.observers:
                self.observers.emit(CheckpointIssued(size))
            return size, stored
        raise ConflictError(f"checkpoints kept being issued past size {size} while this one was being issued")

    def _issued(self, size: int, note: str, root: bytes | None = None) -> None:
        self._signed = (size, _stored_checkpoint(note, size) if root is None else root)
        self._issued_at = self._clock()
        self._pending = False
        log.debug("checkpoint of ledger origin %r at size %d", self.keys.origin, size)
        if self._on_issue is not None:
            self._on_issue(size, note)


class MemoryCheckpointStore:
    """Checkpoints and their cosignatures in memory (the ``memory://`` storage's
    :class:`~nucleus_core.capabilities.CheckpointStore` and
    :class:`~nucleus_core.capabilities.CosignatureStore`)."""

    def __init__(self) -> None:
        self._notes: dict[int, str] = {}
        self._latest: int | None = None
        self._cosignatures: dict[int, dict[str, str]] = {}
        self._lock = threading.Lock()

    def put(self, size: int, note: str) -> str:
        check_checkpoint_put(size, note)
        with self._lock:
            if size in self._notes:
                return self._notes[size]
            if self._latest is not None and size < self._latest:
                raise ConflictError(f"a checkpoint was stored at size {self._latest}, larger than {size}")
            self._notes[size] = note
            self._latest = size
            return note

    def get(self, size: int) -> str | None:
        return self._notes.get(size)

    def latest(self) -> tuple[int, str] | None:
        with self._lock:
            return None if self._latest is None else (self._latest, self._notes[self._latest])

    def put_cosignature(self, size: int, witness: str, line: str) -> bool:
        check_cosignature_put(size, witness, line)
        with self._lock:
            if size not in self._notes:
                raise NotFoundError(f"no checkpoint is stored at size {size}")
            stored = self._cosignatures.setdefault(size, {})
            if witness in stored:
                return False
            stored[witness] = line
            return True

    def cosignatures(self, size: int) -> dict[str, str]:
        with self._lock:
            return dict(self._cosignatures.get(size, {}))

    def cosigned_sizes(self) -> dict[str, int]:
        with self._lock:
            largest: dict[str, int] = {}
            for size, lines in self._cosignatures.items():
                for witness in lines:
                    largest[witness] = max(size, largest.get(witness, size))
            return largest

    def latest_cosigned(self, witnesses: Collection[str], count: int) -> int | None:
        check_cosigned_count(count)
        wanted = set(witnesses)
        with self._lock:
            sizes = [size for size, lines in self._cosignatures.items() if len(wanted.intersection(lines)) >= count]
            return max(sizes, default=None)


def check_checkpoint_put(size: object, note: object) -> None:
    """Refuse what no store keeps: a size that is not a non-negative integer, a note that is not text."""
    if type(size) is not int or size < 0:
        raise ValidationError("a checkpoint's size is a non-negative integer", field="size")
    if not isinstance(note, str) or not note:
        raise ValidationError("a checkpoint note is non-empty text", field="note")


def check_cosignature_put(size: object, witness: object, line: object) -> None:
    """Refuse what no store keeps as a cosignature: a size that is not a non-negative integer, a
    witness that is not a non-empty line, a line that is not one signature line (an em dash and a
    space first, one final newline)."""
    if type(size) is not int or size < 0:
        raise ValidationError("a checkpoint's size is a non-negative integer", field="size")
    if not isinstance(witness, str) or not witness or "\n" in witness:
        raise ValidationError("a witness is named by its verifier key, one non-empty line", field="witness")
    if not isinstance(line, str) or not line.startswith("\u2014 ") or not line.endswith("\n") or "\n" in line[:-1]:
        raise ValidationError(
            "a cosignature is one signature line ('\u2014 <name> <base64>' and a newline)", field="line"
        )


def check_cosigned_count(count: object) -> None:
    """Refuse a cosignature count that is not a positive integer."""
    if type(count) is not int or count < 1:
        raise ValidationError("a count of cosignatures is a positive integer", field="count")
