"""A verifying client: RemoteLedger given the ledger's checkpoint verifier key checks every
checkpoint and entry the server sends, keeps the last checkpoint it verified in a file, and refuses
the server once it is put back on an older copy of its database (a rollback).

    pip install -r requirements-server.txt
    python examples/verifying_client.py
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from nucleus_server.client import RemoteLedger, RollbackError

from nucleus_core import Record
from nucleus_core.checkpoint import read_key_file

workdir = Path(tempfile.mkdtemp())  # --dev keeps ./nucleus.db and its checkpoint key here
alice_token = "dev:oid:example:user:alice"  # noqa: S105 - a development token, accepted only in --dev mode


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(  # noqa: S603 - our own interpreter and fixed arguments
        [sys.executable, "-m", "nucleus_core", "serve", "--dev", "--port", str(port), "--log-level", "warning"],
        cwd=workdir,
        env={**os.environ, "NUCLEUS_ENV": "development"},
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):  # wait until it answers
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                return server, url
        except httpx.TransportError:
            time.sleep(0.1)
    server.terminate()
    sys.exit("the server did not start")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    server.wait(60)


def record(i: int) -> Record:
    return Record(id=f"note-{i}", stream="notes", timestamp=1_763_942_400_000 + i, payload={"i": i})


server, url = start_server()
try:
    # In a deployment the operator hands out the verifier key; `nucleus serve --dev` keeps its key
    # beside its database (and prints the verifier key at startup).
    vkey = read_key_file(workdir / "nucleus.db.checkpoint.key").vkey
    options = {"token": alice_token, "ledger_id": "default", "checkpoint_vkeys": [vkey]}
    state = workdir / "trusted.checkpoint"
    with RemoteLedger(url, trusted_state=state, **options) as ledger:  # type: ignore[arg-type]
        ledger.append_batch([record(i) for i in range(3)])
        print("verified", [e.record.id for e in ledger.query({"stream": "notes"})])
        # The operator's backup, taken now (a consistent copy of the open database).
        with sqlite3.connect(workdir / "nucleus.db") as live, sqlite3.connect(workdir / "backup.db") as copy:
            live.backup(copy)
        ledger.append_batch([record(i) for i in range(3, 6)])
        trusted = ledger.refresh()
        print("trusted checkpoint: size", trusted.size, "kept in", state.name)
finally:
    stop_server(server)

# The server comes back on the older copy, under the same key.
os.replace(workdir / "backup.db", workdir / "nucleus.db")
for suffix in ("-wal", "-shm"):
    (workdir / f"nucleus.db{suffix}").unlink(missing_ok=True)
server, url = start_server()
try:
    with RemoteLedger(url, trusted_state=state, **options) as ledger:  # type: ignore[arg-type]
        try:
            ledger.query({"stream": "notes"})
        except RollbackError as err:
            print("refused:", err)
            print(f"rollback: trusted {err.trusted_size}, presented {err.presented_size}")
        else:
            sys.exit("a rolled-back server was trusted")
finally:
    stop_server(server)
