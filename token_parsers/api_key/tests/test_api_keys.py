"""SECURITY-TESTS "API keys and sessions" (cases 18-19, API keys): in memory and on a real SQLite file
with a peewee database of our own (token_parsers/session/tests/test_sessions.py has case 20)."""

from __future__ import annotations

import hmac
import sqlite3
from pathlib import Path
from typing import Any

import peewee
import pytest
from nucleus_token_api_key import ApiKeyParser, MemoryKeyStore, SqlKeyStore
from nucleus_token_api_key import keys as keymod

from nucleus_core import PluginContext
from nucleus_core.errors import ConfigurationError, TokenExpiredError, TokenInvalidError, ValidationError
from nucleus_core.testing import ManualClock as Clock

PEPPER = "p" * 16 + "epper-for-tests-only-0123456789"
ALICE = "oid:acme:user:alice"


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
    expiring, expiring_rec = p.create_key(ALICE, expires_in=60)
    ctx = p.parse(expiring)
    # The context carries the key's expiry (an open stream ends there); a key without one, none.
    assert ctx.oid == ALICE and ctx.expires_at == expiring_rec.expires_at == clock.now + 60
    forever, _ = p.create_key(ALICE)
    assert p.parse(forever).expires_at is None
    p.revoke_key(p.parse(forever).claims["key_id"])
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
