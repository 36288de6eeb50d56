"""Plugin state in the chain is read only from the plugin's own system stream, and the record ids
system streams derive are in a namespace no user record can take (issue #11, item 1).

The reproduction: a principal who may write only to her own stream appended a record whose id was
the revocation id of alice's API key (``api-key-revoke-<key id>``); the parser, looking that id up
in every stream, refused alice's key from then on, and an administrator's revoke afterwards took
its time from that record. On real SQLite files and a real PostgreSQL database.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from nucleus_storage_postgres import postgres_storage
from nucleus_storage_sqlite import sqlite_storage
from nucleus_token_api_key.parser import STREAM, legacy_revoke_record_id, revoke_record_id

from nucleus_core import Ledger, Record, RequestContext, create_ledger
from nucleus_core.context import ALL_SCOPES
from nucleus_core.errors import RecordValidationError, TokenInvalidError
from nucleus_core.testing.postgres import drop_schema, temporary_database

PEPPER = "system-ids-test-pepper-0123456789abcdefgh"
ALICE = "oid:sec:user:alice"
MALLORY = RequestContext(oid="oid:sec:user:mallory", source="auth.dev")
ADMIN = RequestContext(oid="oid:sec:user:admin", source="auth.dev", scopes=ALL_SCOPES)  # keys: explicit
PLUGINS = ["auth.api_key", "ual"]


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    with temporary_database("nucleus_sysids") as dsn:
        yield dsn


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def make_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Any]]:
    if request.param == "sqlite":
        yield lambda: sqlite_storage(tmp_path / "ids.db")
        return
    dsn = request.getfixturevalue("pg_dsn")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        yield lambda: postgres_storage(dsn, schema=schema)
    finally:
        drop_schema(dsn, schema)


def open_ledger(make_storage: Callable[[], Any]) -> Ledger:
    settings = {"auth.api_key": {"pepper": PEPPER}}
    return create_ledger(id="sec", storage=make_storage(), plugins=PLUGINS, settings=settings, admins=[ADMIN.oid])


def let_mallory_write_her_stream(ledger: Ledger) -> None:
    grant = {"resource_kind": "stream:mnotes", "resource_id": "*", "principal_oid": MALLORY.oid, "scope": "write"}
    ledger.acl.grant([grant], ADMIN)


def note(record_id: str) -> Record:
    return Record(id=record_id, stream="mnotes", timestamp=1_700_000_000_000, payload={"text": "mine"})


def test_a_user_record_named_like_a_revocation_revokes_nothing(make_storage: Callable[[], Any]) -> None:
    with open_ledger(make_storage) as ledger:
        keys = ledger.auth.parser("auth.api_key")
        key, record = keys.create_key(ALICE, context=ADMIN)
        let_mallory_write_her_stream(ledger)
        # The attack, exactly: mallory writes to her own stream under the (old-form) revocation id.
        ledger.append(note(legacy_revoke_record_id(record.key_id)), MALLORY)
        assert ledger.auth.authenticate(key).oid == ALICE
    with open_ledger(make_storage) as ledger:
        keys = ledger.auth.parser("auth.api_key")
        assert ledger.auth.authenticate(key).oid == ALICE  # and after reopening
        # The administrator's revoke afterwards is a revocation of its own, at its own time.
        before = keys.now()
        assert keys.revoke_key(record.key_id, context=ADMIN) is True
        [row] = keys.list_keys()
        assert row.revoked_at is not None and row.revoked_at >= before
        with pytest.raises(TokenInvalidError):
            ledger.auth.authenticate(key)
        revocation = ledger.get_by_id(revoke_record_id(record.key_id), ADMIN)
        assert revocation is not None and revocation.record.stream == STREAM
        assert revocation.record.payload["revoked_at"] == row.revoked_at


def test_a_user_record_cannot_take_a_system_id(make_storage: Callable[[], Any]) -> None:
    with open_ledger(make_storage) as ledger:
        keys = ledger.auth.parser("auth.api_key")
        key, record = keys.create_key(ALICE, context=ADMIN)
        let_mallory_write_her_stream(ledger)
        before = (ledger.length(), ledger.latest_hash())
        for rid in (revoke_record_id(record.key_id), "_acl:x", "_anything"):
            for who in (MALLORY, ADMIN):  # administrators included: the rule is the core's
                with pytest.raises(RecordValidationError, match="reserved for system streams") as info:
                    ledger.append_batch([note("fine-1"), note(rid)], who)
                assert info.value.field == "id"
        assert (ledger.length(), ledger.latest_hash()) == before
        assert ledger.get_by_id("fine-1", ADMIN) is None
        assert ledger.auth.authenticate(key).oid == ALICE
        # The administrator's revocation is then free to be written under its id.
        assert keys.revoke_key(record.key_id, context=ADMIN) is True


def test_every_id_a_plugin_writes_is_in_its_system_stream_namespace(make_storage: Callable[[], Any]) -> None:
    with open_ledger(make_storage) as ledger:
        keys = ledger.auth.parser("auth.api_key")
        _key, record = keys.create_key(ALICE, context=ADMIN)
        keys.revoke_key(record.key_id, context=ADMIN)
        let_mallory_write_her_stream(ledger)
        ledger.append(note("n-1"), MALLORY)  # seeds mallory's full on it: an _acl record
        system = [e.record for e in ledger.iter_entries(ADMIN) if e.record.stream.startswith("_")]
        # _ledger: the plugins whose state lives in the chain, recorded when the ledger was created.
        assert {r.stream for r in system} == {STREAM, "_acl", "_ledger"}
        for r in system:
            assert r.id.startswith(f"{r.stream}:"), r.id


def test_revocations_of_older_versions_keep_their_meaning(make_storage: Callable[[], Any]) -> None:
    """A ledger written before the namespace holds ``api-key-revoke-<id>`` in ``_api_keys``: that
    revocation still counts (only there), and a later revoke keeps the time it records."""
    with open_ledger(make_storage) as ledger:
        keys = ledger.auth.parser("auth.api_key")
        key, record = keys.create_key(ALICE, context=ADMIN)
        old_time = keys.now() - 5
        payload = {"op": "revoke", "key_id": record.key_id, "revoked_at": old_time, "by": ADMIN.oid}
        ledger.append_system(
            [Record(id=legacy_revoke_record_id(record.key_id), stream=STREAM, timestamp=1, payload=payload)], ADMIN
        )
        with pytest.raises(TokenInvalidError):
            ledger.auth.authenticate(key)
    with open_ledger(make_storage) as ledger:
        keys = ledger.auth.parser("auth.api_key")
        with pytest.raises(TokenInvalidError):
            ledger.auth.authenticate(key)
        length = ledger.length()
        assert keys.revoke_key(record.key_id, context=ADMIN) is False  # revoked already, in the chain
        assert ledger.length() == length
        [row] = keys.list_keys()
        assert row.revoked_at == old_time
