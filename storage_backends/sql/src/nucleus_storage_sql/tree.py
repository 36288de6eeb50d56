"""The ledger's Merkle tree in the SQL backends (the ``MerkleTreeStorage`` capability).

Two tables beside the entries, shared by the ledgers of a database like the entries table:

- ``nucleus_merkle``: ``(ledger_id, node, hash)``, primary key ``(ledger_id, node)`` (``WITHOUT
  ROWID`` in SQLite, ``hash`` a ``BLOB`` / ``bytea`` of 32 bytes). ``node`` is
  :func:`nucleus_core.tree.node_number` with ``min_level`` :data:`MIN_LEVEL`: only complete
  subtrees of ``2**4`` leaves or more are stored, about one row per 8 entries; smaller ones are
  derived from at most ``3 * 16`` entry hashes read by seq in the same statement
  (:class:`~nucleus_core.tree.DerivedLevelsStore`).
  Storing every node (two rows per entry) cost about 10% of ``append_batch(1000)``; see BENCHMARKS.md.
- ``nucleus_merkle_size``: ``(ledger_id, size)``, the number of entries the tree covers.

An inclusion proof by seq reads its entry in the same statement as its nodes
(:meth:`SqlMerkleTree.entry_and_nodes`, the ``MerkleEntryReadStorage`` capability): one round trip.

Both are written in the ledger's write transaction (the ledger calls
:meth:`SqlMerkleTree.write` from it), so entries and their nodes commit together. The tables are
created by the first writable open (recorded as component ``merkle`` in the schema-version table);
a database opened read-only before that has an empty tree.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from nucleus_core.merkle import NodeKey
from nucleus_core.records import Entry
from nucleus_core.tree import DerivedLevelsRead, DerivedLevelsStore, node_number, raw_hash

from .models import ENTRY_COLUMNS

if TYPE_CHECKING:
    from .backend import SqlStorageBackend

MERKLE_TABLE = "nucleus_merkle"
MERKLE_SIZE_TABLE = "nucleus_merkle_size"
MERKLE_COMPONENT = "merkle"
"""The key of the tree's tables in the schema-version table."""
MERKLE_VERSION = 1
MIN_LEVEL = 4
"""The lowest level stored: subtrees of 16 leaves and more."""
NODE_BATCH = 4000
"""Rows per round trip when streaming nodes or entry hashes."""


class SqlMerkleTree:
    """The tree tables of one open backend (see the module docstring)."""

    min_level = MIN_LEVEL

    def __init__(self, backend: SqlStorageBackend) -> None:
        self._backend = backend
        self._sql: dict[str, str] = {}
        self.present = False

    def prepare(self) -> None:
        """Build the statements and see whether the tables exist (called by ``open``)."""
        backend = self._backend
        q, p = backend._quote, backend.database.param
        nodes, sizes, entries = q(MERKLE_TABLE), q(MERKLE_SIZE_TABLE), q(backend._entries_table)
        lid, node, hsh, size, seq = q("ledger_id"), q("node"), q("hash"), q("size"), q("seq")
        # Identifiers are fixed or checked; every value is a bound parameter.
        self._sql = {
            "insert": f"INSERT INTO {nodes} ({lid}, {node}, {hsh}) VALUES ({p}, {p}, {p})",  # noqa: S608
            "size": f"SELECT {size} FROM {sizes} WHERE {lid} = {p}",  # noqa: S608
            "set_size": f"INSERT INTO {sizes} ({lid}, {size}) VALUES ({p}, {p}) "  # noqa: S608
            f"ON CONFLICT ({lid}) DO UPDATE SET {size} = excluded.{size}",
            "iter": f"SELECT {node}, {hsh} FROM {nodes} WHERE {lid} = {p} AND {node} >= {p} ORDER BY {node} LIMIT {p}",  # noqa: S608
            "hashes": f"SELECT {seq}, {hsh} FROM {entries} WHERE {lid} = {p} AND {seq} >= {p} ORDER BY {seq} LIMIT {p}",  # noqa: S608
            "ddl_nodes": f"CREATE TABLE IF NOT EXISTS {nodes} ({lid} VARCHAR(128) NOT NULL, {node} BIGINT NOT NULL, "
            f"{hsh} {backend.blob_type} NOT NULL, PRIMARY KEY ({lid}, {node})){backend.clustered_table}",
            "ddl_sizes": f"CREATE TABLE IF NOT EXISTS {sizes} ({lid} VARCHAR(128) PRIMARY KEY, {size} BIGINT NOT NULL)",
            # The branches of _read_with's UNION ALL (kind 2 first when there, then 0, then 1).
            "entry": f"SELECT 2, {backend.entry_columns_sql()}, CAST(NULL AS {backend.blob_type}) "  # noqa: S608
            f"FROM {entries} WHERE {lid} = {p} AND {seq} = {p}",
        }
        # Rows are (kind, number, entry hash, node hash): kind 0 a stored node, 1 the hash of an
        # entry in a seq range. Read with the entry (kind 2, its ENTRY_COLUMNS from seq on), the
        # entry's other columns come between the two hashes, NULL in the other branches. PostgreSQL
        # types a UNION column pair by pair from the left, an untyped NULL taking the other side's
        # type (text when both are NULL): the entry's branch, typed in every column (its NULL node
        # hash cast; a column a table from before format 2 lacks is NULL in every branch, so text
        # does no harm), comes first; without it the node branch, typed where the range branches are not.
        pad = " NULL," * (len(ENTRY_COLUMNS) - 2)
        for suffix, padding in (("", ""), ("+entry", pad)):
            self._sql["nodes" + suffix] = (
                f"SELECT 0, {node}, NULL,{padding} {hsh} FROM {nodes} WHERE {lid} = {p} AND {node} IN "  # noqa: S608
            )
            self._sql["seq_range" + suffix] = (
                f"SELECT 1, {seq}, {hsh},{padding} NULL FROM {entries} "  # noqa: S608
                f"WHERE {lid} = {p} AND {seq} >= {p} AND {seq} <= {p}"
            )
        db = backend.database
        self.present = db.table_exists(MERKLE_TABLE) and db.table_exists(MERKLE_SIZE_TABLE)

    @property
    def set_size_sql(self) -> str:
        """The statement that stores the tree size (parameters: ledger id, size), for a backend
        that sends it together with other writes."""
        return self._sql["set_size"]

    def ensure_tables(self) -> None:
        """Create the tables if missing (in the schema transaction; writable opens only)."""
        if self.present:
            return
        backend = self._backend
        db = backend.database
        backend._created_tables.extend(t for t in (MERKLE_TABLE, MERKLE_SIZE_TABLE) if not db.table_exists(t))
        sv: Any = backend.models.schema_version  # built per database: mypy cannot see its fields
        with backend._begin_schema():
            db.execute_sql(self._sql["ddl_nodes"])
            db.execute_sql(self._sql["ddl_sizes"])
            (
                sv.insert(component=MERKLE_COMPONENT, version=MERKLE_VERSION)
                .on_conflict(conflict_target=[sv.component], preserve=[sv.version])
                .execute()
            )
        self.present = True

    def _run(self, sql: str, params: Sequence[Any], action: str) -> list[tuple[Any, ...]]:
        backend = self._backend
        try:
            with backend._read_context():
                return list(backend._execute(sql, params).fetchall())
        except backend._errors as err:
            raise backend._wrap(err, action) from err

    # reads --------------------------------------------------------------------------------------
    def size(self) -> int:
        if not self.present:
            return 0
        rows = self._run(self._sql["size"], (self._backend.ledger_id,), "reading the Merkle tree size")
        return int(rows[0][0]) if rows else 0

    def _read_with(
        self, keys: Collection[NodeKey], ranges: Sequence[tuple[int, int]], seq: int | None
    ) -> tuple[Entry | None, dict[NodeKey, bytes], dict[int, bytes]]:
        """The entry at ``seq`` (None: not read, or absent), the stored nodes ``keys`` and the entry
        hashes of the inclusive seq ``ranges``, in one statement (a ``UNION ALL`` of one branch for
        the entry, one for the nodes and one per range: one round trip)."""
        numbers = {node_number(level, index, MIN_LEVEL): (level, index) for level, index in keys if self.present}
        ledger_id = self._backend.ledger_id
        mark = self._backend.database.param
        suffix = "" if seq is None else "+entry"
        parts: list[str] = []
        params: list[Any] = []
        if seq is not None:
            parts.append(self._sql["entry"])
            params += (ledger_id, seq)
        if numbers:
            parts.append(f"{self._sql['nodes' + suffix]}({', '.join([mark] * len(numbers))})")
            params += (ledger_id, *numbers)
        for first, last in ranges:
            parts.append(self._sql["seq_range" + suffix])
            params += (ledger_id, first, last)
        if not parts:
            return None, {}, {}
        action = "reading Merkle tree nodes and entry hashes" if seq is None else "reading an entry and its proof nodes"
        rows = self._run(" UNION ALL ".join(parts), params, action)
        entry: Entry | None = None
        nodes: dict[NodeKey, bytes] = {}
        hashes: dict[int, bytes] = {}
        for row in rows:
            kind = row[0]
            if kind == 0:
                nodes[numbers[int(row[1])]] = bytes(row[-1])
            elif kind == 1:
                raw = raw_hash(row[2])
                if raw is not None:
                    hashes[int(row[1])] = raw
            else:  # the entry's columns, in ENTRY_COLUMNS order, between the kind and the node hash
                entry = Entry.from_row(row[1:-1])
        return entry, nodes, hashes

    def _read(
        self, keys: Collection[NodeKey], ranges: Sequence[tuple[int, int]]
    ) -> tuple[dict[NodeKey, bytes], dict[int, bytes]]:
        """Stored nodes ``keys`` and the entry hashes of the inclusive seq ``ranges``, in one statement."""
        _, nodes, hashes = self._read_with(keys, ranges, None)
        return nodes, hashes

    def entry_and_nodes(self, seq: int, keys: Collection[NodeKey]) -> tuple[Entry | None, dict[NodeKey, bytes]]:
        """The entry at ``seq`` (None when absent) and the nodes among ``keys`` (every level), in one
        statement (:meth:`~nucleus_storage_sql.SqlStorageBackend.entry_and_merkle_nodes`)."""
        plan = DerivedLevelsRead(keys, MIN_LEVEL)
        entry, stored, hashes = self._read_with(plan.stored, plan.ranges, seq)
        return entry, plan.nodes(stored, hashes)

    def store(self) -> DerivedLevelsStore:
        """Every node of the tree: stored ones by number, lower ones from the entry hashes."""
        return DerivedLevelsStore(MIN_LEVEL, self._read)

    def iter_nodes(self, start: int = 0) -> Iterator[tuple[int, bytes]]:
        if not self.present:
            return
        ledger_id = self._backend.ledger_id
        while True:
            rows = self._run(self._sql["iter"], (ledger_id, start, NODE_BATCH), "reading Merkle tree nodes")
            for number, value in rows:
                yield int(number), bytes(value)
            if len(rows) < NODE_BATCH:
                return
            start = int(rows[-1][0]) + 1

    def iter_entry_hashes(self, from_seq: int = 1) -> Iterator[tuple[int, str]]:
        ledger_id = self._backend.ledger_id
        while True:
            rows = self._run(self._sql["hashes"], (ledger_id, from_seq, NODE_BATCH), "reading entry hashes")
            for seq, entry_hash in rows:
                yield int(seq), entry_hash
            if len(rows) < NODE_BATCH:
                return
            from_seq = int(rows[-1][0]) + 1

    # writes (inside the backend's write transaction) --------------------------------------------
    def write(self, size: int, nodes: Sequence[tuple[NodeKey, bytes]] | Mapping[NodeKey, bytes]) -> None:
        backend = self._backend
        ledger_id = backend.ledger_id
        items = nodes.items() if isinstance(nodes, Mapping) else nodes
        rows = [(ledger_id, node_number(level, index, MIN_LEVEL), value)
                for (level, index), value in items if level >= MIN_LEVEL]
        db = backend.database
        try:
            if rows:
                db.cursor().executemany(self._sql["insert"], rows)
            backend._execute(self._sql["set_size"], (ledger_id, size))
        except backend._errors as err:
            raise backend._wrap(err, "writing the Merkle tree") from err

