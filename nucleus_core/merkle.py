"""The ledger's RFC 9162 Merkle tree, kept as the hashes of its complete subtrees.

The tree (``docs/FORMAT.md``, "Merkle tree") is RFC 9162 section 2.1 with SHA-256 over the entries
in seq order: entry ``seq`` is leaf index ``seq - 1`` and its leaf input is the 32 raw bytes of its
entry hash. Hashing and verification are :mod:`nucleus_core.tlog_verify`'s; this module stores the
tree and answers from storage.

**What is stored.** Node ``(level, index)`` is the root hash of the complete subtree of ``2**level``
leaves starting at leaf ``index * 2**level``; level 0 holds the leaf hashes. Only complete subtrees
are stored, so a stored node never changes. Appending leaf ``i`` writes its leaf hash and the
parents it completes, one per trailing 1-bit of ``i``: ``2n - popcount(n)`` nodes for ``n`` leaves,
under two per leaf amortized and at most ``1 + log2(n)`` for one leaf. The parents' left halves are
the *frontier* of the tree before the append, the ``popcount(size)`` complete subtrees the tree of
that size splits into (:func:`frontier_keys`); they are the one read an append needs.

**What is read.** Every range the RFC's recursion hashes (``MTH(D[a:b])``) is either a complete
subtree (one node) or the right edge of one, which splits into at most ``log2(b - a)`` complete
subtrees; each proof holds at most one such edge, and every other element is one node. So, with
``L = ceil(log2(n))``, each answer is one batched :meth:`MerkleNodeStore.nodes` call for at most:

- the root at size ``n``: ``popcount(n) <= L`` nodes;
- an inclusion proof: ``2 L`` nodes;
- a consistency proof: ``2 L + 1`` nodes.

That is ``O(log n)`` in every case (no ``O(log^2 n)`` corner), independent of the tree's current
size, and no answer ever touches the entries themselves.

:class:`MerkleNodeStore` is defined here, not with the storage capabilities in
:mod:`nucleus_core.capabilities`: it is not a power a backend claims (those are checked with
``isinstance`` on the backend) but the read interface this module's algorithms run on, offered by
whatever holds nodes (a read snapshot, a write transaction, :class:`MemoryNodeStore`); its keys mean
what this module says they mean. A backend capability for the tree hands one out.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Protocol

from .errors import IntegrityError, ValidationError
from .tlog_verify import EMPTY_ROOT, HASH_SIZE, MAX_TREE_SIZE, leaf_hash, node_hash

__all__ = [
    "FoundNodes", "MemoryNodeStore", "MerkleBuilder", "MerkleNodeStore", "NodeKey", "PlannedNodes", "UpperNodeCache",
    "append_leaves", "build_node_writes", "consistency_keys", "consistency_proof", "frontier_keys", "inclusion_keys",
    "inclusion_proof", "inclusion_proofs", "multi_inclusion_proof", "root_hash", "subtree_keys",
]

NodeKey = tuple[int, int]
"""``(level, index)``: the complete subtree of ``2**level`` leaves from leaf ``index * 2**level``."""


class MerkleNodeStore(Protocol):
    """Where the tree's nodes are read from."""

    def nodes(self, keys: Collection[NodeKey]) -> Mapping[NodeKey, bytes]:
        """The stored hashes of those of ``keys`` that are stored (absent keys are left out), in one
        read. Keys are ``(level, index)`` pairs, see :data:`NodeKey`."""
        ...


# -- layout: which stored nodes make up a range, a root, a proof -----------------------------------


def _split(width: int) -> int:
    """RFC 9162's k for a range of ``width`` >= 2 leaves: the largest power of two below it."""
    return 1 << ((width - 1).bit_length() - 1)


def subtree_keys(start: int, end: int) -> list[NodeKey]:
    """The complete subtrees, left to right, that the range of leaves ``[start, end)`` splits into
    when ``start`` is a multiple of the largest power of two not above ``end - start`` (true of
    every range RFC 9162's recursion hashes). ``MTH(D[start:end])`` is their right fold."""
    keys = []
    width = end - start
    while width:
        level = width.bit_length() - 1
        keys.append((level, start >> level))
        start += 1 << level
        width -= 1 << level
    return keys


def frontier_keys(size: int) -> list[NodeKey]:
    """The complete subtrees the tree of ``size`` leaves splits into, left to right: its root is
    their right fold, and appending to it needs exactly these nodes."""
    return subtree_keys(0, size)


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """PATH(index, D_size) of RFC 9162 section 2.1.3.1 as leaf ranges, bottom-up."""
    ranges = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
    ranges.reverse()
    return ranges


def _consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """PROOF(first, D_second) of RFC 9162 section 2.1.4.1 (``0 < first < second``) as leaf ranges,
    in proof order: SUBPROOF appends its own element after the recursion's."""
    ranges = []
    start, end, known = 0, second, True
    while True:
        if first == end:  # SUBPROOF(m, D_m, b): nothing when b, else MTH(D_m)
            if not known:
                ranges.append((start, end))
            break
        k = _split(end - start)
        if first <= start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
            known = False
    ranges.reverse()
    return ranges


def consistency_keys(first: int, second: int) -> list[NodeKey]:
    """The nodes :func:`consistency_proof` reads for the proof from ``first`` to ``second`` leaves
    (``0 <= first <= second``): at most ``2 log2(second) + 1``."""
    if first == 0 or first == second:
        return []
    return [key for start, end in _consistency_ranges(first, second) for key in subtree_keys(start, end)]


def _fold(hashes: Sequence[bytes]) -> bytes:
    """The hash of complete subtrees ``hashes`` (left to right) side by side: RFC 9162's MTH of the
    range they cover, ``H(h0, H(h1, ... H(h[-2], h[-1])))``."""
    result = hashes[-1]
    for h in reversed(hashes[:-1]):
        result = node_hash(h, result)
    return result


def _read(store: MerkleNodeStore, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
    """The MTH of each range, from one batched read of every node they need (no read for none)."""
    if not ranges:
        return []
    layouts = [subtree_keys(start, end) for start, end in ranges]
    wanted = {key for keys in layouts for key in keys}
    found = store.nodes(wanted)
    missing = wanted - found.keys()
    if missing:
        level, index = min(missing)
        raise IntegrityError(
            f"the Merkle tree node at level {level}, index {index} is not stored",
            seq=(index << level) + 1,
            reason="merkle_node_missing",
        )
    return [_fold([found[key] for key in keys]) for keys in layouts]


def _check_size(value: object, what: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_TREE_SIZE:
        raise ValidationError(f"{what} is not an integer from 0 to 2^63-1", field=what)
    return value


class FoundNodes:
    """A :class:`MerkleNodeStore` over nodes already read (a mapping of some keys to their hashes),
    for storage that read them together with something else: see :func:`inclusion_keys`."""

    __slots__ = ("_found",)

    def __init__(self, found: Mapping[NodeKey, bytes]) -> None:
        self._found = found

    def nodes(self, keys: Collection[NodeKey]) -> dict[NodeKey, bytes]:
        found = self._found
        return {key: found[key] for key in keys if key in found}


class UpperNodeCache:
    """The upper levels of a tree, kept in memory by a reader of stored nodes.

    A stored node is a complete subtree and never changes, and every root and proof reads one node
    of most levels: the few nodes of the upper levels are read again and again, the many of the
    lower ones rarely. This cache keeps the nodes it is shown of levels ``>= level_for(size)``
    (at least ``lowest_level``, higher as the tree grows, so that those levels hold at most about
    ``max_nodes`` nodes), up to ``max_nodes`` nodes (about 150 bytes each); :meth:`over` wraps a
    store so that only the other keys are read. :meth:`clear` forgets everything (a reader that
    finds the stored tree smaller than it was, a database put back, calls it)."""

    __slots__ = ("_nodes", "lowest_level", "max_nodes")

    def __init__(self, *, lowest_level: int = 4, max_nodes: int = 1 << 16) -> None:
        if type(lowest_level) is not int or lowest_level < 0:
            raise ValidationError("lowest_level is a non-negative integer", field="lowest_level")
        if type(max_nodes) is not int or max_nodes < 0:
            raise ValidationError("max_nodes is a non-negative integer", field="max_nodes")
        self.lowest_level = lowest_level
        self.max_nodes = max_nodes
        self._nodes: dict[NodeKey, bytes] = {}

    def __len__(self) -> int:
        return len(self._nodes)

    def level_for(self, size: int) -> int:
        """The lowest level kept for a tree of ``size`` leaves: its levels from there hold fewer
        than ``max_nodes`` nodes (``size / 2**(level - 1)``), and never below ``lowest_level``."""
        return max(self.lowest_level, size.bit_length() + 2 - max(self.max_nodes, 1).bit_length())

    def split(self, keys: Collection[NodeKey]) -> tuple[dict[NodeKey, bytes], list[NodeKey]]:
        """The nodes of ``keys`` held here, and the keys still to read."""
        held = self._nodes
        found: dict[NodeKey, bytes] = {}
        missing: list[NodeKey] = []
        for key in keys:
            value = held.get(key)
            if value is None:
                missing.append(key)
            else:
                found[key] = value
        return found, missing

    def keep(self, nodes: Mapping[NodeKey, bytes], size: int) -> None:
        """Keep those of ``nodes`` (read from a tree of at least ``size`` leaves) of the kept levels."""
        held = self._nodes
        room = self.max_nodes - len(held)
        if room <= 0:
            return
        level = self.level_for(size)
        for key, value in nodes.items():
            if key[0] >= level and key not in held:
                held[key] = value
                room -= 1
                if not room:
                    return

    def over(self, store: MerkleNodeStore, size: int) -> MerkleNodeStore:
        """``store`` read through this cache, for a tree of at least ``size`` leaves."""
        return _CachedNodes(self, store, size)

    def clear(self) -> None:
        """Forget every node."""
        self._nodes.clear()


class _CachedNodes:
    __slots__ = ("_cache", "_size", "_store")

    def __init__(self, cache: UpperNodeCache, store: MerkleNodeStore, size: int) -> None:
        self._cache, self._store, self._size = cache, store, size

    def nodes(self, keys: Collection[NodeKey]) -> dict[NodeKey, bytes]:
        found, missing = self._cache.split(keys)
        if missing:
            read = self._store.nodes(missing)
            self._cache.keep(read, self._size)
            found.update(read)
        return found


# -- answers -----------------------------------------------------------------------------------


def root_hash(store: MerkleNodeStore, size: int) -> bytes:
    """The root hash of the tree of the first ``size`` leaves (``SHA-256("")`` for 0). The store
    must hold at least ``size`` leaves."""
    _check_size(size, "size")
    if size == 0:
        return EMPTY_ROOT
    return _read(store, [(0, size)])[0]


def _check_leaf(index: int, size: int) -> None:
    _check_size(index, "index")
    _check_size(size, "size")
    if index >= size:
        raise ValidationError(f"leaf index {index} is not below the tree size {size}", field="index")


def inclusion_proof(store: MerkleNodeStore, index: int, size: int) -> list[bytes]:
    """RFC 9162 inclusion proof (PATH, bottom-up) of leaf ``index`` in the tree of ``size`` leaves."""
    _check_leaf(index, size)
    return _read(store, _inclusion_ranges(index, size))


def inclusion_keys(index: int, size: int) -> set[NodeKey]:
    """The nodes :func:`inclusion_proof` of leaf ``index`` in the tree of ``size`` leaves reads (at
    most ``2 ceil(log2 size)``; none for a tree of one leaf), for a read that fetches them with
    something else (the ledger reads them with the entry): ``inclusion_proof(FoundNodes(found),
    index, size)`` then builds the proof from what was found, reading nothing."""
    _check_leaf(index, size)
    return {key for start, end in _inclusion_ranges(index, size) for key in subtree_keys(start, end)}


def inclusion_proofs(store: MerkleNodeStore, indices: Sequence[int], size: int) -> list[list[bytes]]:
    """:func:`inclusion_proof` of each leaf of ``indices`` in the tree of ``size`` leaves, in order,
    from one batched read of every node they need (proofs of neighbouring leaves share most)."""
    _check_size(size, "size")
    for index in indices:
        _check_size(index, "index")
        if index >= size:
            raise ValidationError(f"leaf index {index} is not below the tree size {size}", field="index")
    paths = [_inclusion_ranges(index, size) for index in indices]
    # Neighbouring leaves share most of their paths: each distinct range is hashed once.
    ranges = list(dict.fromkeys(r for path in paths for r in path))
    hashed = dict(zip(ranges, _read(store, ranges), strict=True))
    return [[hashed[r] for r in path] for path in paths]


def _multi_ranges(indices: Sequence[int], size: int) -> list[tuple[int, int]]:
    """The ranges whose MTH a proof of all of ``indices`` (strictly increasing) at once gives, in
    the order :func:`~nucleus_core.tlog_verify.verify_multi_inclusion` takes them."""
    out: list[tuple[int, int]] = []

    def walk(start: int, end: int, lo: int, hi: int) -> None:
        if lo == hi:
            out.append((start, end))
        elif end - start > 1:
            k = _split(end - start)
            mid = bisect.bisect_left(indices, start + k, lo, hi)
            walk(start, start + k, lo, mid)
            walk(start + k, end, mid, hi)

    walk(0, size, 0, len(indices))
    return out


def multi_inclusion_proof(store: MerkleNodeStore, indices: Sequence[int], size: int) -> list[bytes]:
    """One proof that the leaves ``indices`` (strictly increasing, each below ``size``) are in the
    tree of ``size`` leaves: their RFC 9162 audit paths with the hashes the leaves give left out
    and each hash once (see :func:`~nucleus_core.tlog_verify.verify_multi_inclusion`), from one
    batched read. A page of 50 consecutive entries needs about 2 log2(size) hashes, not 50 paths."""
    _check_size(size, "size")
    if not indices:
        raise ValidationError("a proof needs at least one leaf index", field="indices")
    for i, index in enumerate(indices):
        _check_size(index, "index")
        if index >= size:
            raise ValidationError(f"leaf index {index} is not below the tree size {size}", field="index")
        if i and index <= indices[i - 1]:
            raise ValidationError("the leaf indices are not strictly increasing", field="indices")
    return _read(store, _multi_ranges(indices, size))


def consistency_proof(store: MerkleNodeStore, first: int, second: int) -> list[bytes]:
    """RFC 9162 consistency proof (PROOF) from the tree of ``first`` leaves to that of ``second``;
    empty when ``first`` is 0 or equal to ``second`` (see
    :func:`~nucleus_core.tlog_verify.verify_consistency`)."""
    _check_size(first, "first")
    _check_size(second, "second")
    if first > second:
        raise ValidationError(f"the first tree size {first} is larger than the second {second}", field="first")
    if first == 0 or first == second:
        return []
    return _read(store, _consistency_ranges(first, second))


# -- writing -------------------------------------------------------------------------------------


class MerkleBuilder:
    """The tree's frontier, to which leaves are appended; each append yields the nodes it completes.

    Holds ``popcount(size)`` hashes, never more than 64: appending never reads anything.
    """

    __slots__ = ("_frontier", "_size")

    def __init__(self, size: int = 0, frontier: Sequence[bytes] = ()) -> None:
        """Continue the tree of ``size`` leaves whose :func:`frontier_keys` hold ``frontier``."""
        _check_size(size, "size")
        if len(frontier) != size.bit_count() or any(len(h) != HASH_SIZE for h in frontier):
            raise ValidationError(f"a tree of {size} leaves has {size.bit_count()} frontier hashes", field="frontier")
        self._size = size
        # (level, hash) of each frontier subtree, left (largest) to right (smallest).
        self._frontier = [(key[0], h) for key, h in zip(frontier_keys(size), frontier, strict=True)]

    @classmethod
    def from_store(cls, store: MerkleNodeStore, size: int) -> MerkleBuilder:
        """Continue the tree of the first ``size`` leaves in ``store`` (one read of its frontier)."""
        keys = frontier_keys(_check_size(size, "size"))
        return cls(size, _read(store, [(index << level, (index + 1) << level) for level, index in keys]))

    @property
    def size(self) -> int:
        """Leaves appended so far (including those the builder was started with)."""
        return self._size

    def root(self) -> bytes:
        """The root hash of the tree as it now is."""
        return _fold([h for _, h in self._frontier]) if self._frontier else EMPTY_ROOT

    def add(self, leaf: bytes) -> list[tuple[NodeKey, bytes]]:
        """Append the leaf whose leaf *hash* is ``leaf``; returns the nodes to store: its own and
        each parent it completes, lowest level first."""
        if not isinstance(leaf, bytes) or len(leaf) != HASH_SIZE:
            raise ValidationError(f"a leaf hash is {HASH_SIZE} bytes", field="leaf")
        if self._size == MAX_TREE_SIZE:
            raise ValidationError("the tree holds 2^63-1 leaves already", field="size")
        index = self._size
        written = [((0, index), leaf)]
        level, current = 0, leaf
        while self._frontier and self._frontier[-1][0] == level:
            _, left = self._frontier.pop()
            current = node_hash(left, current)
            level += 1
            written.append(((level, index >> level), current))
        self._frontier.append((level, current))
        self._size = index + 1
        return written


class PlannedNodes:
    """Roots and consistency proofs planned in advance, answered from leaves streamed by once.

    Give the tree sizes whose roots and the ``(first, second)`` pairs whose consistency proofs will
    be asked for; then :meth:`add` every leaf hash in order (a :class:`MerkleBuilder` keeps the
    frontier) and only the nodes those answers read are kept: ``O(log n)`` hashes per root or
    proof, whatever the number of leaves. It is a :class:`MerkleNodeStore`, so :func:`root_hash`
    and :func:`consistency_proof` answer from it once at least the sizes asked were added. This is
    how a tree is checked against entries read from elsewhere (a database whose tree is not built,
    entries fetched over HTTP) without holding the tree.
    """

    __slots__ = ("_builder", "_found", "_wanted")

    def __init__(self, *, roots: Iterable[int] = (), consistency: Iterable[tuple[int, int]] = ()) -> None:
        wanted: set[NodeKey] = set()
        for size in roots:
            wanted.update(frontier_keys(_check_size(size, "size")))
        for first, second in consistency:
            if _check_size(first, "first") > _check_size(second, "second"):
                raise ValidationError(f"the first tree size {first} is larger than the second {second}", field="first")
            wanted.update(consistency_keys(first, second))
        self._wanted = wanted
        self._found: dict[NodeKey, bytes] = {}
        self._builder = MerkleBuilder()

    @property
    def size(self) -> int:
        """Leaves added so far."""
        return self._builder.size

    def add(self, leaf: bytes) -> None:
        """Add the next leaf, by its leaf *hash* (:func:`~nucleus_core.tlog_verify.leaf_hash`)."""
        wanted, found = self._wanted, self._found
        for key, value in self._builder.add(leaf):
            if key in wanted:
                found[key] = value

    def nodes(self, keys: Collection[NodeKey]) -> dict[NodeKey, bytes]:
        found = self._found
        return {key: found[key] for key in keys if key in found}


def append_leaves(store: MerkleNodeStore, start: int, leaves: Iterable[bytes]) -> dict[NodeKey, bytes]:
    """The nodes to write when the leaf hashes ``leaves`` become leaves ``start, start + 1, ...`` of
    the tree whose first ``start`` leaves ``store`` holds: one read (the frontier), nothing written.
    The caller's storage transaction writes the returned nodes with the entries they cover."""
    builder = MerkleBuilder.from_store(store, start)
    nodes: dict[NodeKey, bytes] = {}
    for leaf in leaves:
        nodes.update(builder.add(leaf))
    return nodes


def build_node_writes(
    entry_hashes: Iterable[bytes], *, builder: MerkleBuilder | None = None, chunk_nodes: int = 8192
) -> Iterator[list[tuple[NodeKey, bytes]]]:
    """Build the tree over an existing ledger: for the leaf inputs ``entry_hashes`` (the entries'
    32-byte hashes, in seq order, e.g. streamed from storage) yield the nodes to store in chunks
    of about ``chunk_nodes`` (one leaf's nodes are never split over two chunks). Memory stays
    constant: the builder keeps only the frontier. ``builder`` resumes a partial build (see
    :meth:`MerkleBuilder.from_store`); it is advanced as the chunks are consumed."""
    if type(chunk_nodes) is not int or chunk_nodes < 1:
        raise ValidationError("chunk_nodes is a positive integer", field="chunk_nodes")
    builder = builder if builder is not None else MerkleBuilder()
    chunk: list[tuple[NodeKey, bytes]] = []
    for entry_hash in entry_hashes:
        if not isinstance(entry_hash, bytes) or len(entry_hash) != HASH_SIZE:
            raise ValidationError(f"a leaf input (an entry hash) is {HASH_SIZE} raw bytes", field="entry_hash")
        chunk.extend(builder.add(leaf_hash(entry_hash)))
        if len(chunk) >= chunk_nodes:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class MemoryNodeStore:
    """Nodes in memory: one ``bytearray`` of concatenated hashes per level (32 bytes a node, about
    64 bytes a leaf in all). Nodes are written in order; :meth:`truncate` takes a tree back to an
    earlier size (a rolled-back transaction)."""

    __slots__ = ("_levels",)

    def __init__(self) -> None:
        self._levels: list[bytearray] = []

    @property
    def size(self) -> int:
        """Leaves stored."""
        return len(self._levels[0]) // HASH_SIZE if self._levels else 0

    def nodes(self, keys: Collection[NodeKey]) -> dict[NodeKey, bytes]:
        found = {}
        for level, index in keys:
            if 0 <= level < len(self._levels) and index >= 0:
                raw = self._levels[level]
                offset = index * HASH_SIZE
                if offset + HASH_SIZE <= len(raw):
                    found[(level, index)] = bytes(raw[offset : offset + HASH_SIZE])
        return found

    def write(self, nodes: Iterable[tuple[NodeKey, bytes]] | Mapping[NodeKey, bytes]) -> None:
        """Store ``nodes``; each must be the next one of its level (as :func:`append_leaves` and
        :func:`build_node_writes` produce them). On a refusal nothing is stored."""
        items = list(nodes.items() if isinstance(nodes, Mapping) else nodes)
        lengths = [len(raw) // HASH_SIZE for raw in self._levels]
        for (level, index), value in items:
            if len(value) != HASH_SIZE:
                raise ValidationError(f"a node hash is {HASH_SIZE} bytes", field="nodes")
            while len(lengths) <= level:
                lengths.append(0)
            if index != lengths[level]:
                raise ValidationError(
                    f"node ({level}, {index}) is not the next one of level {level} ({lengths[level]})", field="nodes"
                )
            lengths[level] += 1
        for (level, _), value in items:
            while len(self._levels) <= level:
                self._levels.append(bytearray())
            self._levels[level] += value

    def truncate(self, size: int) -> None:
        """Forget every node that is not part of the tree of the first ``size`` leaves."""
        _check_size(size, "size")
        for level, raw in enumerate(self._levels):
            del raw[(size >> level) * HASH_SIZE :]
        while self._levels and not self._levels[-1]:
            self._levels.pop()
