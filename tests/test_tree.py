"""The ledger's Merkle tree through the Ledger API, on memory, SQLite and PostgreSQL: roots equal
pymerkle's (an independent RFC 9162 implementation), every proof verifies with
``nucleus_core.tlog_verify``, inclusion proofs are reads, bad sizes are clear errors, the tree is
built for ledgers written without it, and verification names a tampered node."""

from __future__ import annotations

import random
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymerkle
import pytest
from nucleus_storage_postgres import postgres_storage
from nucleus_storage_sqlite import sqlite_storage

from nucleus_core import MemoryStorage, Record, RequestContext, create_ledger, hookimpl, open_ledger
from nucleus_core.access import AuthenticatedPolicy
from nucleus_core.errors import ConfigurationError, IntegrityError, ValidationError
from nucleus_core.merkle import MemoryNodeStore, root_hash
from nucleus_core.specs import AclProviderSpec
from nucleus_core.testing.postgres import drop_schema, temporary_database
from nucleus_core.tlog_verify import leaf_hash, verify_consistency, verify_inclusion
from nucleus_core.tree import DerivedLevelsStore, InclusionProof, build_tree, check_tree

CTX = RequestContext(oid="oid:test:user:alice", source="dev")
OTHER = RequestContext(oid="oid:test:user:bob", source="dev")


def rec(i: int, stream: str = "s") -> Record:
    return Record(id=f"r{i:05d}", stream=stream, timestamp=1_700_000_000_000 + i, payload={"i": i})


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    with temporary_database("nucleus_tree") as dsn:
        yield dsn


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Callable[[], Any]]]:
    """(name, factory of unopened backends over the same data)."""
    if request.param == "memory":
        memory = MemoryStorage()
        yield "memory", lambda: memory
    elif request.param == "sqlite":
        yield "sqlite", lambda: sqlite_storage(tmp_path / "tree.db")
    else:
        dsn = request.getfixturevalue("pg_dsn")
        schema = f"t_{uuid.uuid4().hex[:12]}"
        try:
            yield "postgres", lambda: postgres_storage(dsn, schema=schema)
        finally:
            drop_schema(dsn, schema)


def entry_hashes(ledger: Any) -> list[bytes]:
    return [bytes.fromhex(e.hash) for e in ledger.storage.iter_entries()]


def test_roots_equal_pymerkle_and_every_proof_verifies(backend: tuple[str, Callable[[], Any]]) -> None:
    _, make = backend
    rng = random.Random(13)
    with create_ledger(id="tree", storage=make()) as ledger:
        n = 0
        while n < 300:
            size = rng.choice([1, 1, 3, 16, 40])
            ledger.append_batch([rec(n + i) for i in range(size)], CTX)
            n += size
        hashes = entry_hashes(ledger)
        reference = pymerkle.InmemoryTree(algorithm="sha256")
        for h in hashes:
            reference.append_entry(h)
        roots = {size: ledger.root_hash(size) for size in range(1, n + 1)}
        assert all(roots[size] == reference.get_root(size) for size in roots)
        assert ledger.root_hash() == roots[n] and ledger.tree_size() == n
        for _ in range(60):
            size = rng.randint(1, n)
            seq = rng.randint(1, size)
            by_seq = ledger.inclusion_proof(seq, size, CTX)
            by_hash = ledger.inclusion_proof(hashes[seq - 1].hex(), size, CTX)
            assert by_seq == by_hash and isinstance(by_seq, InclusionProof)
            assert by_seq.to_json() == {"leaf_index": seq - 1, "tree_size": size,
                                        "hashes": [h.hex() for h in by_seq.hashes]}
            verify_inclusion(leaf_hash(hashes[seq - 1]), by_seq.leaf_index, size, list(by_seq.hashes), roots[size])
            old = rng.randint(1, size)
            proof = ledger.consistency_proof(old, size, CTX)
            assert proof.to_json() == {"from": old, "to": size, "hashes": [h.hex() for h in proof.hashes]}
            verify_consistency(old, size, roots[old], roots[size], list(proof.hashes))


def test_bad_sizes_are_clear_validation_errors(backend: tuple[str, Callable[[], Any]]) -> None:
    _, make = backend
    with create_ledger(id="tree", storage=make()) as ledger:
        ledger.append_batch([rec(i) for i in range(10)], CTX)
        cases: list[tuple[Callable[[], object], str]] = [
            (lambda: ledger.inclusion_proof(1, 0, CTX), "tree_size must be at least 1, not 0"),
            (lambda: ledger.inclusion_proof(1, 11, CTX), r"tree_size 11 is larger than the Merkle tree \(10 entries\)"),
            (lambda: ledger.inclusion_proof(1, "5", CTX), "tree_size must be an integer, not str"),
            (lambda: ledger.inclusion_proof(1, True, CTX), "tree_size must be an integer, not bool"),
            (lambda: ledger.inclusion_proof(7, 5, CTX), "entry 7 is not in the tree of 5 entries"),
            (lambda: ledger.inclusion_proof(0, 5, CTX), "seq must be at least 1"),
            (lambda: ledger.inclusion_proof("zz", 5, CTX), "64 lowercase hex"),
            (lambda: ledger.inclusion_proof(2.0, 5, CTX), "seq \\(an integer\\) or its hash"),  # type: ignore[arg-type]
            (lambda: ledger.consistency_proof(0, 5, CTX), "old_size must be at least 1, not 0"),
            (lambda: ledger.consistency_proof(6, 5, CTX), "old_size 6 is larger than new_size 5"),
            (lambda: ledger.consistency_proof(1, 12, CTX), "new_size 12 is larger than the Merkle tree"),
            (lambda: ledger.root_hash(11), "size 11 is larger than the Merkle tree"),
            (lambda: ledger.root_hash(-1), "size must be at least 0"),
        ]
        for call, message in cases:
            with pytest.raises(ValidationError, match=message):
                call()
        assert ledger.root_hash(0) == root_hash(MemoryNodeStore(), 0)
        assert ledger.consistency_proof(4, 4, CTX).hashes == ()
        assert ledger.inclusion_proof(10**6, 10, CTX) is None  # no such entry: like get()


class _Private(AuthenticatedPolicy):
    """Alice reads everything; others read nothing in the stream ``secret``."""

    def can_read(self, entry: Any, context: RequestContext) -> bool:
        return context.oid == CTX.oid or entry.stream != "secret"


class _PrivateAcl:
    @hookimpl
    def nucleus_register_acl_providers(self) -> list[AclProviderSpec]:
        return [AclProviderSpec(name="private", factory=lambda _context: _Private())]


def test_an_inclusion_proof_is_a_read_of_the_entry(backend: tuple[str, Callable[[], Any]]) -> None:
    """On every backend (the SQL ones read the entry and the proof's nodes together)."""
    _, make = backend
    with create_ledger(id="tree", storage=make(), plugins=[_PrivateAcl()]) as ledger:
        # Persistent storage records the ledger's plugins first: seqs from the entries.
        public, secret, last = ledger.append_batch([rec(0), rec(1, "secret"), rec(2)], CTX)
        n = ledger.tree_size()
        assert n == last.seq and secret.seq == public.seq + 1
        assert ledger.inclusion_proof(secret.seq, n, CTX) is not None
        # Bob cannot read the secret entry: the same answer as for an entry that does not exist, as get() gives.
        assert ledger.get(secret.hash, OTHER) is None
        assert ledger.inclusion_proof(secret.seq, n, OTHER) is None
        assert ledger.inclusion_proof(secret.hash, n, OTHER) is None
        assert ledger.inclusion_proof("0" * 64, n, OTHER) is None
        assert ledger.inclusion_proof(n + 1, n, OTHER) is None
        assert ledger.inclusion_proof(public.seq, n, OTHER) is not None
        # Beyond the tree asked for: refused only to whom may read the entry, None to others.
        with pytest.raises(ValidationError, match=f"entry {last.seq} is not in the tree of {secret.seq} entries"):
            ledger.inclusion_proof(last.seq, secret.seq, OTHER)
        assert ledger.inclusion_proof(secret.seq, public.seq, OTHER) is None
        with pytest.raises(ValidationError, match=f"entry {secret.seq} is not in the tree of {public.seq} entries"):
            ledger.inclusion_proof(secret.seq, public.seq, CTX)
        # Consistency proofs reveal no record content: anyone with the read scope.
        assert ledger.consistency_proof(1, 3, OTHER).hashes
        with pytest.raises(Exception, match="scope"):
            ledger.inclusion_proof(1, 3, RequestContext(oid="oid:test:user:carol", source="dev", scopes=("write",)))


def test_storage_without_a_tree_refuses_proofs() -> None:
    class NoTree:
        """MemoryStorage's contract without its tree: the capability is optional."""

        def __init__(self) -> None:
            self._inner = MemoryStorage()
            self.url, self.persistent = "notree://", False

        def __getattr__(self, name: str) -> Any:
            if name.startswith("merkle") or name in ("iter_merkle_nodes", "iter_entry_hashes", "extensions"):
                raise AttributeError(name)
            return getattr(self._inner, name)

        def open(self, ledger_id: str, *, read_only: bool = False, create: bool = True) -> None:
            self._inner.open(ledger_id, read_only=read_only, create=create)

        def write(self) -> Any:
            return self._inner.write()

    with create_ledger(id="tree", storage=NoTree()) as ledger:
        ledger.append(rec(0), CTX)
        assert ledger.verify().ok
        for call in (ledger.tree_size, ledger.root_hash, lambda: ledger.consistency_proof(1, 1, CTX)):
            with pytest.raises(ConfigurationError, match="notree:// keeps no Merkle tree"):
                call()


def test_a_ledger_without_its_tree_gets_it_built_on_open(backend: tuple[str, Callable[[], Any]]) -> None:
    """As every ledger written before the tree: the tree is built by the next writable open."""
    name, make = backend
    with create_ledger(id="tree", storage=make()) as ledger:
        ledger._keep_tree = False
        ledger.append_batch([rec(i) for i in range(100)], CTX)
        assert ledger.tree_size() == 0
        if name == "memory":  # nothing to reopen: the same build, directly
            seen: list[tuple[int, int]] = []
            assert build_tree(ledger.storage, chunk_entries=30, progress=lambda d, t: seen.append((d, t))) == 100
            assert seen == [(30, 100), (60, 100), (90, 100), (100, 100)]
            assert check_tree(ledger.storage) is None
            return
    if name != "memory":  # a read-only open builds nothing and refuses sizes beyond the tree
        with open_ledger(id="tree", storage=make(), verify_on_open=False) as ledger:
            assert ledger.tree_size() == 0
            with pytest.raises(ValidationError, match="open the ledger writable once to build the rest"):
                ledger.consistency_proof(1, 100, CTX)
    seen = []
    with open_ledger(id="tree", storage=make(), tree_progress=lambda d, t: seen.append((d, t))) as ledger:
        assert seen == [(100, 100)]
        assert ledger.tree_size() == 100
        reference = pymerkle.InmemoryTree(algorithm="sha256")
        for h in entry_hashes(ledger):
            reference.append_entry(h)
        assert ledger.root_hash() == reference.get_root(100)
        ledger.append(rec(100), CTX)
        assert ledger.verify().ok and ledger.tree_size() == 101


def test_derived_levels_read_a_bounded_number_of_entry_hashes() -> None:
    """Below the stored levels, each answer reads at most 3 * 2**min_level entry hashes, in at most
    three seq ranges, in the one read that also fetches the stored nodes."""
    from nucleus_core import merkle

    hashes = [bytes([i % 256, i // 256]) * 16 for i in range(1, 2001)]
    full = MemoryNodeStore()
    builder = merkle.MerkleBuilder()
    for h in hashes:
        full.write(builder.add(leaf_hash(h)))
    reads: list[tuple[int, int]] = []

    def read(keys: Any, ranges: Any) -> Any:
        assert all(level >= 4 for level, _ in keys)
        assert all(first <= last for first, last in ranges), ranges
        seqs = [seq for first, last in ranges for seq in range(first, last + 1)]
        reads.append((len(ranges), len(seqs)))
        return full.nodes(keys), {seq: hashes[seq - 1] for seq in seqs if seq <= len(hashes)}

    store = DerivedLevelsStore(4, read)
    rng = random.Random(3)
    for _ in range(300):
        size = rng.randint(1, 2000)
        reads.clear()
        assert merkle.root_hash(store, size) == merkle.root_hash(full, size)
        old = rng.randint(1, size)
        assert merkle.consistency_proof(store, old, size) == merkle.consistency_proof(full, old, size)
        index = rng.randrange(size)
        assert merkle.inclusion_proof(store, index, size) == merkle.inclusion_proof(full, index, size)
        assert len(reads) <= 3 and all(runs <= 3 and count <= 3 * 16 for runs, count in reads), reads


def test_derived_levels_of_many_proofs_nested_or_not_and_with_hashes_missing() -> None:
    """The lower nodes of a multi-proof (disjoint subtrees) and of several proofs together (a key
    inside another) are the tree's own; a node with one of its leaves' entry hashes missing or not 32
    bytes is left out, the others still answered; the seq ranges read are merged runs."""
    from nucleus_core import merkle
    from nucleus_core.tree import DerivedLevelsRead

    hashes = {seq: bytes([seq % 256, seq // 256]) * 16 for seq in range(1, 1001)}
    full = MemoryNodeStore()
    builder = merkle.MerkleBuilder()
    for seq in range(1, 1001):
        full.write(builder.add(leaf_hash(hashes[seq])))
    low_keys = [(level, index) for level in range(4) for index in range(1000 >> level)]
    rng = random.Random(5)
    for _ in range(50):
        keys = set(rng.sample(low_keys, 40)) | {(4, 3), (6, 1)}
        plan = DerivedLevelsRead(keys, 4)
        seqs = {seq for level, index in plan.derived for seq in range((index << level) + 1, ((index + 1) << level) + 1)}
        assert [seq for first, last in plan.ranges for seq in range(first, last + 1)] == sorted(seqs)
        assert all(b[0] > a[1] + 1 for a, b in zip(plan.ranges, plan.ranges[1:], strict=False))
        stored = full.nodes(plan.stored)
        assert plan.nodes(stored, hashes) == full.nodes(keys)
        gone = rng.choice(sorted(seqs))
        partial = {seq: h for seq, h in hashes.items() if seq != gone}
        if rng.random() < 0.5:
            partial[gone] = b"short"
        expected = {key: value for key, value in full.nodes(keys).items()
                    if key[0] >= 4 or not (key[1] << key[0]) < gone <= (key[1] + 1) << key[0]}
        assert plan.nodes(stored, partial) == expected
    nested = DerivedLevelsRead({(3, 0), (1, 0), (0, 5), (2, 9)}, 4)
    assert nested._nested() and nested.nodes({}, hashes) == full.nodes({(3, 0), (1, 0), (0, 5), (2, 9)})
    # A multi-proof's keys are disjoint: the fast path; its answer is the full store's.
    indices = list(range(3, 1000, 20))
    asked: list[Any] = []

    class Recording:
        def nodes(self, keys: Any) -> Any:
            asked.append(set(keys))
            return full.nodes(keys)

    proof = merkle.multi_inclusion_proof(Recording(), indices, 1000)
    plan = DerivedLevelsRead(asked[0], 4)
    assert not plan._nested()
    assert merkle.multi_inclusion_proof(merkle.FoundNodes(plan.nodes(full.nodes(plan.stored), hashes)),
                                        indices, 1000) == proof


def _sqlite_tamper(path: Path, sql: str, *params: object) -> None:
    db = sqlite3.connect(path)
    with db:
        db.execute(sql, params)
    db.close()


def test_verify_names_a_tampered_missing_or_extra_node(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    with create_ledger(id="tree", storage=sqlite_storage(path)) as ledger:
        ledger.append_batch([rec(i) for i in range(100)], CTX)
    db = sqlite3.connect(path)
    (original,) = db.execute("SELECT hash FROM nucleus_merkle WHERE node = 3").fetchone()
    db.close()
    # Node 3 is (level 4, index 2) (after (4, 0), (4, 1), (5, 0)): entries 33-48, completed by entry 48.
    _sqlite_tamper(path, "UPDATE nucleus_merkle SET hash = zeroblob(32) WHERE node = 3")
    with pytest.raises(IntegrityError, match="entry 48: the Merkle tree node at level 4, index 2 does not match"):
        open_ledger(id="tree", storage=sqlite_storage(path))
    with open_ledger(id="tree", storage=sqlite_storage(path), verify_on_open=False) as ledger:
        report = ledger.verify()
        assert not report.ok and report.first_bad_seq == 48 and "level 4, index 2" in (report.reason or "")
    _sqlite_tamper(path, "DELETE FROM nucleus_merkle WHERE node = 3")
    with pytest.raises(IntegrityError, match="level 4, index 2 is missing"):
        open_ledger(id="tree", storage=sqlite_storage(path))
    _sqlite_tamper(path, "INSERT INTO nucleus_merkle VALUES ('tree', 3, ?)", original)
    with open_ledger(id="tree", storage=sqlite_storage(path)) as ledger:
        assert ledger.verify().ok
    _sqlite_tamper(path, "INSERT INTO nucleus_merkle VALUES ('tree', 99, zeroblob(32))")
    with pytest.raises(IntegrityError, match="node number 99 beyond its size 100"):
        open_ledger(id="tree", storage=sqlite_storage(path), verify_on_open=True)
    _sqlite_tamper(path, "UPDATE nucleus_merkle_size SET size = 120")
    with pytest.raises(IntegrityError, match="the Merkle tree covers 120 entries but the chain has 100"):
        open_ledger(id="tree", storage=sqlite_storage(path))


def test_the_cli_draws_a_bar_only_for_a_long_build_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from nucleus_core.cli import TreeBuildBar

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for stream, calls, drawn in ((Terminal(), [(8192, 20000), (16384, 20000), (20000, 20000)], True),
                                 (Terminal(), [(500, 500)], False), (io.StringIO(), [(8192, 20000)], False)):
        monkeypatch.setattr("sys.stderr", stream)
        bar = TreeBuildBar()
        for done, total in calls:
            bar(done, total)
        assert ("building the Merkle tree" in stream.getvalue()) == drawn
        if drawn:
            assert "20000/20000" in stream.getvalue()


# A ledger records its plugins only on persistent storage: the backend fixture without memory.
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_every_write_path_extends_the_tree_in_its_transaction(backend: tuple[str, Callable[[], Any]]) -> None:
    """The ledger's own records (the ``_ledger`` record of its plugins, a released plugin) are
    entries like any other: the tree covers them as soon as they commit, not at the next append."""
    from nucleus_core import release_plugin

    _, make = backend
    with create_ledger(id="paths", storage=make(), plugins=["ual"]) as ledger:
        assert ledger.length() == 1  # the _ledger record naming the UAL, written at creation
        assert ledger.tree_size() == 1
        assert ledger.root_hash() == root_hash(_store_of(entry_hashes(ledger)), 1)
    release_plugin("ual", context=CTX, id="paths", storage=make())
    with open_ledger(id="paths", storage=make()) as ledger:
        assert ledger.length() == 2 and ledger.tree_size() == 2
        assert ledger.root_hash() == root_hash(_store_of(entry_hashes(ledger)), 2)


def _store_of(hashes: list[bytes]) -> MemoryNodeStore:
    from nucleus_core.merkle import append_leaves

    store = MemoryNodeStore()
    store.write(append_leaves(store, 0, [leaf_hash(h) for h in hashes]))
    return store


def test_a_tree_that_shrank_under_a_running_ledger_refuses_sizes_beyond_it(tmp_path: Path) -> None:
    """Proofs at a size already seen skip the size read (trees only grow); when the database is put
    back to an older copy under a running ledger, a proof beyond the stored tree is still refused
    as a fresh ledger refuses it (ValidationError naming the size), not as a tampered node."""
    path = tmp_path / "shrunk.db"
    ledger = create_ledger(id="shrunk", storage=sqlite_storage(path))
    try:
        ledger.append_batch([rec(i) for i in range(40)], CTX)
        assert ledger.tree_size() == 40
        assert ledger.consistency_proof(5, 40).second == 40
        with sqlite3.connect(path) as db:  # an older copy of the ledger, 20 entries, in its place
            db.execute("DELETE FROM nucleus_entries WHERE seq > 20")
            db.execute("DELETE FROM nucleus_merkle")
            db.execute("UPDATE nucleus_merkle_size SET size = 20")
        calls: list[Callable[[], object]] = [
            lambda: ledger.consistency_proof(5, 40),
            lambda: ledger.root_hash(40),
            lambda: ledger.inclusion_proof(3, 40, CTX),
            lambda: ledger.inclusion_proofs([3, 4], 40, CTX),
        ]
        for call in calls:
            with pytest.raises(ValidationError, match="larger than the Merkle tree"):
                call()
    finally:
        ledger.close()


def test_proofs_follow_a_database_put_back_and_grown_again_under_a_running_ledger(tmp_path: Path) -> None:
    """The upper nodes the ledger keeps in memory are another history's once its database is put
    back to an older copy and grown again with other entries: the ledger sees the shorter chain at
    its next write, forgets them, and serves proofs of the stored tree (as a fresh open does)."""
    path = tmp_path / "t.db"
    with create_ledger(id="tree", storage=sqlite_storage(path)) as ledger:
        ledger.append_batch([rec(i) for i in range(64)], CTX)
        backup = sqlite3.connect(tmp_path / "backup.db")
        live = sqlite3.connect(path)
        live.backup(backup)
        ledger.append_batch([rec(i) for i in range(64, 128)], CTX)
        assert ledger.inclusion_proof(100, 128, CTX) is not None
        assert len(ledger._node_cache) > 0
        backup.backup(live)  # the older copy put back into the live file
        backup.close()
        live.close()
        ledger.append_batch([rec(i) for i in range(1064, 1128)], CTX)  # other entries at 65..128
        with open_ledger(id="tree", storage=sqlite_storage(path)) as fresh:
            root = fresh.root_hash(128)
            assert ledger.root_hash(128) == root
            for seq in (1, 64, 65, 100, 128):
                proof = ledger.inclusion_proof(seq, 128, CTX)
                assert proof is not None and proof == fresh.inclusion_proof(seq, 128, CTX)
                entry = fresh.storage.get_by_seq(seq)
                assert entry is not None
                verify_inclusion(leaf_hash(bytes.fromhex(entry.hash)), seq - 1, 128, list(proof.hashes), root)
