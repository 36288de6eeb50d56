"""Many writers on one ledger: processes (4 and 8), ledger instances in threads, and SIGKILL of a writer.

Every acknowledged entry must be stored exactly as acknowledged, the chain must never fork (each seq
taken once, every link valid), and nothing acknowledged may be lost.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from nucleus_storage_postgres import PostgresStorage

from nucleus_core import create_ledger
from nucleus_core.testing import make_context, make_record

pytestmark = pytest.mark.postgres

WRITER = Path(__file__).with_name("pg_writer.py")
LEDGER = "shared"


def _start_writer(
    dsn: str, schema: str, prefix: str, count: int, ack: Path, batch: int = 1, gate: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a writer process; its stderr goes to ``<ack>.err``. With ``gate`` it appends only once
    that file exists (see pg_writer.py)."""
    env = dict(os.environ)
    if gate is not None:
        env["NUCLEUS_TEST_GATE"] = str(gate)
    with open(f"{ack}.err", "wb") as err:
        return subprocess.Popen(
            [sys.executable, str(WRITER), dsn, schema, LEDGER, prefix, str(count), str(ack), str(batch)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
        )


def _open_gate_when_all_opened(procs: list[subprocess.Popen[bytes]], acks: list[Path], gate: Path) -> None:
    """Wait until every writer has opened the ledger (its ack file says so), then let them all
    append at once: on a loaded machine the opens (which verify) finish at very different times."""
    deadline = time.monotonic() + 240
    while not all(a.exists() and a.read_bytes().startswith(b"# opened") for a in acks):
        for w, p in enumerate(procs):
            assert p.poll() is None, _stderr(acks[w])
        assert time.monotonic() < deadline, "the writers did not open the ledger in time"
        time.sleep(0.01)
    gate.touch()


def _stderr(ack: Path) -> str:
    return Path(f"{ack}.err").read_text()[-2000:]


def _acks(path: Path) -> dict[str, tuple[int, str]]:
    out: dict[str, tuple[int, str]] = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            continue
        record_id, seq, entry_hash = line.split()
        out[record_id] = (int(seq), entry_hash)
    return out


def _stored(conn: psycopg.Connection, schema: str) -> dict[str, tuple[int, str]]:
    rows = conn.execute(
        f"SELECT record_id, seq, hash FROM {schema}.nucleus_entries WHERE ledger_id = %s", (LEDGER,)
    ).fetchall()
    return {r: (s, h) for r, s, h in rows}


def _check_no_fork(stored: dict[str, tuple[int, str]], acked: dict[str, tuple[int, str]]) -> None:
    seqs = sorted(s for s, _ in stored.values())
    assert seqs == list(range(1, len(seqs) + 1)), "every seq is taken exactly once"
    for record_id, (seq, entry_hash) in acked.items():
        assert stored.get(record_id) == (seq, entry_hash), f"acknowledged {record_id} lost or changed"


@pytest.mark.slow
@pytest.mark.parametrize("writers", [4, 8])
def test_writer_processes_never_fork(
    writers: int,
    tmp_path: Path,
    pg_dsn: str,
    pg_schema: str,
    pg_admin: psycopg.Connection,
    make_storage: Callable[..., PostgresStorage],
) -> None:
    per_writer = 40
    # Create the ledger first; the writers then open (and verify) it while others append.
    with create_ledger(id=LEDGER, storage=make_storage()) as ledger:
        ledger.append(make_record(0, prefix="seed"), make_context())
    procs = []
    gate = tmp_path / "go"
    for w in range(writers):
        batch = 1 if w % 2 == 0 else 5
        procs.append(_start_writer(pg_dsn, pg_schema, f"p{w}", per_writer, tmp_path / f"ack{w}", batch, gate))
    _open_gate_when_all_opened(procs, [tmp_path / f"ack{w}" for w in range(writers)], gate)

    # Meanwhile, three ledger instances in threads of this process append to the same ledger.
    errors: list[BaseException] = []
    thread_acks: dict[str, tuple[int, str]] = {}
    lock = threading.Lock()

    def thread_writer(t: int) -> None:
        try:
            with create_ledger(id=LEDGER, storage=make_storage(pool_size=2)) as mine:
                for i in range(20):
                    e = mine.append(make_record(i, prefix=f"th{t}"), make_context())
                    with lock:
                        thread_acks[e.record.id] = (e.seq, e.hash)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=thread_writer, args=(t,)) for t in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for w, p in enumerate(procs):
        assert p.wait(timeout=300) == 0, _stderr(tmp_path / f"ack{w}")
    assert not errors, errors

    acked = dict(thread_acks)
    for w in range(writers):
        acks = _acks(tmp_path / f"ack{w}")
        assert len(acks) == per_writer
        acked.update(acks)
    stored = _stored(pg_admin, pg_schema)
    assert len(stored) == 1 + writers * per_writer + 3 * 20 == len(acked) + 1
    _check_no_fork(stored, acked)
    # The writers really ran at the same time: some two of them have interleaved seq ranges.
    spans = [
        (min(s for s, _ in a.values()), max(s for s, _ in a.values()))
        for a in (_acks(tmp_path / f"ack{w}") for w in range(writers))
    ]
    assert any(lo1 < hi2 and lo2 < hi1 for i, (lo1, hi1) in enumerate(spans) for lo2, hi2 in spans[i + 1 :])
    with create_ledger(id=LEDGER, storage=make_storage()) as ledger:
        report = ledger.verify()
        assert report.ok and report.entries_checked == len(stored)


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 50])
def test_sigkill_of_a_writer_loses_nothing_acknowledged(
    batch: int,
    tmp_path: Path,
    pg_dsn: str,
    pg_schema: str,
    pg_admin: psycopg.Connection,
    make_storage: Callable[..., PostgresStorage],
) -> None:
    ack = tmp_path / "ack"
    proc = _start_writer(pg_dsn, pg_schema, "k", 1_000_000, ack, batch)
    try:
        # Kill it once it has acknowledged some entries (it is then in the middle of further appends).
        while len(_acks(ack)) < 20 * batch:
            assert proc.poll() is None, _stderr(ack)
            threading.Event().wait(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    acked = _acks(ack)
    # The killed client may have sent a whole transaction, COMMIT included (an append's last round
    # trip): the server still runs it after the client is gone. Read once the writer's transaction
    # ended, committed or not: behind the ledger's append lock.
    with pg_admin.transaction():
        pg_admin.execute(f"SELECT 1 FROM {pg_schema}.nucleus_ledgers WHERE ledger_id = %s FOR UPDATE", (LEDGER,))
        stored = _stored(pg_admin, pg_schema)
    _check_no_fork(stored, acked)
    # At most the one batch in flight when the process died committed without being acknowledged.
    assert len(acked) <= len(stored) <= len(acked) + batch
    with create_ledger(id=LEDGER, storage=make_storage()) as ledger:
        assert ledger.verify().ok
        # The dead writer's lock went with its connection: the next append goes through.
        entry = ledger.append(make_record(1, prefix="after"), make_context())
        assert entry.seq == len(stored) + 1


def test_writers_queue_on_the_ledger_row_lock(
    pg_dsn: str, pg_schema: str, make_storage: Callable[..., PostgresStorage]
) -> None:
    """While another transaction holds ledger A's row lock, A's append waits and B's does not."""
    ctx = make_context()
    with (
        create_ledger(id="a", storage=make_storage(application_name="writer-a")) as a,
        create_ledger(id="b", storage=make_storage(application_name="writer-b")) as b,
        psycopg.connect(pg_dsn) as holder,
    ):
        a.append(make_record(0), ctx)
        holder.execute(f"SELECT 1 FROM {pg_schema}.nucleus_ledgers WHERE ledger_id = 'a' FOR UPDATE")
        done: list[int] = []
        waiter = threading.Thread(target=lambda: done.append(a.append(make_record(1), ctx).seq))
        waiter.start()
        with psycopg.connect(pg_dsn, autocommit=True) as watch:
            while True:  # until the append is seen waiting for the lock
                row = watch.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE application_name = 'writer-a' AND wait_event_type = 'Lock'"
                ).fetchone()
                assert waiter.is_alive() and not done
                if row and row[0] == 1:
                    break
                threading.Event().wait(0.02)
        assert b.append(make_record(0), ctx).seq == 1  # another ledger is not blocked
        holder.rollback()
        waiter.join()
        assert done == [2]
        assert a.verify().ok and b.verify().ok
