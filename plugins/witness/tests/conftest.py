"""Shared pieces of the witness's tests: real Nucleus ledgers on SQLite that make the checkpoints
(an honest history, and forks of it: copies of its database grown differently, under the same
key), witnesses served by uvicorn on loopback (in this process, or as ``nucleus witness serve``
subprocesses), and the tests' own C2SP verifier (``tests/c2sp_reference.py`` at the repository
root), which checks every cosignature."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import uvicorn
from nucleus_storage_sqlite import sqlite_storage
from nucleus_witness import Witness, WitnessApp, WitnessedLog, WitnessState
from nucleus_witness.cli import listen_socket

from nucleus_core import Record, RequestContext, create_ledger
from nucleus_core.checkpoint import CosignatureSigner, NoteSigner, write_key_file
from nucleus_core.tlog_witness import AddCheckpointRequest

ROOT = Path(__file__).resolve().parents[3]
CTX = RequestContext(oid="oid:test:user:alice", source="dev")
ORIGIN = "ledger.test/witnessed"
LEDGER_ID = "witnessed"


def _load_reference() -> ModuleType:
    path = ROOT / "tests" / "c2sp_reference.py"
    spec = importlib.util.spec_from_file_location("c2sp_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["c2sp_reference"] = module
    spec.loader.exec_module(module)
    return module


REF = _load_reference()


@pytest.fixture
def ref() -> ModuleType:
    """The tests' own C2SP verifier (not the project's code)."""
    return REF


class History:
    """A Nucleus ledger on SQLite signing checkpoints for :data:`ORIGIN` with ``signer``.
    :meth:`fork` copies its database: the copy shares every entry so far, and what either appends
    next makes the two histories differ (a split view: two databases served under one key)."""

    def __init__(self, path: Path, signer: NoteSigner, leaves: list[bytes] | None = None) -> None:
        checkpoint = {"signers": (signer,), "key_env": None, "origin": ORIGIN, "interval": 0.0}
        self.path = path
        self.signer = signer
        self.ledger = create_ledger(id=LEDGER_ID, storage=sqlite_storage(path), checkpoint=checkpoint)
        self.leaves: list[bytes] = list(leaves or [])
        self.forks: list[History] = []
        assert self.ledger.length() == len(self.leaves)

    def grow(self, count: int, tag: str = "a") -> History:
        start = len(self.leaves)
        records = [
            Record(id=f"{tag}-{i}", stream="s", timestamp=1_700_000_000_000 + i, payload={"i": i, "tag": tag})
            for i in range(start, start + count)
        ]
        entries = self.ledger.append_batch(records, CTX)
        self.leaves.extend(bytes.fromhex(e.hash) for e in entries)
        return self

    def fork(self, name: str) -> History:
        """A copy of this history's database (SQLite's backup API), opened as another ledger."""
        copy = self.path.with_name(f"history-{name}.db")
        source, target = sqlite3.connect(self.path), sqlite3.connect(copy)
        with contextlib.closing(source), contextlib.closing(target):
            source.backup(target)
        forked = History(copy, self.signer, self.leaves)
        self.forks.append(forked)
        return forked

    @property
    def size(self) -> int:
        return len(self.leaves)

    def checkpoint(self) -> str:
        """The signed checkpoint at the current size."""
        return str(self.ledger.issue_checkpoint())

    def proof(self, old: int, new: int | None = None) -> list[bytes]:
        new = self.size if new is None else new
        return [] if old == 0 else list(self.ledger.consistency_proof(old, new).hashes)

    def body(self, old: int) -> bytes:
        """The add-checkpoint body from ``old`` to the current checkpoint."""
        return AddCheckpointRequest(old_size=old, proof=tuple(self.proof(old)), checkpoint=self.checkpoint()).body()

    def close(self) -> None:
        for forked in self.forks:
            forked.close()
        self.ledger.close()


@pytest.fixture
def origin() -> str:
    """The origin of the histories' checkpoints (the log the witnesses witness)."""
    return ORIGIN


@pytest.fixture
def log_key() -> NoteSigner:
    return NoteSigner.generate(ORIGIN)


@pytest.fixture
def histories(tmp_path: Path, log_key: NoteSigner) -> Iterator[Any]:
    """``histories(name)``: a new :class:`History` (its own database file) under the log key."""
    made: list[History] = []

    def make(name: str = "a") -> History:
        history = History(tmp_path / f"history-{name}.db", log_key)
        made.append(history)
        return history

    yield make
    for history in made:
        history.close()


@pytest.fixture
def witness_key() -> CosignatureSigner:
    return CosignatureSigner.generate("witness.test/w1")


class ServedWitness:
    """A witness served by uvicorn in a thread of this process, on a loopback port chosen by the
    system; ``url`` is its submission prefix."""

    def __init__(self, witness: Witness, prefix: str = "") -> None:
        self.witness = witness
        self.sock = listen_socket("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}{prefix}"
        config = uvicorn.Config(WitnessApp(witness, prefix=prefix), lifespan="on", log_config=None, access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the witness did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


@pytest.fixture
def serve_witness(tmp_path: Path, witness_key: CosignatureSigner, log_key: NoteSigner) -> Iterator[Any]:
    """``serve_witness(state=..., logs=..., prefix=...)``: a :class:`ServedWitness` with the witness
    key, witnessing :data:`ORIGIN` under the log key unless ``logs`` says otherwise."""
    served: list[ServedWitness] = []

    def serve(
        state: Path | None = None, logs: list[WitnessedLog] | None = None, prefix: str = "", **kwargs: Any
    ) -> ServedWitness:
        if logs is None:
            logs = [WitnessedLog(origin=ORIGIN, verifiers=(log_key.verifier,))]
        witness = Witness(witness_key, logs, WitnessState(state or tmp_path / "witness.db"), **kwargs)
        s = ServedWitness(witness, prefix)
        served.append(s)
        return s

    yield serve
    for s in served:
        s.stop()


def write_config(
    tmp_path: Path, witness_key: CosignatureSigner, log_key: NoteSigner, *, port: int = 0, extra: str = ""
) -> Path:
    """A witness.toml (and its key file) in ``tmp_path`` for :data:`ORIGIN`."""
    key_file = tmp_path / "witness.key"
    if not key_file.exists():
        write_key_file(key_file, witness_key)
    config = tmp_path / "witness.toml"
    config.write_text(
        f'[witness]\nkey_file = "{key_file.as_posix()}"\nstate = "{(tmp_path / "witness.db").as_posix()}"\n'
        f'host = "127.0.0.1"\nport = {port}\nlog_level = "warning"\n{extra}\n'
        f'[[logs]]\norigin = "{ORIGIN}"\nvkeys = ["{log_key.vkey}"]\n',
        encoding="utf-8",
    )
    return config


LISTENING = re.compile(r"listening on (http://\S+)")


class WitnessProcess:
    """``nucleus witness serve --config CONFIG`` in a subprocess; ``url`` read from its stderr."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nucleus_core", "witness", "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        assert self.proc.stderr is not None
        self.lines: list[str] = []
        for line in self.proc.stderr:
            self.lines.append(line)
            match = LISTENING.search(line)
            if match:
                self.url = match.group(1)
                break
        else:
            raise AssertionError(f"the witness did not start: {''.join(self.lines)}")
        self._drain = threading.Thread(target=self._read_rest, daemon=True)
        self._drain.start()

    def _read_rest(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_dead(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> int:
        """SIGTERM (a graceful stop), then its exit status."""
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.close()

    def close(self) -> int:
        """Wait for the process (killing it if it still runs after a minute) and close its pipe."""
        try:
            code = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(60)
        self._drain.join(10)
        assert self.proc.stderr is not None
        self.proc.stderr.close()
        return code


@pytest.fixture
def witness_config(tmp_path: Path, witness_key: CosignatureSigner, log_key: NoteSigner) -> Any:
    """``witness_config(extra="")``: :func:`write_config` in the test's folder."""

    def make(extra: str = "") -> Path:
        return write_config(tmp_path, witness_key, log_key, extra=extra)

    return make


@pytest.fixture
def witness_process() -> Iterator[Any]:
    """``witness_process(config, env=None)``: a started :class:`WitnessProcess`, stopped at the end."""
    started: list[WitnessProcess] = []

    def start(config: Path, env: dict[str, str] | None = None) -> WitnessProcess:
        process = WitnessProcess(config, env)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.proc.poll() is None:
            process.proc.kill()
        process.close()
