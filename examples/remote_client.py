"""The remote client: start `nucleus serve --dev` on a free port, then use RemoteLedger exactly like
an embedded ledger (same methods, types and errors).

    pip install -r requirements-server.txt
    python examples/remote_client.py
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time

import httpx
from nucleus_server.client import RemoteLedger

from nucleus_core import DuplicateRecordError, Record

with socket.socket() as sock:
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
workdir = tempfile.mkdtemp()  # --dev keeps ./nucleus.db in the working directory
server = subprocess.Popen(  # noqa: S603 - our own interpreter and fixed arguments
    [sys.executable, "-m", "nucleus_core", "serve", "--dev", "--port", str(port), "--log-level", "warning"],
    cwd=workdir,
    env={**os.environ, "NUCLEUS_ENV": "development"},
)
url = f"http://127.0.0.1:{port}"
try:
    for _ in range(300):  # wait until it answers
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        sys.exit("the server did not start")

    alice_token = "dev:oid:example:user:alice"  # noqa: S105 - a development token, accepted only in --dev mode
    with RemoteLedger(url, token=alice_token) as ledger:
        print("connected to ledger", ledger.id, "as", ledger.whoami().oid)
        entry = ledger.append(Record(id="hello", stream="notes", timestamp=1_763_942_400_000, payload={"text": "hi"}))
        print("appended seq", entry.seq, entry.hash)
        ledger.append_batch(
            [Record(id=f"n{i}", stream="notes", timestamp=1_763_942_400_001, payload={"i": i}) for i in range(3)]
        )
        page = ledger.query({"stream": "notes", "limit": 3})
        print("first page", [e.record.id for e in page], "next", page.next_cursor)
        try:
            ledger.append(Record(id="hello", stream="notes", timestamp=1, payload={}))
        except DuplicateRecordError as err:  # the same class the embedded ledger raises
            print("refused:", err)
        report = ledger.verify()
        print("verify:", report.ok, report.entries_checked, "entries; length", ledger.length())
        assert report.ok and ledger.length() == 4
finally:
    server.terminate()
    server.wait(60)
