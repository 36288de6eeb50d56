"""``RemoteLedger``: a ledger served by ``nucleus serve``, used like an embedded one.

Methods, return types (:class:`~nucleus_core.Entry`, :class:`~nucleus_core.QueryResult`,
:class:`~nucleus_core.VerificationReport`, ...) and errors (rebuilt from the server's error code
into the same :mod:`nucleus_core.errors` classes) match :class:`~nucleus_core.Ledger`, so code can
switch between the two by configuration::

    ledger = RemoteLedger("http://127.0.0.1:8080", token=token) if remote else create_ledger(...)
    ledger.append(record, ctx)

Who is asking is the bearer token: the client's ``token``, or the ``token`` of the
:class:`~nucleus_core.RequestContext` passed to a call. A context naming a principal other than
the one its bearer token authenticates is refused before the call is made. Every entry received
is checked: its hash must match its seq, previous hash and record under the ledger's id.

**Verifying.** Given the ledger's checkpoint verifier keys (``checkpoint_vkeys`` or
``checkpoint_vkey_file``, obtained from the operator, not from the server) the client trusts the
math, not the server (docs/TRANSPARENCY.md, "Verifying clients"): it keeps the last checkpoint it
verified in ``trusted_state`` (a file path or a :class:`~nucleus_core.trusted_state.TrustedStateStore`),
accepts a checkpoint only when a trusted key signed it for the expected origin and it extends the
trusted one (a consistency proof), and returns an entry only with an inclusion proof in a trusted
checkpoint (a query page's proof comes with the page; other reads fetch the proofs of up to
:data:`MAX_PROOF_BATCH` entries per ``POST /proof/inclusion``). It raises
:class:`CheckpointSignatureError`, :class:`InconsistentLogError`, :class:`RollbackError`,
:class:`InclusionProofError` or :class:`WitnessPolicyError` (all :class:`LogVerificationError`,
an :class:`~nucleus_core.errors.IntegrityError`) and never returns what it could not verify.

Needs httpx: ``pip install "nucleus-server[client]"``.
"""

from __future__ import annotations

import builtins
import inspect
import itertools
import json
import keyword
import os
import re
import sys
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, cast, overload
from urllib.parse import quote

import attrs
import httpx

from nucleus_core.access import AclAdmin
from nucleus_core.checkpoint import default_origin
from nucleus_core.context import RequestContext, require_context
from nucleus_core.cosignature import CosignaturePolicy
from nucleus_core.errors import (
    AnswerMismatchError,
    AuthenticationError,
    CheckpointSignatureError,
    ConfigurationError,
    EntryContentError,
    InclusionProofError,
    InconsistentLogError,
    IntegrityError,
    LedgerClosedError,
    LogVerificationError,
    MissingRequesterError,
    ModuleError,
    NucleusError,
    QueryError,
    RollbackError,
    StorageUnavailableError,
    TrustedStateError,
    ValidationError,
    WitnessPolicyError,
)
from nucleus_core.handles import (
    OPERATION_NAME,
    HandleOperation,
    HandleParam,
    ModuleRuntime,
    ResultSchema,
    operations_of,
    qualified_name,
)
from nucleus_core.hashing import is_hash
from nucleus_core.modules import Module, ModuleMetadata, ModuleState
from nucleus_core.query import QueryFilters, QueryResult, decode_cursor, filters_from
from nucleus_core.records import Entry, Record, entry_row
from nucleus_core.storage import StorageQuery
from nucleus_core.tlog_verify import (
    Checkpoint,
    MalformedNoteError,
    ProofError,
    leaf_hash,
    parse_vkey,
    verify_inclusion,
    verify_multi_inclusion,
)
from nucleus_core.tree import ConsistencyProof, InclusionProof
from nucleus_core.trusted_checkpoint import load_verifiers
from nucleus_core.trusted_state import (
    FileTrustedState,
    MemoryTrustedState,
    TrustedLog,
    TrustedStateStore,
)
from nucleus_core.trusted_state import witness_policy as make_witness_policy
from nucleus_core.verify import VerificationReport, verify_rows

from . import wire
from .errors import NotFoundError, rebuild_error

if TYPE_CHECKING:
    # Types only: the client imports nucleus-ual (an optional dependency) when an ACL call needs it.
    from nucleus_ual import Grant, ListResult, Resource

__all__ = [
    "AnswerMismatchError", "DEFAULT_CHECKPOINT_WAIT", "MAX_PROOF_BATCH", "CheckpointSignatureError",
    "CosignaturePolicy", "EntryContentError", "FileTrustedState", "InclusionProofError", "InconsistentLogError",
    "LogVerificationError", "MemoryTrustedState", "RemoteAcl", "RemoteHandle", "RemoteLedger", "RemoteModules",
    "RollbackError", "TrustedStateError", "TrustedStateStore", "WitnessPolicyError",
]

DEFAULT_TIMEOUT = 30.0

DEFAULT_CHECKPOINT_WAIT = 10.0
"""Seconds a verifying client waits for a checkpoint covering an entry newer than the latest one
(the server issues one at most once per its checkpoint interval, 1 s by default)."""

MAX_PROOF_BATCH = 1000
"""Most entries whose proofs one ``POST /proof/inclusion`` asks for (the server's limit)."""

_HEX64 = re.compile(r"[0-9a-f]{64}")
_SIGNS_NO_CHECKPOINTS = "signs no checkpoints"
"""What the server's 404 of ``GET /checkpoint`` says when its ledger has no checkpoint signing key."""
_POLL_FIRST = 0.02
_POLL_MAX = 0.5
DEFAULT_MAX_BACKOFF = 5.0
"""Most seconds :meth:`RemoteLedger.tail` waits before reconnecting."""
_BACKOFF_FIRST = 0.1
DEFAULT_TAIL_READ_TIMEOUT = 60.0
"""Seconds of silence (no event, no keep-alive) after which a tail's connection counts as dead
(:meth:`RemoteLedger.tail`'s default ``read_timeout``, unless the server's keep-alive needs longer)."""
MAX_TAIL_READ_TIMEOUT = 86400.0
KEEPALIVE_MARGIN = 1.5
"""A tail's read timeout must be more than this many times the server's announced keep-alive."""
KEEPALIVE_SLACK = 5.0
"""Seconds a default read timeout adds to :data:`KEEPALIVE_MARGIN` times the announced keep-alive."""

QueryParams = list[tuple[str, str | int | float | bool | None]]
"""Query parameters of a request, in order (repeated names allowed)."""


class RemoteLedger:
    """A ledger behind a Nucleus HTTP server. Thread-safe (one pooled httpx client); a context manager.

    ``url``: the server's base URL. ``token``: the default bearer token. ``ledger_id``: the ledger's
    id when known (otherwise asked from the server once, for hash checks). ``timeout``: seconds per
    request. ``transport``: an httpx transport (tests, custom TLS).

    Verification (see the module docstring): ``checkpoint_vkeys`` (verifier key strings) and/or
    ``checkpoint_vkey_file`` (one per line) are the keys the ledger's checkpoints must be signed
    with; giving them turns verification on unless ``verify=False``. ``trusted_state``: where the
    last verified checkpoint is kept, a file path (:class:`FileTrustedState`) or a
    :class:`TrustedStateStore`; None keeps it in memory for the client's life. ``origin``: the
    log's origin line (default ``nucleus.invalid/<ledger id>``; give it, or ``ledger_id``, rather
    than take the server's word for it). ``checkpoint_wait``: seconds to wait for a checkpoint
    covering an entry newer than the latest one before refusing with
    :class:`InclusionProofError`. ``witness_policy``: a
    :class:`~nucleus_core.cosignature.CosignaturePolicy` (k of n witnesses) that every checkpoint
    received must meet, :class:`WitnessPolicyError` otherwise.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        ledger_id: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        checkpoint_vkeys: Iterable[str] = (),
        checkpoint_vkey_file: str | os.PathLike[str] | None = None,
        trusted_state: str | os.PathLike[str] | TrustedStateStore | None = None,
        origin: str | None = None,
        verify: bool | None = None,
        checkpoint_wait: float = DEFAULT_CHECKPOINT_WAIT,
        witness_policy: CosignaturePolicy | None = None,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"url must be an http:// or https:// URL, got {url!r}")
        if isinstance(checkpoint_vkeys, str):
            raise ConfigurationError("checkpoint_vkeys is a list of verifier key strings, not one string")
        vkeys = tuple(checkpoint_vkeys)
        keyed = bool(vkeys) or checkpoint_vkey_file is not None
        self.verifying = keyed if verify is None else bool(verify)
        """True when checkpoints and entries are verified (the default when keys are given)."""
        if self.verifying and not keyed:
            raise ConfigurationError("verify=True needs the ledger's checkpoint verifier keys (checkpoint_vkeys=)")
        if not self.verifying and (trusted_state is not None or witness_policy is not None):
            raise ConfigurationError("trusted_state and witness_policy are used by a verifying client only")
        if witness_policy is not None and not isinstance(witness_policy, CosignaturePolicy):
            raise ConfigurationError(
                f"witness_policy must be a CosignaturePolicy, not {type(witness_policy).__name__}"
            )
        if isinstance(checkpoint_wait, bool) or not isinstance(checkpoint_wait, int | float) or checkpoint_wait < 0:
            raise ConfigurationError("checkpoint_wait must be a non-negative number of seconds")
        self._verifiers = tuple(load_verifiers(vkeys, checkpoint_vkey_file)) if self.verifying else ()
        self._store: TrustedStateStore
        if trusted_state is None:
            self._store = MemoryTrustedState()
        elif isinstance(trusted_state, str | os.PathLike):
            self._store = FileTrustedState(trusted_state)
        elif isinstance(trusted_state, TrustedStateStore):
            self._store = trusted_state
        else:
            raise ConfigurationError(
                f"trusted_state must be a file path or a TrustedStateStore, not {type(trusted_state).__name__}"
            )
        self._origin = origin
        self._checkpoint_wait = float(checkpoint_wait)
        self._policy = None if witness_policy is None else make_witness_policy(witness_policy)
        self.witness_policy = witness_policy
        """The k-of-n witness policy every checkpoint must meet (None: none)."""
        self._log: TrustedLog | None = None
        self._log_lock = threading.Lock()
        self._ask_cosigned = True
        self.url = url.rstrip("/")
        self._token = token
        self._id = ledger_id
        self._identities: dict[str, str] = {}
        self._closed = False
        self._tails: set[httpx.Response] = set()
        """The open responses of :meth:`tail` (:meth:`close` leaves the pool to the last of them)."""
        self._http = httpx.Client(
            base_url=self.url,
            timeout=timeout,
            transport=transport,
            headers={"accept": "application/json"},
            follow_redirects=False,
        )

    # plumbing -------------------------------------------------------------------------------
    def _bearer(self, context: RequestContext | None) -> str:
        if self._closed:
            raise LedgerClosedError(f"RemoteLedger for {self.url} is closed")
        if context is None:
            if self._token is None:
                raise MissingRequesterError(
                    "no requester: give RemoteLedger(token=...) or a RequestContext carrying its token"
                )
            return self._token
        ctx = require_context(context)
        token = ctx.token or self._token
        if token is None:
            raise MissingRequesterError(f"the context of {ctx.oid} carries no token and the client has none")
        known = self._identities.get(token)
        if known is None:
            known = self._whoami(token).oid
            self._identities[token] = known
        if known != ctx.oid:
            raise AuthenticationError(
                f"the context names {ctx.oid} but its bearer token authenticates {known}; "
                "refusing to act as another principal"
            )
        return token

    def _request(
        self,
        method: str,
        path: str,
        token: str | None,
        *,
        body: Any = None,
        params: QueryParams | None = None,
    ) -> Any:
        response = self._send(method, path, token, body=body, params=params)
        try:
            return json.loads(response.content) if response.content else None
        except ValueError:
            return None

    def _send(
        self,
        method: str,
        path: str,
        token: str | None,
        *,
        body: Any = None,
        params: QueryParams | None = None,
    ) -> httpx.Response:
        """The server's response to the request; an error status raises the rebuilt error."""
        headers = {"authorization": f"Bearer {token}"} if token is not None else {}
        content = None
        if body is not None:
            content = wire.dumps(body)
            headers["content-type"] = "application/json"
        try:
            response = self._http.request(method, path, content=content, headers=headers, params=params)
        except httpx.TransportError as err:
            raise StorageUnavailableError(
                f"cannot reach the ledger server at {self.url}: {type(err).__name__}"
            ) from err
        if response.status_code >= 400:
            try:
                document = json.loads(response.content) if response.content else None
            except ValueError:
                document = None
            raise rebuild_error(document, status=response.status_code)
        return response

    def _whoami(self, token: str) -> RequestContext:
        doc = self._request("GET", "/whoami", token)
        scopes = doc.get("scopes")
        return RequestContext(
            oid=doc["oid"],
            source=doc["source"],
            role=doc.get("role"),
            **({} if scopes is None else {"scopes": scopes}),
        )

    def _ledger_id(self, token: str) -> str:
        if self._id is None:
            self._id = str(self._request("GET", "/ledger", token)["ledger_id"])
        return self._id

    def _entry(self, doc: Any, token: str) -> Entry:
        return wire.entry_from_json(doc, ledger_id=self._ledger_id(token))

    def _entries(self, docs: Any, token: str) -> list[Entry]:
        if not isinstance(docs, list):
            raise NucleusError("the server sent no entry list")
        return [self._entry(d, token) for d in docs]

    # verification ---------------------------------------------------------------------------
    def _trusted_log(self, token: str | None) -> TrustedLog:
        """The trusted state of this ledger's log (made on first use: its origin may need the id)."""
        with self._log_lock:
            if self._log is None:
                origin = self._origin
                if origin is None:
                    if self._id is None and token is None:
                        raise ConfigurationError(
                            "a verifying client needs the log's origin: give RemoteLedger(origin=...) or ledger_id=, "
                            "or a token to ask the server for the ledger id"
                        )
                    origin = default_origin(self._id if self._id is not None else self._ledger_id(str(token)))
                self._log = TrustedLog(self._verifiers, origin, self._store, policy=self._policy)
            return self._log

    @property
    def trusted_checkpoint(self) -> Checkpoint | None:
        """The checkpoint this client trusts now (read from ``trusted_state``; None before the first
        one). :class:`~nucleus_core.errors.ConfigurationError` when the client does not verify."""
        if not self.verifying:
            raise ConfigurationError("this RemoteLedger does not verify (it was given no checkpoint verifier keys)")
        return self._trusted_log(self._token).checkpoint

    def refresh(self, context: RequestContext | None = None) -> Checkpoint:
        """Fetch the server's latest checkpoint (``GET /checkpoint``), verify it against the
        trusted state and move that forward (see the module docstring); returns it. Raises
        :class:`CheckpointSignatureError`, :class:`InconsistentLogError`, :class:`RollbackError`
        or the policy's error, leaving the trusted state unchanged."""
        if not self.verifying:
            raise ConfigurationError("this RemoteLedger does not verify (it was given no checkpoint verifier keys)")
        token = self._token if context is None else self._bearer(context)
        self._trusted_log(token)  # the origin is known (or refused) before anything is fetched
        note = self._latest_note(token)
        if note is None:
            raise WitnessPolicyError(self._none_cosigned())
        return self._accept(note, token, latest=True)

    def _latest_note(self, token: str | None) -> str | None:
        """The server's latest checkpoint; with a witness policy the latest one cosigned by the
        policy's quorum of the server's witnesses (``GET /checkpoint?cosigned=K``), None when it has
        none yet. A server without that parameter (or with fewer witnesses than the quorum) is asked
        for its latest checkpoint instead, from then on: the policy then decides."""
        policy = self.witness_policy
        if policy is None or not self._ask_cosigned:
            return self._checkpoint_text(None, token)
        try:
            return self._checkpoint_text(None, token, cosigned=policy.quorum)
        except NotFoundError as err:
            # Two 404s: none cosigned yet (wait), or a ledger signing no checkpoints at all (the
            # server's message says so; GET /checkpoint answers it without the parameter too).
            if _SIGNS_NO_CHECKPOINTS in str(err):
                raise
            return None
        except ValidationError as err:
            if err.field not in ("query", "cosigned"):
                raise
            self._ask_cosigned = False
            return self._checkpoint_text(None, token)

    def _none_cosigned(self) -> str:
        quorum = self.witness_policy.quorum if self.witness_policy is not None else 0
        return f"the server has no checkpoint cosigned by {quorum} of its witnesses yet (the policy's quorum)"

    def _accept(self, note: str, token: str | None, *, latest: bool) -> Checkpoint:
        log = self._trusted_log(token)
        def fetch(old_size: int, new_size: int) -> tuple[bytes, ...]:
            return self._consistency_hashes(old_size, new_size, token)

        return log.accept(note.encode("utf-8"), fetch, latest=latest)

    def _consistency_hashes(self, old_size: int, new_size: int, token: str | None) -> tuple[bytes, ...]:
        params: QueryParams = [("from", old_size), ("to", new_size)]
        try:
            doc = self._request("GET", "/proof/consistency", token, params=params)
        except (ValidationError, NotFoundError) as err:
            raise InconsistentLogError(
                f"the server gives no consistency proof from its tree of {old_size} entries to {new_size}: {err}"
            ) from None
        try:
            proof = ConsistencyProof.from_json(doc)
        except ValidationError as err:
            raise InconsistentLogError(f"the server's consistency proof from {old_size} to {new_size}: {err}") from None
        if (proof.first, proof.second) != (old_size, new_size):
            raise InconsistentLogError(
                f"asked for the consistency proof from {old_size} to {new_size}, the server answered one "
                f"from {proof.first} to {proof.second}"
            )
        return proof.hashes

    def _covering(self, seq: int, token: str) -> Checkpoint:
        """A trusted checkpoint covering entry ``seq``: the trusted one, or a newer one the server
        issues within ``checkpoint_wait`` seconds (polled, the delay doubling)."""
        log = self._trusted_log(token)
        trusted = log.checkpoint
        if trusted is not None and trusted.size >= seq:
            return trusted
        deadline = time.monotonic() + self._checkpoint_wait
        delay = _POLL_FIRST
        while True:
            note = self._latest_note(token)
            latest = None if note is None else self._accept(note, token, latest=True)
            if latest is not None and latest.size >= seq:
                return latest
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                latest_size = "none" if latest is None else f"of size {latest.size}"
                raise InclusionProofError(
                    f"entry {seq} cannot be verified: no checkpoint covers it (the server's latest"
                    f"{' cosigned as the policy requires' if self.witness_policy is not None else ''} is "
                    f"{latest_size}, after waiting {self._checkpoint_wait:g} s); the server issues checkpoints at "
                    "most once per its checkpoint interval, and never on a read-only ledger",
                    seq=seq, reason="no_covering_checkpoint",
                )
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, _POLL_MAX)

    def _verified(self, entries: list[Entry], token: str) -> list[Entry]:
        """``entries``, each proven by an inclusion proof in a trusted checkpoint (the proofs of up
        to :data:`MAX_PROOF_BATCH` entries per request); unchanged when the client does not verify."""
        if not self.verifying or not entries:
            return entries
        checkpoint = self._covering(max(e.seq for e in entries), token)
        seqs = sorted({e.seq for e in entries})
        proofs: dict[int, InclusionProof | None] = {}
        for start in range(0, len(seqs), MAX_PROOF_BATCH):
            chunk = seqs[start : start + MAX_PROOF_BATCH]
            proofs.update(zip(chunk, self._inclusion_batch(chunk, checkpoint.size, token), strict=True))
        for entry in entries:
            _check_inclusion(entry, proofs[entry.seq], checkpoint)
        return entries

    def _inclusion_batch(self, seqs: list[int], tree_size: int, token: str) -> list[InclusionProof | None]:
        try:
            doc = self._request("POST", "/proof/inclusion", token, body={"tree_size": tree_size, "seqs": seqs})
        except ValidationError as err:
            self._cannot_prove(tree_size, token, err)
        items = doc.get("proofs") if isinstance(doc, dict) else None
        if not isinstance(items, list) or doc.get("tree_size") != tree_size or len(items) != len(seqs):
            raise InclusionProofError(
                f"the server's POST /proof/inclusion did not answer {len(seqs)} proofs in the tree of {tree_size}"
            )
        proofs: list[InclusionProof | None] = []
        for seq, item in zip(seqs, items, strict=True):
            try:
                proofs.append(None if item is None else InclusionProof.from_json(item))
            except ValidationError as err:
                raise InclusionProofError(
                    f"entry {seq}: the server sent a malformed inclusion proof: {err}", seq=seq
                ) from None
        return proofs

    def _cannot_prove(self, tree_size: int, token: str, err: ValidationError) -> NoReturn:
        """The server refused to prove anything in the trusted tree of ``tree_size``: it is smaller
        now (a rollback, which the latest checkpoint shows with both sizes), or refuses otherwise."""
        note = self._latest_note(token)
        if note is not None:
            self._accept(note, token, latest=True)
        raise InclusionProofError(
            f"the server gives no inclusion proofs in the trusted tree of {tree_size} entries: {err}"
        ) from None

    def verify_entries(self, entries: Sequence[Entry], context: RequestContext | None = None) -> list[Entry]:
        """Prove ``entries`` (from this ledger, obtained any way) to be in a trusted checkpoint, as
        every method returning entries does; returns them. Each entry's hash is first recomputed
        from its fields and its record checked to be its canonical form (:class:`EntryContentError`
        otherwise: a changed record under the original hash is refused), then proven;
        :class:`InclusionProofError` when one is not (an entry the requester may not read has no
        proof either)."""
        if not self.verifying:
            raise ConfigurationError("this RemoteLedger does not verify (it was given no checkpoint verifier keys)")
        batch = list(entries)
        if not all(isinstance(e, Entry) for e in batch):
            raise ValidationError("verify_entries takes a list of Entry", field="entries")
        token = self._bearer(context)
        # Entries from the server were rebuilt and hash-checked by wire.entry_from_json; these come
        # from anywhere, so their hash is recomputed from their content before any proof counts.
        ledger_id = self._ledger_id(token)
        for entry in batch:
            _check_content(entry, ledger_id)
        return self._verified(batch, token)

    # identity -------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        """The ledger id (asked from the server once, with the client's token)."""
        return self._ledger_id(self._bearer(None))

    def whoami(self, context: RequestContext | None = None) -> RequestContext:
        """The requester the server authenticates the bearer token as (without the token)."""
        token = self._token if context is None else (require_context(context).token or self._token)
        if token is None:
            raise MissingRequesterError("no bearer token to ask about")
        return self._whoami(token)

    def checkpoint_keys(self) -> tuple[str, ...]:
        """The server's checkpoint verifier keys (``GET /checkpoint/key``), each checked to be a
        well-formed Ed25519 vkey. A public path by default: the client's token is sent when it has
        one. Compare them with keys obtained another way before trusting them: whoever answers
        for the server chooses what this returns."""
        if self._closed:
            raise LedgerClosedError(f"RemoteLedger for {self.url} is closed")
        response = self._send("GET", "/checkpoint/key", self._token)
        if not response.headers.get("content-type", "").startswith("text/plain"):
            raise NucleusError("the server's /checkpoint/key did not answer text/plain")
        vkeys = tuple(line for line in response.content.decode("utf-8", "replace").split("\n") if line)
        for vkey in vkeys:
            try:
                parse_vkey(vkey)
            except MalformedNoteError as err:
                raise NucleusError(f"the server sent a malformed verifier key: {err}") from None
        return vkeys

    def checkpoint(self, size: int | None = None) -> str:
        """The server's latest signed checkpoint (``GET /checkpoint``), or the one issued at
        ``size`` (:class:`~nucleus_core.errors.NotFoundError` when none was), as text. Public by
        default; the client's token is sent when it has one. A verifying client returns it only
        verified against its trusted state (the latest one moves that forward, see :meth:`refresh`;
        an older one must be a prefix of the trusted tree, a newer one extend it; one of another
        size than ``size`` is an :class:`AnswerMismatchError`); otherwise verify it with keys obtained
        another way (:func:`~nucleus_core.tlog_verify.verify_checkpoint`) before trusting it."""
        if self._closed:
            raise LedgerClosedError(f"RemoteLedger for {self.url} is closed")
        if size is not None and (type(size) is not int or size < 0):
            raise ValidationError(f"size must be a non-negative integer, not {size!r}", field="size")
        if self.verifying:
            self._trusted_log(self._token)
        note = self._checkpoint_text(size, self._token)
        if self.verifying:
            if size is not None:
                # Checked before the trusted state sees it: a checkpoint of another size (the
                # latest, say) answering a by-size lookup would otherwise move the state forward.
                presented = self._trusted_log(self._token).verify_note(note.encode("utf-8"))
                if presented.size != size:
                    raise AnswerMismatchError(
                        f"asked for the checkpoint issued at size {size}, the server answered one of size "
                        f"{presented.size}"
                    )
            self._accept(note, self._token, latest=size is None)
        return note

    def _checkpoint_text(self, size: int | None, token: str | None, *, cosigned: int | None = None) -> str:
        params: QueryParams = [] if size is None else [("size", size)]
        if cosigned is not None:
            params.append(("cosigned", cosigned))
        response = self._send("GET", "/checkpoint", token, params=params)
        if not response.headers.get("content-type", "").startswith("text/plain"):
            raise NucleusError("the server's /checkpoint did not answer text/plain")
        try:
            return response.content.decode("utf-8")
        except UnicodeDecodeError:
            if self.verifying:
                raise CheckpointSignatureError("the server's checkpoint is not UTF-8") from None
            raise NucleusError("the server's checkpoint is not UTF-8") from None

    def inclusion_proof(
        self, seq_or_hash: int | str, tree_size: int, context: RequestContext | None = None
    ) -> InclusionProof | None:
        """The RFC 9162 inclusion proof of the entry (by seq or hex hash) in the tree of
        ``tree_size`` entries (``GET /proof/inclusion``); None when the entry is absent or the
        requester may not read it, as :meth:`get` answers. Unverified: check it against a
        verified checkpoint (:func:`~nucleus_core.tlog_verify.verify_inclusion`)."""
        if isinstance(seq_or_hash, str):
            target: tuple[str, str | int | float | bool | None] = ("hash", seq_or_hash)
        elif type(seq_or_hash) is int:
            target = ("seq", seq_or_hash)
        else:
            raise ValidationError("give an entry's seq (an integer) or its hash (hex)", field="seq")
        if type(tree_size) is not int:
            raise ValidationError(f"tree_size must be an integer, not {type(tree_size).__name__}", field="tree_size")
        token = self._bearer(context)
        try:
            doc = self._request("GET", "/proof/inclusion", token, params=[target, ("size", tree_size)])
        except NotFoundError:
            return None
        return _checked(InclusionProof.from_json, doc, "/proof/inclusion")

    def consistency_proof(
        self, old_size: int, new_size: int, context: RequestContext | None = None
    ) -> ConsistencyProof:
        """The RFC 9162 consistency proof from the tree of ``old_size`` entries to that of
        ``new_size`` (``GET /proof/consistency``, public by default). Unverified: check it between
        two verified checkpoints (:func:`~nucleus_core.tlog_verify.verify_consistency`)."""
        for name, value in (("old_size", old_size), ("new_size", new_size)):
            if type(value) is not int:
                raise ValidationError(f"{name} must be an integer, not {type(value).__name__}", field=name)
        if self._closed:
            raise LedgerClosedError(f"RemoteLedger for {self.url} is closed")
        token = self._token if context is None else self._bearer(context)
        doc = self._request("GET", "/proof/consistency", token, params=[("from", old_size), ("to", new_size)])
        return _checked(ConsistencyProof.from_json, doc, "/proof/consistency")

    # writes ---------------------------------------------------------------------------------
    def append(self, record: Record, context: RequestContext | None = None) -> Entry:
        """Append one record; returns its entry."""
        if not isinstance(record, Record):
            raise ValidationError(f"append takes a Record, got {type(record).__name__}", field="record")
        token = self._bearer(context)
        entry = self._entry(self._request("POST", "/entries", token, body=record.to_dict()), token)
        if self.verifying:
            _check_records([entry], [record])
        return self._verified([entry], token)[0]

    def append_batch(self, records: Sequence[Record], context: RequestContext | None = None) -> list[Entry]:
        """Append records atomically, in order: all are committed or none is."""
        if isinstance(records, (Record, str, bytes, Mapping)):
            raise ValidationError("append_batch takes a list of Record", field="records")
        batch = list(records)
        for i, record in enumerate(batch):
            if not isinstance(record, Record):
                raise ValidationError(f"item {i} is a {type(record).__name__}, not a Record", field="records")
        token = self._bearer(context)
        doc = self._request("POST", "/entries/batch", token, body={"records": [r.to_dict() for r in batch]})
        entries = self._entries(doc["entries"], token)
        if self.verifying:
            _check_records(entries, batch)
        return self._verified(entries, token)

    # reads ----------------------------------------------------------------------------------
    def get(self, entry_hash: str, context: RequestContext | None = None) -> Entry | None:
        """The entry with this hash, or None when absent or not readable by the requester."""
        if not isinstance(entry_hash, str) or not entry_hash:
            raise ValidationError("must be 64 lowercase hex characters", field="hash")
        entry = self._get_one(f"/entries/{_segment(entry_hash)}", context)
        if entry is not None and self.verifying and entry.hash != entry_hash:
            raise LogVerificationError(f"asked for entry {entry_hash}, the server answered entry {entry.hash}")
        return entry

    def get_by_id(self, record_id: str, context: RequestContext | None = None) -> Entry | None:
        """The entry of this record id, or None when absent or not readable by the requester."""
        if not isinstance(record_id, str) or not record_id:
            raise ValidationError("must be a non-empty string", field="record_id")
        entry = self._get_one(f"/records/{_segment(record_id)}", context)
        if entry is not None and self.verifying and entry.record.id != record_id:
            raise LogVerificationError(
                f"asked for record {record_id!r}, the server answered record {entry.record.id!r}"
            )
        return entry

    def _get_one(self, path: str, context: RequestContext | None) -> Entry | None:
        token = self._bearer(context)
        try:
            doc = self._request("GET", path, token)
        except NotFoundError:
            return None
        return self._verified([self._entry(doc, token)], token)[0]

    def query(
        self, filters: QueryFilters | Mapping[str, Any] | None = None, context: RequestContext | None = None
    ) -> QueryResult:
        """Entries matching ``filters`` that the requester may read, a page at a time in seq order.
        A verifying client also checks that the page matches the filters (stream, record ids,
        timestamps, after the cursor, at most ``limit`` entries) and that its ``next_cursor`` moves
        past it: :class:`AnswerMismatchError` otherwise. Whether an entry was left out is the
        server's word."""
        token = self._bearer(context)
        body = _filters_doc(filters)
        asked = filters_from(body).to_storage_query() if self.verifying else None
        trusted = self._trusted_log(token).checkpoint if self.verifying else None
        if trusted is not None and trusted.size > 0:
            # The page's proof in the trusted tree comes with the page: no second request.
            body = {**body, "proof_tree_size": trusted.size}
        try:
            doc = self._request("POST", "/entries/query", token, body=body)
        except ValidationError as err:
            if trusted is None or err.field != "proof_tree_size":
                raise
            self._cannot_prove(trusted.size, token, err)
        entries = self._entries(doc["entries"], token)
        next_cursor = doc.get("next_cursor")
        if asked is not None:
            _check_ascending(entries)
            _check_page(entries, next_cursor, asked)
            entries = self._verified_page(entries, doc.get("proof"), trusted, token)
        return QueryResult(entries=entries, next_cursor=next_cursor)

    def _verified_page(
        self, entries: list[Entry], proof: Any, trusted: Checkpoint | None, token: str
    ) -> list[Entry]:
        """A page proven by the proof that came with it (the entries in the trusted tree), the
        rest (newer entries, or no proof) as :meth:`_verified` proves them."""
        covered = [e for e in entries if trusted is not None and e.seq <= trusted.size]
        if covered and trusted is not None:
            seqs = [e.seq for e in covered]
            if not isinstance(proof, dict) or proof.get("tree_size") != trusted.size or proof.get("seqs") != seqs:
                raise InclusionProofError(
                    f"the server's page came without the proof of entries {seqs[0]}..{seqs[-1]} in the trusted "
                    f"tree of {trusted.size} entries", seq=seqs[0],
                )
            hashes = proof.get("hashes")
            if not isinstance(hashes, list) or not all(isinstance(h, str) and _HEX64.fullmatch(h) for h in hashes):
                raise InclusionProofError("the server's page proof is malformed", seq=seqs[0])
            leaves = [leaf_hash(bytes.fromhex(e.hash)) for e in covered]
            try:
                verify_multi_inclusion(
                    leaves, [seq - 1 for seq in seqs], trusted.size, [bytes.fromhex(h) for h in hashes],
                    trusted.root_hash,
                )
            except ProofError as err:
                raise InclusionProofError(
                    f"entries {seqs[0]}..{seqs[-1]} of the page are not all in the trusted tree of "
                    f"{trusted.size} entries: {err}", seq=seqs[0],
                ) from None
        self._verified([e for e in entries if trusted is None or e.seq > trusted.size], token)
        return entries

    def iter_entries(self, context: RequestContext | None = None, *, from_seq: int = 1) -> Iterator[Entry]:
        """Every entry the requester may read from ``from_seq`` on, in seq order, a page at a time.
        A verifying client refuses (:class:`AnswerMismatchError`) a page whose seqs do not rise
        past the previous page's, start before ``from_seq``, or whose cursor does not move past it
        (a server sending the same entries again, or looping)."""
        cursor = f"s{from_seq - 1}" if from_seq > 1 else None
        last = from_seq - 1
        while True:
            page = self.query({"limit": 1000, **({"cursor": cursor} if cursor else {})}, context)
            if self.verifying and page.entries and page.entries[0].seq <= last:
                raise AnswerMismatchError(
                    f"iterating from entry {from_seq}, the server sent entry {page.entries[0].seq} after entry {last}"
                    " (entries again, or before the start)", seq=page.entries[0].seq,
                )
            yield from page.entries
            if page.next_cursor is None:
                return
            if page.entries:
                last = page.entries[-1].seq
            elif self.verifying and decode_cursor(page.next_cursor) <= last:
                raise AnswerMismatchError(
                    f"the server answered an empty page whose cursor {page.next_cursor!r} does not move past "
                    f"entry {last}"
                )
            cursor = page.next_cursor

    def tail(
        self,
        after_seq: int = 0,
        filters: QueryFilters | Mapping[str, Any] | None = None,
        context: RequestContext | None = None,
        *,
        reconnect: bool = True,
        timeout: float | None = None,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        read_timeout: float | None = None,
    ) -> Iterator[Entry]:
        """The entries after ``after_seq`` that match ``filters`` (``stream``, ``record_ids``,
        ``since``, ``until``; ``limit`` as the server's page size) and that the requester may read,
        as the server commits them: ``GET /entries/stream``, Server-Sent Events, in seq order (the
        remote form of :meth:`Ledger.subscribe <nucleus_core.ledger.Ledger.subscribe>`).

        Every entry is checked as :meth:`query` checks a page: its hash always; a verifying client
        also checks that it matches the filters and comes after the previous one, and yields a
        page's entries only once the page's end (the ``sync`` event) came and the entries were
        proven in a trusted checkpoint (one ``POST /proof/inclusion`` per page; an entry newer than
        the latest checkpoint waits up to ``checkpoint_wait`` seconds for one). It holds one page at
        most: a server sending more entries than the page size (``limit``, default 100) without a
        ``sync`` is refused (:class:`AnswerMismatchError`), never buffered.

        ``read_timeout``: silence after which the connection counts as dead (the server sends a
        keep-alive after ``stream_keepalive`` seconds of silence and announces that interval in its
        ``X-Nucleus-Keepalive`` header). None (the default) adapts to the server: 60 s, or 1.5
        times the announced interval plus 5 s when that is longer (the first connection to such a
        server is made again at once with it, from where it stood). An explicit read timeout not
        more than 1.5 times the announced interval is refused with :class:`ValidationError` naming
        ``read_timeout`` at connect.

        A dropped connection, a server stopping (``event: end``) or a 503 (too many streams,
        starting up) is followed, with ``reconnect``, by a new request with ``Last-Event-ID`` set
        to where the stream stood, after a delay doubling from 0.1 s to ``max_backoff`` seconds
        (reset once connected): no entry is lost or given twice. Without ``reconnect`` they end the
        iteration (a dropped connection raises :class:`StorageUnavailableError`). ``timeout``:
        end the iteration after that many seconds without an entry (None: never)."""
        if type(after_seq) is not int or after_seq < 0:
            raise ValidationError("must be a non-negative integer (a seq; 0: from the start)", field="after_seq")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0):
            raise ValidationError("must be a non-negative number of seconds", field="timeout")
        if isinstance(max_backoff, bool) or not isinstance(max_backoff, int | float) or not 0 < max_backoff <= 300:
            raise ValidationError("must be a number of seconds from 0 to 300", field="max_backoff")
        if read_timeout is not None and (
            isinstance(read_timeout, bool) or not isinstance(read_timeout, int | float)
            or not 0 < read_timeout <= MAX_TAIL_READ_TIMEOUT
        ):
            raise ValidationError(
                f"must be a number of seconds more than 0 and at most {MAX_TAIL_READ_TIMEOUT:g}", field="read_timeout"
            )
        body = _filters_doc(filters)
        if "cursor" in body:
            raise QueryError("a tail starts after after_seq; it takes no cursor", field="cursor")
        parsed = filters_from(body)
        asked = parsed.to_storage_query()
        token = self._bearer(context)
        params: QueryParams = []
        for key, value in body.items():
            if key == "record_ids":
                params.extend(("record_id", v) for v in value)
            elif key == "stream" and isinstance(value, list):
                params.extend(("stream", v) for v in value)
            else:
                params.append((key, value))
        return self._tail(
            token, after_seq, params, asked,
            _TailLimits(
                reconnect, timeout, float(max_backoff), None if read_timeout is None else float(read_timeout),
                parsed.limit,
            ),
        )

    def _tail(
        self,
        token: str,
        position: int,
        params: QueryParams,
        asked: StorageQuery,
        limits: _TailLimits,
    ) -> Iterator[Entry]:
        reconnect, timeout, max_backoff = limits.reconnect, limits.timeout, limits.max_backoff
        adapts = limits.read_timeout is None
        read_timeout = DEFAULT_TAIL_READ_TIMEOUT if limits.read_timeout is None else limits.read_timeout
        ledger_id = self._ledger_id(token)
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = _BACKOFF_FIRST
        while True:
            if self._closed:
                return
            read_for = read_timeout if deadline is None else max(0.01, deadline - time.monotonic())
            headers = {"authorization": f"Bearer {token}", "accept": "text/event-stream"}
            if position:
                headers["last-event-id"] = str(position)
            pending: list[Entry] = []
            ended = again = False
            try:
                with self._http.stream(
                    "GET", "/entries/stream", params=[*params, ("after", position)], headers=headers,
                    timeout=httpx.Timeout(self._http.timeout.connect, read=min(read_for, read_timeout)),
                ) as response:
                    self._tails.add(response)
                    if response.status_code >= 400:
                        response.read()
                        try:
                            document = json.loads(response.content) if response.content else None
                        except ValueError:
                            document = None
                        error = rebuild_error(document, status=response.status_code)
                        if response.status_code != 503 or not reconnect:
                            raise error
                    else:
                        delay = _BACKOFF_FIRST
                        announced = response.headers.get("x-nucleus-keepalive")
                        if adapts:
                            needed = _adapted_read_timeout(announced)
                            again = needed > read_timeout  # this connection's timeout is too short
                            read_timeout = needed
                        _check_keepalive(announced, read_timeout)
                        for name, seq, data in (() if again else _sse_events(response.iter_lines())):
                            if name == "entry":
                                entry = wire.entry_from_json(_json_data(data), ledger_id=ledger_id)
                                last = pending[-1].seq if pending else position
                                if entry.seq <= last or (seq is not None and seq != entry.seq):
                                    raise AnswerMismatchError(
                                        f"the stream sent entry {entry.seq} after entry {last}", seq=entry.seq
                                    )
                                if self.verifying:
                                    if len(pending) >= limits.page_size:
                                        raise AnswerMismatchError(
                                            f"the stream sent more than a page ({limits.page_size} entries) "
                                            "without a sync event", seq=entry.seq,
                                        )
                                    pending.append(entry)
                                    continue
                                position = entry.seq
                                deadline = None if timeout is None else time.monotonic() + timeout
                                yield entry
                            elif name == "sync":
                                if seq is None or seq < (pending[-1].seq if pending else position):
                                    raise AnswerMismatchError(f"the stream's sync event {seq!r} moves back")
                                if pending:
                                    _check_page(pending, None, attrs.evolve(
                                        asked, after_seq=position, limit=len(pending) + 1
                                    ))
                                    verified, pending = self._verified(pending, token), []
                                    deadline = None if timeout is None else time.monotonic() + timeout
                                    for entry in verified:
                                        position = entry.seq
                                        yield entry
                                position = seq
                            elif name == "end":
                                ended = True
                                break
                            elif name == "error":
                                raise rebuild_error(_json_data(data), status=500)
                            if self._closed or (deadline is not None and time.monotonic() >= deadline):
                                return
            except httpx.ReadTimeout:
                if self._closed or (deadline is not None and time.monotonic() >= deadline):
                    return
                if not reconnect:
                    raise StorageUnavailableError(f"the stream from {self.url} went silent") from None
                continue  # the server sends keep-alives: silence is a dead connection
            except (httpx.TransportError, httpx.StreamError) as err:
                if self._closed:
                    return
                if not reconnect:
                    raise StorageUnavailableError(
                        f"the stream from {self.url} broke: {type(err).__name__}"
                    ) from err
            except Exception:
                if self._closed:  # close() closed the response under the read
                    return
                raise
            finally:
                self._tails = {r for r in self._tails if not r.is_closed}
                if self._closed and not self._tails:
                    self._http.close()  # close() left it to the last open tail
            if again:
                continue  # at once, with the read timeout the server's keep-alive needs
            if ended and not reconnect:
                return
            if deadline is not None and time.monotonic() >= deadline:
                return
            time.sleep(delay if deadline is None else min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, max_backoff)

    # chain state ------------------------------------------------------------------------------
    def _info(self) -> dict[str, Any]:
        info: dict[str, Any] = self._request("GET", "/ledger", self._bearer(None))
        return info

    def length(self) -> int:
        """Number of entries, as committed on the server now."""
        return int(self._info()["length"])

    def latest_hash(self) -> str | None:
        """Hash of the latest entry, or None for an empty ledger."""
        head = self._info()["head"]
        return str(head) if head is not None else None

    def has_storage(self) -> bool:
        """True when the server's storage is persistent."""
        return bool(self._info()["persistent"])

    @property
    def read_only(self) -> bool:
        return bool(self._info()["read_only"])

    def verify(self) -> VerificationReport:
        """Have the server re-verify the whole stored chain."""
        doc = self._request("GET", "/verify", self._bearer(None))
        return VerificationReport(**doc)

    # modules and access control ---------------------------------------------------------------
    @property
    def modules(self) -> RemoteModules:
        """The server ledger's modules: ``list()``, ``metadata()`` and ``get(id[, HandleType])``."""
        return RemoteModules(self)

    @property
    def runtime(self) -> RemoteModules:
        """Same as :attr:`modules` (the read-only view: a :class:`~nucleus_core.handles.ModuleRuntime`)."""
        return RemoteModules(self)

    @property
    def acl(self) -> RemoteAcl:
        """The access-control API (grant, revoke, check, require, list) of the server's ledger."""
        return RemoteAcl(self)

    # lifecycle ----------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the connection pool. Idempotent; from any thread: an open :meth:`tail` ends at its
        next event or keep-alive (within the server's ``stream_keepalive``) and closes the pool
        then (a read blocked in another thread is never interrupted under it)."""
        if not self._closed:
            self._closed = True
            if not self._tails:
                self._http.close()

    def __enter__(self) -> RemoteLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RemoteModules:
    """The modules of a remote ledger: ``list()``, ``metadata()`` and ``get(id)`` /
    ``get(id, HandleType)``, a proxy of the module's handle (:class:`RemoteHandle`), as
    :class:`~nucleus_core.modules.LedgerRuntime` offers in process (both are a
    :class:`~nucleus_core.handles.ModuleRuntime`).

    The module documents are read with the client's token, or with the ``context=`` given (a client
    without a token of its own passes the requester's context here as it does to each call)."""

    def __init__(self, ledger: RemoteLedger) -> None:
        self._ledger = ledger

    def _documents(self, context: RequestContext | None = None) -> builtins.list[dict[str, Any]]:
        doc = self._ledger._request("GET", "/modules", self._ledger._bearer(context))
        modules = doc.get("modules") if isinstance(doc, dict) else None
        if not isinstance(modules, builtins.list) or not all(isinstance(m, dict) for m in modules):
            raise IntegrityError("the server's /modules answered no module list")
        return modules

    def metadata(self, context: RequestContext | None = None) -> builtins.list[ModuleMetadata]:
        """Id, version, state, streams, dependencies and resource kind of every module."""
        return [
            ModuleMetadata(
                id=m["id"],
                version=m["version"],
                state=ModuleState(m["state"]),
                streams=tuple(m["streams"]),
                depends_on=tuple(m["depends_on"]),
                resource_kind=m.get("resource_kind"),
            )
            for m in self._documents(context)
        ]

    def list(self, context: RequestContext | None = None) -> builtins.list[str]:
        """Ids of the ledger's modules."""
        return [m.id for m in self.metadata(context)]

    @overload
    def get(self, module_id: str, *, context: RequestContext | None = None) -> Module: ...
    @overload
    def get(self, module_id: str, kind: type[_M], *, context: RequestContext | None = None) -> _M: ...
    def get(
        self, module_id: str, kind: type[Module] | None = None, *, context: RequestContext | None = None
    ) -> Module:
        """A proxy of module ``module_id``'s handle: the handle operations of ``kind`` that the
        server lists, with their signatures (``context`` optional, as everywhere in
        :class:`RemoteLedger`), answering the same Python types. Without ``kind``, the module's
        class is its own class (the first of its ``handle_types``) when a module this process
        imported already defines it (looked up in ``sys.modules`` without running any module code:
        nothing is imported or computed because a server named it); otherwise the proxy is
        generic: described by the server's document, it checks each answer against the
        operation's result schema and answers JSON values (records and maps as dicts, arrays as
        lists, enums as strings) with every entry an :class:`~nucleus_core.Entry` checked as a
        typed proxy checks it. A description the client cannot read (argument names that are not
        identifiers, a result schema outside the closed set of result types) is an
        :class:`~nucleus_core.errors.IntegrityError` here, when the proxy is made.

        ``context``: the requester whose token reads the module documents (default: the client's
        token); each operation call still takes its own. :class:`ModuleError` with the in-process
        texts for an unknown id or another class."""
        documents = self._documents(context)
        found = next((d for d in documents if isinstance(module_id, str) and d.get("id") == module_id), None)
        if found is None:
            known = ", ".join(sorted(str(d.get("id")) for d in documents)) or "none"
            raise ModuleError(f"is not enabled on this ledger (known modules: {known})", module_id=str(module_id))
        names = found.get("handle_types")
        served = found.get("operations")
        if not isinstance(names, builtins.list) or not isinstance(served, builtins.list) or not names:
            raise IntegrityError(f"the server's /modules does not describe the handle of module {module_id!r}")
        if kind is not None:
            if qualified_name(kind) not in names:
                actual = str(names[0]).rsplit(".", 1)[-1]
                raise ModuleError(f"is a {actual}, not a {kind.__name__}", module_id=module_id)
            cls: type[Module] | None = kind
        else:
            cls = _imported_module_class(names[0])
        handle = RemoteHandle(self._ledger, module_id, _remote_operations(cls, served, module_id))
        return cast(Module, handle)


def _imported_module_class(name: object) -> type[Module] | None:
    """The class named ``name`` ("<module>.<qualname>") when a module this process imported already
    defines it. Read with ``vars`` and :func:`inspect.getattr_static` only: the name comes from the
    server, so no module ``__getattr__``, descriptor or import runs because of it."""
    if not isinstance(name, str):
        return None
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        found: Any = sys.modules.get(".".join(parts[:cut]))
        if found is None:
            continue
        for part in parts[cut:]:
            if isinstance(found, types.ModuleType):
                found = vars(found).get(part)
            elif isinstance(found, type):
                found = inspect.getattr_static(found, part, None)
            else:
                found = None
                break
        if isinstance(found, type) and issubclass(found, Module) and qualified_name(found) == name:
            return found
    return None


@attrs.frozen
class _Operation:
    """An operation of a proxy: its description, and the result schema of a generic one (None:
    typed, decoded by ``op``)."""

    op: HandleOperation
    schema: ResultSchema | None = None


def _remote_operations(cls: type[Module] | None, served: builtins.list[Any], module_id: str) -> dict[str, _Operation]:
    """The operations a proxy offers: those of ``cls`` that the server lists, or (no ``cls``) the
    server's, described from its document (:class:`~nucleus_core.errors.IntegrityError` when the
    client cannot read it)."""
    listed = {o.get("name"): o for o in served if isinstance(o, dict)}
    if cls is not None:
        return {op.name: _Operation(op) for op in operations_of(cls) if op.name in listed}
    generic: dict[str, _Operation] = {}
    for name, doc in listed.items():
        if not isinstance(name, str) or OPERATION_NAME.fullmatch(name) is None:
            raise IntegrityError(
                f"the server's /modules names an operation of module {module_id!r} {str(name)[:64]!r}, "
                "which is no operation name"
            )
        generic[name] = _generic_operation(module_id, name, doc)
    return generic


_SCHEMA_TYPES: dict[object, type] = {"string": str, "integer": int, "boolean": bool}


def _generic_operation(module_id: str, name: str, doc: dict[str, Any]) -> _Operation:
    where = f"the server's /modules describes operation {module_id}.{name}"
    if not isinstance(doc.get("params"), builtins.list):
        raise IntegrityError(f"{where} without a list of arguments")
    params: builtins.list[HandleParam] = []
    for p in doc["params"]:
        schema = p.get("schema") if isinstance(p, dict) else None
        tp = _SCHEMA_TYPES.get(schema.get("type")) if isinstance(schema, dict) else None
        if tp is None or not isinstance(p.get("name"), str) or not isinstance(p.get("required"), bool):
            raise IntegrityError(f"{where} with a malformed argument")
        pname = p["name"]
        if not pname.isidentifier() or keyword.iskeyword(pname) or pname == "context" or not pname.isascii():
            raise IntegrityError(f"{where} with an argument named {pname[:64]!r}, which is no parameter name")
        if any(q.name == pname for q in params):
            raise IntegrityError(f"{where} with argument {pname!r} twice")
        required = p["required"]
        default = None if required else schema.get("default") if isinstance(schema, dict) else None
        if default is not None and type(default) is not tp:
            raise IntegrityError(f"{where} giving argument {pname!r} a malformed default")
        params.append(HandleParam(name=pname, type=tp if required else tp | None, required=required, default=default))
    try:
        result = ResultSchema(doc.get("result"))
    except ValidationError as err:
        raise IntegrityError(f"{where} with a result schema this client cannot check: {err}") from None
    op = HandleOperation(name=name, summary=str(doc.get("summary", "")), params=tuple(params), result=Any)
    return _Operation(op, result)


class RemoteHandle:
    """A module's handle over HTTP (see :meth:`RemoteModules.get`): each operation is a method
    with the in-process signature, ``context`` optional; it sends ``GET /modules/<id>/<name>``
    and answers the decoded result, every entry in it checked as :meth:`RemoteLedger.get` checks
    (its hash always; its inclusion in a trusted checkpoint when the client verifies). A result
    that does not have the operation's shape is an :class:`AnswerMismatchError`."""

    __slots__ = ("_ledger", "_methods", "_module_id")

    def __init__(self, ledger: RemoteLedger, module_id: str, ops: Mapping[str, _Operation]) -> None:
        self._ledger = ledger
        self._module_id = module_id
        self._methods: dict[str, Callable[..., Any]] = {name: self._method(name, op) for name, op in ops.items()}

    @property
    def id(self) -> str:
        return self._module_id

    def __dir__(self) -> builtins.list[str]:
        return sorted({*self._methods, "id"})

    def __repr__(self) -> str:
        return f"<RemoteHandle {self._module_id!r}: {', '.join(sorted(self._methods)) or 'no operations'}>"

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):  # never an operation (and never looked up in _methods before it is set)
            raise AttributeError(name)
        method = self._methods.get(name)
        if method is None:
            available = ", ".join(sorted(self._methods)) or "none"
            raise AttributeError(
                f"the remote handle of module {self._module_id!r} has no operation {name!r} (operations: {available})"
            )
        return method

    def _method(self, name: str, operation: _Operation) -> Callable[..., Any]:
        op = operation.op
        parameters = [inspect.Parameter(p.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=p.type)
                      for p in op.params if p.required]
        parameters.append(inspect.Parameter(
            "context", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=RequestContext | None
        ))
        parameters += [inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY, default=p.default, annotation=p.type)
                       for p in op.params if not p.required]
        signature = inspect.Signature(parameters, return_annotation=op.result)

        def call(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            context = arguments.pop("context")
            return self._call(operation, arguments, context)

        call.__name__ = call.__qualname__ = name
        call.__doc__ = op.summary
        call.__signature__ = signature  # type: ignore[attr-defined]
        return call

    def _call(self, operation: _Operation, arguments: dict[str, Any], context: RequestContext | None) -> Any:
        ledger, op = self._ledger, operation.op
        params = op.query_items(arguments)
        token = ledger._bearer(context)
        path = f"/modules/{_segment(self._module_id)}/{_segment(op.name)}"
        doc = ledger._request("GET", path, token, params=cast(QueryParams, params))
        if not isinstance(doc, dict) or set(doc) != {"result"}:
            raise AnswerMismatchError(f"the server's {path} answered no {{\"result\": ...}} document")
        entries: builtins.list[Entry] = []

        def entry(item: object) -> Entry:
            received = ledger._entry(item, token)
            entries.append(received)
            return received

        try:
            if operation.schema is None:
                value = op.decode(doc["result"], entry=entry)
            else:
                value = operation.schema.decode(doc["result"], entry=entry)
        except ValidationError as err:
            raise AnswerMismatchError(f"the server's {path} answered a result of another shape: {err}") from None
        ledger._verified(entries, token)
        return value


class RemoteAcl:
    """The UAL API over HTTP, with the UAL's types (needs ``nucleus-ual`` installed for them)."""

    def __init__(self, ledger: RemoteLedger) -> None:
        self._ledger = ledger

    @staticmethod
    def _ual() -> Any:
        try:
            import nucleus_ual
        except ImportError as err:
            raise ConfigurationError("RemoteLedger.acl returns nucleus-ual types; pip install nucleus-ual") from err
        return nucleus_ual

    def grant(self, grants: Iterable[Any], context: RequestContext | None = None) -> list[Grant]:
        """Give grants (``Grant`` objects or dicts); returns the grants as recorded."""
        ual = self._ual()
        token = self._ledger._bearer(context)
        body = {"grants": [_grant_doc(g) for g in grants]}
        doc = self._ledger._request("POST", "/acl/grant", token, body=body)
        grant_type: type[Grant] = ual.Grant
        return [grant_type.from_dict(g) for g in doc["grants"]]

    def revoke(self, grants: Iterable[Any], context: RequestContext | None = None) -> int:
        """Revoke grants of (principal, kind, resource id); returns how many were revoked."""
        token = self._ledger._bearer(context)
        body = {"grants": [_grant_doc(g) for g in grants]}
        return int(self._ledger._request("POST", "/acl/revoke", token, body=body)["revoked"])

    def check(
        self, principal: RequestContext | str, action: str, resource: tuple[str, str] | Mapping[str, str] | Any
    ) -> bool:
        """Whether ``principal`` may do ``action`` on ``resource``. For a context, its token (or the
        client's) asks about itself; for an OID string the client's requester asks about that
        principal, which needs ``full`` on the resource."""
        body: dict[str, Any] = {"action": str(action), "resource": _resource_doc(resource)}
        if isinstance(principal, RequestContext):
            token = self._ledger._bearer(principal)
        else:
            token = self._ledger._bearer(None)
            body["principal"] = principal
        return bool(self._ledger._request("POST", "/acl/check", token, body=body)["allowed"])

    def require(self, principal: RequestContext | str, action: str, resource: Any) -> Resource:
        """The resource if ``principal`` may do ``action`` on it; AccessDeniedError otherwise."""
        from nucleus_core.errors import AccessDeniedError

        res = _resource_doc(resource)
        if not self.check(principal, action, resource):
            raise AccessDeniedError(f"{action} access to {res['kind']}/{res['id']} denied")
        resource_type: type[Resource] = self._ual().Resource
        return resource_type(kind=res["kind"], id=res["id"])

    def list(self, context: RequestContext | None = None, filters: Mapping[str, Any] | None = None) -> ListResult:
        """Entries the requester may read (query filters plus ``kind``), a page at a time."""
        ual = self._ual()
        token = self._ledger._bearer(context)
        doc = self._ledger._request("GET", "/acl/entries", token, params=_query_params(dict(filters or {})))
        entries = self._ledger._entries(doc["entries"], token)
        if self._ledger.verifying:
            _check_ascending(entries)
        entries = self._ledger._verified(entries, token)
        result_type: type[ListResult] = ual.ListResult
        return result_type(entries=entries, next_cursor=doc.get("next_cursor"))


def _check_content(entry: Entry, ledger_id: str) -> None:
    """Refuse ``entry`` unless its ``hash`` is the one its fields hash to under ``ledger_id`` (the
    format checks of :func:`~nucleus_core.verify.verify_rows`: the hash, the canonical record
    bytes, the derived columns, the appender fields) and its :attr:`~Entry.record` re-encodes to
    those bytes (a record object changed after it was built). An inclusion proof proves a hash only:
    this makes it prove the content."""
    seq = entry.seq
    if type(seq) is not int or seq < 1 or not is_hash(entry.hash) or not is_hash(entry.prev_hash):
        raise EntryContentError("an entry with a malformed seq or hash cannot be verified", seq=None)
    report = verify_rows(ledger_id, [entry_row(entry)], first_seq=seq, start_hash=entry.prev_hash)
    if not report.ok:
        raise EntryContentError(
            f"entry {seq} (hash {entry.hash}) does not hash to its hash: {report.reason}",
            seq=seq, reason=report.reason,
        )
    try:
        record = entry.record
        recoded = Record.from_dict(record.to_dict()).canonical
    except ValidationError as err:
        raise EntryContentError(f"entry {seq}: its record is not valid ({err})", seq=seq) from None
    if record.canonical != entry.canonical or recoded != entry.canonical:
        raise EntryContentError(
            f"entry {seq}: its record is not the canonical form its hash covers (changed after it was built)",
            seq=seq, reason="record not canonical",
        )


def _check_inclusion(entry: Entry, proof: InclusionProof | None, checkpoint: Checkpoint) -> None:
    """Refuse ``entry`` unless ``proof`` puts its leaf at index ``seq - 1`` of ``checkpoint``'s tree."""
    seq = entry.seq
    if proof is None:
        raise InclusionProofError(
            f"entry {seq}: the server returned it but gives no inclusion proof of it in the tree of "
            f"{checkpoint.size} entries", seq=seq,
        )
    if proof.leaf_index != seq - 1 or proof.tree_size != checkpoint.size:
        raise InclusionProofError(
            f"entry {seq}: the server's inclusion proof is for leaf {proof.leaf_index} of a tree of {proof.tree_size}, "
            f"not leaf {seq - 1} of the trusted tree of {checkpoint.size}", seq=seq,
        )
    try:
        leaf = leaf_hash(bytes.fromhex(entry.hash))
        verify_inclusion(leaf, seq - 1, checkpoint.size, proof.hashes, checkpoint.root_hash)
    except ProofError as err:
        raise InclusionProofError(
            f"entry {seq} (hash {entry.hash}) is not in the trusted tree of {checkpoint.size} entries: {err}", seq=seq
        ) from None


def _check_records(entries: Sequence[Entry], records: Sequence[Record]) -> None:
    """An append's answer must be the records sent, in order, in consecutive entries."""
    if len(entries) != len(records):
        raise LogVerificationError(f"appended {len(records)} records, the server answered {len(entries)} entries")
    for i, (entry, record) in enumerate(zip(entries, records, strict=True)):
        if entry.record.canonical != record.canonical:
            raise LogVerificationError(
                f"the server answered the append of record {record.id!r} with entry {entry.seq} of another record",
                seq=entry.seq,
            )
        if i and entry.seq != entries[i - 1].seq + 1:
            raise LogVerificationError("the server answered a batch append with entries that are not consecutive")


def _check_page(entries: Sequence[Entry], next_cursor: object, asked: StorageQuery) -> None:
    """A query page must match what the client can check of the query ``asked``: each entry in a
    stream and a record id asked for, a timestamp in ``[since, until)``, a seq after the cursor, at
    most the limit asked for; a ``next_cursor`` (if any) moving past the page's last entry."""
    if len(entries) > asked.limit - 1:
        raise AnswerMismatchError(f"asked for at most {asked.limit - 1} entries, the server answered {len(entries)}")
    for entry in entries:
        record = entry.record
        why = None
        if entry.seq <= asked.after_seq:
            why = f"its seq is not after the cursor's entry {asked.after_seq}"
        elif asked.streams is not None and record.stream not in asked.streams:
            why = f"its stream {record.stream!r} is not one asked for"
        elif asked.record_ids is not None and record.id not in asked.record_ids:
            why = f"its record id {record.id!r} is not one asked for"
        elif (asked.since is not None and record.timestamp < asked.since) or (
            asked.until is not None and record.timestamp >= asked.until
        ):
            why = f"its timestamp {record.timestamp} is outside the range asked for"
        if why is not None:
            raise AnswerMismatchError(f"the server's query page holds entry {entry.seq}, which {why}", seq=entry.seq)
    if next_cursor is not None:
        try:
            if not isinstance(next_cursor, str):
                raise ValidationError("not a string")
            after = decode_cursor(next_cursor)
        except ValidationError:
            raise AnswerMismatchError(f"the server's next_cursor {next_cursor!r} is not a cursor") from None
        floor = entries[-1].seq if entries else asked.after_seq
        if after < floor or (not entries and after == floor):
            raise AnswerMismatchError(
                f"the server's next_cursor {next_cursor!r} does not move past its page (entry {floor})"
            )


@attrs.frozen
class _TailLimits:
    """How a tail reconnects and times out, and the page size it holds at most (see :meth:`RemoteLedger.tail`)."""

    reconnect: bool
    timeout: float | None
    max_backoff: float
    read_timeout: float | None
    """None: adapted to the server's announced keep-alive (:func:`_adapted_read_timeout`)."""
    page_size: int


def _keepalive_interval(announced: str | None) -> float | None:
    """The keep-alive interval a stream announced (its ``X-Nucleus-Keepalive``), None when none."""
    if announced is None:
        return None
    try:
        interval = float(announced)
    except ValueError:
        interval = float("nan")
    if not interval >= 0 or interval == float("inf"):
        raise AnswerMismatchError(f"the stream's X-Nucleus-Keepalive {announced[:32]!r} is not a number of seconds")
    return interval


def _adapted_read_timeout(announced: str | None) -> float:
    """The default read timeout against a stream announcing ``announced``: 60 s, or 1.5 times the
    interval plus 5 s when that is longer (at most :data:`MAX_TAIL_READ_TIMEOUT`)."""
    interval = _keepalive_interval(announced)
    if interval is None:
        return DEFAULT_TAIL_READ_TIMEOUT
    return min(MAX_TAIL_READ_TIMEOUT, max(DEFAULT_TAIL_READ_TIMEOUT, interval * KEEPALIVE_MARGIN + KEEPALIVE_SLACK))


def _check_keepalive(announced: str | None, read_timeout: float) -> None:
    """Refuse a read timeout the server's keep-alive interval (its ``X-Nucleus-Keepalive``) would
    trip between two keep-alives."""
    interval = _keepalive_interval(announced)
    if interval is None:
        return
    if read_timeout <= interval * KEEPALIVE_MARGIN:
        raise ValidationError(
            f"the server sends a keep-alive after {interval:g} s of silence (its stream_keepalive): this tail's "
            f"read timeout of {read_timeout:g} s would count a quiet stream as dead; pass a read_timeout above "
            f"{interval * KEEPALIVE_MARGIN:g}",
            field="read_timeout",
        )


def _sse_events(lines: Iterable[str]) -> Iterator[tuple[str, int | None, str]]:
    """The events of a Server-Sent Events stream as ``(event name, id as a seq or None, data)``
    (``retry`` skipped; an id that is not a seq is None); a comment (the server's keep-alive) is
    ``("", None, "")``, so that the reader sees time pass."""
    name, ident, data = "message", None, list[str]()
    for line in lines:
        if not line:
            if data or name != "message":
                seq = int(ident) if ident is not None and ident.isascii() and ident.isdigit() else None
                yield name, seq, "\n".join(data)
            name, ident, data = "message", None, []
            continue
        if line.startswith(":"):
            yield "", None, ""
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
        elif field == "id":
            ident = value


def _json_data(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        raise NucleusError("the stream sent an event whose data is not JSON") from None


def _check_ascending(entries: Sequence[Entry]) -> None:
    """A page's entries come in strictly ascending seq order."""
    for before, after in itertools.pairwise(entries):
        if after.seq <= before.seq:
            raise LogVerificationError(f"the server answered a page out of seq order ({before.seq}, then {after.seq})")


def _segment(value: str) -> str:
    """``value`` as one path segment: every reserved character escaped, and ``.``/``..`` too (URL
    normalisation would otherwise remove them as dot-segments)."""
    if value in (".", ".."):
        return value.replace(".", "%2E")
    return quote(value, safe="")


def _filters_doc(filters: QueryFilters | Mapping[str, Any] | None) -> dict[str, Any]:
    if filters is None:
        return {}
    if isinstance(filters, QueryFilters):
        return {
            k: v
            for k, v in {
                "stream": filters.stream,
                "record_ids": filters.record_ids,
                "since": filters.since,
                "until": filters.until,
                "limit": filters.limit,
                "cursor": filters.cursor,
            }.items()
            if v is not None
        }
    if not isinstance(filters, Mapping):
        from nucleus_core.errors import QueryError

        raise QueryError(f"filters must be QueryFilters or a mapping, got {type(filters).__name__}")
    return dict(filters)


_P = TypeVar("_P")
_M = TypeVar("_M", bound=Module)


def _checked(parse: Callable[[object], _P], doc: Any, path: str) -> _P:
    """``parse(doc)``: a server answering another shape is a :class:`NucleusError` naming ``path``."""
    try:
        return parse(doc)
    except ValidationError as err:
        raise NucleusError(f"the server's {path} answered a malformed proof: {err}") from None


def _query_params(filters: dict[str, Any]) -> QueryParams:
    params: QueryParams = []
    for key, value in filters.items():
        name = "record_id" if key == "record_ids" else key
        values = value if isinstance(value, (list, tuple)) else [value]
        params.extend((name, str(v)) for v in values)
    return params


def _grant_doc(grant: Any) -> dict[str, Any]:
    doc = grant.to_dict() if hasattr(grant, "to_dict") else dict(grant)
    return {k: v for k, v in doc.items() if k != "granted_by" and v is not None}


def _resource_doc(resource: Any) -> dict[str, str]:
    if isinstance(resource, tuple) and len(resource) == 2:
        return {"kind": resource[0], "id": resource[1]}
    if isinstance(resource, Mapping):
        return {"kind": str(resource.get("kind", "")), "id": str(resource.get("id", ""))}
    if hasattr(resource, "kind") and hasattr(resource, "id"):
        return {"kind": resource.kind, "id": resource.id}
    raise ValidationError("a resource is Resource(kind, id), a (kind, id) tuple or {kind, id}", field="resource")


if TYPE_CHECKING:

    def _remote_acl_is_an_acl_admin(acl: RemoteAcl) -> AclAdmin:
        """mypy checks here that ``RemoteLedger.acl`` offers the core's :class:`AclAdmin`."""
        return acl

    def _remote_modules_are_a_module_runtime(modules: RemoteModules) -> ModuleRuntime:
        """mypy checks here that ``RemoteLedger.modules`` offers the core's :class:`ModuleRuntime`."""
        return modules
