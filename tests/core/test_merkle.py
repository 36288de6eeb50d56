"""nucleus_core.merkle: the RFC 9162 tree over stored complete subtrees.

Checked three ways: against pymerkle (an independent RFC 9162 implementation) for every size
1-300 and random larger ones; against the RFC's own recursive definitions of MTH, PATH and PROOF
(section 2.1.1, 2.1.3.1, 2.1.4.1), transcribed below; and every proof with a small verifier
transcribed below from RFC 9162 section 2.1.3.2 and 2.1.4.2 alone, and with
nucleus_core.tlog_verify. Tampered proofs are refused by both verifiers."""

from __future__ import annotations

import base64
import hashlib
import random
import re
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import pymerkle
import pytest

from nucleus_core import IntegrityError, ValidationError, merkle
from nucleus_core.merkle import MemoryNodeStore, MerkleBuilder, NodeKey
from nucleus_core.tlog_verify import ProofError, leaf_hash, verify_consistency, verify_inclusion, verify_multi_inclusion

# -- RFC 9162 section 2.1, transcribed (test-only; shares nothing with the code under test) -------


def H(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def rfc_k(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def rfc_mth(d: Sequence[bytes]) -> bytes:
    if len(d) == 0:
        return H(b"")
    if len(d) == 1:
        return H(b"\x00" + d[0])
    k = rfc_k(len(d))
    return H(b"\x01" + rfc_mth(d[:k]) + rfc_mth(d[k:]))


def rfc_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = rfc_k(len(d))
    if m < k:
        return [*rfc_path(m, d[:k]), rfc_mth(d[k:])]
    return [*rfc_path(m - k, d[k:]), rfc_mth(d[:k])]


def rfc_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [rfc_mth(d)]
    k = rfc_k(n)
    if m <= k:
        return [*rfc_subproof(m, d[:k], b), rfc_mth(d[k:])]
    return [*rfc_subproof(m - k, d[k:], False), rfc_mth(d[:k])]


def rfc_verify_inclusion(leaf_index: int, tree_size: int, h: bytes, root_hash: bytes, path: Sequence[bytes]) -> bool:
    """RFC 9162 section 2.1.3.2."""
    if leaf_index >= tree_size:
        return False
    fn, sn = leaf_index, tree_size - 1
    r = h
    for p in path:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            r = H(b"\x01" + p + r)
            if fn % 2 == 0:
                while not (fn % 2 == 1 or fn == 0):
                    fn, sn = fn // 2, sn // 2
        else:
            r = H(b"\x01" + r + p)
        fn, sn = fn // 2, sn // 2
    return sn == 0 and r == root_hash


def rfc_verify_consistency(
    first: int, second: int, first_hash: bytes, second_hash: bytes, path: Sequence[bytes]
) -> bool:
    """RFC 9162 section 2.1.4.2 (for 0 < first < second)."""
    if not path:
        return False
    path = list(path)
    if first & (first - 1) == 0:
        path = [first_hash, *path]
    fn, sn = first - 1, second - 1
    while fn % 2 == 1:
        fn, sn = fn // 2, sn // 2
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            fr = H(b"\x01" + c + fr)
            sr = H(b"\x01" + c + sr)
            if fn % 2 == 0:
                while not (fn % 2 == 1 or fn == 0):
                    fn, sn = fn // 2, sn // 2
        else:
            sr = H(b"\x01" + sr + c)
        fn, sn = fn // 2, sn // 2
    return fr == first_hash and sr == second_hash and sn == 0


# -- fixtures ----------------------------------------------------------------------------------


def entry_hashes(count: int, salt: bytes = b"") -> list[bytes]:
    """Stand-ins for entry hashes: 32 bytes each."""
    return [H(salt + i.to_bytes(8, "big")) for i in range(count)]


def build(leaf_inputs: Sequence[bytes]) -> MemoryNodeStore:
    store = MemoryNodeStore()
    for chunk in merkle.build_node_writes(leaf_inputs, chunk_nodes=100):
        store.write(chunk)
    return store


class CountingStore:
    """A node store that records every read."""

    def __init__(self, inner: MemoryNodeStore) -> None:
        self.inner = inner
        self.reads: list[int] = []

    def nodes(self, keys: Collection[NodeKey]) -> Mapping[NodeKey, bytes]:
        self.reads.append(len(keys))
        return self.inner.nodes(keys)


LEAVES_300 = entry_hashes(300)
STORE_300 = build(LEAVES_300)


def flip(h: bytes, at: int = 0) -> bytes:
    return h[:at] + bytes([h[at] ^ 0x01]) + h[at + 1 :]


# -- the tree ---------------------------------------------------------------------------------


def test_transparency_dev_vectors() -> None:
    """Roots of the prefixes of transparency-dev/merkle testonly/constants.go's leaf inputs (not
    32 bytes long: the tree takes any leaf input; the ledger's are entry hashes)."""
    inputs = [bytes.fromhex(x) for x in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                         "606162636465666768696a6b6c6d6e6f"]]
    roots = ["e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
             "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
             "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
             "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
             "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
             "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
             "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
             "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"]
    store, builder = MemoryNodeStore(), MerkleBuilder()
    assert merkle.root_hash(store, 0).hex() == roots[0]
    for size, data in enumerate(inputs, 1):
        store.write(builder.add(H(b"\x00" + data)))
        assert merkle.root_hash(store, size).hex() == roots[size] == builder.root().hex()
    # transparency-dev/merkle testdata/consistency/2 (6 -> 8) and inclusion/2 (leaf 5 of 8)
    assert [base64.b64encode(h).decode() for h in merkle.consistency_proof(store, 6, 8)] == [
        "DrxdNDf74tsVi58Sah0RjjCBgQMdCpSfje3t68VY72o=", "yoVOoSjtBQtBs1/8G4e46yveRh6eO1WW7Oa51ZdaCuA=",
        "037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc="]
    assert [base64.b64encode(h).decode() for h in merkle.inclusion_proof(store, 5, 8)] == [
        "vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms=", "yoVOoSjtBQtBs1/8G4e46yveRh6eO1WW7Oa51ZdaCuA=",
        "037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc="]


def test_roots_equal_pymerkle_for_every_size_to_300() -> None:
    # pymerkle's defaults are RFC 9162's tree: sha256, leaf prefix 0x00, node prefix 0x01
    # (security on), k = the largest power of two below the width.
    tree = pymerkle.InmemoryTree(algorithm="sha256")
    assert tree.hash_buff(b"x") == H(b"\x00x") and tree.hash_pair(b"a", b"b") == H(b"\x01ab")
    for leaf in LEAVES_300:
        tree.append_entry(leaf)
    for size in range(1, 301):
        assert merkle.root_hash(STORE_300, size) == tree.get_root(size), size


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_roots_equal_pymerkle_for_random_larger_sizes(seed: int) -> None:
    rng = random.Random(seed)
    size = rng.randrange(301, 5000)
    leaves = entry_hashes(size, salt=bytes([seed]))
    store = build(leaves)
    tree = pymerkle.InmemoryTree(algorithm="sha256")
    for leaf in leaves:
        tree.append_entry(leaf)
    for n in sorted({size, *(rng.randrange(1, size) for _ in range(20))}):
        assert merkle.root_hash(store, n) == tree.get_root(n), (size, n)


def test_roots_equal_the_rfc_definition() -> None:
    for size in [*range(0, 70), 127, 128, 129, 255, 256, 257, 300]:
        assert merkle.root_hash(STORE_300, size) == rfc_mth(LEAVES_300[:size]), size


def test_every_inclusion_proof_is_path_and_verifies() -> None:
    for size in range(1, 65):
        root = merkle.root_hash(STORE_300, size)
        for index in range(size):
            proof = merkle.inclusion_proof(STORE_300, index, size)
            assert proof == rfc_path(index, LEAVES_300[:size]), (index, size)
            leaf = H(b"\x00" + LEAVES_300[index])
            assert rfc_verify_inclusion(index, size, leaf, root, proof), (index, size)
            verify_inclusion(leaf, index, size, proof, root)


def test_every_consistency_proof_is_proof_and_verifies() -> None:
    for second in range(1, 65):
        second_root = merkle.root_hash(STORE_300, second)
        for first in range(1, second):
            proof = merkle.consistency_proof(STORE_300, first, second)
            assert proof == rfc_subproof(first, LEAVES_300[:second], True), (first, second)
            first_root = merkle.root_hash(STORE_300, first)
            assert rfc_verify_consistency(first, second, first_root, second_root, proof), (first, second)
            verify_consistency(first, second, first_root, second_root, proof)
        same = merkle.consistency_proof(STORE_300, second, second)
        verify_consistency(second, second, second_root, second_root, same)
        from_empty = merkle.consistency_proof(STORE_300, 0, second)
        verify_consistency(0, second, merkle.root_hash(STORE_300, 0), second_root, from_empty)


def test_larger_proofs_verify() -> None:
    rng = random.Random(7)
    for _ in range(300):
        size = rng.randrange(1, 301)
        index, first = rng.randrange(size), rng.randrange(1, size + 1)
        root = merkle.root_hash(STORE_300, size)
        proof = merkle.inclusion_proof(STORE_300, index, size)
        assert rfc_verify_inclusion(index, size, H(b"\x00" + LEAVES_300[index]), root, proof)
        cproof = merkle.consistency_proof(STORE_300, first, size)
        if first < size:
            assert rfc_verify_consistency(first, size, merkle.root_hash(STORE_300, first), root, cproof)
        verify_consistency(first, size, merkle.root_hash(STORE_300, first), root, cproof)


def inclusion_refused(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    """Both verifiers refuse."""
    try:
        verify_inclusion(leaf, index, size, proof, root)
    except ProofError:
        ours = True
    else:
        ours = False
    return ours and not rfc_verify_inclusion(index, size, leaf, root, proof)


def test_tampered_inclusion_proofs_are_refused() -> None:
    roots = [merkle.root_hash(STORE_300, n) for n in range(34)]
    for size in range(1, 33):
        for index in range(size):
            proof = merkle.inclusion_proof(STORE_300, index, size)
            leaf = H(b"\x00" + LEAVES_300[index])
            for i in range(len(proof)):
                for at in (0, 31):
                    flipped = [*proof[:i], flip(proof[i], at), *proof[i + 1 :]]
                    assert inclusion_refused(leaf, index, size, flipped, roots[size])
                assert inclusion_refused(leaf, index, size, proof[:i] + proof[i + 1 :], roots[size])  # one missing
            assert inclusion_refused(leaf, index, size, [*proof, proof[-1] if proof else leaf], roots[size])  # extra
            assert inclusion_refused(leaf, index, size, [leaf, *proof], roots[size])  # extra in front
            assert inclusion_refused(flip(leaf), index, size, proof, roots[size])
            assert inclusion_refused(leaf, index, size, proof, flip(roots[size], 5))
            for other in range(size):  # a wrong index, with its own leaf or with this one
                if other != index:
                    assert inclusion_refused(leaf, other, size, proof, roots[size])
                    assert inclusion_refused(H(b"\x00" + LEAVES_300[other]), other, size, proof, roots[size])
            for other in range(1, 34):  # a wrong size, with the root of that size
                if other != size:
                    assert inclusion_refused(leaf, index, other, proof, roots[other])
            assert inclusion_refused(leaf, size, size, proof, roots[size])  # index == size


def consistency_refused(first: int, second: int, first_root: bytes, second_root: bytes, proof: list[bytes]) -> bool:
    try:
        verify_consistency(first, second, first_root, second_root, proof)
    except ProofError:
        ours = True
    else:
        ours = False
    rfc = 0 < first < second and rfc_verify_consistency(first, second, first_root, second_root, proof)
    return ours and not rfc


def test_tampered_consistency_proofs_are_refused() -> None:
    roots = [merkle.root_hash(STORE_300, n) for n in range(34)]
    for second in range(2, 33):
        for first in range(1, second):
            proof = merkle.consistency_proof(STORE_300, first, second)
            r1, r2 = roots[first], roots[second]
            for i in range(len(proof)):
                assert consistency_refused(first, second, r1, r2, [*proof[:i], flip(proof[i], 7), *proof[i + 1 :]])
                assert consistency_refused(first, second, r1, r2, proof[:i] + proof[i + 1 :])
            assert consistency_refused(first, second, r1, r2, [*proof, proof[-1]])
            assert consistency_refused(first, second, r1, r2, [r1, *proof])
            assert consistency_refused(first, second, flip(r1), r2, proof)
            assert consistency_refused(first, second, r1, flip(r2), proof)
            assert consistency_refused(second, first, r2, r1, proof)  # swapped
            for other in range(1, 34):  # a wrong size on either side, with that size's root
                if other not in (first, second):
                    if other < second:
                        assert consistency_refused(other, second, roots[other], r2, proof), (first, other, second)
                    if other > first:
                        assert consistency_refused(first, other, r1, roots[other], proof), (first, second, other)
    # sizes outside the RFC algorithm
    r5 = roots[5]
    assert consistency_refused(5, 5, r5, r5, [roots[1]])  # equal sizes need an empty proof
    assert consistency_refused(5, 5, r5, roots[4], [])  # ... and equal roots
    assert consistency_refused(0, 5, roots[0], r5, [r5])  # from the empty tree: empty proof
    assert consistency_refused(0, 5, r5, r5, [])  # ... and the empty root
    assert consistency_refused(3, 5, roots[3], r5, [])  # empty proof for 0 < first < second


def test_proofs_refuse_wrong_shapes() -> None:
    root = merkle.root_hash(STORE_300, 4)
    leaf = H(b"\x00" + LEAVES_300[0])
    proof = merkle.inclusion_proof(STORE_300, 0, 4)
    for bad in ([*proof[:-1], proof[-1][:31]], [*proof[:-1], proof[-1] + b"\x00"]):
        with pytest.raises(ProofError, match="is not 32 bytes"):
            verify_inclusion(leaf, 0, 4, bad, root)
    with pytest.raises(ProofError, match="not 32 bytes"):
        verify_inclusion(b"", 0, 1, [], b"")  # the bare RFC loop would accept this
    with pytest.raises(ProofError, match="not below the tree size"):
        verify_inclusion(leaf, 0, 0, [], root)
    with pytest.raises(ProofError, match="integer"):
        verify_inclusion(leaf, -1, 4, proof, root)
    with pytest.raises(ProofError, match="integer"):
        verify_inclusion(leaf, True, 4, proof, root)
    with pytest.raises(ProofError, match="list of hashes"):
        verify_inclusion(leaf, 0, 4, b"".join(proof), root)  # type: ignore[arg-type]
    with pytest.raises(ProofError, match="larger than the second"):
        verify_consistency(5, 4, root, root, [])


# -- reads and writes ---------------------------------------------------------------------------


def test_each_answer_is_one_read_of_log_n_nodes() -> None:
    counting = CountingStore(STORE_300)
    for size in range(1, 301):
        bound = max(1, (size - 1).bit_length())  # ceil(log2(size))
        counting.reads.clear()
        merkle.root_hash(counting, size)
        assert counting.reads == [size.bit_count()]
        for index in range(size):
            counting.reads.clear()
            merkle.inclusion_proof(counting, index, size)
            assert len(counting.reads) <= 1 and sum(counting.reads) <= 2 * bound, (index, size)
        for first in range(1, size):
            counting.reads.clear()
            merkle.consistency_proof(counting, first, size)
            assert len(counting.reads) == 1 and counting.reads[0] <= 2 * bound + 1, (first, size)


def test_inclusion_keys_are_what_a_proof_reads() -> None:
    """``inclusion_keys`` names exactly the nodes ``inclusion_proof`` asks for, so a proof built
    from them read beforehand (``FoundNodes``) is the same proof and reads nothing more; a node
    missing from them is the same IntegrityError."""
    asked: list[set[NodeKey]] = []

    class Recording:
        def nodes(self, keys: Collection[NodeKey]) -> Mapping[NodeKey, bytes]:
            asked.append(set(keys))
            return STORE_300.nodes(keys)

    for size in (1, 2, 3, 16, 17, 100, 255, 256, 300):
        for index in {0, 1 % size, size // 2, size - 2 if size > 1 else 0, size - 1}:
            asked.clear()
            proof = merkle.inclusion_proof(Recording(), index, size)
            keys = merkle.inclusion_keys(index, size)
            assert asked == ([keys] if keys else []), (index, size)
            assert merkle.inclusion_proof(merkle.FoundNodes(STORE_300.nodes(keys)), index, size) == proof
    found = dict(STORE_300.nodes(merkle.inclusion_keys(5, 100)))
    del found[min(found)]
    with pytest.raises(IntegrityError, match="is not stored"):
        merkle.inclusion_proof(merkle.FoundNodes(found), 5, 100)
    with pytest.raises(ValidationError, match="not below the tree size"):
        merkle.inclusion_keys(100, 100)


def test_append_writes_each_complete_subtree_once() -> None:
    store = MemoryNodeStore()
    counting = CountingStore(store)
    written = 0
    rng = random.Random(5)
    start = 0
    while start < 300:
        batch = LEAVES_300[start : start + rng.randrange(1, 20)]
        counting.reads.clear()
        nodes = merkle.append_leaves(counting, start, [H(b"\x00" + leaf) for leaf in batch])
        assert counting.reads == ([start.bit_count()] if start else [])  # the frontier, once
        store.write(nodes)
        written += len(nodes)
        start += len(batch)
        assert written == 2 * start - start.bit_count()  # under two nodes per leaf
        assert merkle.root_hash(store, start) == merkle.root_hash(STORE_300, start)
    assert store.nodes([(0, 299), (8, 0), (5, 8)]) == STORE_300.nodes([(0, 299), (8, 0), (5, 8)])
    assert store.nodes([(8, 1), (0, 300), (9, 0), (-1, 0)]) == {}  # incomplete subtrees are never stored


def test_one_leaf_writes_at_most_one_node_per_level() -> None:
    builder = MerkleBuilder()
    for size in range(1, 1025):
        nodes = builder.add(H(b"\x00" + size.to_bytes(4, "big")))
        index = size - 1
        trailing_ones = (index ^ (index + 1)).bit_length() - 1
        assert [key for key, _ in nodes] == [(level, index >> level) for level in range(trailing_ones + 1)]


def test_streaming_build_is_chunked_and_resumable() -> None:
    chunks = list(merkle.build_node_writes(LEAVES_300, chunk_nodes=50))
    assert all(len(chunk) < 50 + 10 for chunk in chunks) and len(chunks) > 5
    assert sum(len(c) for c in chunks) == 2 * 300 - (300).bit_count()
    # stop after 137 entries, then resume from what was stored
    store = MemoryNodeStore()
    for chunk in merkle.build_node_writes(LEAVES_300[:137]):
        store.write(chunk)
    builder = MerkleBuilder.from_store(store, 137)
    assert builder.size == 137 and builder.root() == merkle.root_hash(STORE_300, 137)
    for chunk in merkle.build_node_writes(iter(LEAVES_300[137:]), builder=builder, chunk_nodes=7):
        store.write(chunk)
    assert builder.size == 300 and merkle.root_hash(store, 300) == merkle.root_hash(STORE_300, 300)
    with pytest.raises(ValidationError, match="32 raw bytes"):
        list(merkle.build_node_writes([b"short"]))
    with pytest.raises(ValidationError, match="positive"):
        list(merkle.build_node_writes([], chunk_nodes=0))


def test_memory_store_order_and_truncate() -> None:
    store = build(LEAVES_300[:20])
    with pytest.raises(ValidationError, match="not the next one"):
        store.write({(0, 21): bytes(32)})
    with pytest.raises(ValidationError, match="32 bytes"):
        store.write({(0, 20): bytes(31)})
    assert store.size == 20
    store.truncate(13)  # a rolled-back append
    assert store.size == 13 and store.nodes([(2, 3), (3, 1), (0, 13)]) == {}
    store.write(merkle.append_leaves(store, 13, [H(b"\x00" + leaf) for leaf in LEAVES_300[13:40]]))
    assert merkle.root_hash(store, 40) == merkle.root_hash(STORE_300, 40)
    store.truncate(0)
    assert store.size == 0 and merkle.root_hash(store, 0) == H(b"")


def test_missing_nodes_and_bad_arguments() -> None:
    store = build(LEAVES_300[:10])
    with pytest.raises(IntegrityError, match="not stored") as caught:
        merkle.root_hash(store, 11)
    assert caught.value.reason == "merkle_node_missing"
    with pytest.raises(IntegrityError):
        merkle.inclusion_proof(store, 3, 12)
    with pytest.raises(ValidationError, match="not below"):
        merkle.inclusion_proof(store, 10, 10)
    with pytest.raises(ValidationError, match="larger than the second"):
        merkle.consistency_proof(store, 5, 4)
    with pytest.raises(ValidationError, match="integer"):
        merkle.root_hash(store, -1)
    assert merkle.consistency_proof(store, 0, 10) == merkle.consistency_proof(store, 10, 10) == []
    with pytest.raises(ValidationError, match="frontier"):
        MerkleBuilder(3, [bytes(32)])
    with pytest.raises(ValidationError, match="32 bytes"):
        MerkleBuilder().add(b"x")


# -- docs/FORMAT.md "Merkle tree" -----------------------------------------------------------------

FORMAT_DOC = Path(__file__).parents[2] / "docs" / "FORMAT.md"


def _format_section() -> str:
    text = FORMAT_DOC.read_text(encoding="utf-8")
    return text.split("\n## 7. Merkle tree\n", 1)[1].split("\n## ", 1)[0]


def _hex_block(section: str, title: str) -> list[bytes]:
    block = section.split(title, 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    return [bytes.fromhex(line) for line in block.split()]


def test_format_md_vectors() -> None:
    """The vectors in docs/FORMAT.md come out of the code and out of the RFC definitions."""
    section = _format_section()
    leaves = [bytes([i]) * 32 for i in range(8)]
    assert "leaf index `i` (`i` = 0 ... 7) is 32 bytes of value `i`" in section
    store = build(leaves)
    roots = dict(re.findall(r"^\| (\d+) \| `([0-9a-f]{64})` \|$", section, re.M))
    assert set(roots) == {"1", "2", "3", "7", "8"}
    for size, root in roots.items():
        assert merkle.root_hash(store, int(size)).hex() == root == rfc_mth(leaves[: int(size)]).hex()
    inclusion = _hex_block(section, "Inclusion proof of leaf index 3 in the tree of size 7")
    assert inclusion == merkle.inclusion_proof(store, 3, 7) == rfc_path(3, leaves[:7])
    consistency = _hex_block(section, "Consistency proof from size 3 to size 7")
    assert consistency == merkle.consistency_proof(store, 3, 7) == rfc_subproof(3, leaves[:7], True)


def test_planned_nodes_answer_roots_and_proofs_from_streamed_leaves_keeping_only_their_nodes() -> None:
    rng = random.Random(11)
    for _ in range(200):
        size = rng.randrange(1, 301)
        first = rng.randrange(0, size + 1)
        other = rng.randrange(0, size + 1)
        low, high = sorted((first, other))
        plan = merkle.PlannedNodes(roots=[first, size], consistency=[(first, size), (low, high)])
        for leaf in LEAVES_300[:size]:
            plan.add(leaf_hash(leaf))
        assert plan.size == size
        assert merkle.root_hash(plan, size) == rfc_mth(LEAVES_300[:size])
        assert merkle.root_hash(plan, first) == rfc_mth(LEAVES_300[:first])
        for a, b in ((first, size), (low, high)):
            expected = rfc_subproof(a, LEAVES_300[:b], True) if 0 < a < b else []
            assert merkle.consistency_proof(plan, a, b) == expected, (a, b)
        bound = max(1, (size - 1).bit_length())
        kept = len(plan.nodes([(level, index) for level in range(10) for index in range(300)]))
        assert kept <= 2 * bound + 2 * (2 * bound + 1), (size, kept)  # two roots, two proofs: O(log n)


def test_planned_nodes_refuse_what_was_not_planned() -> None:
    plan = merkle.PlannedNodes(roots=[5])
    for leaf in LEAVES_300[:9]:
        plan.add(leaf_hash(leaf))
    assert merkle.root_hash(plan, 5) == rfc_mth(LEAVES_300[:5])
    with pytest.raises(IntegrityError, match="is not stored"):
        merkle.root_hash(plan, 7)
    with pytest.raises(ValidationError, match="larger than the second"):
        merkle.PlannedNodes(consistency=[(6, 5)])
    with pytest.raises(ValidationError):
        merkle.PlannedNodes(roots=[-1])


# -- one proof for several leaves (a query page) -------------------------------------------------


def rfc_mth_with(leaves: dict[int, bytes], start: int, end: int, hashes: list[bytes], d: Sequence[bytes]) -> bytes:
    """MTH(D[start:end]) from the RFC's recursion, recording in ``hashes`` (left first) the MTH of
    every range holding none of ``leaves``: what a multi-leaf proof must carry, written here apart
    from the project's code."""
    if not any(start <= i < end for i in leaves):
        hashes.append(rfc_mth(d[start:end]))
        return hashes[-1]
    if end - start == 1:
        return leaves[start]
    k = rfc_k(end - start)
    left = rfc_mth_with(leaves, start, start + k, hashes, d)
    return H(b"\x01" + left + rfc_mth_with(leaves, start + k, end, hashes, d))


def test_multi_inclusion_proofs_are_the_rfc_ranges_and_verify() -> None:
    d = entry_hashes(300)
    store = build(d)
    rng = random.Random(14)
    for _ in range(600):
        size = rng.randrange(1, 301)
        indices = sorted(rng.sample(range(size), rng.randrange(1, min(size, 40) + 1)))
        proof = merkle.multi_inclusion_proof(store, indices, size)
        expected: list[bytes] = []
        leaves = {i: H(b"\x00" + d[i]) for i in indices}
        root = rfc_mth_with(leaves, 0, size, expected, d)
        assert proof == expected and root == merkle.root_hash(store, size)
        verify_multi_inclusion([leaves[i] for i in indices], indices, size, proof, root)
        if len(indices) == 1:  # one leaf: its RFC audit path, in the walk's order
            assert sorted(proof) == sorted(merkle.inclusion_proof(store, indices[0], size))


def test_tampered_multi_inclusion_proofs_are_refused() -> None:
    d = entry_hashes(100)
    store = build(d)
    size, indices = 100, [3, 4, 5, 40, 99]
    proof = merkle.multi_inclusion_proof(store, indices, size)
    root = merkle.root_hash(store, size)
    leaves = [H(b"\x00" + d[i]) for i in indices]
    verify_multi_inclusion(leaves, indices, size, proof, root)
    bad_cases = [
        (leaves, indices, size, [flip(proof[0]), *proof[1:]], root),
        (leaves, indices, size, proof[:-1], root),
        (leaves, indices, size, [*proof, proof[0]], root),
        (leaves, indices, size, proof, flip(root)),
        ([flip(leaves[0]), *leaves[1:]], indices, size, proof, root),
        (leaves, [2, 4, 5, 40, 99], size, proof, root),
        (leaves[::-1], indices[::-1], size, proof, root),
        (leaves, [3, 4, 4, 40, 99], size, proof, root),
        (leaves, [3, 4, 5, 40, 100], size, proof, root),
        (leaves, indices, 101, proof, root),
        (leaves[:-1], indices, size, proof, root),
        ([], [], size, [], root),
        (leaves, indices, size, [b"short", *proof[1:]], root),
    ]
    for case in bad_cases:
        with pytest.raises(ProofError):
            verify_multi_inclusion(*case)
    with pytest.raises(ValidationError):
        merkle.multi_inclusion_proof(store, [5, 3], size)
    with pytest.raises(ValidationError):
        merkle.multi_inclusion_proof(store, [], size)
    with pytest.raises(ValidationError):
        merkle.multi_inclusion_proof(store, [100], size)


def test_multi_inclusion_proof_of_a_page_is_small() -> None:
    """50 consecutive leaves of a 1,000-leaf tree: about 2 log2(n) hashes, not 50 paths of 10."""
    store = build(entry_hashes(1000))
    proof = merkle.multi_inclusion_proof(store, list(range(437, 487)), 1000)
    assert len(proof) <= 2 * 10


def test_upper_node_cache_answers_as_the_store_and_reads_only_what_it_lacks() -> None:
    """Through ``UpperNodeCache.over`` every answer is the store's own; the nodes of the kept levels
    are read once and then come from memory, lower ones are read every time; the cache never holds
    more than ``max_nodes`` nodes nor a node below its level; ``clear`` forgets them."""
    cache = merkle.UpperNodeCache(lowest_level=3, max_nodes=40)
    counting = CountingStore(STORE_300)
    rng = random.Random(3)
    for _ in range(400):
        size = rng.randint(2, 300)
        index, first = rng.randrange(size), rng.randint(1, size - 1)
        assert merkle.inclusion_proof(cache.over(counting, size), index, size) == merkle.inclusion_proof(
            STORE_300, index, size)
        assert merkle.consistency_proof(cache.over(counting, size), first, size) == merkle.consistency_proof(
            STORE_300, first, size)
        assert merkle.root_hash(cache.over(counting, size), size) == merkle.root_hash(STORE_300, size)
        assert len(cache) <= 40
    held, _ = cache.split([(level, index) for level in range(9) for index in range(300 >> level)])
    assert held and all(level >= 3 for level, _ in held)
    assert held == {key: STORE_300.nodes([key])[key] for key in held}
    # A proof whose upper nodes are all held reads only the lower ones.
    keys = merkle.inclusion_keys(0, 256)
    cache = merkle.UpperNodeCache(lowest_level=3)
    merkle.inclusion_proof(cache.over(STORE_300, 256), 0, 256)
    asked: list[set[NodeKey]] = []

    class Recording:
        def nodes(self, keys: Collection[NodeKey]) -> Mapping[NodeKey, bytes]:
            asked.append(set(keys))
            return STORE_300.nodes(keys)

    merkle.inclusion_proof(cache.over(Recording(), 256), 0, 256)
    assert asked == [{key for key in keys if key[0] < 3}]
    # Levels kept rise with the tree so that they hold about max_nodes nodes at most.
    assert cache.level_for(256) == 3
    big = merkle.UpperNodeCache(max_nodes=1 << 16)
    assert big.level_for(1 << 20) == 6 and big.level_for(1 << 14) == 4  # 32,768 nodes; lowest_level
    for size in (10**8, (1 << 30) + 5, (1 << 63) - 1):
        level = big.level_for(size)
        held_nodes = sum(size >> lvl for lvl in range(level, 64))
        assert held_nodes <= 1 << 16 < sum(size >> lvl for lvl in range(level - 2, 64))
    cache.clear()
    assert len(cache) == 0
    with pytest.raises(ValidationError):
        merkle.UpperNodeCache(max_nodes=-1)
