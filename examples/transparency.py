"""Transparency end to end on loopback: a ledger server that signs checkpoints, three witnesses that
cosign them (c2sp.org/tlog-witness), and a client that accepts a checkpoint only when the ledger's
key signed it and 2 of the 3 witnesses cosigned it. Then one witness stops (still 2 of 3), and a
second one (the latest checkpoint no longer meets the policy: refused). Last, the verifying
`RemoteLedger` with the same policy: it returns only entries proven in a checkpoint that 2 of the
witnesses cosigned.

    pip install -r requirements-server.txt nucleus-witness
    python examples/transparency.py

Everything is a real process started with the `nucleus` command, as in a deployment: the keys
(`nucleus checkpoint keygen`, `nucleus witness keygen`), the witnesses (`nucleus witness serve`)
and the ledger (`nucleus serve`, in development mode for its dev tokens).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

import httpx
from nucleus_server.client import RemoteLedger

from nucleus_core import Record, tlog_verify
from nucleus_core.cosignature import CosignaturePolicy, CosignaturePolicyError
from nucleus_core.errors import InclusionProofError

ORIGIN = "ledger.example.com/main"  # the ledger's name in its checkpoints (and its key's name)
ENV = {k: v for k, v in os.environ.items() if not k.startswith("NUCLEUS_")}
workdir = Path(tempfile.mkdtemp())
processes: list[subprocess.Popen[str]] = []


def nucleus(*args: str) -> str:
    """Run a `nucleus` command in the work folder; its standard output."""
    done = subprocess.run(  # noqa: S603 - our own interpreter and fixed arguments
        [sys.executable, "-m", "nucleus_core", *args], cwd=workdir, env=ENV, capture_output=True, text=True,
        check=True,
    )
    return done.stdout.strip()


def start(*args: str, ready: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    """Start a long-running `nucleus` command; the process and its first stderr line holding ``ready``."""
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and fixed arguments
        [sys.executable, "-m", "nucleus_core", *args], cwd=workdir, env=env or ENV,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    processes.append(process)
    assert process.stderr is not None
    for line in process.stderr:
        if ready in line:
            threading.Thread(target=drain, args=(process.stderr,), daemon=True).start()
            return process, line
    sys.exit(f"'nucleus {' '.join(args)}' did not start")


def drain(stream: IO[str]) -> None:
    """Read a process's stderr to its end (a full pipe would block it)."""
    for _line in stream:
        pass


def stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


try:
    # 1. Keys: the ledger's checkpoint key, and one cosignature key per witness.
    log_vkey = nucleus("checkpoint", "keygen", "checkpoint.key", "--name", ORIGIN)
    witnesses = []
    for i in (1, 2, 3):
        vkey = nucleus("witness", "keygen", f"w{i}.key", "--name", f"w{i}.example.org")
        (workdir / f"w{i}.toml").write_text(
            f'[witness]\nkey_file = "w{i}.key"\nstate = "w{i}.db"\nport = 0\nlog_level = "warning"\n\n'
            f'[[logs]]\norigin = "{ORIGIN}"\nvkeys = ["{log_vkey}"]\n',
            encoding="utf-8",
        )
        process, line = start("witness", "serve", "--config", f"w{i}.toml", ready="listening on")
        url = line.rsplit("listening on ", 1)[1].strip() + "/"
        witnesses.append({"name": f"w{i}.example.org", "vkey": vkey, "url": url, "process": process})
        print(f"witness w{i}.example.org at {url}")

    # 2. The ledger, configured with the three witnesses and a policy of 2 of them.
    port = free_port()
    tables = "".join(
        f'\n[[ledger.checkpoint.witnesses]]\nurl = "{w["url"]}"\nvkey = "{w["vkey"]}"\n' for w in witnesses
    )
    (workdir / "nucleus.toml").write_text(
        f'[ledger]\nid = "main"\nstorage = "sqlite:///main.db"\n\n'
        f'[ledger.checkpoint]\norigin = "{ORIGIN}"\nkey_files = ["checkpoint.key"]\nkey_env = ""\n'
        f"interval = 0.2\nwitness_quorum = 2\n{tables}\n"
        f'[server]\nport = {port}\nlog_level = "error"\n',
        encoding="utf-8",
    )
    start("serve", "--config", "nucleus.toml", "--dev", ready="listening on", env={**ENV, "NUCLEUS_ENV": "development"})
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):  # wait until it answers
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        sys.exit("the ledger server did not start")

    # 3. The client: trusts the ledger's key and the three witnesses' keys, got from their operators.
    policy = CosignaturePolicy.from_vkeys(2, [w["vkey"] for w in witnesses])
    trusted = [tlog_verify.parse_vkey(log_vkey)]
    http = httpx.Client(base_url=url, timeout=30)

    def witnessed(size: int) -> None:
        """Wait until every witness was sent the checkpoint of ``size`` (the ledger asks them in the background)."""
        for _ in range(600):
            status = http.get("/checkpoint/witnesses").json()["witnesses"]
            # Each witness cosigned it, or was sent it and gave no cosignature.
            if all(w["cosigned_size"] == size or (w["submitted_size"] == size and w["last_error"]) for w in status):
                return
            time.sleep(0.05)
        sys.exit(f"the witnesses were not asked about size {size}")

    def check(note: str) -> str:
        """What a client requiring the policy says of the checkpoint ``note``."""
        checkpoint = tlog_verify.verify_checkpoint(note, trusted, origin=ORIGIN)  # the ledger's own signature
        try:
            found = policy.check(note)
        except CosignaturePolicyError as err:
            return f"size {checkpoint.size}: refused ({err.found} of the {err.required} cosignatures required)"
        names = ", ".join(c.verifier.name for c in found)
        return f"size {checkpoint.size}: accepted, cosigned by {len(found)} of 3 ({names})"

    with RemoteLedger(url, token="dev:oid:example:user:alice") as ledger:  # noqa: S106 - a development token
        def grow(count: int) -> int:
            ledger.append_batch(
                [Record(id=f"n{time.monotonic_ns()}-{i}", stream="notes", timestamp=1_767_225_600_000, payload={"i": i})
                 for i in range(count)]
            )
            size = ledger.length()
            while tlog_verify.verify_checkpoint(http.get("/checkpoint").text, trusted).size < size:
                time.sleep(0.05)  # the ledger issues the checkpoint of the batch within its interval
            witnessed(size)
            return size

        grow(3)
        print("all witnesses up:", check(http.get("/checkpoint").text))
        grow(2)
        print("all witnesses up:", check(http.get("/checkpoint").text))

        stop(witnesses[2]["process"])
        grow(1)
        print("one witness down:", check(http.get("/checkpoint").text))

        stop(witnesses[1]["process"])
        grow(1)
        print("two witnesses down:", check(http.get("/checkpoint").text))
        print("latest that meets the policy:", check(http.get("/checkpoint", params={"cosigned": 2}).text))

    # 4. The verifying client requiring the same policy: every entry it returns is proven to be in
    #    a checkpoint that 2 of the witnesses cosigned; one that none such covers yet is refused.
    with RemoteLedger(
        url, token="dev:oid:example:user:alice", origin=ORIGIN, checkpoint_vkeys=[log_vkey],  # noqa: S106
        witness_policy=policy, checkpoint_wait=0.5,
    ) as verifying:
        entries = verifying.query({"stream": "notes", "limit": 6}).entries
        print(f"verifying client: entries 1-{entries[-1].seq} proven in a checkpoint 2 witnesses cosigned")
        try:
            verifying.query({"stream": "notes", "limit": 10})
        except InclusionProofError as err:  # the page is refused whole: no unverified entry is returned
            print(f"verifying client: a page with entry {err.seq} refused, no such checkpoint covers it yet")
finally:
    for process in processes:
        if process.poll() is None:
            stop(process)
