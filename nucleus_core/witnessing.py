"""Witnessing a ledger's checkpoints: submitting each to the configured witnesses
(c2sp.org/tlog-witness) and keeping their verified cosignatures beside it.

**Configuration** (``[ledger.checkpoint]`` ``witnesses`` and ``witness_quorum``;
:class:`WitnessConfig`, checked when the configuration is built): each witness is its submission
URL and its cosignature verifier key (``<name>+<key ID>+<base64(0x04 || key)>``), optionally a
name for the log lines and a timeout; the policy is "``witness_quorum`` of these witnesses"
(:class:`~nucleus_core.cosignature.CosignaturePolicy`). A checkpoint *meets the policy* when
that many of the witnesses cosigned it.

**Submitting** (:class:`Witnessing`): the ledger's :class:`~nucleus_core.checkpoints.CheckpointIssuer`
hands every checkpoint it issues to :meth:`Witnessing.submit`, which only records it: one worker
thread per witness sends it, so that a write never waits for a witness and a slow witness never
delays the others. Each worker sends the latest checkpoint it was given (an older one still
waiting is skipped: the witness's state only moves forward), with ``old`` the size that witness
last cosigned and the consistency proof from there. What it last cosigned is the largest size the
store holds its cosignature for, so it outlives a restart; when that is not what the witness holds
(a cosignature lost in a crash, a witness shared with another copy of this log), the witness
answers 409 with its size, and the worker sends once more from that size. The answers:

- a cosignature (the witness client verified it with the configured key, and refuses a line that
  fails or a 200 without one): stored with the checkpoint
  (:class:`~nucleus_core.capabilities.CosignatureStore`); ``GET /checkpoint`` then carries it;
- a refusal (403 signature, 404 unknown log, 422 inconsistent, 400, a second 409, or a 409 naming a
  size larger than the checkpoint: the witness has seen a larger tree of this origin than this
  ledger holds): logged as an error naming the witness; that checkpoint is not sent to it again,
  the next one is;
- no answer (network, timeout, 5xx) or an answer outside the protocol: logged as a warning, and
  sent again after a pause that doubles from :data:`RETRY_MIN_SECONDS` to :data:`RETRY_MAX_SECONDS`
  (or at once when a newer checkpoint arrives).

Nothing here ever fails a write: the entries are committed before their checkpoint is issued.
:meth:`Witnessing.close` (the ledger's ``close``) stops the workers, waiting at most about one
request timeout for the one in flight.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from .capabilities import CheckpointStore, CosignatureStore
from .cosignature import CosignaturePolicy, CosignatureVerifier, parse_cosignature_vkey
from .errors import ConfigurationError
from .observe import Observers, WitnessResponded
from .tlog_verify import MAX_SIGNATURES, VerificationError, parse_note, valid_key_name
from .tlog_witness import (
    DEFAULT_TIMEOUT,
    WitnessClient,
    WitnessConflictError,
    WitnessError,
    WitnessResponseError,
    WitnessUnavailableError,
)

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_WITNESS_TIMEOUT", "MAX_WITNESSES", "RETRY_MAX_SECONDS", "RETRY_MIN_SECONDS", "WitnessConfig",
    "WitnessStatus", "Witnessing", "check_witnesses", "cosigned_note", "witness_config", "witness_timeout",
]

DEFAULT_WITNESS_TIMEOUT = DEFAULT_TIMEOUT
"""Seconds an add-checkpoint request may wait on each network operation, unless configured."""

MAX_WITNESS_TIMEOUT = 300.0

MAX_WITNESSES = 32
"""Most witnesses a ledger may be configured with (their cosignature lines and the log's own
signatures stay far below the signature lines a verifier must accept)."""

RETRY_MIN_SECONDS = 1.0
"""Pause before sending a checkpoint again to a witness that did not answer (doubled each time)."""

RETRY_MAX_SECONDS = 60.0
"""Longest pause between two attempts at a witness that does not answer."""


def witness_timeout(value: object, what: str) -> float:
    """``value`` as a timeout in seconds (above 0, at most 300); :class:`ConfigurationError` naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_WITNESS_TIMEOUT:
        raise ConfigurationError(f"{what} must be a number of seconds above 0 and at most {MAX_WITNESS_TIMEOUT:g}")
    return float(value)


def _optional_timeout(value: object) -> float | None:
    return None if value is None else witness_timeout(value, "a witness's timeout")


@attrs.frozen(kw_only=True)
class WitnessConfig:
    """One witness of a ledger's checkpoints (an entry of ``[[ledger.checkpoint.witnesses]]``).

    ``url``: its submission prefix (``http://`` or ``https://``, a host, no query, fragment or user
    info); requests go to ``<url>/add-checkpoint``. ``vkey``: its cosignature verifier key
    (signature type 0x04, c2sp.org/tlog-cosignature; ``nucleus witness keygen`` prints one).
    ``name``: what log lines and the status call it (default: the key's name). ``timeout``:
    seconds per network operation (None: the ledger's ``witness_timeout``).
    Raises :class:`~nucleus_core.errors.ConfigurationError` for any bad field.
    """

    url: str = attrs.field()
    vkey: str = attrs.field()
    name: str | None = attrs.field(default=None)
    timeout: float | None = attrs.field(default=None, converter=_optional_timeout)
    verifier: CosignatureVerifier = attrs.field(init=False, eq=False, repr=False)

    @url.validator
    def _check_url(self, _attribute: object, value: object) -> None:
        parts = urllib.parse.urlsplit(value) if isinstance(value, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(f"a witness URL is http:// or https:// with a host, not {value!r}")
        try:
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
        except ValueError:
            raise ConfigurationError(f"witness URL {value!r}: the port is not a number from 0 to 65535") from None
        if parts.query or parts.fragment or parts.username is not None or parts.password is not None:
            raise ConfigurationError(f"witness URL {value!r}: a witness URL has no query, fragment or user info")
        assert isinstance(value, str)
        if any(c.isspace() for c in value) or not value.isprintable():
            raise ConfigurationError(f"witness URL {value!r}: holds spaces or control characters")

    @name.validator
    def _check_name(self, _attribute: object, value: object) -> None:
        if value is not None and (not valid_key_name(value) or not str(value).isprintable()):
            raise ConfigurationError(f"witness name {value!r}: a name is non-empty, without spaces or '+'")

    @verifier.default
    def _parse_vkey(self) -> CosignatureVerifier:
        try:
            return parse_cosignature_vkey(self.vkey)
        except VerificationError as err:
            raise ConfigurationError(f"witness {self.url}: its vkey is not a cosignature verifier key: {err}") from None

    @property
    def label(self) -> str:
        """The witness as log lines name it: its name (or its key's) and URL."""
        return f"{self.name or self.verifier.name} ({self.url})"


def witness_config(value: WitnessConfig | Mapping[str, Any], index: int) -> WitnessConfig:
    """``value`` itself, or a :class:`WitnessConfig` of a mapping of its fields (``index``: its
    place in the list, for the error message)."""
    if isinstance(value, WitnessConfig):
        return value
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"witness {index + 1}: a witness is a table of url, vkey, name, timeout")
    fields = {"url", "vkey", "name", "timeout"}
    unknown = set(value) - fields
    if unknown:
        raise ConfigurationError(f"witness {index + 1}: unknown setting(s) {', '.join(sorted(map(str, unknown)))}")
    missing = {"url", "vkey"} - set(value)
    if missing:
        raise ConfigurationError(f"witness {index + 1}: {' and '.join(sorted(missing))} required")
    return WitnessConfig(**value)


def check_witnesses(witnesses: Sequence[WitnessConfig], quorum: int | None) -> CosignaturePolicy | None:
    """The policy "``quorum`` of ``witnesses``" (None when no witness is configured); raises
    :class:`~nucleus_core.errors.ConfigurationError` for a quorum missing, below 1 or above the
    number of witnesses, for too many witnesses, and for one witness configured twice (its URL, its
    key, or its key name and ID)."""
    if not witnesses:
        if quorum is not None:
            raise ConfigurationError("witness_quorum is set but no witness is configured")
        return None
    if len(witnesses) > MAX_WITNESSES:
        raise ConfigurationError(f"at most {MAX_WITNESSES} witnesses can be configured, not {len(witnesses)}")
    if quorum is None:
        raise ConfigurationError(
            f"{len(witnesses)} witnesses are configured without witness_quorum: set how many of them must "
            "cosign a checkpoint for it to meet the policy"
        )
    if type(quorum) is not int or not 1 <= quorum <= len(witnesses):
        raise ConfigurationError(
            f"witness_quorum must be an integer from 1 to {len(witnesses)} (the witnesses configured), not {quorum!r}"
        )
    seen: dict[object, str] = {}
    for witness in witnesses:
        v = witness.verifier
        for key, what in (
            (("url", witness.url.rstrip("/")), "URL"),
            (("key", v.public_key), "public key"),
            (("id", v.name, v.key_id), f"key name and ID {v.name}+{v.key_id:08x}"),
        ):
            if key in seen:
                raise ConfigurationError(
                    f"witnesses {seen[key]} and {witness.url} have the same {what}: configure each witness once"
                )
            seen[key] = witness.url
    return CosignaturePolicy(quorum, [w.verifier for w in witnesses])


@attrs.frozen(kw_only=True)
class WitnessStatus:
    """What the ledger knows of one witness: its configuration, the largest size it cosigned as far
    as the ledger knows (0: none), the size it was last sent (None: none yet), and the last error
    (None when its last answer was a cosignature)."""

    name: str
    url: str
    vkey: str
    cosigned_size: int
    submitted_size: int | None
    last_error: str | None

    def to_json(self) -> dict[str, Any]:
        """The wire form (``GET /checkpoint/witnesses``)."""
        return attrs.asdict(self)


class _Worker:
    """The thread that sends one witness the checkpoints it is given (see the module docstring)."""

    def __init__(self, owner: Witnessing, witness: WitnessConfig, timeout: float) -> None:
        self.witness = witness
        self.vkey = witness.verifier.vkey
        self._owner = owner
        self.timeout = timeout
        self._client = WitnessClient(witness.url, witness.verifier, timeout=timeout)
        self._cond = threading.Condition()
        self._pending: tuple[int, str] | None = None
        self._given = 0  # how many checkpoints were handed over; _tried catches up once each was sent
        self._tried = 0
        self._stop = False
        self._retry_at: float | None = None
        self._pause = RETRY_MIN_SECONDS
        self.cosigned = 0
        self.submitted: int | None = None
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"nucleus-witness-{witness.verifier.name}", daemon=True)

    def start(self, cosigned: int) -> None:
        self.cosigned = cosigned
        self._thread.start()

    def give(self, size: int, note: str) -> None:
        with self._cond:
            if self._pending is not None and self._pending[0] > size:
                return  # a larger one is waiting already: the witness only moves forward
            self._pending = (size, note)
            self._given += 1
            self._retry_at = None
            self._cond.notify_all()

    def wait_idle(self, deadline: float) -> bool:
        with self._cond:
            while self._tried < self._given:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._client.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and (
                    self._pending is None or (self._retry_at is not None and time.monotonic() < self._retry_at)
                ):
                    self._cond.wait(None if self._retry_at is None else max(0.0, self._retry_at - time.monotonic()))
                if self._stop:
                    return
                assert self._pending is not None
                size, note = self._pending
                given = self._given
            try:
                done = self._send(size, note)
            except Exception:  # a storage error, or a bug: a worker that died would stop witnessing silently
                log.exception("witness %s: sending the checkpoint of size %d failed", self.witness.label, size)
                self.last_error = "an unexpected error (see the log)"
                self._responded("error")
                done = False
            with self._cond:
                self._tried = max(self._tried, given)
                if self._pending == (size, note):
                    if done:
                        self._pending = None
                        self._pause = RETRY_MIN_SECONDS
                    else:
                        self._retry_at = time.monotonic() + self._pause
                        self._pause = min(self._pause * 2, RETRY_MAX_SECONDS)
                self._cond.notify_all()

    def _send(self, size: int, note: str) -> bool:
        """Send the checkpoint of ``size``; True when done with it (cosigned or refused), False
        when it should be sent again later."""
        if self.cosigned > size:
            return True  # a larger checkpoint was cosigned meanwhile
        if self.cosigned == size and self.vkey in self._owner._store.cosignatures(size):
            return True  # cosigned and stored before (the latest checkpoint, handed over again at a start)
        self.submitted = size
        old = self.cosigned
        for attempt in range(2):
            proof = self._owner._proof(old, size) if 0 < old < size else []
            try:
                cosignatures = self._client.add_checkpoint(note, old, proof)
            except WitnessConflictError as err:
                if err.size > size:
                    self._refused(
                        size,
                        f"it cosigned size {err.size} of this log, larger than this checkpoint: it was shown a "
                        "larger tree under this origin (another server with this key, or this database restored "
                        "from an older copy)",
                    )
                    return True
                if attempt == 0 and err.size != old:
                    log.info(
                        "witness %s last cosigned size %d, not %d: sending size %d again from there",
                        self.witness.label, err.size, old, size,
                    )
                    old = err.size
                    continue
                self._refused(size, str(err))
                return True
            except (WitnessUnavailableError, WitnessResponseError) as err:
                self.last_error = str(err)
                log.warning("witness %s: checkpoint of size %d not cosigned, trying again later: %s",
                            self.witness.label, size, err)
                self._responded("unavailable")
                return False
            except WitnessError as err:
                self._refused(size, str(err))
                return True
            store = self._owner._store
            for cosignature in cosignatures:
                store.put_cosignature(size, self.vkey, cosignature.line())
            self.cosigned = max(self.cosigned, size)
            self.last_error = None
            self._responded("cosigned")
            log.debug("witness %s cosigned the checkpoint of size %d", self.witness.label, size)
            return True
        raise AssertionError("unreachable")  # pragma: no cover

    def _responded(self, outcome: str) -> None:
        observers = self._owner.observers
        if observers:
            observers.emit(WitnessResponded(self.witness.name or self.witness.verifier.name, outcome))

    def _refused(self, size: int, reason: str) -> None:
        self._responded("refused")
        self.last_error = reason
        log.error("witness %s refused the checkpoint of size %d: %s", self.witness.label, size, reason)


class Witnessing:
    """Submits one ledger's checkpoints to its witnesses and stores their cosignatures (see the
    module docstring).

    ``witnesses`` and ``quorum``: the configuration (:func:`check_witnesses` checks them).
    ``store``: the ledger's checkpoint store, which must keep cosignatures
    (:class:`~nucleus_core.capabilities.CosignatureStore`). ``proof(old, new)``: the consistency
    proof between two tree sizes (RFC 9162 hashes). ``timeout``: seconds per network operation
    of a witness without its own. Thread-safe.
    """

    def __init__(
        self,
        witnesses: Sequence[WitnessConfig],
        quorum: int,
        store: CheckpointStore,
        proof: Callable[[int, int], Sequence[bytes]],
        *,
        timeout: float = DEFAULT_WITNESS_TIMEOUT,
    ) -> None:
        policy = check_witnesses(witnesses, quorum)
        if policy is None:
            raise ConfigurationError("witnessing needs at least one witness")
        if not isinstance(store, CosignatureStore):
            raise ConfigurationError("the ledger's checkpoint storage keeps no cosignatures: witnesses cannot be used")
        self.policy: CosignaturePolicy = policy
        """The policy: :attr:`~nucleus_core.cosignature.CosignaturePolicy.quorum` of these witnesses."""
        self.witnesses: tuple[WitnessConfig, ...] = tuple(witnesses)
        self._store: CosignatureStore = store
        self._checkpoints = store
        self._proof = proof
        default = witness_timeout(timeout, "witness_timeout")
        self._workers = tuple(_Worker(self, w, w.timeout or default) for w in self.witnesses)
        self._lock = threading.Lock()
        self._started = False
        self._closed = False
        self.observers = Observers()
        """Told each witness response (:class:`~nucleus_core.observe.WitnessResponded`); a ledger sets its own."""

    @property
    def quorum(self) -> int:
        """How many of the witnesses must cosign a checkpoint for it to meet the policy."""
        return self.policy.quorum

    @property
    def vkeys(self) -> tuple[str, ...]:
        """The witnesses' verifier keys, in configured order."""
        return tuple(w.vkey for w in self._workers)

    def start(self) -> None:
        """Start the workers (once), each knowing what its witness last cosigned from the store,
        and hand them the latest stored checkpoint (one issued before a restart may be uncosigned)."""
        with self._lock:
            if self._started or self._closed:
                return
            self._started = True
            sizes = self._store.cosigned_sizes()
            for worker in self._workers:
                worker.start(sizes.get(worker.vkey, 0))
        latest = self._checkpoints.latest()
        if latest is not None:
            self.submit(*latest)

    def submit(self, size: int, note: str) -> None:
        """Hand the checkpoint ``note`` of ``size`` to every witness's worker; returns at once."""
        with self._lock:
            if not self._started or self._closed:
                return
        for worker in self._workers:
            worker.give(size, note)

    def wait(self, timeout: float) -> bool:
        """Wait until every witness was sent the latest checkpoint handed over (whatever it
        answered), at most ``timeout`` seconds; True when that happened."""
        deadline = time.monotonic() + timeout
        return all(worker.wait_idle(deadline) for worker in self._workers)

    def status(self) -> tuple[WitnessStatus, ...]:
        """Each witness's :class:`WitnessStatus`, in configured order."""
        return tuple(
            WitnessStatus(
                name=w.witness.name or w.witness.verifier.name, url=w.witness.url, vkey=w.vkey,
                cosigned_size=w.cosigned, submitted_size=w.submitted, last_error=w.last_error,
            )
            for w in self._workers
        )

    def close(self) -> None:
        """Stop the workers; the request in flight, if any, may take up to its timeout. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for worker in self._workers:
            worker.stop()
        # A request in flight ends within its timeouts (connect, then read); all of them together.
        deadline = time.monotonic() + max(w.timeout for w in self._workers) * 2 + 1
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))


def cosigned_note(note: str, cosignatures: Mapping[str, str], order: Iterable[str] = ()) -> str:
    """The signed note ``note`` with the cosignature lines of ``cosignatures`` (witness vkey to
    line) after its signatures: those of the witnesses in ``order`` first, in that order, then the
    others by vkey; as many as keep the note within the signature lines a verifier accepts."""
    if not cosignatures:
        return note
    ranked = [w for w in order if w in cosignatures]
    ranked += sorted(set(cosignatures) - set(ranked))
    room = max(0, MAX_SIGNATURES - len(parse_note(note).signatures))
    return note + "".join(cosignatures[w] for w in ranked[:room])
