"""``nucleus audit`` against a database, as real subprocesses, on real SQLite files and PostgreSQL:
an honest ledger passes and is never written (the file byte for byte, the tables row for row, a
ledger whose tree is not built included); a truncated tail, a history rewritten under another key
or the same key, a tampered entry, a wrong key, a corrupt checkpoint and another log's checkpoint
each fail with their exit code, naming what and where."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nucleus_core import Record, RequestContext, create_ledger
from nucleus_core.checkpoint import NoteSigner, default_origin, sign_checkpoint
from nucleus_core.cli import EXIT_CHECKPOINT, EXIT_CONFIGURATION, EXIT_INTEGRITY, EXIT_MISMATCH, EXIT_USAGE
from nucleus_core.tree import stored_node_count

LEDGER = "audited"
ORIGIN = default_origin(LEDGER)
SIGNER = NoteSigner.generate(ORIGIN)
CTX = RequestContext(oid="oid:test:user:alice", source="dev")


def rec(i: int, text: str) -> Record:
    return Record(id=f"r{i:04d}", stream="s", timestamp=1_700_000_000_000 + i, payload={"i": i, "text": text})


class Sqlite:
    name = "sqlite"

    def __init__(self, tmp: Path) -> None:
        self.path = tmp / "ledger.db"
        self.url = f"sqlite:///{self.path}"

    def sql(self, statement: str, *params: object) -> None:
        db = sqlite3.connect(self.path)
        with db:
            db.execute(statement.replace("%s", "?"), params)
        db.close()

    def tamper_entry(self, seq: int) -> None:
        db = sqlite3.connect(self.path)
        with db:
            (raw,) = db.execute("SELECT canonical FROM nucleus_entries WHERE seq = ?", (seq,)).fetchone()
            db.execute("UPDATE nucleus_entries SET canonical = ? WHERE seq = ?", (raw.replace(b"orig", b"ORIG"), seq))
        db.close()

    def snapshot(self) -> str:
        """The file's bytes and its WAL's (a read-only connection may leave an empty WAL and the
        shared-memory index beside the file: never a frame, never a byte of the file)."""
        wal = Path(f"{self.path}-wal")
        return hashlib.sha256(self.path.read_bytes() + b"|" + (wal.read_bytes() if wal.exists() else b"")).hexdigest()

    def wipe(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)


class Postgres:
    name = "postgres"

    def __init__(self, conninfo: str) -> None:
        from psycopg.conninfo import conninfo_to_dict

        self.conninfo = conninfo
        p = conninfo_to_dict(conninfo)
        where = f"{p.get('host', '127.0.0.1')}:{p.get('port', 5432)}"
        self.url = f"postgresql://{p.get('user', 'postgres')}@{where}/{p['dbname']}"

    def sql(self, statement: str, *params: object) -> None:
        import psycopg

        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute(statement, params)  # type: ignore[arg-type]

    def tamper_entry(self, seq: int) -> None:
        self.sql(
            "UPDATE nucleus_entries SET canonical = "
            "convert_to(replace(convert_from(canonical, 'UTF8'), 'orig', 'ORIG'), 'UTF8') WHERE seq = %s",
            seq,
        )

    def snapshot(self) -> str:
        """Every row of every table of the database, hashed: any write changes it."""
        import psycopg

        digest = hashlib.sha256()
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            tables = conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1"
            ).fetchall()
            for (table,) in tables:
                rows = conn.execute(f'SELECT t::text FROM "{table}" t ORDER BY 1').fetchall()
                digest.update(f"{table}:{rows!r}".encode())
        return digest.hexdigest()

    def wipe(self) -> None:
        self.sql("DROP SCHEMA public CASCADE")
        self.sql("CREATE SCHEMA public")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        yield Sqlite(tmp_path)
        return
    pytest.importorskip("nucleus_storage_postgres")
    from nucleus_core.testing.postgres import temporary_database

    with temporary_database("nucleus_audit") as conninfo:
        yield Postgres(conninfo)


def build(db: Any, n: int, *, text: str = "original", signer: NoteSigner = SIGNER) -> None:
    """Entries up to ``n``, in commits of 20; a checkpoint is issued after each commit."""
    config = {"signers": (signer,), "key_env": None, "interval": 0}
    with create_ledger(id=LEDGER, storage=db.url, checkpoint=config) as ledger:
        for start in range(ledger.length(), n, 20):
            ledger.append_batch([rec(i, text) for i in range(start, min(start + 20, n))], CTX)


def keep(db: Any, tmp: Path, size: int) -> Path:
    """The checkpoint the ledger issued at ``size``, kept in a file by ``nucleus checkpoint get``."""
    path = tmp / f"kept-{size}.txt"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NUCLEUS_")}
    out = subprocess.run(
        [sys.executable, "-m", "nucleus_core", "checkpoint", "get", "--ledger", db.url, "--ledger-id", LEDGER,
         "--size", str(size), "-o", str(path)],
        env=clean, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return path


def audit(db: Any, checkpoint: Path, *extra: str, key: str = SIGNER.vkey) -> tuple[int, dict[str, Any], str]:
    """``nucleus audit DB --json``: exit code, report, stderr."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NUCLEUS_")}
    out = subprocess.run(
        [sys.executable, "-m", "nucleus_core", "audit", db.url, "--ledger-id", LEDGER,
         "--checkpoint", str(checkpoint), "--key", key, "--json", *extra],
        env=clean, capture_output=True, text=True, timeout=120,
    )
    report = json.loads(out.stdout) if out.stdout.strip() else {}
    return out.returncode, report, out.stderr


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {check["name"]: check["status"] for check in report["checks"]}


def test_an_honest_ledger_passes_and_is_not_written(db: Any, tmp_path: Path) -> None:
    build(db, 60)
    kept = keep(db, tmp_path, 40)
    before = db.snapshot()
    code, report, err = audit(db, kept)
    assert code == 0, err
    assert report["ok"] and report["size"] == 60 and report["checkpoint"]["size"] == 40
    assert statuses(report) == {
        "checkpoint": "ok", "chain": "ok", "tree": "ok", "consistency": "ok", "latest_checkpoint": "ok",
    }
    assert "extends the kept checkpoint at size 40" in json.dumps(report)
    assert db.snapshot() == before
    # The human report, one line per check, and the same verdict.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NUCLEUS_")}
    human = subprocess.run(
        [sys.executable, "-m", "nucleus_core", "audit", "--ledger", db.url, "--ledger-id", LEDGER,
         "--checkpoint", str(kept), "--key", SIGNER.vkey],
        env=clean, capture_output=True, text=True, timeout=120,
    )
    assert human.returncode == 0, human.stderr
    assert "ok: the ledger (60 entries) extends the kept checkpoint" in human.stdout
    assert db.snapshot() == before


def test_a_ledger_whose_tree_is_not_built_is_audited_from_its_entries_and_not_written(db: Any, tmp_path: Path) -> None:
    build(db, 50)
    kept = keep(db, tmp_path, 40)
    # As a ledger written before the tree existed: no node stored, size 0. A writable open would
    # build it; the audit opens read-only, computes the roots from the entries and builds nothing.
    db.sql("DELETE FROM nucleus_merkle")
    db.sql("UPDATE nucleus_merkle_size SET size = 0")
    before = db.snapshot()
    code, report, err = audit(db, kept)
    assert code == 0, err
    tree = next(c for c in report["checks"] if c["name"] == "tree")
    assert tree["status"] == "ok" and "covers 0 of the 50 entries" in tree["detail"]
    assert statuses(report)["consistency"] == "ok" and statuses(report)["latest_checkpoint"] == "ok"
    assert db.snapshot() == before
    # The same entries with one rewritten: the roots computed from them differ from the checkpoint's.
    db.wipe()
    build(db, 50, text="changed")
    db.sql("DELETE FROM nucleus_merkle")
    db.sql("UPDATE nucleus_merkle_size SET size = 0")
    code, report, _ = audit(db, kept)
    assert code == EXIT_MISMATCH and report["error"]["code"] == "checkpoint_mismatch"
    assert "at size 40 the root hash is" in report["error"]["message"]


def test_a_truncated_tail_is_a_mismatch_naming_the_sizes(db: Any, tmp_path: Path) -> None:
    build(db, 60)
    kept = keep(db, tmp_path, 60)
    db.sql("DELETE FROM nucleus_entries WHERE seq > %s", 45)  # the entries only: the tree still covers 60
    code, report, _ = audit(db, kept)
    assert code == EXIT_MISMATCH
    assert report["error"]["seq"] == 46
    assert "holds 45 entries, fewer than the 60 of the kept checkpoint" in report["error"]["message"]
    assert statuses(report)["tree"] == "failed"  # reported too, but the mismatch decides
    # Entries, nodes and size trimmed together: the database alone is consistent, the checkpoint is not.
    db.sql("DELETE FROM nucleus_merkle WHERE node >= %s", stored_node_count(45, 4))
    db.sql("UPDATE nucleus_merkle_size SET size = %s", 45)
    db.sql("DELETE FROM nucleus_checkpoints WHERE tree_size > %s", 45)
    code, report, _ = audit(db, kept)
    assert code == EXIT_MISMATCH and report["error"]["seq"] == 46
    assert statuses(report)["tree"] == "ok" and statuses(report)["chain"] == "ok"


def test_history_rewritten_under_another_key_is_a_mismatch(db: Any, tmp_path: Path) -> None:
    build(db, 40)
    kept = keep(db, tmp_path, 40)
    db.wipe()
    other = NoteSigner.generate(ORIGIN)
    build(db, 60, text="rewritten", signer=other)  # every hash, the tree and the checkpoints recomputed
    code, report, _ = audit(db, kept)
    assert code == EXIT_MISMATCH
    assert "at size 40 the root hash is" in report["error"]["message"]
    assert statuses(report)["chain"] == "ok" and statuses(report)["consistency"] == "failed"
    assert statuses(report)["latest_checkpoint"] == "warning"  # signed by none of the given keys


def test_history_rewritten_under_the_same_key_is_a_mismatch(db: Any, tmp_path: Path) -> None:
    build(db, 40)
    kept = keep(db, tmp_path, 40)
    db.wipe()
    build(db, 60, text="rewritten")  # a dishonest operator signing a second history with its key
    code, report, _ = audit(db, kept)
    assert code == EXIT_MISMATCH
    assert statuses(report)["consistency"] == "failed" and statuses(report)["latest_checkpoint"] == "failed"
    latest = next(c for c in report["checks"] if c["name"] == "latest_checkpoint")
    assert "not consistent with the kept one" in latest["detail"]


def test_a_tampered_entry_is_an_integrity_failure_at_its_seq(db: Any, tmp_path: Path) -> None:
    build(db, 40)
    kept = keep(db, tmp_path, 40)
    db.tamper_entry(17)
    code, report, _ = audit(db, kept)
    assert code == EXIT_INTEGRITY
    assert report["error"]["seq"] == 17 and "does not verify at entry 17" in report["error"]["message"]
    assert statuses(report)["consistency"] == "skipped"


def test_a_checkpoint_that_does_not_verify_is_refused(tmp_path: Path) -> None:
    db = Sqlite(tmp_path)
    build(db, 30)
    kept = keep(db, tmp_path, 20)
    # Another key.
    code, report, _ = audit(db, kept, key=NoteSigner.generate(ORIGIN).vkey)
    assert code == EXIT_CHECKPOINT and "no trusted key signed the note" in report["error"]["message"]
    assert [c["status"] for c in report["checks"]] == ["failed"]
    # One byte of the file changed (the size line: the signature no longer matches).
    corrupt = tmp_path / "corrupt.txt"
    corrupt.write_bytes(kept.read_bytes().replace(b"\n20\n", b"\n21\n", 1))
    code, report, _ = audit(db, corrupt)
    assert code == EXIT_CHECKPOINT and "does not verify" in report["error"]["message"]
    # Not a note at all.
    garbage = tmp_path / "garbage.txt"
    garbage.write_bytes(b"\x00not a checkpoint")
    assert audit(db, garbage)[0] == EXIT_CHECKPOINT
    # Another log's checkpoint, signed by a trusted key: refused by origin.
    other_log = NoteSigner.generate("example.com/other")
    foreign = tmp_path / "foreign.txt"
    foreign.write_text(sign_checkpoint("example.com/other", 20, b"\x01" * 32, [other_log]), encoding="utf-8")
    code, report, _ = audit(db, foreign, key=other_log.vkey)
    assert code == EXIT_CHECKPOINT and "is for the log 'example.com/other'" in report["error"]["message"]
    # ... and accepted as that origin's when the ledger's checkpoints carry it (--origin), then compared.
    code, report, _ = audit(db, foreign, "--origin", "example.com/other", key=other_log.vkey)
    assert code == EXIT_MISMATCH


def test_usage_and_configuration_errors_have_their_own_codes(tmp_path: Path) -> None:
    db = Sqlite(tmp_path)
    build(db, 20)
    kept = keep(db, tmp_path, 20)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NUCLEUS_")}
    base = [sys.executable, "-m", "nucleus_core", "audit", "--ledger-id", LEDGER, "--checkpoint", str(kept)]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args], env=clean, capture_output=True, text=True, timeout=120)

    no_key = run(db.url)
    assert no_key.returncode == EXIT_CONFIGURATION and "verifier key" in no_key.stderr
    bad_key = run(db.url, "--key", "not-a-vkey")
    assert bad_key.returncode == EXIT_CONFIGURATION
    both = run(db.url, "--url", "http://127.0.0.1:9", "--key", SIGNER.vkey)
    assert both.returncode == EXIT_USAGE and "not both" in both.stderr
    twice = run(db.url, "--ledger", db.url, "--key", SIGNER.vkey)
    assert twice.returncode == EXIT_USAGE and "not both" in twice.stderr
    # DB replaces the configuration file's storage (the file still gives the ledger id).
    config = tmp_path / "nucleus.toml"
    config.write_text(f'[ledger]\nid = "{LEDGER}"\nstorage = "sqlite:///{tmp_path / "other.db"}"\n', encoding="utf-8")
    configured = subprocess.run(
        [sys.executable, "-m", "nucleus_core", "audit", db.url, "--config", str(config), "--checkpoint", str(kept),
         "--key", SIGNER.vkey], env=clean, capture_output=True, text=True, timeout=120,
    )
    assert configured.returncode == 0, configured.stderr
    token = run(db.url, "--key", SIGNER.vkey, "--token", "secret-token-value")
    assert token.returncode == EXIT_USAGE and "secret-token-value" not in token.stderr
    missing = run(str(tmp_path / "nope.db"), "--key", SIGNER.vkey)
    assert missing.returncode == 6 and not (tmp_path / "nope.db").exists()
    assert run(db.url, "--key", SIGNER.vkey).returncode == 0  # a path works as well as a URL
    assert run(str(db.path), "--key", SIGNER.vkey).returncode == 0
    # nucleus checkpoint get: the stored note's bytes, the latest by default; none at a size never issued.
    get = [sys.executable, "-m", "nucleus_core", "checkpoint", "get", "--ledger", db.url, "--ledger-id", LEDGER]
    latest = subprocess.run(get, env=clean, capture_output=True, timeout=120)
    assert latest.returncode == 0 and latest.stdout == kept.read_bytes()
    never = subprocess.run([*get, "--size", "7"], env=clean, capture_output=True, text=True, timeout=120)
    assert never.returncode == 6 and "no checkpoint was issued at size 7" in never.stderr
