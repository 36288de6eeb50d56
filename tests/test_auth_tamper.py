"""API key and session rows are tamper-evident against a database writer who lacks the server-side
secrets (security finding on issue #7), on real SQLite files and a real PostgreSQL database.

The reproduction: a ledger with ``auth.api_key``, ``auth.session`` and ``ual``; a key and a
session for alice and a second, revoked key; then, behind the ledger's back, the rows are edited
(principal, role, scopes, expiry, revocation, ledger id, creation). Every edited row must fail to
authenticate, without saying why; restoring a pre-revocation row must not bring a key back; the
differences must be reported at open; untouched keys and sessions keep working.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from nucleus_storage_postgres import postgres_storage
from nucleus_storage_sqlite import sqlite_storage
from nucleus_token_api_key.parser import STREAM

from nucleus_core import Ledger, RequestContext, create_ledger
from nucleus_core.context import ALL_SCOPES
from nucleus_core.errors import ConfigurationError, TokenInvalidError
from nucleus_core.testing.postgres import drop_schema, temporary_database

PEPPER = "tamper-test-pepper-0123456789abcdefghij"
SESSION_SECRET = "tamper-test-session-secret-0123456789abcd"
ALICE = "oid:sec:user:alice"
ROOT = "oid:sec:user:root"
ADMIN = RequestContext(oid="oid:sec:user:admin", source="auth.dev", scopes=ALL_SCOPES)  # keys: explicit
SETTINGS = {"auth.api_key": {"pepper": PEPPER}, "auth.session": {"secret": SESSION_SECRET}}
PLUGINS = ["auth.api_key", "auth.session", "ual"]


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    with temporary_database("nucleus_tamper") as dsn:
        yield dsn


class Db:
    """One database: :meth:`open` opens ledger ``ledger_id`` there; :meth:`sql` runs a statement
    behind the ledgers' backs; :meth:`dump` is every table's text."""

    def __init__(self, make: Callable[[], Any], sql: Callable[[str], list[tuple[Any, ...]]], dump: Callable[[], str]):
        self._make = make
        self.sql = sql
        self.dump = dump
        self._stack = contextlib.ExitStack()

    def open(self, ledger_id: str = "sec") -> Ledger:
        return self._stack.enter_context(
            create_ledger(id=ledger_id, storage=self._make(), plugins=PLUGINS, settings=SETTINGS, admins=[ADMIN.oid])
        )

    def close(self) -> None:
        self._stack.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    if request.param == "sqlite":
        path = tmp_path / "tamper.db"

        def sqlite_sql(statement: str) -> list[tuple[Any, ...]]:
            with contextlib.closing(sqlite3.connect(path)) as conn, conn:
                return list(conn.execute(statement).fetchall())

        def sqlite_dump() -> str:
            with contextlib.closing(sqlite3.connect(path)) as conn:
                return "\n".join(conn.iterdump())

        made = Db(lambda: sqlite_storage(path), sqlite_sql, sqlite_dump)
        yield made
        made.close()
        return
    import psycopg

    dsn = request.getfixturevalue("pg_dsn")
    schema = f"t_{uuid.uuid4().hex[:12]}"

    def pg_sql(statement: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{schema}"'.encode())
            cur = conn.execute(statement.encode())
            return list(cur.fetchall()) if cur.description else []

    def pg_dump() -> str:
        tables = [
            r[0] for r in pg_sql(f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{schema}'")
        ]
        return "\n".join(repr(pg_sql(f'SELECT * FROM "{t}"')) for t in tables)

    made = Db(lambda: postgres_storage(dsn, schema=schema), pg_sql, pg_dump)
    try:
        yield made
    finally:
        made.close()
        drop_schema(dsn, schema)


def setup_tokens(ledger: Ledger) -> dict[str, str]:
    """The reproduction's tokens: a key and a session for alice, and a revoked key."""
    keys = ledger.auth.parser("auth.api_key")
    key, _ = keys.create_key(ALICE, role="reader", scopes=["read"], expires_in=3600, context=ADMIN)
    revoked, revoked_record = keys.create_key(ALICE, role="reader", context=ADMIN)
    assert keys.revoke_key(revoked_record.key_id, context=ADMIN)
    session, _ = ledger.auth.parser("auth.session").create_session(ALICE, role="reader")
    for token in (key, session):
        assert ledger.auth.authenticate(token).oid == ALICE
    return {"key": key, "revoked": revoked, "session": session}


def refused(ledger: Ledger, token: str) -> str:
    """The message of the refusal of ``token`` (which must be refused)."""
    with pytest.raises(TokenInvalidError) as info:
        ledger.auth.authenticate(token)
    assert token not in str(info.value)
    return str(info.value)


EDITS = {
    # field: (statements, tokens that must be refused afterwards)
    "principal": (
        [
            f"UPDATE nucleus_api_keys SET principal = '{ROOT}', revoked_at = NULL",
            f"UPDATE nucleus_sessions SET principal = '{ROOT}'",
        ],
        ["key", "revoked", "session"],
    ),
    "role": (
        ["UPDATE nucleus_api_keys SET role = 'admin'", "UPDATE nucleus_sessions SET role = 'admin'"],
        ["key", "session"],
    ),
    "scopes": (["UPDATE nucleus_api_keys SET scopes = '[\"*\"]'"], ["key"]),
    "expiry": (
        [
            "UPDATE nucleus_api_keys SET expires_at = expires_at + 1000000",
            "UPDATE nucleus_sessions SET absolute_expires_at = absolute_expires_at + 1000000",
        ],
        ["key", "session"],
    ),
    "never-expires": (["UPDATE nucleus_api_keys SET expires_at = NULL"], ["key"]),
    "revoked_at": (["UPDATE nucleus_api_keys SET revoked_at = NULL"], ["revoked"]),
    "created_at": (
        ["UPDATE nucleus_api_keys SET created_at = created_at - 10", "UPDATE nucleus_sessions SET created_at = 0"],
        ["key", "session"],
    ),
}


@pytest.mark.parametrize("field", sorted(EDITS))
def test_every_edited_field_fails_to_authenticate(db: Db, field: str, caplog: pytest.LogCaptureFixture) -> None:
    ledger = db.open()
    tokens = setup_tokens(ledger)
    ledger.close()
    statements, broken = EDITS[field]
    for statement in statements:
        db.sql(statement)
    with caplog.at_level(logging.WARNING):
        ledger = db.open()
        for name in broken:
            message = refused(ledger, tokens[name])
            # No detail about why: the same message as a wrong secret or an unknown session.
            assert message in ("API key is not valid", "session is not valid"), message
        for name in {"key", "session"} - set(broken):
            assert ledger.auth.authenticate(tokens[name]).oid == ALICE
    # The chain itself is intact; verify() also compares the key table with the _api_keys stream.
    report = ledger.verify()
    assert not report.ok and report.first_bad_seq is None
    assert report.reason is not None and report.reason.startswith("auth.api_key state: API key ")
    for token in (*tokens.values(), PEPPER, SESSION_SECRET):
        assert token not in caplog.text


@pytest.mark.parametrize("field", sorted(EDITS))
def test_an_edit_after_a_successful_check_is_refused_by_the_same_parser(db: Db, field: str) -> None:
    """The parser remembers the row a key was verified against; an edited row is another row."""
    ledger = db.open()
    tokens = setup_tokens(ledger)
    assert ledger.auth.authenticate(tokens["key"]).oid == ALICE  # the second time: remembered
    statements, broken = EDITS[field]
    for statement in statements:
        db.sql(statement)
    for name in set(broken) & {"key", "revoked"}:
        assert refused(ledger, tokens[name]) == "API key is not valid"
    ledger.close()


def test_rows_moved_from_another_ledger_fail_to_authenticate(db: Db) -> None:
    other = db.open("other")
    tokens = setup_tokens(other)
    other.close()
    db.sql("UPDATE nucleus_api_keys SET ledger_id = 'sec' WHERE ledger_id = 'other'")
    db.sql("UPDATE nucleus_sessions SET ledger_id = 'sec' WHERE ledger_id = 'other'")
    ledger = db.open("sec")
    for name in ("key", "revoked", "session"):
        assert refused(ledger, tokens[name]) in ("API key is not valid", "session is not valid")


def test_restoring_a_pre_revocation_row_does_not_unrevoke(db: Db, caplog: pytest.LogCaptureFixture) -> None:
    ledger = db.open()
    keys = ledger.auth.parser("auth.api_key")
    key, record = keys.create_key(ALICE, context=ADMIN)
    saved = db.sql(f"SELECT revoked_at, mac FROM nucleus_api_keys WHERE key_id = '{record.key_id}'")[0]
    assert saved[0] is None
    # A second instance, opened before the revocation, learns of it from the chain.
    second = db.open()
    assert second.auth.authenticate(key).oid == ALICE
    assert keys.revoke_key(record.key_id, context=ADMIN)
    restore = f"UPDATE nucleus_api_keys SET revoked_at = NULL, mac = '{saved[1]}' WHERE key_id = '{record.key_id}'"
    db.sql(restore)
    assert refused(second, key) == "API key is not valid"
    assert refused(ledger, key) == "API key is not valid"
    ledger.close()
    second.close()
    # Reopened: the chain's revocation wins over the restored row, and the difference is reported.
    with caplog.at_level(logging.ERROR):
        reopened = db.open()
    assert refused(reopened, key) == "API key is not valid"
    assert f"API key {record.key_id}: revoked_at differ(s) from the {STREAM} stream" in caplog.text
    # Revoking again brings the row back in line with the chain.
    parser = reopened.auth.parser("auth.api_key")
    assert parser.revoke_key(record.key_id) is False
    assert [k.status(parser.now()) for k in parser.list_keys()] == ["revoked"]
    assert parser.check_consistency() == []


def test_the_consistency_check_reports_tampering_at_open(db: Db, caplog: pytest.LogCaptureFixture) -> None:
    ledger = db.open()
    tokens = setup_tokens(ledger)
    kept, _ = ledger.auth.parser("auth.api_key").create_key(ALICE, context=ADMIN)
    ledger.close()
    key_id = tokens["key"].split("_")[1]
    db.sql(f"UPDATE nucleus_api_keys SET principal = '{ROOT}' WHERE key_id = '{key_id}'")
    # A row the chain never saw (a copy under another id) and a row deleted from the table.
    db.sql(
        "INSERT INTO nucleus_api_keys (ledger_id, key_id, principal, role, scopes, name, created_at, expires_at,"
        " revoked_at, secret_hash, pepper_id, mac) SELECT ledger_id, 'ZZZZZZZZZZZZ', principal, role, scopes, name,"
        " created_at, expires_at, revoked_at, secret_hash, pepper_id, mac FROM nucleus_api_keys"
        f" WHERE key_id = '{key_id}'"
    )
    kept_id = kept.split("_")[1]
    db.sql(f"DELETE FROM nucleus_api_keys WHERE key_id = '{kept_id}'")
    with caplog.at_level(logging.ERROR):
        ledger = db.open()
    problems = ledger.auth.parser("auth.api_key").check_consistency()
    assert sorted(problems) == sorted(
        [
            f"API key {key_id}: principal differ(s) from the {STREAM} stream",
            f"API key {kept_id} of the {STREAM} stream is missing from the table",
            f"API key ZZZZZZZZZZZZ is not in the {STREAM} stream",
        ]
    )
    for problem in problems:
        assert problem in caplog.text
    refused(ledger, tokens["key"])
    refused(ledger, kept)
    report = ledger.verify()
    assert not report.ok and report.reason is not None
    assert report.reason.startswith("auth.api_key state: API key ") and "(and 2 more)" in report.reason
    assert report.first_bad_seq is None or report.first_bad_seq > 0


def test_verify_is_ok_when_the_key_table_matches_the_chain(db: Db) -> None:
    ledger = db.open()
    setup_tokens(ledger)
    assert ledger.verify().ok
    ledger.close()
    assert db.open().verify().ok


def test_a_key_created_by_another_writer_during_the_check_is_no_difference(
    db: Db, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The consistency check reads the _api_keys stream, then the table; another process creating a
    key in between is not tampering (it quarantined that key in the checking process)."""
    one = db.open()
    two = db.open()
    parser = two.auth.parser("auth.api_key")
    chain_read = parser.keys_from_chain
    made: list[str] = []

    def then_another_writer_creates_a_key() -> Any:
        state = chain_read()
        if not made:  # once: the retry reads both again
            made.append(one.auth.parser("auth.api_key").create_key(ALICE, scopes=["read"], context=ADMIN)[0])
        return state

    monkeypatch.setattr(parser, "keys_from_chain", then_another_writer_creates_a_key)
    assert parser.check_consistency() == []
    assert made and two.auth.authenticate(made[0]).oid == ALICE


def test_untampered_keys_and_sessions_work_across_reopen_and_instances(db: Db) -> None:
    one = db.open()
    tokens = setup_tokens(one)
    two = db.open()
    for ledger in (one, two):
        assert ledger.auth.authenticate(tokens["key"]).claims["scopes"] == ["read"]
        assert ledger.auth.authenticate(tokens["session"]).role == "reader"
        assert refused(ledger, tokens["revoked"]) == "API key was revoked"
    # A key created and revoked by one instance is seen as such by the other.
    key, record = two.auth.parser("auth.api_key").create_key(ALICE, context=ADMIN)
    assert one.auth.authenticate(key).oid == ALICE
    assert one.auth.parser("auth.api_key").revoke_key(record.key_id)
    refused(two, key)
    one.close()
    two.close()
    again = db.open()
    assert again.auth.authenticate(tokens["key"]).oid == ALICE
    assert again.auth.authenticate(tokens["session"]).oid == ALICE
    assert again.auth.parser("auth.api_key").check_consistency() == []
    # The chain records who did what, without secrets.
    changes = again.query({"stream": STREAM}, ADMIN).entries
    assert [(e.record.payload["op"], e.record.payload["by"]) for e in changes] == [
        ("create", ADMIN.oid),
        ("create", ADMIN.oid),
        ("revoke", ADMIN.oid),
        ("create", ADMIN.oid),
        ("revoke", None),
    ]
    assert again.verify().ok


def test_no_secret_in_logs_errors_or_the_database(db: Db, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        ledger = db.open()
        tokens = setup_tokens(ledger)
        ledger.close()
        db.sql(f"UPDATE nucleus_api_keys SET principal = '{ROOT}'")
        db.sql(f"UPDATE nucleus_sessions SET principal = '{ROOT}'")
        ledger = db.open()
        messages = [refused(ledger, token) for token in tokens.values()]
    dump = db.dump()
    for secret in (*tokens.values(), PEPPER, SESSION_SECRET):
        for text in (caplog.text, dump, *messages):
            assert secret not in text
            assert secret[4:] not in text  # nor the random part alone


def test_first_format_rows_are_refused_and_named(db: Db, caplog: pytest.LogCaptureFixture) -> None:
    """Rows written before the MAC column existed: the column is added, the rows never authenticate."""
    ledger = db.open()
    tokens = setup_tokens(ledger)
    ledger.close()
    db.sql("ALTER TABLE nucleus_api_keys DROP COLUMN mac")
    db.sql("ALTER TABLE nucleus_sessions DROP COLUMN mac")
    with caplog.at_level(logging.WARNING):
        ledger = db.open()
        assert refused(ledger, tokens["key"]) == "API key is not valid"
        assert refused(ledger, tokens["session"]) == "session is not valid"
    assert "first format" in caplog.text
    parser = ledger.auth.parser("auth.api_key")
    assert {k.status(parser.now()) for k in parser.list_keys()} == {"legacy"}
    # Re-issued keys work.
    key, _ = parser.create_key(ALICE, context=ADMIN)
    assert ledger.auth.authenticate(key).oid == ALICE


def test_production_refuses_a_persistent_session_store_without_a_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NUCLEUS_SESSION_SECRET", raising=False)
    url = f"sqlite:///{tmp_path / 'p.db'}"
    with pytest.raises(ConfigurationError, match="session secret is required in production"):
        create_ledger(id="p", storage=url, plugins=["auth.session"], environment="production")
    with (
        caplog.at_level(logging.WARNING),
        create_ledger(id="p", storage=url, plugins=["auth.session"], environment="development") as ledger,
    ):
        token, _ = ledger.auth.parser("auth.session").create_session(ALICE)
        assert ledger.auth.authenticate(token).oid == ALICE
    assert "NO SESSION SECRET CONFIGURED" in caplog.text
    # The random secret lived with that process only: its sessions end with it.
    with create_ledger(id="p", storage=url, plugins=["auth.session"], environment="development") as ledger:
        refused(ledger, token)
    monkeypatch.setenv("NUCLEUS_SESSION_SECRET", "short")
    with pytest.raises(ConfigurationError, match="NUCLEUS_SESSION_SECRET must be a string of at least 32"):
        create_ledger(id="p", storage=url, plugins=["auth.session"], environment="production")
