"""The ledger's Merkle tree in storage: keeping it with the entries, building it, checking it.

The tree is RFC 9162's over the entries (``docs/FORMAT.md``, "Merkle tree"); :mod:`.merkle` holds
its algorithms over a :class:`~nucleus_core.merkle.MerkleNodeStore`. A backend that keeps it
offers :class:`~nucleus_core.capabilities.MerkleTreeStorage` and, on its write transactions,
:class:`~nucleus_core.capabilities.MerkleTreeTransaction`. This module is what the ledger does with
them:

- :func:`extend_tree`: at the end of every write transaction, the nodes the new entries complete
  are written in that transaction (the frontier the previous append left, when it is still the
  stored tree's, else one read of it; then ``O(1)`` amortized per entry);
- :func:`build_tree`: a ledger written before the tree existed (or by a writer that did not keep
  it) gets the missing part built, streaming entry hashes in seq order, committed in bounded chunks
  (each chunk is a write transaction that stores its nodes and the new tree size, so a crash loses
  at most the chunk under way and the next build resumes from the stored size);
- :func:`check_tree`: verification recomputes every stored node from the entries, streaming, and
  names the first node that differs, is missing or should not be there.

**Storing fewer nodes.** A backend may store only the nodes of levels ``>= min_level`` and derive
the lower ones (complete subtrees of fewer than ``2**min_level`` leaves) from the entry hashes:
:class:`DerivedLevelsStore` does that for it. Every answer of :mod:`.merkle` then reads, besides its
``O(log n)`` stored nodes (see there), at most ``3 * 2**min_level`` entry hashes, in the same read: a
root or an inclusion or consistency proof holds at most three ranges that end inside an aligned
block of ``2**min_level`` leaves, each needing fewer than ``2**min_level`` of its leaves. Stored
nodes are numbered (:func:`node_number`) in the order appends complete them, so a backend needs
one integer key per node and verification streams them in key order.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import attrs

from .capabilities import MerkleTreeStorage, MerkleTreeTransaction
from .errors import IntegrityError, StorageError, ValidationError
from .merkle import NodeKey, frontier_keys
from .tlog_verify import HASH_SIZE

if TYPE_CHECKING:
    from .merkle import MerkleNodeStore
    from .records import Entry
    from .storage import StorageBackend, WriteTransaction

__all__ = [
    "BUILD_CHUNK", "ConsistencyProof", "DerivedLevelsRead", "DerivedLevelsStore", "InclusionProof",
    "NodeAndHashReader", "TreeCheck", "build_tree", "check_tree", "extend_tree", "node_number", "seq_ranges",
    "stored_node_count",
    "tree_storage",
]

_Row = TypeVar("_Row", bound=tuple[Any, ...])

_TAP_CHUNK = 1024
"""Rows :meth:`TreeCheck.tap` holds at once (their hashes are compared a :data:`BUILD_CHUNK` at a
time): a few hundred KB of rows rather than the megabytes of a whole chunk of rows."""

BUILD_CHUNK = 8192
"""Entries per committed chunk when building a tree for an existing ledger."""

_sha256 = hashlib.sha256


def node_number(level: int, index: int, min_level: int = 0) -> int:
    """The position, from 0, of node ``(level, index)`` (``level >= min_level``) among the nodes of
    levels ``>= min_level`` in the order appending leaves completes them (a node after its children;
    the nodes one leaf completes lowest first). Below ``2**63`` for every tree of at most ``2**63 - 1``
    leaves when ``min_level >= 1`` (and for every node of level ``>= 1`` when it is 0): a BIGINT key."""
    end = (index + 1) << level  # the node is completed by leaf end - 1
    high = end >> min_level
    above = ((end & -end).bit_length() - 1) - level  # nodes the same leaf completes above this one
    return 2 * high - high.bit_count() - 1 - above


def stored_node_count(size: int, min_level: int = 0) -> int:
    """How many nodes of levels ``>= min_level`` the tree of ``size`` leaves has."""
    high = size >> min_level
    return 2 * high - high.bit_count()


def _leaf(entry_hash: bytes) -> bytes:
    return _sha256(b"\x00" + entry_hash).digest()


NodeAndHashReader = Callable[
    [Collection[NodeKey], Sequence[tuple[int, int]]], tuple[Mapping[NodeKey, bytes], Mapping[int, bytes]]
]
"""``read(keys, seq_ranges) -> (nodes, entry_hashes)`` of :class:`DerivedLevelsStore`."""


def seq_ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted ``seqs`` as inclusive ``(first, last)`` runs of consecutive seqs."""
    runs: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if runs and runs[-1][1] == seq - 1:
            runs[-1] = (runs[-1][0], seq)
        else:
            runs.append((seq, seq))
    return runs


class DerivedLevelsRead:
    """What a set of node ``keys`` needs from storage that keeps the nodes of levels ``>=
    min_level`` only, and those nodes made from what was read: the two halves of
    :class:`DerivedLevelsStore`, for a backend that reads them together with something else (an
    entry: :meth:`~nucleus_core.capabilities.MerkleEntryReadStorage.entry_and_merkle_nodes`).

    :attr:`stored` are the keys to read as stored nodes; :attr:`ranges` the inclusive seq ranges
    whose entry hashes the lower keys (:attr:`derived`) are computed from (at most three runs of
    consecutive seqs, ``3 * 2**min_level`` seqs in all, for the keys of one root or proof: see the
    module docstring). :meth:`nodes` takes what the read found."""

    __slots__ = ("_min_level", "derived", "ranges", "stored")

    def __init__(self, keys: Collection[NodeKey], min_level: int) -> None:
        self._min_level = min_level
        self.stored = [key for key in keys if key[0] >= min_level]
        self.derived = [key for key in keys if key[0] < min_level]
        # Each lower node's leaves are one run of seqs: the runs, sorted and merged.
        runs: list[tuple[int, int]] = []
        for first, last in sorted(((index << level) + 1, (index + 1) << level) for level, index in self.derived):
            if runs and first <= runs[-1][1] + 1:
                if last > runs[-1][1]:
                    runs[-1] = (runs[-1][0], last)
            else:
                runs.append((first, last))
        self.ranges = runs

    def _nested(self) -> bool:
        """True when a lower key lies inside another (the keys of several proofs: those of a page's
        ``POST /proof/inclusion``), whose nodes are then computed once for all."""
        keys = set(self.derived)
        for level, index in self.derived:
            for up in range(1, 64):
                if level + up >= self._min_level:
                    break
                if (level + up, index >> up) in keys:
                    return True
        return False

    @property
    def empty(self) -> bool:
        """True when nothing is to be read."""
        return not self.stored and not self.derived

    def nodes(self, stored: Mapping[NodeKey, bytes], hashes: Mapping[int, bytes]) -> dict[NodeKey, bytes]:
        """The nodes among the keys: those of :attr:`stored` found in ``stored``, and each of
        :attr:`derived` whose leaves' entry hashes (seq -> 32 raw bytes) are all in ``hashes``."""
        found = {key: stored[key] for key in self.stored if key in stored}
        if not self.derived:
            return found
        if not self._nested():
            # The keys of one proof (or a multi-proof) are disjoint subtrees: each hashed on its own
            # from its leaves, a level at a time.
            sha256 = _sha256
            for level, index in self.derived:
                first = (index << level) + 1
                leaves = [hashes.get(seq) for seq in range(first, first + (1 << level))]
                if not all(h is not None and len(h) == HASH_SIZE for h in leaves):
                    continue
                layer = [sha256(b"\x00" + h).digest() for h in leaves]  # type: ignore[operator]
                while len(layer) > 1:
                    layer = [sha256(b"\x01" + layer[i] + layer[i + 1]).digest() for i in range(0, len(layer), 2)]
                found[(level, index)] = layer[0]
            return found
        # Each lower node from the two below it, each computed once and a level at a time: the
        # keys of several proofs (a page's, POST /proof/inclusion) overlap.
        low_level = max(level for level, _ in self.derived) + 1
        wanted: list[set[int]] = [set() for _ in range(low_level)]
        for level, index in self.derived:
            wanted[level].add(index)
        for level in range(low_level - 1, 0, -1):
            below = wanted[level - 1]
            for index in wanted[level]:
                below.add(2 * index)
                below.add(2 * index + 1)
        sha256 = _sha256
        values: dict[int, bytes] = {}
        for index in wanted[0]:
            h = hashes.get(index + 1)
            if h is not None and len(h) == HASH_SIZE:
                values[index] = sha256(b"\x00" + h).digest()
        levels = [values]
        for level in range(1, low_level):
            children, values = values, {}
            for index in wanted[level]:
                left, right = children.get(2 * index), children.get(2 * index + 1)
                if left is not None and right is not None:
                    values[index] = sha256(b"\x01" + left + right).digest()
            levels.append(values)
        for level, index in self.derived:
            node = levels[level].get(index)
            if node is not None:
                found[(level, index)] = node
        return found


class DerivedLevelsStore:
    """A :class:`~nucleus_core.merkle.MerkleNodeStore` over storage that keeps the nodes of levels
    ``>= min_level`` only: ``read(keys, seq_ranges)`` answers, in one read (one round trip for a
    database), the stored nodes among ``keys`` (all of such levels) and the entry hashes of the
    inclusive seq ranges (seq -> the entry's 32 raw hash bytes, absent seqs left out); the lower
    nodes are computed from those hashes (:class:`DerivedLevelsRead`). One call of ``read`` per
    :meth:`nodes`, none when nothing is asked."""

    __slots__ = ("_min_level", "_read")

    def __init__(self, min_level: int, read: NodeAndHashReader) -> None:
        self._min_level = min_level
        self._read = read

    def nodes(self, keys: Collection[NodeKey]) -> dict[NodeKey, bytes]:
        plan = DerivedLevelsRead(keys, self._min_level)
        if plan.empty:
            return {}
        stored, hashes = self._read(plan.stored, plan.ranges)
        return plan.nodes(stored, hashes)


class Frontier:
    """The tree's frontier (:func:`~nucleus_core.merkle.frontier_keys`), extended a batch of leaves at
    a time: each level's new nodes are hashed in one pass (about half the time of
    :class:`~nucleus_core.merkle.MerkleBuilder`'s leaf-at-a-time appends; the append path's cost)."""

    __slots__ = ("_by_level", "anchor", "size")

    def __init__(self, size: int = 0, by_level: Mapping[int, bytes] | None = None, anchor: str | None = None) -> None:
        self.size = size
        self._by_level = dict(by_level or {})  # level -> hash of the frontier subtree of that level
        self.anchor = anchor
        """The hex hash of entry ``size`` when known (None: not known): it commits to every entry
        before it, hence to this frontier; :func:`extend_tree` reuses a frontier only when the head
        it chains after has this hash."""

    def copy(self) -> Frontier:
        """An independent copy (extending it leaves this one as it is)."""
        return Frontier(self.size, self._by_level, self.anchor)

    @classmethod
    def from_store(cls, store: MerkleNodeStore, size: int) -> Frontier:
        """The frontier of the first ``size`` leaves in ``store`` (one read)."""
        keys = frontier_keys(size)
        found = store.nodes(keys) if keys else {}
        missing = [key for key in keys if key not in found]
        if missing:
            level, index = missing[0]
            raise IntegrityError(
                f"the Merkle tree node at level {level}, index {index} is not stored",
                seq=(index << level) + 1, reason="merkle_node_missing",
            )
        return cls(size, {level: found[(level, index)] for level, index in keys})

    def extend(self, leaves: Sequence[bytes], min_level: int = 0) -> list[tuple[NodeKey, bytes]]:
        """Append the leaf *hashes* ``leaves``; returns the nodes of levels ``>= min_level`` they
        complete (each level's in index order, lower levels first)."""
        start = self.size
        new_size = start + len(leaves)
        out: list[tuple[NodeKey, bytes]] = []
        frontier = self._by_level
        level, first, current = 0, start, list(leaves)
        last: dict[int, tuple[int, bytes]] = {}
        sha = _sha256
        while current:
            if level >= min_level:
                out.extend(((level, first + i), h) for i, h in enumerate(current))
            last[level] = (first + len(current) - 1, current[-1])
            if first & 1:  # the first new node is a right child: its left sibling is in the frontier
                rest = current[1:]
                parents = [sha(b"\x01" + frontier[level] + current[0]).digest()]
                parents += [sha(b"\x01" + rest[i] + rest[i + 1]).digest() for i in range(0, len(rest) - 1, 2)]
                first = (first - 1) >> 1
            else:
                parents = [sha(b"\x01" + current[i] + current[i + 1]).digest() for i in range(0, len(current) - 1, 2)]
                first >>= 1
            level += 1
            current = parents
        by_level = {}
        for lvl in range(new_size.bit_length()):
            if new_size >> lvl & 1:
                index = (new_size >> lvl) - 1
                mine = last.get(lvl)
                by_level[lvl] = mine[1] if mine is not None and mine[0] == index else frontier[lvl]
        self._by_level = by_level
        self.size = new_size
        self.anchor = None  # the caller knows the new last entry's hash (extend_tree sets it)
        return out


def raw_hash(entry_hash: str) -> bytes | None:
    """The 32 raw bytes of a stored hex entry hash (None when it is not 64 hex digits)."""
    try:
        raw = bytes.fromhex(entry_hash)
    except (TypeError, ValueError):
        return None
    return raw if len(raw) == HASH_SIZE else None


def tree_storage(storage: StorageBackend) -> MerkleTreeStorage | None:
    """``storage`` as a tree-keeping backend, or None when it keeps no tree."""
    return storage if isinstance(storage, MerkleTreeStorage) else None


# -- writing ---------------------------------------------------------------------------------------


def _leaves_of(hashes: Iterable[tuple[int, str]], first_seq: int) -> Iterator[bytes]:
    expected = first_seq
    for seq, entry_hash in hashes:
        raw = raw_hash(entry_hash)
        if seq != expected or raw is None:
            raise IntegrityError(
                f"cannot build the Merkle tree at entry {expected}: the stored entries are not a chain "
                "(verify the ledger)",
                seq=expected, reason="merkle_build",
            )
        expected += 1
        yield _leaf(raw)


def _chunks(leaves: Iterator[bytes], size: int) -> Iterator[list[bytes]]:
    chunk: list[bytes] = []
    for leaf in leaves:
        chunk.append(leaf)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def extend_tree(
    tree: MerkleTreeStorage, tx: WriteTransaction, entries: Sequence[Entry], frontier: Frontier | None = None
) -> Frontier | None:
    """Write, in ``tx`` (a write transaction of ``tree``, hence a
    :class:`~nucleus_core.capabilities.MerkleTreeTransaction`), the tree nodes that ``entries``
    (just inserted in ``tx``, contiguous) complete; returns the frontier after them (None when
    ``entries`` is empty), for the next call.

    ``frontier``: the one a previous call returned, kept by the caller once that transaction
    committed. It is used, instead of reading the frontier's nodes from storage, only when it is
    the stored tree's: the tree size read inside ``tx`` equals its size and the entry ``entries``
    chain after (whose hash commits to every entry before it) is its :attr:`Frontier.anchor`.
    Otherwise (another writer appended meanwhile, the first append after opening) the frontier is
    read (one read). It is never changed: the caller replaces its copy after the commit only.

    When the stored tree is behind the entries before them (written by a writer that kept no tree),
    the missing leaves are added first, in the same transaction."""
    if not entries:
        return None
    # The protocol's contract, checked by MerkleTreeConformance: no isinstance per append (a
    # runtime protocol check costs tens of microseconds).
    ttx = cast(MerkleTreeTransaction, tx)
    first = entries[0]
    size = ttx.merkle_size()
    if size >= first.seq:  # a writer of this transaction already covered them (cannot happen via the ledger)
        raise StorageError(f"the Merkle tree already covers {size} entries, beyond the head {first.seq - 1}")
    min_level = tree.merkle_min_level
    if frontier is not None and frontier.size == size == first.seq - 1 and frontier.anchor == first.prev_hash:
        frontier = frontier.copy()
    else:
        frontier = Frontier.from_store(ttx.merkle_store(), size)
    nodes: list[tuple[NodeKey, bytes]] = []
    if size < first.seq - 1:
        for chunk in _chunks(_leaves_of(_hashes_between(tree, size + 1, first.seq - 1), size + 1), BUILD_CHUNK):
            nodes.extend(frontier.extend(chunk, min_level))
        if frontier.size != first.seq - 1:
            raise IntegrityError(f"cannot extend the Merkle tree: entry {frontier.size + 1} is missing",
                                 seq=frontier.size + 1, reason="merkle_build")
    # The ledger just computed these hashes: 64 hex digits each (fromhex refuses anything else).
    fromhex, sha = bytes.fromhex, _sha256
    leaves = [sha(b"\x00" + fromhex(entry.hash)).digest() for entry in entries]
    nodes.extend(frontier.extend(leaves, min_level))
    frontier.anchor = entries[-1].hash
    ttx.write_merkle(frontier.size, nodes)
    return frontier


def _hashes_between(tree: MerkleTreeStorage, first: int, last: int) -> Iterator[tuple[int, str]]:
    for seq, entry_hash in tree.iter_entry_hashes(first):
        if seq > last:
            return
        yield seq, entry_hash


def build_tree(
    storage: StorageBackend,
    *,
    chunk_entries: int = BUILD_CHUNK,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Build the missing part of the stored tree, up to the head, in chunks of ``chunk_entries``
    entries, each committed on its own (resumable); returns the tree size reached (0 and nothing
    done on storage that keeps no tree). ``progress(done, total)`` after each chunk. Memory stays
    constant: the frontier and one chunk of nodes."""
    tree = tree_storage(storage)
    if tree is None:
        return 0
    if type(chunk_entries) is not int or chunk_entries < 1:
        raise ValidationError("chunk_entries is a positive integer", field="chunk_entries")
    head = storage.head()
    target = head.seq if head else 0
    size = tree.merkle_size()
    min_level = tree.merkle_min_level
    while size < target:
        with storage.write() as tx:
            if not isinstance(tx, MerkleTreeTransaction):
                raise StorageError(f"storage {storage.url} keeps a tree but its write transaction cannot write it")
            size = tx.merkle_size()  # another process may have built some meanwhile
            if size >= target:
                break
            last = min(size + chunk_entries, target)
            frontier = Frontier.from_store(tx.merkle_store(), size)
            leaves = list(_leaves_of(_hashes_between(tree, size + 1, last), size + 1))
            if size + len(leaves) != last:
                raise IntegrityError(
                    f"cannot build the Merkle tree: entry {size + len(leaves) + 1} is missing",
                    seq=size + len(leaves) + 1, reason="merkle_build",
                )
            tx.write_merkle(last, frontier.extend(leaves, min_level))
        size = last
        if progress is not None:
            progress(size, target)
    return size


# -- checking --------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class TreeProblem:
    """What :func:`check_tree` found: the first entry concerned and why."""

    seq: int
    reason: str


def check_tree(
    storage: StorageBackend,
    entry_hashes: Iterable[str] | None = None,
    *,
    entries: int | None = None,
    start: int = 0,
) -> TreeProblem | None:
    """Recompute the stored tree from the entries and compare every stored node, streaming (the
    frontier and one batch of nodes in memory). ``entry_hashes``: the hex hashes of entries
    ``start + 1``, ``start + 2``, ... in order, already read by the caller, else streamed from
    storage; ``entries``: how many entries the caller verified (the tree may cover no more). None
    when everything matches, or on storage that keeps no tree. (:class:`TreeCheck` is the same check
    fed by the caller's own pass over the entries.)

    ``start``: take the tree of the first ``start`` leaves as stored (its frontier is read, not
    recomputed) and check only the nodes the later entries complete: the part after a trusted
    checkpoint of that size, whose root the caller has compared with the stored one
    (:func:`~nucleus_core.trusted_checkpoint.verify_after_checkpoint`)."""
    tree = tree_storage(storage)
    if tree is None:
        return None
    check = TreeCheck(storage, tree, start=start)
    check.feed_all(entry_hashes)
    return check.finish(entries)


class TreeCheck:
    """:func:`check_tree` fed chunks of entry hashes by the caller's pass over the entries
    (verification's own: the hashes are then not read a second time). The stored tree's size is read
    when it is made, before the caller reads entries; :meth:`feed` takes the hex hashes of the next
    entries in seq order (any number, those beyond that size are ignored) and returns False once a
    problem is found or the tree is covered (more is not needed); :meth:`finish` takes the count
    of entries the caller verified and returns the first problem or None."""

    __slots__ = ("_frontier", "_min_level", "_pending", "_position", "_start", "_storage", "_stored", "_tree",
                 "problem", "seq", "size")

    def __init__(self, storage: StorageBackend, tree: MerkleTreeStorage, *, start: int = 0) -> None:
        self._storage, self._tree, self._start = storage, tree, start
        self.size = tree.merkle_size()
        self.problem: TreeProblem | None = None
        self.seq = start
        self._min_level = min_level = tree.merkle_min_level
        self._pending: list[bytes] = []
        if self.size < start:
            self.problem = TreeProblem(seq=self.size + 1, reason=f"the Merkle tree covers {self.size} entries, "
                                       f"fewer than {start}")
            return
        self._frontier = Frontier.from_store(tree.merkle_store(), start) if start else Frontier()
        self._position = stored_node_count(start, min_level)
        self._stored: Iterator[tuple[int, bytes]] | None = None  # opened at the first node to compare

    def feed_all(self, entry_hashes: Iterable[str] | None = None) -> None:
        """Feed the hashes of all the entries the tree covers: from ``entry_hashes`` (those of entries
        ``start + 1``, ... in order) or else streamed from storage."""
        if self.problem is not None or self.seq >= self.size:
            return
        if entry_hashes is None:
            entry_hashes = (h for _, h in self._tree.iter_entry_hashes(self.seq + 1))
        chunk: list[str] = []
        for entry_hash in entry_hashes:
            chunk.append(entry_hash)
            if len(chunk) == BUILD_CHUNK:
                if not self.feed(chunk):
                    return
                chunk = []
        self.feed(chunk)

    def tap(self, rows: Iterable[_Row]) -> Iterator[_Row]:
        """``rows`` (entry rows in :data:`~nucleus_core.records.ENTRY_FIELDS` order, seq order from
        ``start + 1``) unchanged, feeding their hashes to this check a chunk at a time as they are
        read: verification and the tree check in one pass over the entries."""
        source = iter(rows)
        feed = self.feed

        def chunks() -> Iterator[list[_Row]]:
            feeding = self.problem is None and self.seq < self.size
            while chunk := list(itertools.islice(source, _TAP_CHUNK)):
                if feeding:
                    feeding = feed([row[1] for row in chunk])
                yield chunk

        return itertools.chain.from_iterable(chunks())

    def feed(self, hashes: Sequence[str]) -> bool:
        if self.problem is not None or self.seq >= self.size:
            return False
        room = self.size - self.seq
        if len(hashes) > room:
            hashes = hashes[:room]
        fromhex, sha, pending = bytes.fromhex, _sha256, self._pending
        seq = self.seq
        for entry_hash in hashes:
            seq += 1
            try:
                raw = fromhex(entry_hash)
            except (TypeError, ValueError):
                raw = b""
            if len(raw) != HASH_SIZE:
                self.problem = TreeProblem(seq=seq, reason="the entry hash is not 64 hex digits")
                return False
            pending.append(sha(b"\x00" + raw).digest())
        self.seq = seq
        if len(pending) >= BUILD_CHUNK or (seq == self.size and pending):
            self._compare_pending()
        return self.problem is None and seq < self.size

    def _compare_pending(self) -> None:
        if self._stored is None:
            self._stored = iter(self._tree.iter_merkle_nodes(self._position))  # batched reads
        frontier, min_level = self._frontier, self._min_level
        self.problem = _compare(frontier.extend(self._pending, min_level), self._stored, self._position, min_level)
        self._position = stored_node_count(frontier.size, min_level)
        self._pending = []

    def finish(self, entries: int | None = None) -> TreeProblem | None:
        """The first problem; ``entries``: how many entries the caller verified (the tree may cover
        no more)."""
        if self.problem is not None:
            return self.problem
        if self._pending:
            self._compare_pending()
            if self.problem is not None:
                return self.problem
        size, tree = self.size, self._tree
        if entries is not None and size > entries:
            # Other writers may have appended since the caller counted (entries and their nodes commit
            # together, so the head read now is at least the tree size read before): the part verified
            # was checked. A tree larger than the chain as it is now is a problem.
            head = self._storage.head()
            if head is None or head.seq < size:
                return TreeProblem(
                    seq=entries + 1, reason=f"the Merkle tree covers {size} entries but the chain has {entries}"
                )
            size = entries
        if self.seq < size:
            return TreeProblem(
                seq=self.seq + 1, reason=f"the Merkle tree covers {self.size} entries but the chain has {self.seq}"
            )
        return _extra_node(tree, size, self._min_level)


def _compare(
    computed: list[tuple[NodeKey, bytes]], stored: Iterator[tuple[int, bytes]], position: int, min_level: int
) -> TreeProblem | None:
    """Compare the nodes one chunk of leaves completed with the next stored ones (by number)."""
    computed.sort(key=lambda item: node_number(item[0][0], item[0][1], min_level))
    for (level, index), value in computed:
        seq = (index + 1) << level  # the entry that completes the node
        name = f"the Merkle tree node at level {level}, index {index}"
        got = next(stored, None)
        if got is None or got[0] > position:
            return TreeProblem(seq=seq, reason=f"{name} is missing")
        if got[0] < position:
            return TreeProblem(seq=seq, reason=f"the Merkle tree holds node number {got[0]} twice")
        if got[1] != value:
            return TreeProblem(seq=seq, reason=f"{name} does not match the entries")
        position += 1
    return None


def _extra_node(tree: MerkleTreeStorage, size: int, min_level: int) -> TreeProblem | None:
    """A stored node beyond the tree of ``size`` leaves, when the stored size is still ``size`` (a
    node a concurrent append added comes with a larger size)."""
    count = stored_node_count(size, min_level)
    extra = next(iter(tree.iter_merkle_nodes(count)), None)
    if extra is not None and tree.merkle_size() <= size:
        return TreeProblem(seq=size + 1, reason=f"the Merkle tree holds node number {extra[0]} beyond its size {size}")
    return None


# -- proofs as the ledger returns them -------------------------------------------------------------


@attrs.frozen(kw_only=True)
class InclusionProof:
    """An RFC 9162 inclusion proof: leaf ``leaf_index`` (entry ``leaf_index + 1``) in the tree of
    ``tree_size`` leaves; ``hashes`` bottom-up, each 32 raw bytes."""

    leaf_index: int
    tree_size: int
    hashes: tuple[bytes, ...]

    def to_json(self) -> dict[str, object]:
        """``{"leaf_index": S-1, "tree_size": N, "hashes": ["<hex>", ...]}``."""
        return {"leaf_index": self.leaf_index, "tree_size": self.tree_size, "hashes": [h.hex() for h in self.hashes]}

    @classmethod
    def from_json(cls, doc: object) -> InclusionProof:
        """The proof :meth:`to_json` made (:class:`~nucleus_core.errors.ValidationError` for any
        other shape); checks the shape only, never the proof."""
        leaf_index, tree_size, hashes = _proof_fields(doc, ("leaf_index", "tree_size"))
        return cls(leaf_index=leaf_index, tree_size=tree_size, hashes=hashes)


@attrs.frozen(kw_only=True)
class ConsistencyProof:
    """An RFC 9162 consistency proof from the tree of ``first`` leaves to that of ``second``."""

    first: int
    second: int
    hashes: tuple[bytes, ...]

    def to_json(self) -> dict[str, object]:
        """``{"from": M, "to": N, "hashes": ["<hex>", ...]}``."""
        return {"from": self.first, "to": self.second, "hashes": [h.hex() for h in self.hashes]}

    @classmethod
    def from_json(cls, doc: object) -> ConsistencyProof:
        """The proof :meth:`to_json` made (:class:`~nucleus_core.errors.ValidationError` for any
        other shape); checks the shape only, never the proof."""
        first, second, hashes = _proof_fields(doc, ("from", "to"))
        return cls(first=first, second=second, hashes=hashes)


_HEX64 = re.compile(r"[0-9a-f]{64}")


def _proof_fields(doc: object, sizes: tuple[str, str]) -> tuple[int, int, tuple[bytes, ...]]:
    """The two integers named ``sizes`` and the hashes of a proof's JSON object, checked."""
    names = {*sizes, "hashes"}
    if not isinstance(doc, dict) or set(doc) != names:
        raise ValidationError(f"a proof is a JSON object of exactly {', '.join(sorted(names))}", field="proof")
    numbers = []
    for name in sizes:
        value = doc[name]
        if type(value) is not int or value < 0:
            raise ValidationError(f"{name} must be a non-negative integer", field=name)
        numbers.append(value)
    items = doc["hashes"]
    if not isinstance(items, list) or len(items) > 64:
        raise ValidationError("hashes must be a list of at most 64 hashes", field="hashes")
    hashes = []
    for item in items:
        if not isinstance(item, str) or _HEX64.fullmatch(item) is None:
            raise ValidationError("each hash is 64 lowercase hex characters", field="hashes")
        hashes.append(bytes.fromhex(item))
    return numbers[0], numbers[1], tuple(hashes)

