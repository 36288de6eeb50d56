"""SECURITY-TESTS "API keys and sessions" (case 20, sessions): in memory and on a real SQLite file
with a peewee database of our own."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import peewee
import pytest
from nucleus_token_session import MemorySessionStore, SessionParser, SqlSessionStore

from nucleus_core import PluginContext
from nucleus_core.errors import TokenExpiredError, TokenInvalidError
from nucleus_core.testing import ManualClock as Clock

ALICE = "oid:acme:user:alice"


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


def test_a_passive_check_records_no_activity_and_gives_the_deadline(session_store: Any) -> None:
    from nucleus_core.auth import PassiveTokenParser, TokenRegistry

    clock = Clock()
    p = session_parser(session_store, clock, idle_timeout=100, touch_interval=1)
    assert isinstance(p, PassiveTokenParser)
    token, session = p.create_session(ALICE)
    registry = TokenRegistry(parsers=[("auth.session", p)])
    start = session.created_at
    for _ in range(3):  # checked often (90 s), used by nothing else: the idle deadline stays
        clock.now += 30
        ctx = registry.authenticate(token, passive=True)
        assert ctx.oid == ALICE and ctx.expires_at == start + 100
    clock.now = start + 100
    with pytest.raises(TokenExpiredError, match="inactivity"):
        registry.authenticate(token, passive=True)
    with pytest.raises(TokenExpiredError, match="inactivity"):
        registry.authenticate(token)  # an ordinary request: the session is over
    # An ordinary request records the activity: the deadline moves, and a check sees it.
    other, session = p.create_session(ALICE)
    clock.now += 50
    assert registry.authenticate(other).expires_at == clock.now + 100
    assert p.check(other).expires_at == clock.now + 100
    # The absolute deadline when it comes first.
    short = session_parser(session_store, clock, idle_timeout=100, absolute_timeout=150, touch_interval=1)
    token, session = short.create_session(ALICE)
    clock.now += 60
    assert short.parse(token).expires_at == session.absolute_expires_at == session.created_at + 150
