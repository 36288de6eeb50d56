"""A trusted checkpoint kept outside the database catches what verification of the database alone
cannot: the newest entries deleted (tree trimmed to match), history rewritten with every hash and
the tree recomputed, the database replaced by an older copy. Each is refused at open, naming both
sizes, on SQLite and PostgreSQL; ``nucleus verify --checkpoint`` refuses the same offline."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from nucleus_storage_postgres import postgres_storage
from nucleus_storage_sqlite import sqlite_storage

from nucleus_core import Record, RequestContext, create_ledger, open_ledger
from nucleus_core.checkpoint import NoteSigner, default_origin, sign_checkpoint
from nucleus_core.errors import ConfigurationError, IntegrityError
from nucleus_core.testing.postgres import drop_schema, temporary_database
from nucleus_core.tree import stored_node_count

CTX = RequestContext(oid="oid:test:user:alice", source="dev")
LEDGER = "trusted"
SIGNER = NoteSigner.generate(default_origin(LEDGER))
TABLES = ("nucleus_entries", "nucleus_merkle", "nucleus_merkle_size")


def rec(i: int, text: str = "original") -> Record:
    return Record(id=f"r{i:04d}", stream="s", timestamp=1_700_000_000_000 + i, payload={"i": i, "text": text})


class Sqlite:
    def __init__(self, tmp: Path) -> None:
        self.path = tmp / "ledger.db"
        self.saved = tmp / "saved.db"

    def storage(self) -> Any:
        return sqlite_storage(self.path)

    def sql(self, statement: str, *params: object) -> None:
        db = sqlite3.connect(self.path)
        with db:
            db.execute(statement.replace("%s", "?"), params)
        db.close()

    def save(self) -> None:
        shutil.copyfile(self.path, self.saved)

    def restore(self) -> None:
        for suffix in ("-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(self.saved, self.path)

    def wipe(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)


class Postgres:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.schema = f"c_{uuid.uuid4().hex[:12]}"

    def storage(self) -> Any:
        return postgres_storage(self.dsn, schema=self.schema)

    def sql(self, statement: str, *params: object) -> None:
        with psycopg.connect(self.dsn, autocommit=True, options=f"-c search_path={self.schema}") as conn:
            conn.execute(statement, params)  # type: ignore[arg-type]

    def save(self) -> None:
        drop_schema(self.dsn, f"{self.schema}_saved")
        self.sql(f"CREATE SCHEMA {self.schema}_saved")
        for table in TABLES:
            self.sql(f"CREATE TABLE {self.schema}_saved.{table} AS SELECT * FROM {table}")

    def restore(self) -> None:
        for table in TABLES:
            self.sql(f"DELETE FROM {table}")
            self.sql(f"INSERT INTO {table} SELECT * FROM {self.schema}_saved.{table}")

    def wipe(self) -> None:
        drop_schema(self.dsn, self.schema)

    def close(self) -> None:
        drop_schema(self.dsn, self.schema)
        drop_schema(self.dsn, f"{self.schema}_saved")


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    with temporary_database("nucleus_trusted") as dsn:
        yield dsn


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        yield Sqlite(tmp_path)
        return
    database = Postgres(request.getfixturevalue("pg_dsn"))
    try:
        yield database
    finally:
        database.close()


def build(db: Any, n: int, text: str = "original") -> None:
    with create_ledger(id=LEDGER, storage=db.storage()) as ledger:
        for start in range(ledger.length(), n, 25):
            ledger.append_batch([rec(i, text) for i in range(start, min(start + 25, n))], CTX)


def checkpoint_file(db: Any, tmp: Path) -> Path:
    """A checkpoint of the ledger as it is now, signed and written outside the database."""
    with open_ledger(id=LEDGER, storage=db.storage()) as ledger:
        note = sign_checkpoint(default_origin(LEDGER), ledger.tree_size(), ledger.root_hash(), [SIGNER])
    path = tmp / "checkpoint.txt"
    path.write_text(note, encoding="utf-8")
    return path


def open_with(db: Any, path: Path, **extra: Any) -> Any:
    options: dict[str, Any] = {"trusted_checkpoint": str(path), "trusted_checkpoint_vkeys": (SIGNER.vkey,)}
    options.update(extra)
    return open_ledger(id=LEDGER, storage=db.storage(), **options)


def test_a_ledger_that_extends_the_checkpoint_opens(db: Any, tmp_path: Path) -> None:
    build(db, 80)
    path = checkpoint_file(db, tmp_path)
    build(db, 120)
    with open_with(db, path) as ledger:
        assert ledger.length() == 120
    keys = tmp_path / "keys.txt"
    keys.write_text(f"# the ledger's keys\n\n{NoteSigner.generate('other').vkey}\n{SIGNER.vkey}\n", encoding="utf-8")
    open_with(db, path, trusted_checkpoint_vkeys=(), trusted_checkpoint_vkey_file=str(keys)).close()


def test_deleting_the_newest_entries_is_refused(db: Any, tmp_path: Path) -> None:
    build(db, 100)
    path = checkpoint_file(db, tmp_path)
    # Entries 81-100 go, with their tree nodes and the size: the chain and the tree stay consistent.
    db.sql("DELETE FROM nucleus_entries WHERE seq > %s", 80)
    db.sql("DELETE FROM nucleus_merkle WHERE node >= %s", stored_node_count(80, 4))
    db.sql("UPDATE nucleus_merkle_size SET size = %s", 80)
    with open_ledger(id=LEDGER, storage=db.storage()) as ledger:
        assert ledger.verify().ok  # the database alone cannot tell
    with pytest.raises(IntegrityError, match="covers 80 entries, fewer than the 100 of the trusted checkpoint"):
        open_with(db, path)


def test_rewritten_history_is_refused(db: Any, tmp_path: Path) -> None:
    build(db, 60)
    path = checkpoint_file(db, tmp_path)
    db.wipe()
    build(db, 90, text="rewritten")  # every hash and the whole tree recomputed
    with open_ledger(id=LEDGER, storage=db.storage()) as ledger:
        assert ledger.verify().ok
    with pytest.raises(IntegrityError, match=r"at tree size 60 \(of 90 stored\) the root hash is [0-9a-f]{64}, not"):
        open_with(db, path)


def test_an_older_copy_of_the_database_is_refused(db: Any, tmp_path: Path) -> None:
    build(db, 50)
    db.save()
    build(db, 75)
    path = checkpoint_file(db, tmp_path)
    db.restore()
    with pytest.raises(IntegrityError, match="covers 50 entries, fewer than the 75"):
        open_with(db, path)


def test_a_checkpoint_that_does_not_verify_is_refused(db: Any, tmp_path: Path) -> None:
    build(db, 10)
    path = checkpoint_file(db, tmp_path)
    with pytest.raises(IntegrityError, match="does not verify"):
        open_with(db, path, trusted_checkpoint_vkeys=(NoteSigner.generate(default_origin(LEDGER)).vkey,))
    with pytest.raises(IntegrityError, match="is for the log"):
        open_with(db, path, trusted_checkpoint_origin="example.com/other")
    with pytest.raises(ConfigurationError, match="needs the verifier key"):
        open_with(db, path, trusted_checkpoint_vkeys=())
    forged = path.read_text(encoding="utf-8").replace("\n10\n", "\n9\n", 1)
    path.write_text(forged, encoding="utf-8")
    with pytest.raises(IntegrityError, match="does not verify"):
        open_with(db, path)


def test_nucleus_verify_checks_a_checkpoint_offline(tmp_path: Path) -> None:
    db = Sqlite(tmp_path)
    build(db, 40)
    path = checkpoint_file(db, tmp_path)
    base = [sys.executable, "-m", "nucleus_core", "verify", "--ledger", f"sqlite:///{db.path}", "--ledger-id", LEDGER]
    ok = subprocess.run([*base, "--checkpoint", str(path), "--key", SIGNER.vkey], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "extends the checkpoint at size 40" in ok.stdout
    db.sql("DELETE FROM nucleus_entries WHERE seq > 30")
    db.sql("DELETE FROM nucleus_merkle WHERE node >= %s", stored_node_count(30, 4))
    db.sql("UPDATE nucleus_merkle_size SET size = 30")
    bad = subprocess.run([*base, "--checkpoint", str(path), "--key", SIGNER.vkey], capture_output=True, text=True)
    assert bad.returncode == 8, bad.stderr
    assert "covers 30 entries, fewer than the 40" in bad.stderr
    usage = subprocess.run([*base, "--key", SIGNER.vkey], capture_output=True, text=True)
    assert usage.returncode != 0 and "go with --checkpoint" in usage.stderr


def test_the_origin_defaults_to_the_ledgers_configured_checkpoint_origin(tmp_path: Path) -> None:
    db = Sqlite(tmp_path)
    build(db, 30)
    signer = NoteSigner.generate("example.com/orders")
    with open_ledger(id=LEDGER, storage=db.storage()) as ledger:
        note = sign_checkpoint("example.com/orders", ledger.tree_size(), ledger.root_hash(), [signer])
    path = tmp_path / "checkpoint.txt"
    path.write_text(note, encoding="utf-8")
    options: dict[str, Any] = {"trusted_checkpoint": str(path), "trusted_checkpoint_vkeys": (signer.vkey,)}
    with pytest.raises(IntegrityError):  # the default origin is nucleus.invalid/<id>: this note is another log's
        open_ledger(id=LEDGER, storage=db.storage(), **options)
    with open_ledger(id=LEDGER, storage=db.storage(), checkpoint={"origin": "example.com/orders"}, **options) as ledger:
        assert ledger.length() == 30
    # nucleus verify --checkpoint: the same default, from the configuration file, or --origin.
    cli = [sys.executable, "-m", "nucleus_core", "verify", "--checkpoint", str(path), "--key", signer.vkey]
    target = ["--ledger", f"sqlite:///{db.path}", "--ledger-id", LEDGER]
    refused = subprocess.run([*cli, *target], capture_output=True, text=True)
    assert refused.returncode == 8 and "not 'nucleus.invalid/" in refused.stderr, refused.stderr
    given = subprocess.run([*cli, *target, "--origin", "example.com/orders"], capture_output=True, text=True)
    assert given.returncode == 0, given.stderr
    config = tmp_path / "nucleus.toml"
    config.write_text(
        f'[ledger]\nid = "{LEDGER}"\nstorage = "sqlite:///{db.path}"\n\n'
        '[ledger.checkpoint]\norigin = "example.com/orders"\nkey_env = ""\n',
        encoding="utf-8",
    )
    configured = subprocess.run([*cli, "--config", str(config)], capture_output=True, text=True)
    assert configured.returncode == 0, configured.stderr
    assert "extends the checkpoint at size 30" in configured.stdout


def test_a_trusted_checkpoint_without_verification_is_refused(tmp_path: Path) -> None:
    """Without verification the stored tree is not tied to the entries: a rewritten chain beside an
    untouched tree would pass the checkpoint, so the combination is refused before anything opens."""
    db = Sqlite(tmp_path)
    build(db, 10)
    path = checkpoint_file(db, tmp_path)
    with pytest.raises(ConfigurationError, match="needs verify_on_open"):
        open_with(db, path, verify_on_open=False)


def test_a_checkpoint_file_with_crlf_line_ends_is_refused(tmp_path: Path) -> None:
    """The file's bytes reach the strict parser as they are: a CR makes a signed note malformed."""
    db = Sqlite(tmp_path)
    build(db, 10)
    path = checkpoint_file(db, tmp_path)
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    with pytest.raises(IntegrityError, match="does not verify"):
        open_with(db, crlf)
    open_with(db, path).close()


# -- opening from the trusted checkpoint (verify_from_trusted_checkpoint) ------------------------


def fast_open(db: Any, path: Path, **extra: Any) -> Any:
    return open_with(db, path, **{"verify_from_trusted_checkpoint": True, **extra})


def tamper_body(db: Any, i: int) -> None:
    """Entry ``i + 1`` gets the bytes of another valid record; its hash column stays."""
    db.sql("UPDATE nucleus_entries SET canonical = %s WHERE seq = %s", rec(i, "tampered").canonical, i + 1)


@pytest.mark.parametrize("size", [80, 83])  # the checkpoint's last block stored as a node, or derived
def test_opening_from_the_checkpoint_verifies_the_entries_after_it(db: Any, tmp_path: Path, size: int) -> None:
    build(db, size)
    path = checkpoint_file(db, tmp_path)
    with fast_open(db, path) as ledger:  # nothing after the checkpoint yet
        assert ledger.length() == size
    build(db, 130)
    with fast_open(db, path) as ledger:
        assert ledger.length() == 130
        ledger.append(rec(500), CTX)  # writable: the tail verified, the tree extends the checkpoint's
        assert ledger.verify().ok
        root = ledger.root_hash()
    with fast_open(db, path) as ledger:
        assert ledger.length() == 131 and ledger.root_hash() == root


def test_tampering_after_the_checkpoint_is_caught_at_a_fast_open(db: Any, tmp_path: Path) -> None:
    build(db, 80)
    path = checkpoint_file(db, tmp_path)
    build(db, 120)
    db.save()
    tamper_body(db, 99)  # entry 100
    with pytest.raises(IntegrityError, match="at entry 100: hash mismatch") as caught:
        fast_open(db, path)
    assert caught.value.seq == 100
    db.restore()
    # A tree node completed after the checkpoint (node 8 covers entries 97-112 at level 4).
    db.sql("UPDATE nucleus_merkle SET hash = %s WHERE node = %s", b"\x07" * 32, stored_node_count(96, 4))
    with pytest.raises(IntegrityError, match="level 4, index 6 does not match the entries"):
        fast_open(db, path)
    db.restore()
    db.sql("DELETE FROM nucleus_entries WHERE seq = 120")  # the newest entry gone, its tree nodes kept
    with pytest.raises(IntegrityError, match="the Merkle tree covers 120 entries but the chain has 119"):
        fast_open(db, path)
    db.restore()
    with fast_open(db, path) as ledger:
        assert ledger.length() == 120


def test_tampering_of_the_tree_at_the_checkpoint_size_is_caught(db: Any, tmp_path: Path) -> None:
    build(db, 80)
    path = checkpoint_file(db, tmp_path)
    build(db, 100)
    db.save()
    # The stored node of leaves 64-79 is part of the checkpoint's root.
    db.sql("UPDATE nucleus_merkle SET hash = %s WHERE node = %s", b"\x07" * 32, stored_node_count(64, 4))
    with pytest.raises(IntegrityError, match=r"at tree size 80 \(of 100 stored\) the root hash is"):
        fast_open(db, path)
    db.restore()
    # Entry 80's hash column rewritten (with the bytes and link of the entry after it left alone):
    # the checkpoint's last leaf is computed from it, so the checkpoint's root no longer matches.
    db.sql("UPDATE nucleus_entries SET hash = %s WHERE seq = 80", "ab" * 32)
    with pytest.raises(IntegrityError, match="entry 80: its hash is not the last leaf of the trusted checkpoint"):
        fast_open(db, path)


def test_an_old_entrys_body_is_caught_by_full_verification_only(db: Any, tmp_path: Path) -> None:
    """The trade-off: the bytes of entries before the checkpoint are not read by a fast open (their
    hashes are vouched for by the checkpoint's root; their bodies are not). Full verification, at
    open by default and by ``Ledger.verify()`` / ``nucleus verify``, catches the change."""
    build(db, 80)
    path = checkpoint_file(db, tmp_path)
    build(db, 100)
    tamper_body(db, 9)  # entry 10
    with fast_open(db, path) as ledger:
        assert ledger.length() == 100  # not caught: by design
        report = ledger.verify()
        assert not report.ok and report.first_bad_seq == 10 and "hash mismatch" in (report.reason or "")
    with pytest.raises(IntegrityError, match="at entry 10: hash mismatch"):
        open_with(db, path)  # the default: full verification


def test_opening_from_a_checkpoint_needs_one(tmp_path: Path) -> None:
    db = Sqlite(tmp_path)
    build(db, 10)
    path = checkpoint_file(db, tmp_path)
    with pytest.raises(ConfigurationError, match="verify_from_trusted_checkpoint needs trusted_checkpoint"):
        open_ledger(id=LEDGER, storage=db.storage(), verify_from_trusted_checkpoint=True)
    with pytest.raises(ConfigurationError, match="must be true or false"):
        fast_open(db, path, verify_from_trusted_checkpoint="yes")
    with pytest.raises(ConfigurationError, match="needs verify_on_open"):
        fast_open(db, path, verify_on_open=False)
    with pytest.raises(ConfigurationError, match="needs the verifier key"):
        fast_open(db, path, trusted_checkpoint_vkeys=())
    with open_ledger(id=LEDGER, storage=db.storage()) as ledger:
        assert ledger.length() == 10  # nothing was changed by the refused opens


def test_the_cli_opens_from_the_configured_checkpoint_and_nucleus_verify_checks_everything(tmp_path: Path) -> None:
    db = Sqlite(tmp_path)
    build(db, 40)
    path = checkpoint_file(db, tmp_path)
    build(db, 50)
    tamper_body(db, 4)  # entry 5: before the checkpoint
    keys = tmp_path / "vkeys.txt"
    keys.write_text(f"{SIGNER.vkey}\n", encoding="utf-8")
    config = tmp_path / "nucleus.toml"
    config.write_text(
        f'[ledger]\nid = "{LEDGER}"\nstorage = "sqlite:///{db.path}"\ntrusted_checkpoint = "{path}"\n'
        f'trusted_checkpoint_vkey_file = "{keys}"\n\n[ledger.checkpoint]\nkey_env = ""\n',
        encoding="utf-8",
    )
    cli = [sys.executable, "-m", "nucleus_core"]
    query = [*cli, "query", "--config", str(config), "--as", CTX.oid, "--limit", "1"]
    full = subprocess.run(query, capture_output=True, text=True)
    assert full.returncode == 8 and "at entry 5: hash mismatch" in full.stderr, full.stderr
    fast = subprocess.run([*query, "--verify-from-checkpoint"], capture_output=True, text=True)
    assert fast.returncode == 0, fast.stderr
    assert "r0000" in fast.stdout
    verify = subprocess.run([*cli, "verify", "--config", str(config), "--verify-from-checkpoint"],
                            capture_output=True, text=True)
    assert verify.returncode == 8 and "first bad seq 5: hash mismatch" in verify.stderr, verify.stderr
    bare = [*cli, "query", "--ledger", f"sqlite:///{db.path}", "--ledger-id", LEDGER, "--as", CTX.oid]
    refused = subprocess.run([*bare, "--verify-from-checkpoint"], capture_output=True, text=True)
    assert refused.returncode != 0 and "verify_from_trusted_checkpoint needs trusted_checkpoint" in refused.stderr
