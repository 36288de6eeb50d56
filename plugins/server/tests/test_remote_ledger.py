"""The full API through RemoteLedger against a real uvicorn, compared with the embedded Ledger."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from nucleus_server.client import RemoteLedger

from nucleus_core import (
    DuplicateRecordError,
    Entry,
    Ledger,
    QueryError,
    QueryResult,
    Record,
    RecordValidationError,
    RequestContext,
    VerificationReport,
)
from nucleus_core.errors import AccessDeniedError, AuthenticationError, ConfigurationError, MissingRequesterError

ALICE = "oid:test:user:alice"
BOB = "oid:test:user:bob"
ROOT = "oid:test:user:root"


def ctx(oid: str) -> RequestContext:
    # The source the server's dev parser gives: it is in every entry's hash, so both ledgers must agree.
    return RequestContext(oid=oid, source="auth.dev", token=f"dev:{oid}")


def rec(i: int | str, stream: str = "notes", **payload: Any) -> Record:
    return Record(
        id=f"r-{i}",
        stream=stream,
        timestamp=1_700_000_000_000 + (i if isinstance(i, int) else 0),
        payload={"n": i, **payload},
    )


def exercise(ledger: Any, who: RequestContext) -> dict[str, Any]:
    """The same calls against an embedded or a remote ledger; returns what they gave."""
    one = ledger.append(rec(1), who)
    batch = ledger.append_batch([rec(2), rec(3, stream="other"), rec(4)], who)
    with pytest.raises(DuplicateRecordError) as dup:
        ledger.append_batch([rec(5), rec(1)], who)
    with pytest.raises(RecordValidationError):
        ledger.append(Record.from_dict({"id": "x", "stream": "_system", "timestamp": 1, "payload": {}}), who)
    with pytest.raises(QueryError) as bad_limit:
        ledger.query({"limit": 0}, who)
    first = ledger.query({"stream": "notes", "limit": 2}, who)
    second = ledger.query({"stream": "notes", "limit": 2, "cursor": first.next_cursor}, who)
    return {
        "one": one,
        "batch": batch,
        "dup_id": dup.value.record_id,
        "bad_limit_field": bad_limit.value.field,
        "pages": ([e.record.id for e in first], first.next_cursor, [e.record.id for e in second], second.next_cursor),
        "by_hash": ledger.get(batch[1].hash, who),
        "by_id": ledger.get_by_id("r-4", who),
        "missing": ledger.get_by_id("r-5", who),
        "length": ledger.length(),
        "head": ledger.latest_hash(),
        "verify": ledger.verify(),
        "persistent": ledger.has_storage(),
    }


class _FixedClock:
    """Stands in for ``time`` in ``nucleus_core.ledger``: both ledgers commit at the same instant, so
    that their entries (committed_at is in the hash) are equal."""

    @staticmethod
    def time_ns() -> int:
        return 1_700_000_000_000 * 1_000_000


def test_remote_matches_embedded(
    open_ledger: Callable[..., Ledger], serve: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import nucleus_core.ledger

    monkeypatch.setattr(nucleus_core.ledger, "time", _FixedClock)
    embedded = open_ledger(name="embedded.db")
    served = open_ledger(name="served.db")
    server = serve(served)
    with RemoteLedger(server.url, token=f"dev:{ALICE}") as remote:
        local_out = exercise(embedded, ctx(ALICE))
        remote_out = exercise(remote, ctx(ALICE))
        assert remote.id == embedded.id == "http-test"
        assert list(remote.iter_entries()) == list(embedded.iter_entries(ctx(ALICE)))
    embedded.close()
    assert remote_out == local_out
    assert isinstance(remote_out["one"], Entry)
    assert isinstance(remote_out["verify"], VerificationReport) and remote_out["verify"].ok
    assert remote_out["pages"] == (["r-1", "r-2"], "s2", ["r-4"], None)
    assert remote_out["missing"] is None
    assert remote_out["length"] == 4


def test_query_result_type_and_filters(open_ledger: Callable[..., Ledger], serve: Callable[..., Any]) -> None:
    server = serve(open_ledger())
    with RemoteLedger(server.url, token=f"dev:{ALICE}") as remote:
        remote.append_batch([rec(i) for i in range(1, 6)])
        page = remote.query({"record_ids": ["r-2", "r-4"]})
        assert isinstance(page, QueryResult)
        assert [e.record.id for e in page] == ["r-2", "r-4"]
        assert [e.seq for e in remote.query({"since": 1_700_000_000_003})] == [3, 4, 5]
        assert [e.seq for e in remote.iter_entries(from_seq=4)] == [4, 5]


def test_requester_comes_from_the_token(open_ledger: Callable[..., Ledger], serve: Callable[..., Any]) -> None:
    server = serve(open_ledger())
    with RemoteLedger(server.url) as anonymous:
        with pytest.raises(MissingRequesterError):
            anonymous.append(rec(1))
        # A context with its own token acts as that principal.
        entry = anonymous.append(rec(1), ctx(BOB))
        assert anonymous.whoami(ctx(BOB)).oid == BOB
        assert entry.seq == 1
    with RemoteLedger(server.url, token=f"dev:{ALICE}") as remote:
        assert remote.whoami().oid == ALICE
        # A context naming Bob without a token of Bob's is refused, never sent as Alice.
        with pytest.raises(AuthenticationError):
            remote.append(rec(2), RequestContext(oid=BOB, source="dev"))
        assert remote.length() == 1


def test_modules_over_http(open_ledger: Callable[..., Ledger], serve: Callable[..., Any]) -> None:
    ledger = open_ledger("proof", "asset")
    expected = ledger.runtime.metadata()
    server = serve(ledger)
    with RemoteLedger(server.url, token=f"dev:{ALICE}") as remote:
        assert remote.modules.metadata() == expected
        assert remote.runtime.list() == ["proof", "asset"] == [m.id for m in expected]


def test_acl_and_ual_filtering(open_ledger: Callable[..., Ledger], serve: Callable[..., Any]) -> None:
    server = serve(open_ledger("ual", admins=[ROOT]))
    root = RemoteLedger(server.url, token=f"dev:{ROOT}")
    alice = RemoteLedger(server.url, token=f"dev:{ALICE}")
    bob = RemoteLedger(server.url, token=f"dev:{BOB}")
    try:
        with pytest.raises(AccessDeniedError):
            alice.append(rec(1))
        assert alice.length() == 1  # only the _ledger record of the ledger's plugins
        root.acl.grant(
            [{"resource_kind": "stream:notes", "resource_id": "*", "principal_oid": ALICE, "scope": "write"}]
        )
        root.acl.grant([{"resource_kind": "stream:other", "resource_id": "*", "principal_oid": BOB, "scope": "write"}])
        alice.append(rec(1))
        alice.append(rec(2))
        bob.append(rec(3, stream="other"))
        # Two principals see different results for the same query: filtered by the database.
        assert [e.record.id for e in alice.query({})] == ["r-1", "r-2"]
        assert [e.record.id for e in bob.query({})] == ["r-3"]
        assert {e.record.id for e in root.query({"stream": ["notes", "other"]})} == {"r-1", "r-2", "r-3"}
        assert bob.get_by_id("r-1") is None
        assert [e.record.id for e in bob.acl.list(filters={"kind": "stream:other"})] == ["r-3"]
        # Alice created r-1 so she holds full on it; she may let Bob read it.
        given = alice.acl.grant(
            [{"resource_kind": "stream:notes", "resource_id": "r-1", "principal_oid": BOB, "scope": "read"}]
        )
        assert given[0].granted_by == ALICE
        assert bob.get_by_id("r-1") is not None
        assert bob.acl.check(ctx(BOB), "read", ("stream:notes", "r-1"))
        assert not bob.acl.check(ctx(BOB), "write", ("stream:notes", "r-1"))
        assert alice.acl.check(BOB, "read", ("stream:notes", "r-1"))  # Alice holds full on r-1
        with pytest.raises(AccessDeniedError):
            bob.acl.check(ALICE, "read", ("stream:notes", "r-2"))  # Bob may not probe Alice's access
        with pytest.raises(AccessDeniedError):  # only full may grant
            bob.acl.grant(
                [{"resource_kind": "stream:notes", "resource_id": "r-1", "principal_oid": BOB, "scope": "full"}]
            )
        assert alice.acl.revoke([{"resource_kind": "stream:notes", "resource_id": "r-1", "principal_oid": BOB}]) == 1
        assert bob.get_by_id("r-1") is None
        assert root.verify().ok
    finally:
        for client in (root, alice, bob):
            client.close()


def test_acl_routes_without_provider(open_ledger: Callable[..., Ledger], serve: Callable[..., Any]) -> None:
    server = serve(open_ledger())
    with (
        RemoteLedger(server.url, token=f"dev:{ALICE}") as remote,
        pytest.raises(ConfigurationError, match="no access-control provider"),
    ):
        remote.acl.check(ctx(ALICE), "read", ("stream:notes", "x"))


def test_record_ids_with_reserved_characters(open_ledger: Callable[..., Ledger], serve: Callable[..., Any]) -> None:
    server = serve(open_ledger())
    odd = ["a/b", "50%", "q?x=1", "sp ace", "h#sh", "..", "%2F"]
    with RemoteLedger(server.url, token=f"dev:{ALICE}") as remote:
        remote.append_batch([Record(id=i, stream="s", timestamp=1, payload={}) for i in odd])
        for record_id in odd:
            entry = remote.get_by_id(record_id)
            assert entry is not None and entry.record.id == record_id
