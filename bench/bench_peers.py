"""Nucleus next to the Python libraries a team would pick instead, measured in one run.

    pip install -r bench/requirements-peers.txt
    python bench/bench_peers.py [--batches 20] [--singles 300] [--rounds 3] [--durability normal|full]
                                [--singles-durability full|normal]

Contenders, each on its own SQLite file in WAL mode, all starting from the same Python dicts
(~300-byte, 10-field records), so Nucleus's figure includes building each ``Record`` and the
peers' include ``json.dumps``:

- raw ``sqlite3``: ``executemany`` of (id, stream, json) rows, one transaction per batch: the limit;
- pymerkle 7 ``SqliteTree.append_entries`` (a Merkle tree of the JSON documents);
- eventsourcing 9.5 ``SQLiteApplicationRecorder.insert_events`` (stored events with a notification log);
- Nucleus ``append_batch`` (hash chain, Merkle tree, indexes) at the chosen durability.

Workloads: batch append (1,000 per transaction) and single durable appends (one per transaction,
``synchronous=FULL`` where the contender lets one choose it). Rounds are interleaved, the order of
contenders rotating each round; the table gives each contender's best and worst round and the
ratio of Nucleus to the best peer of the same round.
"""

from __future__ import annotations

import abc
import argparse
import json
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from nucleus_storage_sqlite import sqlite_storage

from nucleus_core import Record, RequestContext, create_ledger

CTX = RequestContext(oid="oid:bench:user:runner", source="dev")
BATCH = 1000


def documents(count: int, prefix: str) -> list[dict[str, object]]:
    return [
        {
            "id": f"{prefix}-{i:08d}",
            "stream": f"stream-{i % 20}",
            "timestamp": 1_700_000_000_000 + i,
            "payload": {
                "n": i,
                "subject": f"oid:bench:user:u{i % 97}",
                "amount": i % 1000,
                "currency": "EUR",
                "kind": "transfer",
                "text": "lorem ipsum dolor " * 8,
            },
            "meta": {"batch": i // BATCH, "source": "bench"},
        }
        for i in range(count)
    ]


class Contender(abc.ABC):
    name = ""

    @abc.abstractmethod
    def batch(self, docs: list[dict[str, object]]) -> None: ...

    @abc.abstractmethod
    def single(self, doc: dict[str, object]) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...


class RawSqlite(Contender):
    name = "raw sqlite3"

    def __init__(self, path: Path, synchronous: str) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={synchronous}")
        self.db.execute("CREATE TABLE docs (seq INTEGER PRIMARY KEY, id TEXT UNIQUE, stream TEXT, body TEXT)")

    def batch(self, docs: list[dict[str, object]]) -> None:
        rows = [(d["id"], d["stream"], json.dumps(d)) for d in docs]
        self.db.execute("BEGIN")
        self.db.executemany("INSERT INTO docs (id, stream, body) VALUES (?, ?, ?)", rows)
        self.db.execute("COMMIT")

    def single(self, doc: dict[str, object]) -> None:
        row = (doc["id"], doc["stream"], json.dumps(doc))
        self.db.execute("INSERT INTO docs (id, stream, body) VALUES (?, ?, ?)", row)

    def close(self) -> None:
        self.db.close()


class Pymerkle(Contender):
    name = "pymerkle SqliteTree"

    def __init__(self, path: Path, synchronous: str) -> None:
        from pymerkle import SqliteTree

        self.tree = SqliteTree(str(path), algorithm="sha256")
        self.tree.con.execute("PRAGMA journal_mode=WAL")
        self.tree.con.execute(f"PRAGMA synchronous={synchronous}")

    def batch(self, docs: list[dict[str, object]]) -> None:
        self.tree.append_entries([json.dumps(d).encode() for d in docs])

    def single(self, doc: dict[str, object]) -> None:
        self.tree.append_entries([json.dumps(doc).encode()])

    def close(self) -> None:
        self.tree.con.close()


class Eventsourcing(Contender):
    name = "eventsourcing insert_events"

    def __init__(self, path: Path, synchronous: str) -> None:
        from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

        self.datastore = SQLiteDatastore(str(path))
        self.recorder = SQLiteApplicationRecorder(self.datastore)
        self.recorder.create_table()
        # eventsourcing opens its own pooled connections and offers no synchronous setting: it runs
        # with SQLite's default (FULL) in WAL mode, so ``synchronous`` is not applied here.
        del synchronous
        self.topic = "bench:Recorded"

    def _events(self, docs: list[dict[str, object]]) -> list[object]:
        from eventsourcing.persistence import StoredEvent

        return [StoredEvent(uuid.uuid4(), 1, self.topic, json.dumps(d).encode()) for d in docs]

    def batch(self, docs: list[dict[str, object]]) -> None:
        self.recorder.insert_events(self._events(docs))  # type: ignore[arg-type]

    def single(self, doc: dict[str, object]) -> None:
        self.recorder.insert_events(self._events([doc]))  # type: ignore[arg-type]

    def close(self) -> None:
        self.datastore.close()


class Nucleus(Contender):
    name = "Nucleus append_batch"

    def __init__(self, path: Path, durability: str) -> None:
        self.ledger = create_ledger(id="bench", storage=sqlite_storage(path, durability=durability))  # type: ignore[arg-type]

    def batch(self, docs: list[dict[str, object]]) -> None:
        self.ledger.append_batch([Record(**d) for d in docs], CTX)  # type: ignore[arg-type]

    def single(self, doc: dict[str, object]) -> None:
        self.ledger.append(Record(**doc), CTX)  # type: ignore[arg-type]

    def close(self) -> None:
        self.ledger.close()


def make_all(work: Path, tag: str, durability: str) -> list[Contender]:
    synchronous = "FULL" if durability == "full" else "NORMAL"
    return [
        RawSqlite(work / f"{tag}-raw.db", synchronous),
        Pymerkle(work / f"{tag}-pymerkle.db", synchronous),
        Eventsourcing(work / f"{tag}-es.db", synchronous),
        Nucleus(work / f"{tag}-nucleus.db", durability),
    ]


def timed(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=20, help="batches of 1,000 per contender per round")
    parser.add_argument("--singles", type=int, default=300, help="single appends per contender per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--durability", choices=("normal", "full"), default="normal", help="of the batch workload")
    parser.add_argument(
        "--singles-durability", choices=("normal", "full"), default="full",
        help="of the single appends (normal: no fsync per commit, which leaves each contender's own cost per "
        "append; eventsourcing stays at FULL, it has no setting)",
    )
    args = parser.parse_args()

    results: dict[str, dict[str, list[float]]] = {"batch": {}, "single": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for rnd in range(args.rounds):
            batch_set = make_all(work, f"b{rnd}", args.durability)
            single_set = make_all(work, f"s{rnd}", args.singles_durability)
            shift = rnd % len(batch_set)
            order = list(range(len(batch_set)))
            order = order[shift:] + order[:shift]
            for i in order:
                contender = batch_set[i]
                docs = documents(args.batches * BATCH, f"r{rnd}")
                chunks = [docs[k : k + BATCH] for k in range(0, len(docs), BATCH)]
                seconds = timed(lambda c=contender, ch=chunks: [c.batch(x) for x in ch] and None)
                results["batch"].setdefault(contender.name, []).append(len(docs) / seconds)
                contender.close()
            for i in order:
                contender = single_set[i]
                docs = documents(args.singles, f"s{rnd}")
                seconds = timed(lambda c=contender, d=docs: [c.single(x) for x in d] and None)
                results["single"].setdefault(contender.name, []).append(len(docs) / seconds)
                contender.close()
            print(f"round {rnd + 1}/{args.rounds} done", file=sys.stderr)

    titles = {
        "batch": f"batch append, {BATCH} per transaction (durability {args.durability})",
        "single": f"single durable append (synchronous={args.singles_durability.upper()})",
    }
    print("| workload | raw sqlite3 | pymerkle | eventsourcing | Nucleus | Nucleus / best peer (per round) |")
    print("|---|---|---|---|---|---|")
    for workload, by_name in results.items():
        names = ["raw sqlite3", "pymerkle SqliteTree", "eventsourcing insert_events", "Nucleus append_batch"]

        def span(name: str, by_name: dict[str, list[float]] = by_name) -> str:
            rates = by_name[name]
            return f"{min(rates) / 1000:.1f}-{max(rates) / 1000:.1f}k/s"

        ratios = [by_name[names[3]][r] / max(by_name[names[1]][r], by_name[names[2]][r]) for r in range(args.rounds)]
        ratio_text = ", ".join(f"{x:.2f}" for x in ratios)
        print(f"| {titles[workload]} | {' | '.join(span(n) for n in names)} | {ratio_text} |")
    for workload, by_name in results.items():
        pairs = zip(by_name["Nucleus append_batch"], by_name["raw sqlite3"], strict=True)
        raw = ", ".join(f"{n / r:.2f}" for n, r in pairs)
        print(f"Nucleus / raw sqlite3 per round, {titles[workload]}: {raw}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
