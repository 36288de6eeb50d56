"""``nucleus audit --url`` and ``nucleus proof get --url`` against a real server on loopback, run as
subprocesses with nothing but the core's standard-library HTTP client: an honest server passes with
and without a token (without one, only the checkpoint and the consistency proof are checked); an
older copy of the database, another history under the same key and an entry changed in the
database under the running server are each refused with their exit code; a token that cannot read
every entry makes the audit incomplete; a proof fetched over HTTP verifies offline."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
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
    signer = NoteSigner.generate(ORIGIN)
    ledger = make(open_ledger, signer)
    fill(ledger, 30)
    kept = tmp_path / "kept.txt"
    kept.write_bytes(ledger.checkpoint().encode("utf-8"))
    fill(ledger, 75)
    ledger.issue_checkpoint()
    server = serve(ledger)
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
    kept = tmp_path / "kept.txt"
    kept.write_bytes(ledger.checkpoint().encode("utf-8"))
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
    kept = tmp_path / "kept.txt"
    kept.write_bytes(ledger.checkpoint().encode("utf-8"))
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
