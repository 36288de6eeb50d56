"""``nucleus audit --url`` and ``nucleus proof get --url`` against a real server on loopback, run as
subprocesses with nothing but the core's standard-library HTTP client: an honest server passes with
and without a token (without one, only the checkpoint and the consistency proof are checked); an
older copy of the database, another history under the same key and an entry changed in the
database under the running server are each refused with their exit code; a token that cannot read
every entry makes the audit incomplete; a proxy that changes a proof hash, a checkpoint byte or
an entry in transit is caught; a proof fetched over HTTP verifies offline."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nucleus_core import Ledger, Record, RequestContext
from nucleus_core.checkpoint import NoteSigner, default_origin
from nucleus_core.cli import EXIT_DENIED, EXIT_INTEGRITY, EXIT_MISMATCH

LEDGER = "http-test"
ORIGIN = default_origin(LEDGER)
ALICE = "oid:au:user:alice"
BOB = "oid:au:user:bob"


def nucleus(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NUCLEUS_")}
    return subprocess.run([sys.executable, "-m", "nucleus_core", *args], env=clean | (env or {}),
                          capture_output=True, text=True, timeout=120)


def fill(ledger: Ledger, n: int, text: str = "original") -> None:
    ctx = RequestContext(oid=ALICE, source="auth.dev")
    while ledger.length() < n:
        start = ledger.length()
        ledger.append_batch([
            Record(id=f"r{i}", stream="notes", timestamp=1_700_000_000_000 + i, payload={"i": i, "text": text})
            for i in range(start, min(start + 10, n))
        ], ctx)


def make(open_ledger: Callable[..., Ledger], signer: NoteSigner, name: str = "ledger.db") -> Ledger:
    return open_ledger("ual", name=name, admins=[ALICE],
                       checkpoint={"signers": (signer,), "key_env": None, "interval": 0})


def keep(ledger: Ledger, tmp_path: Path) -> Path:
    """The ledger's latest checkpoint, kept in a file as an auditor keeps it."""
    kept = tmp_path / "kept.txt"
    kept.write_bytes(ledger.checkpoint().encode("utf-8"))
    return kept


def served_after_keeping(
    open_ledger: Callable[..., Ledger], serve: Callable[..., Any], tmp_path: Path, kept_at: int, size: int
) -> tuple[NoteSigner, Ledger, Path, Any]:
    """A ledger of ``size`` entries served, its checkpoint at ``kept_at`` kept before it grew."""
    signer = NoteSigner.generate(ORIGIN)
    ledger = make(open_ledger, signer)
    fill(ledger, kept_at)
    kept = keep(ledger, tmp_path)
    fill(ledger, size)
    ledger.issue_checkpoint()
    return signer, ledger, kept, serve(ledger)


def audit(
    url: str, kept: Path, vkey: str, *extra: str, env: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    out = nucleus("audit", "--url", url, "--checkpoint", str(kept), "--key", vkey, "--json", *extra, env=env)
    return out.returncode, json.loads(out.stdout)


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {check["name"]: check["status"] for check in report["checks"]}


def test_an_honest_server_passes_with_and_without_a_token(
    open_ledger: Callable[..., Ledger], serve: Callable[..., Any], tmp_path: Path
) -> None:
    signer, ledger, kept, server = served_after_keeping(open_ledger, serve, tmp_path, 30, 75)
    size = ledger.tree_size()
    # No token: what an auditor without read rights can check.
    code, report = audit(server.url, kept, signer.vkey)
    assert code == 0, report
    assert statuses(report) == {
        "checkpoint": "ok", "server_checkpoint": "ok", "consistency": "ok", "entries": "skipped",
    }
    assert report["size"] == size
    # With a token that may read everything (from the environment here): every entry too.
    token = f"dev:{ALICE}"
    code, report = audit(server.url, kept, signer.vkey, env={"NUCLEUS_TOKEN": token})
    assert code == 0, report
    assert statuses(report)["entries"] == "ok" and report["ledger_id"] == LEDGER
    human = nucleus("audit", "--url", server.url, "--checkpoint", str(kept), "--key", signer.vkey, "--token", token)
    assert human.returncode == 0, human.stderr
    assert f"{size} entries fetched" in human.stdout and token not in human.stdout + human.stderr
    # A token that may read nothing of it: the entries cannot be audited (exit 10), the rest passes.
    code, report = audit(server.url, kept, signer.vkey, "--token", f"dev:{BOB}")
    assert code == EXIT_DENIED and statuses(report)["consistency"] == "ok"
    assert "did not return entry 1 of the" in report["error"]["message"]


def test_an_older_copy_and_another_history_are_refused(
    open_ledger: Callable[..., Ledger], serve: Callable[..., Any], tmp_path: Path
) -> None:
    signer = NoteSigner.generate(ORIGIN)
    ledger = make(open_ledger, signer)
    fill(ledger, 20)
    ledger.close()
    shutil.copyfile(tmp_path / "ledger.db", tmp_path / "older.db")
    ledger = make(open_ledger, signer)
    fill(ledger, 50)
    kept = keep(ledger, tmp_path)
    ledger.close()
    # The server restarted on an older copy of its database (rollback).
    older = serve(make(open_ledger, signer, name="older.db"))
    code, report = audit(older.url, kept, signer.vkey)
    assert code == EXIT_MISMATCH
    assert "holds" in report["error"]["message"] and "fewer than the" in report["error"]["message"]
    # Another history, signed with the same key: the consistency proof cannot lead to both roots.
    forked = make(open_ledger, signer, name="forked.db")
    fill(forked, 80, text="forked")
    forked.issue_checkpoint()
    other = serve(forked)
    code, report = audit(other.url, kept, signer.vkey, "--token", f"dev:{ALICE}")
    assert code == EXIT_MISMATCH and statuses(report)["consistency"] == "failed"
    assert "does not extend the kept checkpoint at size" in report["error"]["message"]
    # A server whose checkpoints another key signs: its checkpoint is refused.
    stranger = make(open_ledger, NoteSigner.generate(ORIGIN), name="stranger.db")
    fill(stranger, 60)
    stranger.issue_checkpoint()
    code, report = audit(serve(stranger).url, kept, signer.vkey)
    assert code == EXIT_MISMATCH and statuses(report)["server_checkpoint"] == "failed"
    assert "no trusted key signed the note" in report["error"]["message"]


def test_an_entry_changed_under_the_running_server_is_found(
    open_ledger: Callable[..., Ledger], serve: Callable[..., Any], tmp_path: Path
) -> None:
    signer = NoteSigner.generate(ORIGIN)
    ledger = make(open_ledger, signer)
    fill(ledger, 40)
    kept = keep(ledger, tmp_path)
    server = serve(ledger)
    db = sqlite3.connect(tmp_path / "ledger.db")
    with db:
        seq, raw = db.execute(
            "SELECT seq, canonical FROM nucleus_entries WHERE stream = 'notes' ORDER BY seq LIMIT 1 OFFSET 12"
        ).fetchone()
        db.execute("UPDATE nucleus_entries SET canonical = ? WHERE seq = ?", (raw.replace(b"orig", b"ORIG"), seq))
    db.close()
    code, report = audit(server.url, kept, signer.vkey)
    assert code == 0  # without a token the change cannot be seen: checkpoints and proofs hold no content
    code, report = audit(server.url, kept, signer.vkey, "--token", f"dev:{ALICE}")
    assert code == EXIT_INTEGRITY and report["error"]["seq"] == seq
    assert f"do not verify at entry {seq}" in report["error"]["message"]


def test_a_proof_fetched_over_http_verifies_offline(
    open_ledger: Callable[..., Ledger], serve: Callable[..., Any], tmp_path: Path
) -> None:
    signer = NoteSigner.generate(ORIGIN)
    ledger = make(open_ledger, signer)
    fill(ledger, 30)
    server = serve(ledger)
    size = ledger.tree_size()
    entry = ledger.storage.get_by_seq(size - 3)
    assert entry is not None
    bundle, checkpoint = tmp_path / "bundle.json", tmp_path / "checkpoint.txt"
    token = f"dev:{ALICE}"
    out = nucleus("proof", "get", entry.hash, "--url", server.url, "--token", token, "-o", str(bundle),
                  "--checkpoint-out", str(checkpoint))
    assert out.returncode == 0, out.stderr
    doc = json.loads(bundle.read_text(encoding="utf-8"))
    assert doc["ledger_id"] == LEDGER and doc["entry"]["hash"] == entry.hash and doc["proof"]["tree_size"] == size
    ok = nucleus("proof", "verify", "--checkpoint", str(checkpoint), "--key", signer.vkey, "--entry", str(bundle))
    assert ok.returncode == 0, ok.stderr
    by_id = nucleus("proof", "get", "--id", entry.record_id, "--url", server.url, "--token", token)
    assert json.loads(by_id.stdout) == doc
    by_seq = nucleus("proof", "get", str(entry.seq), "--url", server.url, "--token", token)
    assert by_seq.returncode == 2 and "HASH or --id" in by_seq.stderr
    unauthenticated = nucleus("proof", "get", entry.hash, "--url", server.url)
    assert unauthenticated.returncode == 10 and "--token" in unauthenticated.stderr


class TamperingProxy:
    """A loopback HTTP proxy in front of ``upstream`` that passes GET requests on (headers
    included) and hands each answer's body to ``tamper(path, body)`` before sending it back."""

    def __init__(self, upstream: str, tamper: Callable[[str, bytes], bytes]) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "accept")}
                request = urllib.request.Request(upstream + self.path, headers=headers)
                try:
                    with urllib.request.urlopen(request, timeout=30) as answer:
                        status, kind, body = answer.status, answer.headers["Content-Type"], answer.read()
                except urllib.error.HTTPError as err:
                    status, kind, body = err.code, err.headers["Content-Type"], err.read()
                body = tamper(self.path, body)
                self.send_response(status)
                self.send_header("Content-Type", kind or "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_answers_changed_in_transit_are_refused(
    open_ledger: Callable[..., Ledger], serve: Callable[..., Any], tmp_path: Path
) -> None:
    signer, _ledger, kept, server = served_after_keeping(open_ledger, serve, tmp_path, 20, 45)
    token = f"dev:{ALICE}"

    def flip_first_proof_hash(path: str, body: bytes) -> bytes:
        if not path.startswith("/proof/consistency"):
            return body
        doc = json.loads(body)
        first = doc["hashes"][0]
        doc["hashes"][0] = ("0" if first[0] != "0" else "1") + first[1:]
        return json.dumps(doc).encode()

    def change_checkpoint_byte(path: str, body: bytes) -> bytes:
        if not path.startswith("/checkpoint") or path.startswith("/checkpoint/key"):
            return body
        lines = body.split(b"\n")
        lines[1] = str(int(lines[1]) - 1).encode()  # another tree size under the same signature
        return b"\n".join(lines)

    def change_an_entry(path: str, body: bytes) -> bytes:
        return body.replace(b'"text":"original"', b'"text":"tampered"', 1) if path.startswith("/entries") else body

    cases = (
        (flip_first_proof_hash, (), EXIT_MISMATCH, "consistency"),
        (change_checkpoint_byte, (), EXIT_MISMATCH, "server_checkpoint"),
        (change_an_entry, ("--token", token), EXIT_INTEGRITY, "entries"),
    )
    for tamper, extra, expected, check in cases:
        proxy = TamperingProxy(server.url, tamper)
        try:
            code, report = audit(proxy.url, kept, signer.vkey, *extra)
        finally:
            proxy.close()
        assert code == expected, (tamper.__name__, report)
        assert statuses(report)[check] == "failed", (tamper.__name__, report)
    # Through a proxy that changes nothing, the same audit passes.
    honest = TamperingProxy(server.url, lambda _path, body: body)
    try:
        assert audit(honest.url, kept, signer.vkey, "--token", token)[0] == 0
    finally:
        honest.close()
