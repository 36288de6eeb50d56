"""SECURITY-TESTS "API keys and sessions" (cases 18-20): in memory, on a real SQLite file with a
peewee database of our own, and through real SQLite ledgers."""

from __future__ import annotations

import hmac
import sqlite3
from pathlib import Path
from typing import Any

import peewee
import pytest
from nucleus_token_api_key import ApiKeyParser, MemoryKeyStore, SqlKeyStore
from nucleus_token_api_key import keys as keymod
from nucleus_token_session import MemorySessionStore, SessionParser, SqlSessionStore

from nucleus_core import PluginContext, create_ledger
from nucleus_core.errors import ConfigurationError, TokenExpiredError, TokenInvalidError, ValidationError

PEPPER = "p" * 16 + "epper-for-tests-only-0123456789"
SESSION_SECRET = "session-secret-for-tests-only-0123456789"
ALICE = "oid:acme:user:alice"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class CountingStore:
    """Wraps a store and counts reads, to prove refusals happen before any storage access."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def get(self, key: str) -> Any:
        self.reads += 1
        return self.inner.get(key)


@pytest.fixture(params=["memory", "sqlite"])
def key_store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "memory":
        return MemoryKeyStore()
    db = peewee.SqliteDatabase(str(tmp_path / "keys.db"))
    return SqlKeyStore(db, "books")


def api_parser(store: Any, clock: Clock | None = None, **settings: Any) -> ApiKeyParser:
    ctx = PluginContext(ledger_id="books", environment="production", settings={"pepper": PEPPER, **settings})
    return ApiKeyParser(ctx, clock=clock or Clock(), store=store)


def test_api_key_round_trip(key_store: Any) -> None:
    p = api_parser(key_store)
    key, record = p.create_key(ALICE, role="writer", scopes=["books:append"], name="ci")
    ctx = p.parse(key)
    assert (ctx.oid, ctx.source, ctx.role) == (ALICE, "auth.api_key", "writer")
    assert ctx.claims["scopes"] == ["books:append"] and ctx.claims["key_id"] == record.key_id
    assert [k.key_id for k in p.list_keys()] == [record.key_id]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"),  # checksum digit
        lambda k: k[:10] + ("x" if k[10] != "x" else "y") + k[11:],  # key id changed: checksum no longer matches
        lambda k: k[:-7],  # truncated
        lambda k: k + "0",
        lambda k: k.replace("_", "-"),
        lambda k: "nuk_",
        lambda k: "nuk_" + "0" * 12 + "_" + "0" * 43 + "_" + "!!!!!!",
    ],
)
def test_case18_malformed_or_bad_checksum_is_refused_without_a_query(key_store: Any, mutate: Any) -> None:
    counting = CountingStore(key_store)
    p = api_parser(counting)
    key, _ = p.create_key(ALICE)
    with pytest.raises(TokenInvalidError):
        p.parse(mutate(key))
    assert counting.reads == 0


def test_case19_wrong_secret_is_refused(key_store: Any) -> None:
    p = api_parser(key_store)
    _key, rec = p.create_key(ALICE)
    body = f"nuk_{rec.key_id}_{keymod.random_base62(43)}_"
    forged = body + keymod.checksum(body)  # valid shape and checksum, wrong secret
    with pytest.raises(TokenInvalidError, match="not valid"):
        p.parse(forged)
    unknown = f"nuk_{keymod.random_base62(12)}_{keymod.random_base62(43)}_"
    with pytest.raises(TokenInvalidError):
        p.parse(unknown + keymod.checksum(unknown))


def test_case19_revoked_and_expired_keys_are_refused(key_store: Any) -> None:
    clock = Clock()
    p = api_parser(key_store, clock)
    revoked, rec = p.create_key(ALICE)
    assert p.revoke_key(rec.key_id) is True
    assert p.revoke_key(rec.key_id) is False
    with pytest.raises(TokenInvalidError, match="revoked"):
        p.parse(revoked)
    expiring, _ = p.create_key(ALICE, expires_in=60)
    assert p.parse(expiring).oid == ALICE
    clock.now += 60
    with pytest.raises(TokenExpiredError):
        p.parse(expiring)
    assert {k.status(clock.now) for k in p.list_keys()} == {"revoked", "expired"}
    assert p.list_keys(include_inactive=False) == []


def test_case19_comparison_uses_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    p = api_parser(MemoryKeyStore())
    key, _ = p.create_key(ALICE)
    calls: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("nucleus_token_api_key.parser.hmac.compare_digest", spy)
    p.parse(key)
    stored = p.list_keys()[0].secret_hash
    assert [c for c in calls if stored in c] == [(stored, stored)]


def test_case19_database_holds_no_plaintext_secret(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    p = api_parser(SqlKeyStore(peewee.SqliteDatabase(str(path)), "books"))
    key, rec = p.create_key(ALICE, scopes=["read"])
    secret = key.split("_")[2]
    dump = "\n".join(sqlite3.connect(path).iterdump())
    assert rec.key_id in dump
    assert secret not in dump and key not in dump and PEPPER not in dump


def test_api_key_pepper_rotation_and_configuration() -> None:
    store = MemoryKeyStore()
    old = api_parser(store)
    key, _ = old.create_key(ALICE)
    new_pepper = "n" * 40
    rotated = ApiKeyParser(
        PluginContext(
            ledger_id="books", environment="production", settings={"pepper": new_pepper, "previous_peppers": [PEPPER]}
        ),
        store=store,
    )
    assert rotated.parse(key).oid == ALICE
    dropped = ApiKeyParser(
        PluginContext(ledger_id="books", environment="production", settings={"pepper": new_pepper}), store=store
    )
    with pytest.raises(TokenInvalidError):
        dropped.parse(key)
    for settings in ({}, {"pepper": "short"}, {"pepper": PEPPER, "pepper_env": "X"}, {"pepper": PEPPER, "peper": 1}):
        with pytest.raises(ConfigurationError):
            ApiKeyParser(PluginContext(ledger_id="b", environment="production", settings=settings))


def test_api_key_create_validates_input() -> None:
    p = api_parser(MemoryKeyStore(), max_lifetime=3600)
    with pytest.raises(ValidationError, match="principal"):
        p.create_key("alice", expires_in=60)
    with pytest.raises(ValidationError, match="scopes"):
        p.create_key(ALICE, scopes=["a b"], expires_in=60)
    with pytest.raises(ValidationError, match="expires_in"):
        p.create_key(ALICE)  # max_lifetime demands an expiry
    assert p.list_keys() == []


# --- sessions ---------------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite"])
def session_store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "memory":
        return MemorySessionStore()
    return SqlSessionStore(peewee.SqliteDatabase(str(tmp_path / "s.db")), "books")


def session_parser(store: Any, clock: Clock, **settings: Any) -> SessionParser:
    base = {"idle_timeout": 600, "absolute_timeout": 3600, "touch_interval": 10, **settings}
    return SessionParser(
        PluginContext(ledger_id="books", environment="production", settings=base), clock=clock, store=store
    )


def test_session_round_trip_and_activity_extends_idle_expiry(session_store: Any) -> None:
    clock = Clock()
    p = session_parser(session_store, clock)
    token, _ = p.create_session(ALICE, role="reader")
    assert len(token) == 47 and token.startswith("nss_")
    for _ in range(5):
        clock.now += 500  # under the idle timeout each time, 2500 s in total
        ctx = p.parse(token)
        assert (ctx.oid, ctx.source, ctx.role) == (ALICE, "auth.session", "reader")


def test_case20_guessed_session_id_is_refused(session_store: Any) -> None:
    p = session_parser(session_store, Clock())
    p.create_session(ALICE)
    for guess in ("nss_" + "A" * 43, "nss_short", "nss_" + "A" * 44):
        with pytest.raises(TokenInvalidError):
            p.parse(guess)


def test_case20_session_reused_after_logout_is_refused(session_store: Any) -> None:
    clock = Clock()
    p = session_parser(session_store, clock)
    token, _ = p.create_session(ALICE)
    other, _ = p.create_session(ALICE)
    assert p.end_session(token) is True
    with pytest.raises(TokenInvalidError):
        p.parse(token)
    assert p.parse(other).oid == ALICE
    assert p.end_sessions_of(ALICE) == 1
    with pytest.raises(TokenInvalidError):
        p.parse(other)
    assert p.purge_expired() == 2
    with pytest.raises(TokenInvalidError):
        p.parse(token)


def test_case20_idle_timeout_is_enforced(session_store: Any) -> None:
    clock = Clock()
    p = session_parser(session_store, clock)
    token, _ = p.create_session(ALICE)
    clock.now += 600
    with pytest.raises(TokenExpiredError, match="inactivity"):
        p.parse(token)


def test_case20_absolute_timeout_is_enforced_despite_activity(session_store: Any) -> None:
    clock = Clock()
    p = session_parser(session_store, clock)
    token, _ = p.create_session(ALICE)
    while clock.now + 500 < 1_000_000 + 3600:
        clock.now += 500
        p.parse(token)
    clock.now = 1_000_000 + 3600
    with pytest.raises(TokenExpiredError, match="maximum lifetime"):
        p.parse(token)


def test_session_database_holds_only_hashes(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    p = session_parser(SqlSessionStore(peewee.SqliteDatabase(str(path)), "books"), Clock())
    token, _ = p.create_session(ALICE)
    dump = "\n".join(sqlite3.connect(path).iterdump())
    assert ALICE in dump and token not in dump and token[4:] not in dump


# --- through real ledgers -----------------------------------------------------------------------------


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
