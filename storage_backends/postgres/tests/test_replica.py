"""A ledger on a real PostgreSQL streaming replica (DEPLOYMENT.md, "Read replicas for queries").

The module fixture builds two clusters of its own in a temporary directory: a primary (``initdb``,
``wal_level=replica``) and a hot standby made from it with ``pg_basebackup -R``, each on a free
loopback port, and waits until the standby streams. Nothing touches the machine's own server.
PostgreSQL refuses to run as root, so under root the server programs run as the ``postgres`` OS
user. Without the server programs the tests are skipped with the reason, unless
``NUCLEUS_REQUIRE_POSTGRES=1`` (CI), in which case they fail. ``NUCLEUS_PG_BINDIR`` names the
directory of ``initdb`` and ``pg_ctl`` when neither ``pg_config --bindir`` nor the usual install
locations find them.

Lag is made deterministic by pausing replay on the standby (``pg_wal_replay_pause()``): what the
primary commits meanwhile is streamed but not applied, so the replica's ledger must still show the
old length and head, and serve a prefix of the primary's chain.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import psycopg
import pytest
from nucleus_storage_postgres import postgres_storage

from nucleus_core import LedgerNotFoundError, ReadOnlyLedgerError, create_ledger, open_ledger
from nucleus_core.ledger import Ledger
from nucleus_core.records import Entry
from nucleus_core.testing import make_context, make_record
from nucleus_core.testing.postgres import REQUIRE_ENV

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

BINDIR_ENV = "NUCLEUS_PG_BINDIR"
PROGRAMS = ("initdb", "pg_ctl", "pg_basebackup")
SERVER_USER = "postgres"
WAIT = 60.0  # seconds any wait for the clusters may take before the test fails


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1: PostgreSQL tests must not be skipped)")
    pytest.skip(reason)


def _bindir() -> Path:
    """The directory holding initdb, pg_ctl and pg_basebackup."""
    candidates: list[str] = []
    if os.environ.get(BINDIR_ENV):
        candidates.append(os.environ[BINDIR_ENV])
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            candidates.append(subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                             check=True, timeout=10).stdout.strip())
    # Debian and Ubuntu keep each major version apart; the newest first.
    candidates.extend(sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                             if Path(p).parent.name.isdigit() else 0, reverse=True))
    on_path = shutil.which("initdb")
    if on_path is not None:
        candidates.append(str(Path(on_path).parent))
    for candidate in candidates:
        if all((Path(candidate) / name).is_file() for name in PROGRAMS):
            return Path(candidate)
    _unavailable(f"PostgreSQL server programs ({', '.join(PROGRAMS)}) not found; set {BINDIR_ENV}")
    raise AssertionError("not reached")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@attrs.define
class Cluster:
    """One PostgreSQL server of the test's own."""

    name: str
    data: Path
    port: int
    log: Path

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres connect_timeout=5"

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> Any:
        """The first column of the first row of ``query`` (autocommit, a connection of its own)."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cursor = conn.execute(query, params)  # type: ignore[arg-type]
            row = cursor.fetchone() if cursor.description is not None else None
        return None if row is None else row[0]


class Servers:
    """Runs the server programs, as the ``postgres`` OS user when this process is root."""

    def __init__(self, bindir: Path, root: Path) -> None:
        self.bindir = bindir
        self.root = root
        self.as_user: dict[str, Any] = {}
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam(SERVER_USER)
            except KeyError:
                _unavailable(f"running as root and there is no {SERVER_USER!r} OS user to run PostgreSQL as")
            os.chown(root, user.pw_uid, user.pw_gid)
            self.as_user = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

    def run(self, program: str, *args: str) -> None:
        done = subprocess.run(
            [str(self.bindir / program), *args], capture_output=True, text=True, timeout=WAIT,
            cwd=self.root, check=False, **self.as_user,
        )
        if done.returncode != 0:
            raise AssertionError(f"{program} {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    def start(self, cluster: Cluster) -> None:
        try:
            self.run("pg_ctl", "-D", str(cluster.data), "-l", str(cluster.log), "-w", "-t", str(int(WAIT)), "start")
        except AssertionError as err:
            log = cluster.log.read_text() if cluster.log.exists() else "(no log)"
            raise AssertionError(f"{err}\n{cluster.name} log:\n{log}") from None

    def stop(self, cluster: Cluster) -> None:
        if (cluster.data / "postmaster.pid").exists():
            with contextlib.suppress(AssertionError, subprocess.SubprocessError):
                self.run("pg_ctl", "-D", str(cluster.data), "-m", "immediate", "-w", "stop")


def _configure(data: Path, port: int, socket_dir: Path, extra: str = "") -> None:
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(
            f"\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{socket_dir}'\n"
            "wal_level = replica\nmax_wal_senders = 4\nhot_standby = on\n"
            # A test cluster: durability across a machine crash is not what is tested here.
            "fsync = off\nsynchronous_commit = local\nshared_buffers = 16MB\nmax_connections = 40\n" + extra
        )


def _wait(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {WAIT:.0f} s waiting for {what}")
        time.sleep(0.02)


@attrs.define
class Replication:
    primary: Cluster
    standby: Cluster

    def caught_up(self) -> None:
        """Wait until the standby has replayed everything the primary has written so far."""
        target = self.primary.sql("SELECT pg_current_wal_lsn()::text")
        self.replayed(target)

    def replayed(self, lsn: str) -> None:
        _wait(f"the standby to replay up to {lsn}",
              lambda: bool(self.standby.sql("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))))

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Replay paused on the standby for the block (it still receives the WAL), resumed after."""
        self.standby.sql("SELECT pg_wal_replay_pause()")
        _wait("replay to pause", lambda: self.standby.sql("SELECT pg_get_wal_replay_pause_state()") == "paused")
        try:
            yield
        finally:
            self.standby.sql("SELECT pg_wal_replay_resume()")


@pytest.fixture(scope="module")
def replication() -> Iterator[Replication]:
    bindir = _bindir()
    root = Path(tempfile.mkdtemp(prefix="nucleus-replica-"))
    servers = Servers(bindir, root)
    primary = Cluster("primary", root / "primary", _free_port(), root / "primary.log")
    standby = Cluster("standby", root / "standby", _free_port(), root / "standby.log")
    try:
        servers.run("initdb", "-D", str(primary.data), "-U", "postgres", "--auth=trust", "--no-sync",
                    "--no-instructions", "-E", "UTF8")
        _configure(primary.data, primary.port, root)
        servers.start(primary)
        servers.run("pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
                    "-D", str(standby.data), "-R", "-X", "stream", "-c", "fast", "--no-sync")
        # The standby's own port; the primary_conninfo that -R wrote stays in postgresql.auto.conf.
        _configure(standby.data, standby.port, root)
        servers.start(standby)
        assert standby.sql("SELECT pg_is_in_recovery()") is True
        _wait("the standby to stream",
              lambda: primary.sql("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") == 1)
        yield Replication(primary, standby)
    finally:
        servers.stop(standby)
        servers.stop(primary)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def ledger_id(request: pytest.FixtureRequest) -> str:
    return request.node.name.removeprefix("test_").replace("_", "-")[:60]


def _primary_ledger(replication: Replication, ledger_id: str) -> Ledger:
    return create_ledger(id=ledger_id, storage=postgres_storage(replication.primary.dsn, pool_size=2))


def _replica_ledger(replication: Replication, ledger_id: str) -> Ledger:
    return open_ledger(id=ledger_id, storage=postgres_storage(replication.standby.dsn, pool_size=2))


def _seed(replication: Replication, ledger_id: str, count: int) -> list[Entry]:
    """A new ledger of ``count`` entries on the primary, replayed by the standby."""
    with _primary_ledger(replication, ledger_id) as primary:
        entries = primary.append_batch([make_record(i) for i in range(count)], make_context())
    replication.caught_up()
    return entries


def test_replica_serves_reads_and_verification_and_refuses_writes(replication: Replication, ledger_id: str) -> None:
    ctx = make_context()
    entries = _seed(replication, ledger_id, 30)
    with _replica_ledger(replication, ledger_id) as replica:
        assert replica.read_only and replica.storage.read_only  # type: ignore[attr-defined]
        assert replica.length() == 30 and replica.latest_hash() == entries[-1].hash
        report = replica.verify()
        assert report.ok and report.entries_checked == 30
        assert replica.get_by_id(entries[7].record.id, ctx) == entries[7]
        assert replica.query({"limit": 5}, ctx).entries == entries[:5]
        assert list(replica.iter_entries(ctx)) == entries
        with pytest.raises(ReadOnlyLedgerError) as refused:
            replica.append(make_record(99), ctx)
        message = str(refused.value)
        assert "hot standby" in message and "read replica" in message and "primary" in message
        assert f"127.0.0.1:{replication.standby.port}/" in message  # names the server, never a password
        with pytest.raises(ReadOnlyLedgerError, match="hot standby"):
            replica.append_batch([make_record(100), make_record(101)], ctx)
        assert replica.length() == 30
    with _primary_ledger(replication, ledger_id) as primary:
        assert primary.length() == 30 and primary.verify().ok


def test_a_ledger_missing_on_the_replica_is_not_created_empty(replication: Replication, ledger_id: str) -> None:
    _seed(replication, ledger_id, 1)
    storage = functools.partial(postgres_storage, replication.standby.dsn, pool_size=2)
    with pytest.raises(LedgerNotFoundError, match="none can be created there: the server is a hot standby") as made:
        create_ledger(id="no-such-ledger", storage=storage())
    with pytest.raises(LedgerNotFoundError) as opened:
        open_ledger(id="no-such-ledger", storage=storage())
    for refused in (made, opened):
        assert repr(ledger_id) in str(refused.value) and ledger_id in refused.value.ledger_ids


def test_lag_is_visible_and_the_replica_catches_up_without_reopening(
    replication: Replication, ledger_id: str
) -> None:
    ctx = make_context()
    first = _seed(replication, ledger_id, 10)
    with _primary_ledger(replication, ledger_id) as primary, _replica_ledger(replication, ledger_id) as replica:
        assert replica.length() == 10
        with replication.paused():
            later = primary.append_batch([make_record(i) for i in range(10, 25)], ctx)
            target = replication.primary.sql("SELECT pg_current_wal_lsn()::text")
            # The standby has the WAL (it streams on) but has not applied it: the lag shows as
            # its length and head, and as a replay position behind the primary's.
            _wait("the standby to receive the WAL", lambda: bool(replication.standby.sql(
                "SELECT pg_last_wal_receive_lsn() >= %s::pg_lsn", (target,))))
            assert replication.standby.sql("SELECT pg_last_wal_replay_lsn() < %s::pg_lsn", (target,))
            assert primary.length() == 25 and replica.length() == 10
            assert replica.latest_hash() == first[-1].hash != primary.latest_hash()
            served = list(replica.iter_entries(ctx))
            # A prefix of the primary's chain, never a gap or a fork.
            assert served == first == list(primary.iter_entries(ctx))[: len(served)]
            assert replica.get_by_id(later[0].record.id, ctx) is None
            assert replica.verify().ok
        replication.replayed(target)
        # The same open ledger sees the replayed entries: length and head are read from storage.
        assert replica.length() == 25 and replica.latest_hash() == primary.latest_hash()
        assert list(replica.iter_entries(ctx)) == first + later
        assert replica.verify().entries_checked == 25


class _Rollback(Exception):
    """Raised to roll the primary's open transaction back."""


def test_replica_never_sees_uncommitted_entries(replication: Replication, ledger_id: str) -> None:
    ctx = make_context()
    committed = _seed(replication, ledger_id, 5)
    with _replica_ledger(replication, ledger_id) as replica:
        # The append runs as a savepoint of a transaction that stays open on the primary.
        with (
            pytest.raises(_Rollback),
            _primary_ledger(replication, ledger_id) as writer,
            writer.storage.write(),  # type: ignore[attr-defined]
        ):
            pending = writer.append_batch([make_record(i) for i in range(5, 12)], ctx)
            assert [e.seq for e in pending] == list(range(6, 13))
            # A commit by another session flushes the WAL, the open transaction's inserts
            # included, and the standby replays past them.
            replication.primary.sql("CREATE TABLE IF NOT EXISTS wal_marker (n int)")
            replication.primary.sql("INSERT INTO wal_marker VALUES (1)")
            replication.caught_up()
            assert replication.standby.sql("SELECT count(*) FROM wal_marker") >= 1
            assert replica.length() == 5 and replica.latest_hash() == committed[-1].hash
            assert all(replica.get_by_id(e.record.id, ctx) is None for e in pending)
            assert list(replica.iter_entries(ctx)) == committed
            raise _Rollback
        replication.caught_up()
        assert replica.length() == 5 and list(replica.iter_entries(ctx)) == committed
        with _primary_ledger(replication, ledger_id) as primary:
            again = primary.append_batch([make_record(i) for i in range(5, 12)], ctx)
        replication.caught_up()
        assert replica.length() == 12 and list(replica.iter_entries(ctx)) == committed + again
        assert replica.verify().ok
