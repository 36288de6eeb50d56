"""The optional powers of a storage backend, each a typed protocol.

:class:`~nucleus_core.storage.StorageBackend` is what every backend provides. A backend may offer
more; each extra power is one protocol here, checked with ``isinstance`` (they are all
``runtime_checkable``), never found by attribute name. A backend claims a power by having the
protocol's members; :class:`nucleus_core.testing.CapabilityConformance` tests each power a backend
claims. ``docs/PLUGINS.md`` ("Storage capabilities") lists them with who uses each.

The grant index (:class:`GrantIndexStorage`) speaks in plain values (tuples and integers), so that
the core names no access-control plugin and such a plugin needs no storage distribution.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # storage.py imports this module
    from .merkle import MerkleNodeStore, NodeKey
    from .records import Entry
    from .storage import StorageQuery

__all__ = [
    "CheckpointStorage", "CheckpointStore", "CopyableStorage", "CosignatureStore", "DiscardableStorage",
    "EntryRowStorage", "ExtensionStorage", "GrantIndex", "GrantIndexStorage", "GrantRow", "IndexRow",
    "MerkleEntryReadStorage",
    "MerkleTreeStorage", "MerkleTreeTransaction", "PooledConnectionStorage",
    "ReadOnlyStorage", "RollbackTransaction", "SavepointTransaction", "SharedDiscardStorage", "SqlDatabaseStorage",
    "WriteBehindTransaction",
]


@runtime_checkable
class EntryRowStorage(Protocol):
    """Entries as plain tuples straight from the driver (verification's fast path)."""

    def iter_entry_rows(self, from_seq: int = 1) -> Iterator[tuple[Any, ...]]:
        """Every entry with ``seq >= from_seq`` as a tuple in
        :data:`~nucleus_core.records.ENTRY_FIELDS` order, in seq order, streamed: exactly the rows
        ``iter_entries`` would turn into :class:`~nucleus_core.records.Entry` (``canonical`` may be
        any bytes-like object)."""


@runtime_checkable
class DiscardableStorage(Protocol):
    """Storage that can remove what a failed open created."""

    def discard(self) -> None:
        """Close, removing what :meth:`~nucleus_core.storage.StorageBackend.open` created (file,
        tables, the ledger's row). The ledger calls it instead of ``close()`` when it fails to open."""


@runtime_checkable
class SharedDiscardStorage(Protocol):
    """Storage whose discard can also remove what another object on the same ledger put there
    (the second step of an import opens the ledger with its plugins on an object of its own)."""

    def discard_with(self, other: Any) -> None:
        """:meth:`DiscardableStorage.discard`, also removing the ledger's rows in the plugin tables
        ``other`` (closed) ensured and the tables it created (while empty); only for a ledger that
        no one but this object's opener and ``other``'s wrote to."""


@runtime_checkable
class ReadOnlyStorage(Protocol):
    """Storage that can tell it was opened read-only (or only allows reads), and why (for the
    errors that refuse a write, e.g. "the server is a hot standby")."""

    @property
    def read_only(self) -> bool: ...

    @property
    def read_only_reason(self) -> str | None:
        """Why the storage refuses writes (None when it allows them)."""


@runtime_checkable
class CopyableStorage(Protocol):
    """Storage that makes and restores verified copies of itself (``nucleus backup`` / ``restore``)."""

    def backup(self, dest: str, *, overwrite: bool = False, ledger_id: str | None = None) -> Any:
        """Write a verified copy to ``dest`` (the backend need not be opened; ``ledger_id`` names the
        ledger whose head the copy must hold); returns a report with ``to_dict()``."""

    def restore(self, src: str, *, ledger_id: str | None = None) -> Any:
        """Replace the stored data with the verified backup ``src`` (which must hold ``ledger_id``),
        without opening the target; returns a report with ``to_dict()``."""


@runtime_checkable
class SqlDatabaseStorage(Protocol):
    """Storage in a peewee database where plugins may keep tables beside the ledger's.

    Check an open storage: before Python 3.12, ``isinstance`` reads :attr:`database`, which a
    closed SQL backend refuses with :class:`~nucleus_core.errors.LedgerClosedError`."""

    @property
    def database(self) -> Any:
        """The open peewee ``Database`` (untyped: the core does not depend on peewee)."""

    def ensure_tables(self, models: Sequence[Any]) -> None:
        """Bind the plugin's peewee model classes (made for this backend) to :attr:`database` and
        create their tables if missing."""


@runtime_checkable
class PooledConnectionStorage(Protocol):
    """Storage whose connections come from a pool, held only while a block runs."""

    def connection(self) -> contextlib.AbstractContextManager[Any]:
        """Hold one connection for the block (nested blocks and a surrounding write share it)."""


@runtime_checkable
class ExtensionStorage(Protocol):
    """Storage without a database (``memory://``) that keeps plugins' in-memory state beside its
    entries, so a second ledger opened on the same storage finds it. Keys are plugin names."""

    extensions: dict[str, Any]


@runtime_checkable
class WriteBehindTransaction(Protocol):
    """A write transaction whose :meth:`~nucleus_core.storage.WriteTransaction.insert` may keep the
    rows back and write them with the transaction's last writes (one round trip fewer per append):
    a record id stored already is then refused there, or at the commit. :meth:`flush` writes what
    was kept back now, raising that refusal (:class:`~nucleus_core.errors.DuplicateRecordError`)
    from it: group commit flushes after each call of a shared transaction, so that the error is
    that call's own."""

    def flush(self) -> None:
        """Write the rows inserted so far now."""


@runtime_checkable
class RollbackTransaction(Protocol):
    """A write transaction that runs plugin undo actions when it rolls back (for plugins keeping
    state in memory beside the memory backend; SQL backends roll their tables back themselves)."""

    def on_rollback(self, undo: Callable[[], None]) -> None: ...


@runtime_checkable
class SavepointTransaction(Protocol):
    """A write transaction with savepoints: a nested block whose changes are undone on their own
    when it raises, the transaction staying usable. When a call of a shared transaction failed,
    group commit (:mod:`nucleus_core.group_commit`) runs the others again, each in one, so that one
    call's bad record never fails another; without savepoints it runs them again without the failed
    call, once per failure."""

    def savepoint(self) -> contextlib.AbstractContextManager[None]:
        """A nested block of this transaction. When the block raises, everything it did in the
        transaction is undone (its entries and the head this transaction reads, plugins' rows, its
        :meth:`RollbackTransaction.on_rollback` actions, run newest first) and its exception
        propagates; what came before the block stays. When the changes cannot be undone (the
        database rolled the whole transaction back, a connection died), :attr:`aborted` turns true."""

    @property
    def aborted(self) -> bool:
        """True once this transaction can no longer commit: the caller must let it roll back."""


GrantRow = tuple[str, str, str, int, "str | None", "int | None"]
"""A grant: (principal_oid, resource_kind, resource_id, scope, granted_by, expires_at)."""

IndexRow = tuple[int, str, str]
"""An entry of the resource index: (seq, resource_kind, resource_id)."""


class GrantIndex(Protocol):
    """Grants and the entry -> resource index of one ledger, in the ledger's own database, so that
    "what may this principal see" is answered by one query there (an EXISTS/IN over the grants
    with the expiry inside), never by filtering afterwards.

    Scopes are integers; ``wildcard`` (given to :meth:`GrantIndexStorage.grant_index`) as a
    resource id stands for every resource of its kind; a grant lets its principal read when its
    scope is at least ``read_scope``. Expiry ``expires_at`` is exclusive (None: never). Writes run
    inside the ledger's write transaction and roll back with it. Errors are
    :class:`~nucleus_core.errors.StorageError`.
    """

    def setup(self) -> None:
        """Create the tables if missing (called once when the ledger opens)."""

    def session(self) -> contextlib.AbstractContextManager[Any]:
        """A block in which several reads share one database connection."""

    def best_scope(self, principal: str, kind: str, resource_id: str, now: int) -> int | None:
        """The highest active scope ``principal`` holds on the resource or on the wildcard."""

    def get_grant(self, principal: str, kind: str, resource_id: str) -> GrantRow | None: ...

    def put_grant(self, grant: GrantRow) -> None:
        """Insert or replace the grant of (principal, kind, resource_id)."""

    def delete_grant(self, principal: str, kind: str, resource_id: str) -> bool: ...

    def grants(self) -> Iterator[GrantRow]:
        """Every stored grant (expired ones included), ordered by principal, kind, resource id."""

    def clear(self) -> None:
        """Remove every grant and index row of the ledger."""

    def index(self, rows: Sequence[IndexRow]) -> None: ...

    def resource_of(self, seq: int) -> IndexRow | None: ...

    def resource_exists(self, kind: str, resource_id: str) -> bool: ...

    def max_indexed_seq(self) -> int:
        """The largest indexed seq (0 when none)."""

    def iter_index(self) -> Iterator[IndexRow]:
        """Every index row in seq order, streamed."""

    def query_visible(
        self, query: StorageQuery, principal: str, now: int, kinds: tuple[str, ...] | None
    ) -> list[Entry]:
        """Entries matching ``query`` (seq order, at most ``query.limit``) whose resource
        ``principal`` holds an active readable grant on (its own or the wildcard of its kind),
        restricted to ``kinds`` when given."""

    def query_kinds(self, query: StorageQuery, kinds: tuple[str, ...]) -> list[Entry]:
        """Entries matching ``query`` whose indexed resource kind is in ``kinds``."""


@runtime_checkable
class GrantIndexStorage(Protocol):
    """Storage that keeps an access-control plugin's grants and resource index in its database."""

    def grant_index(self, *, wildcard: str, read_scope: int) -> GrantIndex:
        """A new :class:`GrantIndex` for the open ledger (call :meth:`GrantIndex.setup` before use)."""


class CheckpointStore(Protocol):
    """The signed checkpoints issued for one ledger, each kept with its signatures
    (:class:`~nucleus_core.checkpoints.CheckpointIssuer` writes them). Notes are the signed notes'
    text, stored and returned verbatim. Errors are :class:`~nucleus_core.errors.StorageError`."""

    def put(self, size: int, note: str) -> str:
        """Store ``note`` as the checkpoint issued at ``size``, in a transaction of its own, and
        return the note stored at ``size``: ``note``, or the one stored there before (the first
        checkpoint of a size stays). A size smaller than the latest stored is refused with
        :class:`~nucleus_core.errors.ConflictError`, atomically with the insert."""

    def get(self, size: int) -> str | None:
        """The checkpoint stored at ``size``, None when none is."""

    def latest(self) -> tuple[int, str] | None:
        """``(size, note)`` of the largest size stored, None when none is."""


@runtime_checkable
class CosignatureStore(Protocol):
    """The witness cosignatures of a ledger's checkpoints, kept beside them: a
    :class:`CheckpointStore` that has these members keeps them (:mod:`nucleus_core.witnessing`
    writes them after verifying each). A witness is named by its verifier key (vkey) string; a
    cosignature is its signature line, verbatim with its final newline. Errors are
    :class:`~nucleus_core.errors.StorageError`."""

    def put_cosignature(self, size: int, witness: str, line: str) -> bool:
        """Store ``line`` as the cosignature of the witness ``witness`` on the checkpoint stored at
        ``size``, in a transaction of its own: True when stored, False when that witness's
        cosignature of that size was stored before (the first stays).
        :class:`~nucleus_core.errors.NotFoundError` when no checkpoint is stored at ``size``."""

    def cosignatures(self, size: int) -> dict[str, str]:
        """The cosignatures stored on the checkpoint of ``size``: witness to line (empty: none)."""

    def cosigned_sizes(self) -> dict[str, int]:
        """Each witness with a stored cosignature, to the largest size it cosigned."""

    def latest_cosigned(self, witnesses: Collection[str], count: int) -> int | None:
        """The largest size whose checkpoint has cosignatures of at least ``count`` (1 or more) of
        ``witnesses``; None when none has."""


@runtime_checkable
class CheckpointStorage(Protocol):
    """Storage that keeps a ledger's signed checkpoints beside its entries."""

    def checkpoint_store(self) -> CheckpointStore:
        """The :class:`CheckpointStore` of the open ledger."""


@runtime_checkable
class MerkleTreeStorage(Protocol):
    """Storage that keeps the ledger's Merkle tree (:mod:`nucleus_core.merkle`) beside its entries.

    Its write transactions are :class:`MerkleTreeTransaction`: the ledger writes the nodes new
    entries complete in the transaction that inserts them (:func:`nucleus_core.tree.extend_tree`),
    so both commit or neither does. Nodes are stored by :func:`~nucleus_core.tree.node_number`
    (one integer per node); the backend stores every complete subtree of level ``>=``
    :attr:`merkle_min_level` and derives the lower ones from the entry hashes
    (:class:`~nucleus_core.tree.DerivedLevelsStore`). How it lays them out is its own business
    (``docs/FORMAT.md`` does not fix it); what verification checks is that they match the entries.
    """

    @property
    def merkle_min_level(self) -> int:
        """The lowest level stored (0: every node; the SQL backends store from level 4)."""

    def merkle_size(self) -> int:
        """How many entries (leaves, from seq 1) the committed tree covers."""

    def merkle_store(self) -> MerkleNodeStore:
        """The committed nodes, every level (derived ones included), for roots and proofs. Nodes
        never change once stored, so reads need no snapshot: ask only for nodes of a tree size read
        before."""

    def iter_merkle_nodes(self, start: int = 0) -> Iterator[tuple[int, bytes]]:
        """The stored nodes with number ``>= start`` as ``(number, hash)``, by number, streamed
        (verification, :func:`~nucleus_core.tree.check_tree`)."""

    def iter_entry_hashes(self, from_seq: int = 1) -> Iterator[tuple[int, str]]:
        """``(seq, hash)`` of every entry with ``seq >= from_seq``, in seq order, streamed (building a
        tree over existing entries)."""


@runtime_checkable
class MerkleTreeTransaction(Protocol):
    """The write transaction of a :class:`MerkleTreeStorage`: the tree as seen inside it, and its writes."""

    def merkle_size(self) -> int:
        """The tree size inside this transaction (including what it wrote)."""

    def merkle_store(self) -> MerkleNodeStore:
        """The nodes inside this transaction (what it wrote included), every level."""

    def write_merkle(self, size: int, nodes: Sequence[tuple[NodeKey, bytes]]) -> None:
        """Store ``nodes`` (those of levels ``>= merkle_min_level`` that new leaves complete, each
        level's in index order) and the new tree ``size``, committed with the transaction."""


@runtime_checkable
class MerkleEntryReadStorage(Protocol):
    """A :class:`MerkleTreeStorage` that reads one entry and tree nodes together, in one read (one
    round trip for a database): an inclusion proof by seq is then a single read, where it otherwise
    takes two (the entry, for the requester's right to read it, then the proof's nodes). The ledger
    uses it when the storage offers it and ``get_by_seq`` then ``merkle_store().nodes`` otherwise."""

    def entry_and_merkle_nodes(
        self, seq: int, keys: Collection[NodeKey]
    ) -> tuple[Entry | None, Mapping[NodeKey, bytes]]:
        """``(get_by_seq(seq), merkle_store().nodes(keys))`` from one read: the entry at ``seq``
        (None when there is none), exactly as ``get_by_seq`` returns it, and the committed nodes
        among ``keys`` (every level, absent keys left out). Ask only for nodes of a tree size read
        before (see :meth:`MerkleTreeStorage.merkle_store`)."""
