"""The SQL stores of the session, API key and service (jti) parsers on a real SQLite file and the
real PostgreSQL (a database per test session, a schema per test): state is shared by every ledger
instance over the same database, a replayed service token is refused by the other instance, expired
token ids are purged, and on PostgreSQL no store keeps a pooled connection after its work.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from jwt.algorithms import OKPAlgorithm
from nucleus_storage_postgres import postgres_storage
from nucleus_storage_sqlite import sqlite_storage
from nucleus_token_api_key import ApiKeyParser, SqlKeyStore
from nucleus_token_api_key.keys import ApiKey
from nucleus_token_service import ServiceParser, SqlReplayStore
from nucleus_token_service.replay import TABLE_NAME as JTI_TABLE
from nucleus_token_service.replay import jti_hash
from nucleus_token_session import SessionParser, SqlSessionStore

from nucleus_core import Ledger, PluginContext, create_ledger
from nucleus_core.auth import SERVICE_TOKEN_TYPE
from nucleus_core.errors import ConflictError, TokenExpiredError, TokenInvalidError
from nucleus_core.testing import ManualClock as Clock
from nucleus_core.testing.postgres import drop_schema, temporary_database

PEPPER = "sql-store-pepper-for-tests-only-0123456789"
SESSION_SECRET = "sql-store-session-secret-for-tests-0123456789"
ALICE = "oid:acme:user:alice"
ED_KEY = ed25519.Ed25519PrivateKey.generate()
SETTINGS: dict[str, dict[str, Any]] = {
    "auth.api_key": {"pepper": PEPPER},
    "auth.session": {"idle_timeout": 600, "absolute_timeout": 3600, "secret": SESSION_SECRET},
    "auth.service": {
        "services": {
            "billing": {
                "principal": "oid:acme:service:billing",
                "algorithm": "EdDSA",
                "keys": {"ed1": {**OKPAlgorithm.to_jwk(ED_KEY.public_key(), as_dict=True), "kid": "ed1"}},
            }
        }
    },
}
PLUGINS = ("auth.api_key", "auth.session", "auth.service")


def service_token(jti: str | None = None, lifetime: int = 60) -> str:
    now = int(time.time())
    claims = {"iss": "billing", "sub": "billing", "aud": "books", "iat": now, "exp": now + lifetime}
    claims["jti"] = jti or uuid.uuid4().hex
    return jwt.encode(claims, ED_KEY, algorithm="EdDSA", headers={"kid": "ed1", "typ": SERVICE_TOKEN_TYPE})


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    with temporary_database("nucleus_auth") as dsn:
        yield dsn


SQL_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


class Place:
    """One database holding ledger "books": :meth:`storage` makes a new unopened backend over it,
    :meth:`ledger` opens a ledger instance there (each with its own backend and connections)."""

    def __init__(self, name: str, make: Callable[[], Any], rows: Callable[..., int]) -> None:
        self.name = name
        self._make = make
        self.rows = rows
        self._stack = contextlib.ExitStack()

    def storage(self, ledger_id: str = "books") -> Any:
        storage = self._make()
        storage.open(ledger_id)
        self._stack.callback(storage.close)
        return storage

    def ledger(self) -> Ledger:
        return self._stack.enter_context(
            create_ledger(id="books", storage=self._make(), plugins=PLUGINS, settings=SETTINGS)
        )

    def context(self, plugin: str, **settings: Any) -> PluginContext:
        """A plugin context over a fresh backend, as the ledger would build it."""
        return PluginContext(
            ledger_id="books",
            environment="production",
            settings={**SETTINGS[plugin], **settings},
            storage=self.storage(),
        )

    def close(self) -> None:
        self._stack.close()


@pytest.fixture(params=SQL_BACKENDS)
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Place]:
    if request.param == "sqlite":
        path = tmp_path / "auth.db"

        def sqlite_rows(table: str, where: str = "1=1") -> int:
            with contextlib.closing(sqlite3.connect(path)) as conn:
                return int(conn.execute(f'SELECT count(*) FROM "{table}" WHERE {where}').fetchone()[0])

        made = Place("sqlite", lambda: sqlite_storage(path), sqlite_rows)
        yield made
        made.close()
        return
    import psycopg

    dsn = request.getfixturevalue("pg_dsn")
    schema = f"a_{uuid.uuid4().hex[:12]}"

    def pg_rows(table: str, where: str = "1=1") -> int:
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute(f'SELECT count(*) FROM "{schema}"."{table}" WHERE {where}'.encode()).fetchone()
            assert row is not None
            return int(row[0])

    made = Place("postgres", lambda: postgres_storage(dsn, schema=schema), pg_rows)
    try:
        yield made
    finally:
        made.close()
        drop_schema(dsn, schema)


# --- the stores through ledgers ------------------------------------------------------------------


def test_api_keys_are_shared_by_ledger_instances(place: Place) -> None:
    one, two = place.ledger(), place.ledger()
    key, record = one.auth.parser("auth.api_key").create_key(ALICE, role="reader", scopes=["books:read"])
    ctx = two.auth.authenticate(key)
    assert (ctx.oid, ctx.source, ctx.role) == (ALICE, "auth.api_key", "reader")
    assert [k.key_id for k in two.auth.parser("auth.api_key").list_keys()] == [record.key_id]
    assert two.auth.parser("auth.api_key").revoke_key(record.key_id)
    with pytest.raises(TokenInvalidError, match="revoked"):
        one.auth.authenticate(key)
    assert not one.auth.parser("auth.api_key").revoke_key(record.key_id)


def test_sessions_are_shared_by_ledger_instances(place: Place) -> None:
    one, two = place.ledger(), place.ledger()
    token, _ = one.auth.parser("auth.session").create_session(ALICE, role="writer")
    assert two.auth.authenticate(token).source == "auth.session"
    assert two.auth.parser("auth.session").end_session(token)
    with pytest.raises(TokenInvalidError):
        one.auth.authenticate(token)


def test_a_replayed_service_token_is_refused_by_another_ledger_instance(place: Place) -> None:
    one, two = place.ledger(), place.ledger()
    token = service_token()
    assert one.auth.authenticate(token).source == "auth.service"
    with pytest.raises(TokenInvalidError, match="replay"):
        two.auth.authenticate(token)
    with pytest.raises(TokenInvalidError, match="replay"):
        one.auth.authenticate(token)
    assert two.auth.authenticate(service_token()).source == "auth.service"
    assert place.rows(JTI_TABLE) == 2


def test_racing_instances_accept_a_token_exactly_once(place: Place) -> None:
    ledgers = [place.ledger() for _ in range(2)]
    token = service_token()
    outcomes: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def attempt(ledger: Ledger) -> None:
        start.wait()
        try:
            ledger.auth.authenticate(token)
            result = "ok"
        except TokenInvalidError:
            result = "replay"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt, args=(ledgers[i % 2],)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok"] + ["replay"] * 5


# --- the stores on their own ---------------------------------------------------------------------


def test_jti_rows_are_hashed_per_issuer_and_ledger_and_purged_when_expired(place: Place) -> None:
    store = SqlReplayStore.for_plugin(place.context("auth.service"), plugin="auth.service", purge_interval=1000)
    assert store is not None
    store.use("billing", "j1", expires_at=1000.0, now=900.0)
    store.use("billing", "j2", expires_at=2000.0, now=901.0)
    with pytest.raises(TokenInvalidError, match="replay"):
        store.use("billing", "j1", expires_at=1000.0, now=950.0)
    store.use("reports", "j1", expires_at=1000.0, now=950.0)  # the id is per issuer
    assert len(store) == 3
    # An expired id may come again (its token can no longer pass the exp check; the row is replaced).
    store.use("billing", "j1", expires_at=3000.0, now=1001.0)
    assert len(store) == 3
    store.use("billing", "j3", expires_at=3000.0, now=1899.0)
    assert len(store) == 4  # reports/j1 expired but the next purge is not due yet
    # The next purge (due 1000 s after the first) deletes every row expired by then.
    store.use("billing", "j4", expires_at=3000.0, now=1900.0)
    assert len(store) == 4  # reports/j1 purged, billing/j4 added
    assert store.purge(2500.0) == 1 and len(store) == 3
    # Another ledger id in the same database has its own ids.
    other = SqlReplayStore.for_plugin(
        PluginContext(ledger_id="other", environment="production", storage=place.storage("other")),
        plugin="auth.service",
    )
    assert other is not None
    other.use("billing", "j3", expires_at=3000.0, now=1500.0)
    assert place.rows(JTI_TABLE) == 4
    assert jti_hash("billing", "j3") != jti_hash("billin", "gj3")
    # Only hashes are stored: a row is found by the hash of (issuer, jti), not by the id itself.
    assert place.rows(JTI_TABLE, f"jti_hash = '{jti_hash('billing', 'j3')}'") == 2
    assert place.rows(JTI_TABLE, "jti_hash LIKE '%j3%' OR length(jti_hash) <> 64") == 0


def test_service_parser_uses_the_sql_store_and_its_clock(place: Place) -> None:
    clock = Clock()
    clock.now = time.time()
    parser = ServiceParser(place.context("auth.service"), clock=clock)
    assert isinstance(parser.replay, SqlReplayStore)
    token = service_token()
    assert parser.parse(token) is not None
    with pytest.raises(TokenInvalidError, match="replay"):
        ServiceParser(place.context("auth.service"), clock=clock).parse(token)


def test_api_key_store_conflicts_and_expiry(place: Place) -> None:
    clock = Clock()
    parser = ApiKeyParser(place.context("auth.api_key"), clock=clock)
    key, record = parser.create_key(ALICE, expires_in=60)
    store = SqlKeyStore.for_plugin(place.context("auth.api_key"), plugin="auth.api_key")
    assert store is not None and store.get(record.key_id) == record
    with pytest.raises(ConflictError, match=record.key_id):
        store.add(record)
    assert store.get("AAAAAAAAAAAA") is None
    clock.now += 61
    with pytest.raises(TokenExpiredError):
        parser.parse(key)
    assert isinstance(store.list()[0], ApiKey) and store.revoke(record.key_id, clock.now, None)


def test_session_store_expiry_touch_and_purge(place: Place) -> None:
    clock = Clock()
    context = place.context("auth.session", touch_interval=10)
    parser = SessionParser(context, clock=clock)
    token, session = parser.create_session(ALICE)
    clock.now += 500
    assert parser.parse(token).oid == ALICE  # activity moves the idle expiry
    clock.now += 500
    assert parser.parse(token).oid == ALICE
    clock.now += 601
    with pytest.raises(TokenExpiredError):
        parser.parse(token)
    store = SqlSessionStore.for_plugin(place.context("auth.session"), plugin="auth.session")
    assert store is not None
    assert store.purge(session.absolute_expires_at) == 1 and store.get(session.token_hash) is None
    other, _ = parser.create_session("oid:acme:user:bob")
    parser.create_session("oid:acme:user:bob")
    assert parser.end_sessions_of("oid:acme:user:bob") == 2
    with pytest.raises(TokenInvalidError):
        parser.parse(other)


@pytest.mark.postgres
def test_postgres_stores_hold_no_pooled_connection_after_their_work(pg_dsn: str) -> None:
    schema = f"c_{uuid.uuid4().hex[:12]}"
    storage = postgres_storage(pg_dsn, schema=schema, pool_size=2)
    try:
        storage.open("books")
        db = storage.database
        ctx = {
            name: PluginContext(ledger_id="books", environment="production", settings=SETTINGS[name], storage=storage)
            for name in SETTINGS
        }
        keys = ApiKeyParser(ctx["auth.api_key"])
        sessions = SessionParser(ctx["auth.session"])
        service = ServiceParser(ctx["auth.service"])
        assert db.is_closed()
        key, record = keys.create_key(ALICE)
        token, _ = sessions.create_session(ALICE)
        assert db.is_closed()
        assert keys.parse(key).oid == ALICE and sessions.parse(token).oid == ALICE
        assert service.parse(service_token()) is not None
        assert keys.list_keys() and keys.revoke_key(record.key_id) and sessions.end_session(token)
        assert db.is_closed(), "a store left this thread holding a pooled connection"
        # Without the backend's connection() the same store would keep one (what the parsers avoid).
        bare = SqlKeyStore(db, "books", ensure_tables=storage.ensure_tables)
        assert bare.get(record.key_id) is not None
        assert not db.is_closed()
    finally:
        storage.close()
        drop_schema(pg_dsn, schema)


# --- API keys and sessions through real ledgers (from SECURITY-TESTS cases 18-20) ---------------------


def test_keys_and_sessions_persist_in_a_sqlite_ledger(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'books.db'}"
    cfg: dict[str, Any] = {
        "id": "books",
        "storage": url,
        "plugins": ["auth.api_key", "auth.session"],
        "settings": {"auth.api_key": {"pepper": PEPPER}, "auth.session": {"secret": SESSION_SECRET}},
    }
    with create_ledger(**cfg) as ledger:
        key, _ = ledger.auth.parser("auth.api_key").create_key(ALICE, scopes=["read"])
        session, _ = ledger.auth.parser("auth.session").create_session(ALICE)
    with create_ledger(**cfg) as ledger:
        assert ledger.auth.authenticate(key).source == "auth.api_key"
        assert ledger.auth.authenticate(session).source == "auth.session"
    dump = "\n".join(sqlite3.connect(tmp_path / "books.db").iterdump())
    assert key not in dump and session not in dump
