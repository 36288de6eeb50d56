"""Importing what ``nucleus export`` wrote into a new, empty ledger (``nucleus import``).

The export is one JSON object per line, in seq order: ``{"seq", "hash", "prev_hash", "version",
"appender", "auth_source", "committed_at", "record"}`` (:meth:`~nucleus_core.records.Entry.to_dict`).
:func:`import_entries` writes those entries verbatim (their seqs, hashes, links, format versions,
appender fields and the record's canonical bytes, re-encoded with RFC 8785 from the record object):
re-appending the records would give them new hashes. It verifies every entry before it is written,
with the checks that opening a ledger runs on stored rows (:func:`~nucleus_core.verify.verify_rows`:
seq continuity from 1, the link to the entry before, the hash over the ledger id, seq, previous
hash, appender fields and bytes, the format version rules, the strict canonical form of the record
and its derived columns), and builds the Merkle tree as the entries go in, as appends do
(:func:`~nucleus_core.tree.extend_tree`). A signed checkpoint or a head hash kept from the source
ledger, when given, must match at the end: the file alone cannot show that it holds the whole
history (a file cut at a line boundary is a shorter chain that verifies).

Everything happens in ONE write transaction of the storage: batches of ``batch`` entries are
written into it as they are verified, and it commits only after the last line, the head and the
checkpoint checked out. The first bad line (not JSON, not an entry, an entry that does not verify,
a record id seen before) raises naming its line number and seq, and the transaction rolls back: the
target is left as empty as it was. A process killed midway leaves an uncommitted transaction, which
the database discards.

:func:`import_entries` uses the storage alone (no plugin is loaded), and marks the ledger as holding
an unfinished import in the same transaction (:mod:`nucleus_core.import_state`): an ordinary open
refuses it. :func:`finish_import` is the second step: it opens the ledger with its plugins in the
rebuild mode (``rebuild_state``: the access-control plugin's grants and index, the API key table,
module state, everything derived from the chain is built from it, without appending anything), runs
a full :meth:`~nucleus_core.ledger.Ledger.verify` (the plugins' checks included) and only then
removes the mark; it finishes only a ledger whose chain ends where the mark says the import wrote
it, and refuses one whose plugins hold state for it that differs from the chain (the mark is an
operator aid, not a security boundary: docs/OPERATIONS.md). :func:`import_ledger` is both steps,
what ``nucleus import`` runs: when the second fails, the ledger the import created is removed
again, with what its plugins wrote beside it in the second step (their rows of the ledger, the
tables they created: :class:`~nucleus_core.capabilities.SharedDiscardStorage`). API keys cannot be carried over (their
secrets are never in the chain): the rebuilt table lists them as ``not-imported``, they never
authenticate, and they must be issued again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, cast

import attrs
import orjson

from .capabilities import (
    CheckpointStorage,
    DiscardableStorage,
    MerkleTreeTransaction,
    SharedDiscardStorage,
    WriteBehindTransaction,
)
from .checkpoint import default_origin
from .errors import (
    CheckpointRefusedError,
    ConfigurationError,
    ConflictError,
    DuplicateRecordError,
    IntegrityError,
    LedgerNotFoundError,
    ValidationError,
)
from .hashing import is_hash
from .import_state import (
    FINISH_HINT,
    ImportMark,
    check_import_head,
    clear_import_pending,
    import_mark,
    import_pending,
    prepare_import_mark,
)
from .merkle import root_hash
from .records import Entry, EntryRow, entry_row_from_dict, loads_strict
from .storage import StorageBackend, WriteTransaction
from .tlog_verify import NoteVerifier, VerificationError, verify_checkpoint
from .tree import Frontier, extend_tree, tree_storage
from .trusted_checkpoint import check_trusted_checkpoint
from .verify import VerificationReport, verify_rows

__all__ = [
    "DEFAULT_IMPORT_BATCH",
    "MAX_IMPORT_BATCH",
    "ExpectedCheckpoint",
    "ImportReport",
    "finish_import",
    "import_entries",
    "import_ledger",
]

log = logging.getLogger(__name__)

_loads = orjson.loads
_dumps = orjson.dumps

DEFAULT_IMPORT_BATCH = 5000
"""Entries written at a time inside the import's one transaction (rows and tree nodes per write)."""

MAX_IMPORT_BATCH = 100_000


@attrs.frozen(kw_only=True)
class ExpectedCheckpoint:
    """A signed checkpoint of the source ledger (a note, c2sp.org/tlog-checkpoint) that the imported
    ledger must extend: verified with ``verifiers`` for ``origin`` (default
    :func:`~nucleus_core.checkpoint.default_origin` of the ledger id) before anything is read, and
    its root compared with the imported tree's at its size before the import commits."""

    note: bytes
    verifiers: tuple[NoteVerifier, ...]
    origin: str | None = None
    where: str = "the checkpoint"


@attrs.frozen(kw_only=True)
class ImportReport:
    """What an import wrote: ``entries`` (the head's seq), ``head`` (its hash, None for an empty
    file), the Merkle tree's ``root`` (lowercase hex, at ``tree_size``; None on storage that keeps
    no tree), the size of the checkpoint checked (None when none was given), ``seconds`` from the
    first line read to the commit and ``entries_per_second``."""

    ledger_id: str
    storage: str
    entries: int
    head: str | None
    tree_size: int | None
    root: str | None
    checkpoint_size: int | None
    seconds: float
    entries_per_second: float

    def to_dict(self) -> dict[str, object]:
        return attrs.asdict(self)


def _parse_line(line: bytes, number: int, source: str) -> EntryRow:
    """The entry row of line ``number`` of an export (ValidationError naming the line and the seq
    expected there otherwise). Seq ``n`` is on line ``n``: every line holds one entry, from seq 1."""
    where = f"{source} line {number} (seq {number} expected)"
    if not line.endswith(b"\n"):
        raise ValidationError(
            f"{where} does not end with a newline: the file is truncated (nucleus export ends every line with one)"
        )
    body = line[:-1]
    if not body.strip():
        raise ValidationError(f"{where} is empty (nucleus export writes one entry per line, nothing else)")
    try:
        # The common case, exact: orjson parses only UTF-8 JSON without NaN, and writing the value
        # back gives the line's very bytes only when it held no repeated key (nor whitespace, nor
        # an escape or number written otherwise than json.dumps writes it, as export does).
        doc = _loads(body)
        exact = _dumps(doc) == body
    except (ValueError, TypeError):
        exact = False
    if not exact:
        doc = loads_strict(body, what=where)  # the reference parse decides, and says what is wrong
    return entry_row_from_dict(doc, what=f"{source} line {number}")


def _hint(seq: int, reason: str, first_seq: int | None, ledger_id: str) -> str:
    """What most likely went wrong, for the common mistakes."""
    if seq == 1 and first_seq is not None and first_seq > 1:
        return (
            f" (the file starts at seq {first_seq}: an import starts from entry 1, so export without --from-seq)"
        )
    if "is missing" in reason:
        return (
            " (an export by a requester who may not read every entry has gaps: export as one who may read all)"
        )
    if seq == 1 and reason.startswith("hash mismatch"):
        return (
            f" (the ledger id is part of every hash: is {ledger_id!r} the id of the ledger that was exported?)"
        )
    return ""


def _check_empty(storage: StorageBackend, tx: WriteTransaction, ledger_id: str, pending: str | None) -> None:
    """Refuse a target that holds anything: entries, a tree, checkpoints (read inside ``tx``)."""
    what = None
    found = tx.head()
    if found is not None:
        what = f"it holds entries up to seq {found.seq}"
    elif tree_storage(storage) is not None and cast(MerkleTreeTransaction, tx).merkle_size() > 0:
        what = f"its Merkle tree covers {cast(MerkleTreeTransaction, tx).merkle_size()} entries"
    elif isinstance(storage, CheckpointStorage) and storage.checkpoint_store().latest() is not None:
        what = "it holds signed checkpoints"
    if what is not None:
        hint = f"; it holds an unfinished import of {pending}: {FINISH_HINT}" if pending is not None else ""
        raise ConflictError(
            f"ledger {ledger_id!r} at {storage.url} is not empty ({what}): an import writes only into a new, "
            f"empty ledger{hint}"
        )


def import_entries(
    storage: StorageBackend,
    ledger_id: str,
    lines: Iterable[bytes],
    *,
    batch: int = DEFAULT_IMPORT_BATCH,
    expect_head: str | None = None,
    checkpoint: ExpectedCheckpoint | None = None,
    progress: Callable[[int], None] | None = None,
    source: str = "the file",
) -> ImportReport:
    """Import the lines of an export (bytes, each with its final newline, as a binary file yields
    them) into ``storage``, open for ``ledger_id`` and empty, in one write transaction (see the
    module docstring). ``batch``: entries written at a time inside it. ``expect_head``: the hash the
    last line must hold. ``checkpoint``: a signed checkpoint the imported tree must extend.
    ``progress(entries)`` after each batch written. ``source`` names the file in errors.

    Errors (the transaction rolled back, nothing written): :class:`ValidationError` for a line that
    is not an entry, :class:`IntegrityError` (``seq`` set) for one that does not verify or repeats
    a record id, for a head or checkpoint that does not match, :class:`ConflictError` for a target
    that is not empty; :class:`CheckpointRefusedError` for a checkpoint that does not verify
    (before anything is read)."""
    if type(batch) is not int or not 1 <= batch <= MAX_IMPORT_BATCH:
        raise ValidationError(f"must be an integer from 1 to {MAX_IMPORT_BATCH}", field="batch")
    if expect_head is not None and not is_hash(expect_head):
        raise ValidationError("must be 64 lowercase hex characters", field="expect_head")
    tree = tree_storage(storage)
    origin = None
    if checkpoint is not None:
        origin = checkpoint.origin if checkpoint.origin is not None else default_origin(ledger_id)
        if tree is None:
            raise ConfigurationError(f"storage {storage.url} keeps no Merkle tree to check {checkpoint.where} against")
        try:
            verify_checkpoint(checkpoint.note, checkpoint.verifiers, origin=origin)
        except VerificationError as err:
            raise CheckpointRefusedError(
                f"ledger {ledger_id!r}: {checkpoint.where} does not verify: {err}", reason="checkpoint"
            ) from None
    started = time.perf_counter()
    state = _Import(storage, ledger_id, batch, progress, source)
    pending = import_pending(storage, ledger_id)
    mark = prepare_import_mark(storage, ledger_id)
    with storage.write() as tx:
        _check_empty(storage, tx, ledger_id, pending)
        state.tx = tx
        report = verify_rows(ledger_id, state.rows(lines))
        if not report.ok:
            seq = report.first_bad_seq or 1
            reason = report.reason or "does not verify"
            raise IntegrityError(
                f"{source} line {seq} (seq {seq}): {reason}{_hint(seq, reason, state.first_seq, ledger_id)}; "
                "nothing was imported",
                seq=seq, reason=reason,
            )
        state.flush()
        entries = report.entries_checked
        if entries == 0:
            raise ValidationError(f"{source} holds no entries: nothing to import")
        if expect_head is not None and report.head_hash != expect_head:
            raise IntegrityError(
                f"{source} ends at seq {entries} with head {report.head_hash}, not the expected head {expect_head} "
                "(the file is cut short, or it is another ledger's); nothing was imported",
                seq=entries, reason="expected head",
            )
        size = root = checkpoint_size = None
        if tree is not None:
            ttx = cast(MerkleTreeTransaction, tx)
            size = ttx.merkle_size()
            root = root_hash(ttx.merkle_store(), size).hex()
            if checkpoint is not None:
                checked = check_trusted_checkpoint(
                    ledger_id, ttx, checkpoint.note, checkpoint.verifiers, origin=origin,
                    where=checkpoint.where,
                )
                checkpoint_size = checked.size
        # Committed with the entries: an ordinary open refuses the ledger until finish_import, which
        # finishes only a ledger whose chain still ends where the import wrote it.
        mark(tx, ImportMark(source=source, head=report.head_hash, size=entries))
    seconds = time.perf_counter() - started
    log.info(
        "imported %d entries into ledger %r at %s in %.1f s (the import is finished once its plugins' state is "
        "built and it verified: finish_import)", entries, ledger_id, storage.url, seconds,
    )
    return ImportReport(
        ledger_id=ledger_id, storage=storage.url, entries=entries, head=report.head_hash, tree_size=size, root=root,
        checkpoint_size=checkpoint_size, seconds=round(seconds, 3),
        entries_per_second=round(entries / seconds, 1) if seconds > 0 else 0.0,
    )


def finish_import(*, source: str | None = None, **kwargs: Any) -> VerificationReport:
    """Finish an import whose entries are written (:func:`import_entries`; e.g. one interrupted
    before its second step): open the ledger with its plugins in the rebuild mode
    (``rebuild_state``: they build their state from the chain, nothing is appended), verify it in
    full (the plugins' checks included) and remove the mark of the unfinished import. Keyword
    arguments are those of :func:`~nucleus_core.open_ledger` (the ledger's configuration, plugins
    included). Returns the verification report. Refused (:class:`ConflictError`) when the ledger
    holds no unfinished import; :class:`IntegrityError` naming the first bad seq when the plugins
    cannot build their state from the chain or verification fails (the mark stays).

    Also refused, nothing changed: a ledger whose chain does not end exactly where the import
    wrote it (the head and size its mark records: a ledger in service that grew since, a mark not
    written by an import), and one where a plugin holds state for the ledger that differs from
    the chain (its tables were changed behind its back: that is evidence, not replaced)."""
    storage = kwargs.get("storage")
    ledger_id = kwargs.get("id", "")
    probe = _target_storage(storage, kwargs.get("storage_options"))
    probe.open(ledger_id, create=False)
    try:
        mark = import_mark(probe, ledger_id)
        if mark is not None:
            check_import_head(probe, ledger_id, mark)
    finally:
        if probe is not storage:
            probe.close()
    if mark is None:
        raise ConflictError(
            f"ledger {kwargs.get('id')!r} at {probe.url} holds no unfinished import: nothing to finish"
        )
    return _finish(kwargs, discard=False, source=source or mark.source)


def _finish(kwargs: Mapping[str, Any], *, discard: bool, source: str) -> VerificationReport:
    """The second step of an import (see :func:`finish_import`); ``discard``: a failing open removes
    what it created (the import created the ledger; storage in memory). Plugins whose state for the
    ledger differs from the chain refuse the rebuild (``rebuild_refuses_differences``)."""
    from .assembly import LedgerBuilder
    from .ledger import LedgerConfig

    try:
        config = LedgerConfig(**{**kwargs, "rebuild_state": True, "rebuild_refuses_differences": True})
    except TypeError as err:
        raise ConfigurationError(str(err)) from None
    log.warning(
        "ledger %r: opening it in the rebuild mode: its plugins build their state from the imported chain",
        config.id,
    )
    try:
        ledger = LedgerBuilder(config, create=discard).build()
    except IntegrityError as err:
        raise _at_line(err, err.seq, source) from err
    except ValidationError as err:
        # A plugin found an entry of its stream it cannot read (the hashes were right).
        raise _at_line(err, getattr(err, "seq", None), source) from err
    with ledger:
        report = ledger.verify()
        if not report.ok:
            seq = report.first_bad_seq
            where = f"{source} line {seq} (seq {seq})" if seq else source
            raise IntegrityError(
                f"{where}: the imported ledger does not verify with its plugins: {report.reason}",
                seq=seq, reason=report.reason,
            )
        clear_import_pending(ledger.storage, ledger.id)
    log.info("ledger %r: the import is finished (plugins' state built from the chain, verified)", config.id)
    return report


def _at_line(err: Exception, seq: int | None, source: str) -> IntegrityError:
    where = f"{source} line {seq} (seq {seq})" if seq else source
    return IntegrityError(
        f"{where}: the ledger's plugins cannot build their state from the imported chain: {err}",
        seq=seq, reason=str(err),
    )


def import_ledger(
    lines: Iterable[bytes],
    *,
    batch: int = DEFAULT_IMPORT_BATCH,
    expect_head: str | None = None,
    expect_checkpoint: ExpectedCheckpoint | None = None,
    progress: Callable[[int], None] | None = None,
    source: str = "the file",
    **kwargs: Any,
) -> ImportReport:
    """Import an export into a new, empty ledger and finish the import (what ``nucleus import``
    runs): :func:`import_entries` (``expect_checkpoint`` is its ``checkpoint``), then
    :func:`finish_import`'s rebuild and full verification with the ledger's plugins. Keyword
    arguments beyond the import's are those of :func:`~nucleus_core.create_ledger` (the target's
    configuration: ``id``, ``storage``, ``plugins``, ``settings``, ...). When either step fails
    nothing is imported: the ledger (which the import created, the target being empty) is removed
    again, and the error names the first bad line and seq where known."""
    ledger_id = kwargs.get("id")
    if not isinstance(ledger_id, str):
        raise ConfigurationError("import_ledger needs the ledger id (id=...)")
    given = kwargs.get("storage")
    storage = _target_storage(given, kwargs.get("storage_options"))
    storage.open(ledger_id, create=True)

    def reopen() -> StorageBackend:
        return _target_storage(given, kwargs.get("storage_options"))

    committed = False
    second: StorageBackend | None = None
    try:
        report = import_entries(
            storage, ledger_id, lines, batch=batch, expect_head=expect_head, checkpoint=expect_checkpoint,
            progress=progress, source=source,
        )
        committed = True
        if storage.persistent:
            # The second step opens the ledger on an object of its own, which the import keeps: when
            # that step fails, what its plugins wrote there (their tables, their rows) is removed with
            # the ledger (_remove). The open only closes it (create=False): the import discards.
            second = reopen()
            options = {k: v for k, v in kwargs.items() if k != "storage_options"}
            _finish({**options, "storage": second}, discard=False, source=source)
        else:
            # Storage in memory is this object: the ledger opens it, not a new one.
            _finish({**kwargs, "storage": storage}, discard=True, source=source)
    except BaseException:
        if second is not None:
            second.close()
        try:
            _remove(storage, ledger_id, committed=committed, reopen=reopen, second=second)
        except Exception:  # the import's own error is the one to report
            log.exception("ledger %r at %s: removing the failed import failed", ledger_id, storage.url)
        raise
    storage.close()
    return report


def _target_storage(given: object, options: Mapping[str, Any] | None) -> StorageBackend:
    """The storage of an import's target: built from its URL (each opener its own object), or the
    object given when it keeps its data in memory (the ledger must open that very object)."""
    from .ledger import storage_for_url

    if isinstance(given, StorageBackend):
        if given.persistent:
            raise ConfigurationError(
                "an import takes persistent storage as a URL (with storage_options), not a backend object: "
                "its two steps open it separately"
            )
        return given
    if given is not None and not isinstance(given, str):
        raise ConfigurationError(f"storage {type(given).__name__} is not a StorageBackend")
    return storage_for_url(given, options)


def _remove(
    storage: StorageBackend,
    ledger_id: str,
    *,
    committed: bool,
    reopen: Callable[[], StorageBackend],
    second: StorageBackend | None = None,
) -> None:
    """Remove the ledger a failed import created (what another writer added meanwhile stays), with
    what the second step's open (``second``, closed) put beside it: the plugins' rows of the ledger
    and the tables it created (:class:`~nucleus_core.capabilities.SharedDiscardStorage`). When the
    storage keeps the ledger anyway, it is marked unfinished again, so that no ordinary open takes it."""
    if not isinstance(storage, DiscardableStorage):
        storage.close()
        return
    mark = import_mark(storage, ledger_id) if committed else None
    if committed:
        clear_import_pending(storage, ledger_id)  # else the discard would take the mark for foreign data
    if second is not None and isinstance(storage, SharedDiscardStorage):
        storage.discard_with(second)
    else:
        storage.discard()
    if not committed or not storage.persistent:
        return
    probe = reopen()
    try:
        probe.open(ledger_id, create=False)
    except LedgerNotFoundError:
        return
    try:
        marking = prepare_import_mark(probe, ledger_id)
        with probe.write() as tx:
            marking(tx, ImportMark(source="a failed import", head=mark.head if mark else None,
                                   size=mark.size if mark else None))
        log.error("ledger %r at %s: the failed import could not be removed; it stays marked unfinished", ledger_id,
                  probe.url)
    finally:
        probe.close()


class _Import:
    """The rows of one import, written a batch at a time into its transaction once verified."""

    def __init__(
        self,
        storage: StorageBackend,
        ledger_id: str,
        batch: int,
        progress: Callable[[int], None] | None,
        source: str,
    ) -> None:
        self._source = source
        self._storage = storage
        self._tree = tree_storage(storage)
        self._ledger_id = ledger_id
        self._batch = batch
        self._progress = progress
        self._pending: list[EntryRow] = []
        self._frontier: Frontier | None = None
        self.tx: WriteTransaction | None = None
        self.first_seq: int | None = None
        self.written = 0

    def rows(self, lines: Iterable[bytes]) -> Iterator[EntryRow]:
        """The rows of ``lines`` for :func:`~nucleus_core.verify.verify_rows`. It asks for a row only
        once it checked every row before, so the rows held back are verified when the next is asked
        for: they are written then, a batch at a time."""
        pending = self._pending
        for number, line in enumerate(lines, start=1):
            row = _parse_line(line, number, self._source)
            if self.first_seq is None:
                self.first_seq = row[0]
            if len(pending) >= self._batch:
                self.flush()
            pending.append(row)
            yield row

    def flush(self) -> None:
        """Write the rows held back (verified) and the tree nodes they complete, in the transaction."""
        rows = self._pending
        if not rows:
            return
        tx = self.tx
        assert tx is not None  # set before the first row is read
        entries = [Entry.from_row(row) for row in rows]
        try:
            tx.insert(entries)
            if self._tree is not None:
                self._frontier = extend_tree(self._tree, tx, entries, self._frontier)
            elif isinstance(tx, WriteBehindTransaction):
                tx.flush()
            # A read in the transaction: a backend that sends its writes ahead without waiting for
            # their results (PostgreSQL's pipeline) reports a row refused in this batch here, not at
            # the commit, so that its error names the line.
            self._storage.head()
        except DuplicateRecordError as err:
            seq = _second_use(rows, err.record_id)
            raise IntegrityError(
                f"{self._source} line {seq} (seq {seq}): record id {err.record_id!r} appears a second time "
                "(a record id is unique in a ledger); nothing was imported",
                seq=seq, reason="duplicate record id",
            ) from None
        self.written = entries[-1].seq
        log.debug("import into %r: entries %d-%d written (not committed)", self._ledger_id, rows[0][0], self.written)
        rows.clear()
        if self._progress is not None:
            self._progress(self.written)


def _second_use(rows: list[EntryRow], record_id: str) -> int:
    """The seq of the row of ``rows`` that repeats ``record_id`` (stored before, or earlier in ``rows``)."""
    seqs = [row[0] for row in rows if row[3] == record_id]
    return seqs[1] if len(seqs) > 1 else seqs[0] if seqs else rows[0][0]
