"""``nucleus serve --workers N``: several processes serving one ledger, as real subprocesses on
loopback, on SQLite and PostgreSQL.

Appends go through connections held by each worker (the test finds which process accepted each
connection), concurrently; afterwards every record is present once, the chain verifies and every
checkpoint the workers issued (one per append: interval 0) is signed and matches the tree.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from nucleus_core import create_ledger
from nucleus_core.checkpoint import NoteSigner, write_key_file
from nucleus_core.testing import postgres
from nucleus_core.tlog_verify import parse_vkey, verify_checkpoint

from .test_serve import Served, clean_env, start

TOKEN = "dev:oid:acme:user:writer"
WORKERS = 2
APPENDS_PER_CONNECTION = 15

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds socket owners in /proc")


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _connection_inode(server_port: int, client_port: int) -> str | None:
    """The inode of the server side of the loopback connection from ``client_port``."""
    want_local, want_remote = f"{server_port:04X}", f"{client_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], fields[9]
        if local.endswith(f":{want_local}") and remote.endswith(f":{want_remote}"):
            return inode
    return None


def _children(parent: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(parent)], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]


def _worker_pids(parent: int) -> list[int]:
    """The worker processes (multiprocessing also starts a resource tracker, which is not one)."""
    workers = []
    for pid in _children(parent):
        with contextlib.suppress(OSError):
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                workers.append(pid)
    return workers


class Connection:
    """One keep-alive HTTP connection, and the worker process that accepted it."""

    def __init__(self, served: Served, workers: list[int]) -> None:
        self.client = httpx.Client(base_url=served.url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=60)
        assert self.client.get("/health").status_code == 200  # opens the connection
        self.worker: int | None = None
        for stream in self.client._transport._pool.connections:  # type: ignore[attr-defined]
            sock = stream._connection._network_stream.get_extra_info("socket")
            inode = _connection_inode(served.port, sock.getsockname()[1])
            self.worker = next((pid for pid in workers if inode in _socket_inodes(pid)), None)


@pytest.fixture
def processes() -> Iterator[list[Served]]:
    """Servers started by a test; at teardown the workers are killed before their parent (they
    hold the pipes its output is read from)."""
    started: list[Served] = []
    yield started
    for served in started:
        if served.proc.poll() is None:
            for pid in _children(served.proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            served.proc.kill()
            served.proc.communicate()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A storage URL of a database made for one test (dropped afterwards)."""
    from urllib.parse import quote

    from psycopg.conninfo import conninfo_to_dict

    with postgres.temporary_database("nucleus_workers") as dsn:
        p = conninfo_to_dict(dsn)
        auth = quote(str(p.get("user", "postgres")), safe="")
        if p.get("password"):
            auth += ":" + quote(str(p["password"]), safe="")
        yield f"postgresql://{auth}@{p.get('host', '127.0.0.1')}:{p.get('port', 5432)}/{p['dbname']}"


@pytest.fixture
def connections() -> Iterator[list[Connection]]:
    made: list[Connection] = []
    yield made
    for conn in made:
        conn.client.close()


def one_per_worker(served: Served, made: list[Connection]) -> list[Connection]:
    """Open connections until each worker holds one (the kernel hands accepts to either)."""
    workers = _worker_pids(served.proc.pid)
    assert len(workers) == WORKERS, workers
    chosen: dict[int, Connection] = {}
    for _ in range(200):
        conn = Connection(served, workers)
        made.append(conn)
        if conn.worker is not None and conn.worker not in chosen:
            chosen[conn.worker] = conn
        if len(chosen) == WORKERS:
            return list(chosen.values())
    raise AssertionError(f"connections reached only workers {sorted(chosen)} of {workers}")


def append_through(conns: list[Connection], per_connection: int) -> list[str]:
    """``per_connection`` single appends and one batch of 5 on each connection, all at once."""
    ids: list[str] = []
    errors: list[str] = []
    barrier = threading.Barrier(len(conns))

    def work(n: int, conn: Connection) -> None:
        mine = [f"w{n}-{i}" for i in range(per_connection)]
        batch = [f"w{n}-batch-{i}" for i in range(5)]
        barrier.wait()
        for record_id in mine:
            r = conn.client.post("/entries", json={"id": record_id, "stream": "s", "timestamp": 1, "payload": {}})
            if r.status_code != 201:
                errors.append(f"{r.status_code} {r.text}")
        records = [{"id": i, "stream": "s", "timestamp": 1, "payload": {"n": n}} for i in batch]
        r = conn.client.post("/entries/batch", json={"records": records})
        if r.status_code != 201:
            errors.append(f"{r.status_code} {r.text}")
        ids.extend(mine + batch)

    threads = [threading.Thread(target=work, args=(n, c)) for n, c in enumerate(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return ids


def config_file(tmp_path: Path, storage: str, ledger_id: str) -> tuple[Path, NoteSigner]:
    signer = NoteSigner.generate(f"test.invalid/{ledger_id}")
    key = tmp_path / "checkpoint.key"
    write_key_file(key, signer)
    config = tmp_path / "nucleus.toml"
    config.write_text(
        f'[ledger]\nid = "{ledger_id}"\nstorage = "{storage}"\nadmins = ["oid:acme:user:writer"]\n'
        f'[ledger.checkpoint]\norigin = "{signer.name}"\nkey_files = ["{key}"]\nkey_env = ""\ninterval = 0\n'
        '[plugins."auth.dev"]\n'
    )
    return config, signer


def check_served_ledger(
    served: Served, conns: list[Connection], storage: str, ledger_id: str, signer: NoteSigner
) -> None:
    ids = append_through(conns, APPENDS_PER_CONNECTION)
    # Reads through either worker see the other's writes.
    for conn in conns:
        for record_id in ids:
            assert conn.client.get(f"/records/{record_id}").status_code == 200
        assert conn.client.get("/verify").json()["ok"] is True
    code, err = served.stop()
    assert code == 0, err
    assert f"with {WORKERS} worker processes" in err and "Traceback" not in err
    with create_ledger(id=ledger_id, storage=storage, plugins=["auth.dev"], environment="development") as ledger:
        entries = [e for e in ledger.storage.iter_entries() if e.stream == "s"]
        assert sorted(e.record_id for e in entries) == sorted(ids)  # each present once
        assert ledger.verify().ok
        size = ledger.tree_size()
        verifier = parse_vkey(signer.vkey)
        issued = 0
        for n in range(1, size + 1):
            note = ledger.storage.checkpoint_store().get(n)
            if note is None:
                continue
            checkpoint = verify_checkpoint(note, [verifier], origin=signer.name)
            assert checkpoint.size == n and checkpoint.root_hash == ledger.root_hash(n)
            issued += 1
        assert issued >= len(ids) // 2  # interval 0: (nearly) one per write, from both workers


def test_two_workers_on_sqlite(tmp_path: Path, processes: list[Served], connections: list[Connection]) -> None:
    storage = f"sqlite:///{tmp_path / 'books.db'}"
    config, signer = config_file(tmp_path, storage, "books")
    served = start(
        processes, ["--config", str(config), "--workers", str(WORKERS)], tmp_path, clean_env(NUCLEUS_ENV="development")
    )
    check_served_ledger(served, one_per_worker(served, connections), storage, "books", signer)


def test_two_workers_on_postgres(
    tmp_path: Path, processes: list[Served], connections: list[Connection], postgres_url: str
) -> None:
    ledger_id = f"w{uuid.uuid4().hex[:10]}"
    config, signer = config_file(tmp_path, postgres_url, ledger_id)
    served = start(
        processes, ["--config", str(config), "--workers", str(WORKERS)], tmp_path, clean_env(NUCLEUS_ENV="development")
    )
    check_served_ledger(served, one_per_worker(served, connections), postgres_url, ledger_id, signer)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--workers", "0"], "--workers"),
        (["--workers", "-2"], "--workers"),
        (["--workers", "two"], "--workers"),
        (["--workers", "100000"], "--workers"),
        (["--ledger", "memory://", "--workers", "2"], "lives in this process's memory"),
        (["--config", "nucleus.toml"], "server.workers must be an integer from 1 to 256, got 0"),
    ],
)
def test_bad_workers_refused(tmp_path: Path, args: list[str], needle: str) -> None:
    config = tmp_path / "nucleus.toml"
    config.write_text("[server]\nworkers = 0\n")
    result = subprocess.run(
        [sys.executable, "-m", "nucleus_core", "serve", "--plugin", "auth.dev", "--port", "0", *args],
        cwd=tmp_path,
        env=clean_env(NUCLEUS_ENV="development"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and needle in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == [config]  # nothing created


def test_worker_count_defaults() -> None:
    """The default is the number of cores, or one process when witnesses are configured (each would
    submit its own checkpoints); an explicit --workers is taken as given; memory storage is one."""
    from types import SimpleNamespace

    from nucleus_server.cli import default_workers, worker_count
    from nucleus_server.config import structure_config

    def ledger(persistent: bool, witnessing: object = None) -> object:
        return SimpleNamespace(storage=SimpleNamespace(persistent=persistent, url="x"), witnessing=witnessing)

    auto = structure_config({})
    two = structure_config({"server": {"workers": 2}})
    assert worker_count(auto, ledger(True)) == default_workers()
    assert worker_count(auto, ledger(True, witnessing=object())) == 1
    assert worker_count(two, ledger(True, witnessing=object())) == 2
    assert worker_count(auto, ledger(False)) == 1
