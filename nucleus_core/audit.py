"""Auditing a ledger one can only read against a checkpoint kept outside it (``nucleus audit``).

An auditor keeps a signed checkpoint (a file written from ``GET /checkpoint`` or
``ledger.checkpoint()``) and later checks the ledger against it, in this order
(``docs/TRANSPARENCY.md``, "Auditing"):

1. ``checkpoint``: the kept checkpoint's signature, by one of the given verifier keys, and its
   origin (:class:`~nucleus_core.errors.CheckpointRefusedError` otherwise: nothing else is checked);
2. ``chain`` (storage): every entry's hash, link and record, as opening a ledger checks them
   (:func:`~nucleus_core.ledger.verify_stored_entries`); on failure nothing else is compared;
3. ``tree`` (storage): the stored Merkle tree against the entries (:func:`~nucleus_core.tree.check_tree`);
4. ``consistency``: the ledger at its current size extends the kept checkpoint: it holds at least
   as many entries, has the checkpoint's root at its size, and an RFC 9162 consistency proof from
   the kept size to the current one verifies (:func:`~nucleus_core.tlog_verify.verify_consistency`);
5. ``latest_checkpoint`` (storage) or ``server_checkpoint`` (HTTP): the ledger's own newest
   signed checkpoint verifies, matches the entries and is consistent with the kept one;
6. ``entries`` (HTTP, with a token): every entry fetched, its hash and link checked as above, and
   the Merkle root rebuilt from their hashes equals that of both checkpoints.

Roots and proofs come from the stored tree once ``tree`` passed and it covers the entries;
otherwise (a tree not built yet: a read-only open builds nothing, or entries fetched over HTTP)
they are computed from the verified entries' hashes in one streaming pass
(:class:`~nucleus_core.merkle.PlannedNodes`, constant memory). The storage is opened read-only and
never written (:func:`open_read_only`). The report names every check, with the sizes and the
first entry concerned; :attr:`AuditReport.error` is the finding that decides the outcome.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

import attrs
import pluggy

from .capabilities import CheckpointStorage
from .errors import (
    AuthorizationError,
    CheckpointMismatchError,
    CheckpointRefusedError,
    ConfigurationError,
    IntegrityError,
    NucleusError,
    ValidationError,
)
from .ledger import LedgerConfig, storage_for_url, verify_stored_entries
from .merkle import MerkleNodeStore, PlannedNodes, consistency_proof, root_hash
from .records import EntryRow, entry_row_from_dict
from .storage import MemoryStorage, StorageBackend, entry_rows
from .tlog_verify import (
    Checkpoint,
    NoteVerifier,
    UnverifiedNoteError,
    VerificationError,
    leaf_hash,
    verify_checkpoint,
    verify_consistency,
    verify_note,
)
from .tree import ConsistencyProof, check_tree, tree_storage
from .verify import verify_rows

__all__ = ["AuditCheck", "AuditReport", "LedgerReader", "audit_reader", "audit_storage", "open_read_only"]

OK, FAILED, SKIPPED, WARNING = "ok", "failed", "skipped", "warning"

_PRIORITY: tuple[type[NucleusError], ...] = (CheckpointRefusedError, CheckpointMismatchError, IntegrityError)
"""Which failure decides the outcome when several are found: a refused checkpoint (nothing else
means anything), then a mismatch with the checkpoint, then the ledger's own integrity; any other
(an incomplete read) after them."""


@attrs.frozen(kw_only=True)
class AuditCheck:
    """One check of an audit: its name, ``ok`` / ``failed`` / ``skipped`` / ``warning``, what was
    found, and the first entry concerned when there is one."""

    name: str
    status: str
    detail: str
    seq: int | None = None

    def to_dict(self) -> dict[str, object]:
        return attrs.asdict(self)


@attrs.define
class AuditReport:
    """What an audit found. ``source``: the ledger audited (a storage URL or an HTTP base URL);
    ``checkpoint``: the kept checkpoint once verified; ``size``: the ledger's size audited (entries
    verified, or the size of the server's checkpoint); ``error``: the failure that decides the
    outcome (None when every check passed or was skipped)."""

    source: str
    ledger_id: str | None = None
    checkpoint: Checkpoint | None = None
    size: int | None = None
    checks: list[AuditCheck] = attrs.field(factory=list)
    error: NucleusError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def passed(self, name: str, detail: str) -> None:
        self.checks.append(AuditCheck(name=name, status=OK, detail=detail))

    def skipped(self, name: str, detail: str) -> None:
        self.checks.append(AuditCheck(name=name, status=SKIPPED, detail=detail))

    def warned(self, name: str, detail: str) -> None:
        self.checks.append(AuditCheck(name=name, status=WARNING, detail=detail))

    def failed(self, name: str, error: NucleusError) -> None:
        """Record the failure of check ``name``; it decides the outcome unless one of higher
        priority (see :data:`_PRIORITY`) was found before."""
        seq = getattr(error, "seq", None)
        self.checks.append(AuditCheck(name=name, status=FAILED, detail=str(error), seq=seq))
        if self.error is None or _rank(error) < _rank(self.error):
            self.error = error

    def to_dict(self) -> dict[str, Any]:
        kept = self.checkpoint
        return {
            "ok": self.ok,
            "source": self.source,
            "ledger_id": self.ledger_id,
            "checkpoint": None if kept is None else {
                "origin": kept.origin, "size": kept.size, "root_hash": kept.root_hash.hex(),
            },
            "size": self.size,
            "checks": [check.to_dict() for check in self.checks],
            "error": None if self.error is None else {
                "code": self.error.code, "message": str(self.error), "seq": getattr(self.error, "seq", None),
            },
        }


def _rank(error: NucleusError) -> int:
    return next((i for i, kind in enumerate(_PRIORITY) if isinstance(error, kind)), len(_PRIORITY))


# -- shared steps --------------------------------------------------------------------------------


def _verify_kept(
    report: AuditReport, note: bytes, verifiers: list[NoteVerifier], origin: str | None
) -> Checkpoint | None:
    """The ``checkpoint`` check: the kept checkpoint, verified (None when refused)."""
    try:
        kept = verify_checkpoint(note, verifiers, origin=origin)
    except VerificationError as err:
        refused = CheckpointRefusedError(f"the kept checkpoint does not verify: {err}", reason="checkpoint")
        report.failed("checkpoint", refused)
        return None
    signers = ", ".join(f"{sig.name}+{sig.key_id:08x}" for sig in verify_note(note, verifiers).verified)
    report.checkpoint = kept
    root = kept.root_hash.hex()
    report.passed("checkpoint", f"origin {kept.origin}, size {kept.size}, root {root}; signed by {signers}")
    return kept


def _check_extends(
    report: AuditReport, store: MerkleNodeStore, kept: Checkpoint, size: int, current_root: bytes, *, what: str
) -> None:
    """The ``consistency`` check: the tree of ``size`` leaves in ``store`` (root ``current_root``)
    extends the kept checkpoint, by an RFC 9162 proof from ``store``."""
    if size < kept.size:
        report.failed("consistency", _fewer(what, size, kept.size, "the kept checkpoint"))
        return
    root = root_hash(store, kept.size)
    if root != kept.root_hash:
        report.failed("consistency", _other_root(what, kept.size, root, kept.root_hash, "the kept checkpoint"))
        return
    proof = consistency_proof(store, kept.size, size)
    try:
        verify_consistency(kept.size, size, kept.root_hash, current_root, proof)
    except VerificationError as err:
        report.failed("consistency", CheckpointMismatchError(
            f"{what}: the consistency proof from size {kept.size} to {size} fails: {err}"))
        return
    report.passed(
        "consistency",
        f"{what} at size {size} extends the kept checkpoint at size {kept.size} "
        f"(RFC 9162 consistency proof of {len(proof)} hashes verified)",
    )


def _fewer(what: str, size: int, expected: int, whose: str) -> CheckpointMismatchError:
    return CheckpointMismatchError(
        f"{what} holds {size} entries, fewer than the {expected} of {whose} (entries {size + 1} to {expected} "
        "were removed, or this is an older copy of the ledger)",
        seq=size + 1, reason="checkpoint",
    )


def _other_root(what: str, size: int, root: bytes, expected: bytes, whose: str) -> CheckpointMismatchError:
    return CheckpointMismatchError(
        f"{what}: at size {size} the root hash is {root.hex()}, not {expected.hex()} as {whose} says "
        "(history was rewritten, or this is another ledger)",
        reason="checkpoint",
    )


# -- a database ------------------------------------------------------------------------------------


def open_read_only(
    url: str,
    ledger_id: str,
    options: Mapping[str, Any] | None = None,
    *,
    plugin_manager: pluggy.PluginManager | None = None,
) -> StorageBackend:
    """The storage at ``url`` opened read-only for ``ledger_id``, found as a ledger finds it
    (:func:`~nucleus_core.ledger.storage_for_url`) but with no ledger plugin loaded: nothing is
    created, migrated, built or written (SQLite: a ``mode=ro`` connection; PostgreSQL: read-only
    sessions). ``memory://`` is refused: it holds nothing to audit."""
    storage = storage_for_url(url, options, plugin_manager=plugin_manager)
    if isinstance(storage, MemoryStorage):
        raise ConfigurationError("memory:// storage holds no ledger to audit; give a database URL")
    storage.open(ledger_id, read_only=True, create=False)
    return storage


def audit_storage(
    storage: StorageBackend,
    *,
    ledger_id: str,
    kept_note: bytes,
    verifiers: Iterable[NoteVerifier],
    origin: str,
    progress: Callable[[int], None] | None = None,
) -> AuditReport:
    """Audit the ledger ``ledger_id`` in ``storage`` (opened, e.g. by :func:`open_read_only`)
    against the signed checkpoint ``kept_note``, verified with ``verifiers`` for ``origin``; see the
    module docstring for the checks. ``progress(seq)`` while the chain is verified."""
    trusted = list(verifiers)
    report = AuditReport(source=storage.url, ledger_id=ledger_id)
    kept = _verify_kept(report, kept_note, trusted, origin)
    if kept is None:
        return report
    # Read before the chain: an honest ledger's latest checkpoint covers entries committed before
    # it was read, so it never covers more than the verification that follows sees.
    latest = storage.checkpoint_store().latest() if isinstance(storage, CheckpointStorage) else None
    chain = verify_stored_entries(LedgerConfig(id=ledger_id), storage, progress=progress)
    if not chain.ok:
        seq = chain.first_bad_seq
        report.failed("chain", IntegrityError(f"the ledger does not verify at entry {seq}: {chain.reason}", seq=seq))
        for name in ("tree", "consistency", "latest_checkpoint"):
            report.skipped(name, "not compared: the chain does not verify")
        return report
    size = report.size = chain.entries_checked
    report.passed("chain", f"{size} entries: every hash, link and record verified; head {chain.head_hash or '(empty)'}")
    store = _stored_tree(report, storage, size)
    sizes = [s for s in (kept.size, latest[0] if latest else None) if s is not None and s <= size]
    if store is None:
        pairs = [(kept.size, size)] if kept.size <= size else []
        if len(sizes) == 2:
            pairs.append((min(sizes), max(sizes)))
        store = _planned_from_storage(storage, size, roots=[*sizes, size], pairs=pairs)
    current = root_hash(store, size)
    _check_extends(report, store, kept, size, current, what="the ledger")
    if latest is None:
        report.skipped("latest_checkpoint", "the ledger holds no signed checkpoint of its own")
    else:
        _check_latest(report, store, kept, latest, trusted, size)
    return report


def _stored_tree(report: AuditReport, storage: StorageBackend, size: int) -> MerkleNodeStore | None:
    """The ``tree`` check; the stored tree to answer roots and proofs from when it passed and
    covers the ``size`` verified entries (None: compute them from the entries)."""
    tree = tree_storage(storage)
    if tree is None:
        report.skipped("tree", "the storage keeps no Merkle tree: roots are computed from the entries")
        return None
    problem = check_tree(storage, entries=size)
    if problem is not None:
        report.failed("tree", IntegrityError(
            f"the stored Merkle tree does not match the entries at entry {problem.seq}: {problem.reason}",
            seq=problem.seq))
        return None
    built = min(tree.merkle_size(), size)
    if built < size:
        report.passed(
            "tree",
            f"the stored Merkle tree covers {built} of the {size} entries and matches them (the rest is not built "
            "yet: a read-only open builds nothing); roots and proofs are computed from the entries",
        )
        return None
    report.passed("tree", f"the stored Merkle tree ({size} leaves) matches the entries")
    return tree.merkle_store()


def _planned_from_storage(
    storage: StorageBackend, size: int, *, roots: Iterable[int], pairs: Iterable[tuple[int, int]]
) -> PlannedNodes:
    """The nodes the roots at ``roots`` and proofs ``pairs`` need, from the first ``size`` (verified)
    entries' hashes, streamed."""
    plan = PlannedNodes(roots=roots, consistency=pairs)
    tree = tree_storage(storage)
    hashes: Iterator[tuple[int, str]] = (
        iter(tree.iter_entry_hashes(1)) if tree is not None else ((row[0], row[1]) for row in entry_rows(storage, 1))
    )
    try:
        for seq, entry_hash in hashes:
            if seq > size:
                break
            plan.add(leaf_hash(bytes.fromhex(entry_hash)))
    finally:
        close = getattr(hashes, "close", None)
        if close is not None:
            close()
    if plan.size != size:
        raise IntegrityError(f"entry {plan.size + 1} disappeared while the ledger was audited", seq=plan.size + 1)
    return plan


def _check_latest(
    report: AuditReport,
    store: MerkleNodeStore,
    kept: Checkpoint,
    latest: tuple[int, str],
    verifiers: list[NoteVerifier],
    size: int,
) -> None:
    name = "latest_checkpoint"
    stored_size, note = latest
    try:
        own = verify_checkpoint(note, verifiers, origin=kept.origin)
    except UnverifiedNoteError:
        report.warned(name, f"the ledger's latest checkpoint (size {stored_size}) is signed by none of the given keys: "
                            "not checked (its key may have been rotated; give its verifier key too)")
        return
    except VerificationError as err:
        report.failed(name, CheckpointMismatchError(
            f"the ledger's latest checkpoint (size {stored_size}) does not verify: {err}"))
        return
    if own.size > size:
        report.failed(name, _fewer("the ledger", size, own.size, "its own latest checkpoint"))
        return
    root = root_hash(store, own.size)
    if root != own.root_hash:
        report.failed(name, _other_root("the ledger", own.size, root, own.root_hash, "its own latest checkpoint"))
        return
    if kept.size > size:
        report.passed(name, f"the ledger's own checkpoint at size {own.size} verifies and matches the entries "
                            f"(not compared with the kept checkpoint, which covers more than the ledger holds)")
        return
    low, high = sorted((kept, own), key=lambda c: c.size)
    try:
        proof = consistency_proof(store, low.size, high.size)
        verify_consistency(low.size, high.size, low.root_hash, high.root_hash, proof)
    except VerificationError as err:  # both roots matched the tree above: cannot happen, checked nonetheless
        report.failed(name, CheckpointMismatchError(
            f"the ledger's latest checkpoint is not consistent with the kept one: {err}"))
        return
    report.passed(name, f"the ledger's own checkpoint at size {own.size} verifies, matches the entries and is "
                        f"consistent with the kept checkpoint at size {kept.size}")


# -- over HTTP --------------------------------------------------------------------------------------


class LedgerReader(Protocol):
    """What an audit reads from a ledger it reaches over the network (:mod:`nucleus_core.audit_http`
    reads a ``nucleus serve``). Transport failures raise :class:`~nucleus_core.errors.NucleusError`."""

    @property
    def where(self) -> str:
        """The ledger's address, without credentials (for reports)."""

    @property
    def can_read_entries(self) -> bool:
        """Whether entries can be read (a token was given)."""

    def checkpoint(self) -> bytes:
        """The latest signed checkpoint, its bytes as served."""

    def consistency_proof(self, first: int, second: int) -> ConsistencyProof:
        """The consistency proof from size ``first`` to ``second`` (its JSON shape checked)."""

    def ledger_id(self) -> str:
        """The ledger's id (part of every entry hash)."""

    def entries(self) -> Iterator[object]:
        """Every entry the reader may read, in seq order, each as its JSON object."""


def audit_reader(
    reader: LedgerReader,
    *,
    kept_note: bytes,
    verifiers: Iterable[NoteVerifier],
    origin: str | None = None,
    ledger_id: str | None = None,
) -> AuditReport:
    """Audit a ledger read through ``reader`` against ``kept_note``: the server's latest checkpoint
    and the consistency proof from the kept size (both public by default: what an auditor without
    read rights can check), then, when ``reader`` can read entries, every entry's hash and link
    and the tree root they rebuild. ``origin``: the origin both checkpoints must carry (default:
    the kept checkpoint's); ``ledger_id``: the ledger's id (default: the server's)."""
    trusted = list(verifiers)
    report = AuditReport(source=reader.where, ledger_id=ledger_id)
    kept = _verify_kept(report, kept_note, trusted, origin)
    if kept is None:
        return report
    served_note = reader.checkpoint()
    try:
        served = verify_checkpoint(served_note, trusted, origin=kept.origin)
    except VerificationError as err:
        report.failed("server_checkpoint", CheckpointMismatchError(f"the server's checkpoint does not verify: {err}"))
        for name in ("consistency", "entries"):
            report.skipped(name, "not compared: the server's checkpoint does not verify")
        return report
    report.size = served.size
    report.passed("server_checkpoint", f"size {served.size}, root {served.root_hash.hex()}, signature verified")
    _check_served_extends(report, reader, kept, served)
    if not reader.can_read_entries:
        report.skipped("entries", "no token: the entries were not read (with a token that may read every entry, "
                                  "their hashes, links and Merkle root are checked too)")
        return report
    if report.ledger_id is None:
        report.ledger_id = reader.ledger_id()
    _check_entries(report, reader, report.ledger_id, kept, served)
    return report


def _check_served_extends(report: AuditReport, reader: LedgerReader, kept: Checkpoint, served: Checkpoint) -> None:
    what = "the server's checkpoint"
    if served.size < kept.size:
        report.failed("consistency", _fewer(what, served.size, kept.size, "the kept checkpoint"))
        return
    if served.size == kept.size:
        if served.root_hash != kept.root_hash:
            mismatch = _other_root(what, kept.size, served.root_hash, kept.root_hash, "the kept checkpoint")
            report.failed("consistency", mismatch)
        else:
            report.passed("consistency", f"{what} is the kept checkpoint's tree (size {kept.size})")
        return
    hashes: list[bytes] = []
    if kept.size > 0:
        try:
            proof = reader.consistency_proof(kept.size, served.size)
        except ValidationError as err:
            report.failed("consistency", CheckpointMismatchError(f"the server's consistency proof is malformed: {err}"))
            return
        if (proof.first, proof.second) != (kept.size, served.size):
            report.failed("consistency", CheckpointMismatchError(
                f"the server sent a consistency proof from {proof.first} to {proof.second}, "
                f"not from {kept.size} to {served.size}"))
            return
        hashes = list(proof.hashes)
    try:
        verify_consistency(kept.size, served.size, kept.root_hash, served.root_hash, hashes)
    except VerificationError as err:
        report.failed("consistency", CheckpointMismatchError(
            f"{what} at size {served.size} does not extend the kept checkpoint at size {kept.size}: {err} "
            "(history was rewritten, or the server shows another history)"))
        return
    report.passed("consistency", f"{what} at size {served.size} extends the kept checkpoint at size {kept.size} "
                                 f"(RFC 9162 consistency proof of {len(hashes)} hashes verified)")


def _check_entries(
    report: AuditReport, reader: LedgerReader, ledger_id: str, kept: Checkpoint, served: Checkpoint
) -> None:
    """The ``entries`` check: every entry up to the server's checkpoint, streamed, verified and
    folded into the Merkle roots of both checkpoints."""
    size = served.size
    plan = PlannedNodes(roots={kept.size, size})
    gap: list[int] = []

    def rows() -> Iterator[EntryRow]:
        expected = 1
        for doc in reader.entries():
            row = entry_row_from_dict(doc, what="an entry the server sent")
            seq = row[0]
            if seq > size:
                return
            if seq > expected:
                gap.append(expected)
                return
            if seq == expected:
                plan.add(leaf_hash(bytes.fromhex(row[1])))
                expected += 1
            yield row  # one out of order: verify_rows names it

    try:
        result = verify_rows(ledger_id, rows())
    except ValidationError as err:
        report.failed("entries", IntegrityError(str(err)))
        return
    if not result.ok:
        seq = result.first_bad_seq
        report.failed("entries", IntegrityError(f"the entries do not verify at entry {seq}: {result.reason}", seq=seq))
        return
    if gap or result.entries_checked < size:
        missing = gap[0] if gap else result.entries_checked + 1
        report.failed("entries", AuthorizationError(
            f"the server did not return entry {missing} of the {size} its checkpoint covers: the token may not "
            "read every entry (an audit of the entries needs one that can), or the server withholds it"))
        return
    for checkpoint, whose in ((served, "the server's checkpoint"), (kept, "the kept checkpoint")):
        root = root_hash(plan, checkpoint.size)
        if root != checkpoint.root_hash:
            report.failed("entries", _other_root("the entries the server sent", checkpoint.size, root,
                                                 checkpoint.root_hash, whose))
            return
    report.passed("entries", f"{size} entries fetched: every hash and link verified; their Merkle root is that of "
                             f"the server's checkpoint (size {size}) and of the kept one (size {kept.size})")

