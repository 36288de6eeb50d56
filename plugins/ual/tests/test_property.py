"""SECURITY-TESTS 28 as a property: for random grants, expiries and revokes, ``list`` (and ``query``)
returns exactly the entries ``check`` allows, and following ``next_cursor`` with small pages never
leaks nor skips. Run on memory://, SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nucleus_core import Record, RequestContext
from nucleus_core.ledger import Ledger

PRINCIPALS = ["oid:test:user:p0", "oid:test:user:p1", "oid:test:user:p2"]
KINDS = ["stream:s0", "stream:s1"]
RECORDS = [(f"r{i}", f"s{i % 2}") for i in range(10)]
RESOURCE_IDS = [rid for rid, _ in RECORDS] + ["*"]


def ctx(oid: str) -> RequestContext:
    return RequestContext(oid=oid, source="service")


grant_op = st.tuples(
    st.just("grant"),
    st.sampled_from(PRINCIPALS),
    st.sampled_from(KINDS),
    st.sampled_from(RESOURCE_IDS),
    st.sampled_from(["create", "read", "write", "full"]),  # create is only on "*" (see below)
    st.sampled_from([None, 500, 1000, 1500]),  # expiry, ms after now (ticks land on and around it)
)
revoke_op = st.tuples(st.just("revoke"), st.integers(min_value=0, max_value=50))
tick_op = st.tuples(st.just("tick"), st.sampled_from([250, 499, 500, 1000]))
operations = st.lists(st.one_of(grant_op, grant_op, revoke_op, tick_op), max_size=14)

_ids = itertools.count()


def _pages(ledger: Ledger, who: str, limit: int, kind: str | None, use_list: bool) -> list[int]:
    seqs: list[int] = []
    cursor: str | None = None
    while True:
        filters: dict[str, Any] = {"limit": limit, "cursor": cursor}
        if use_list:
            if kind is not None:
                filters["kind"] = kind
            result: Any = ledger.acl.list(ctx(who), filters)
        else:
            if kind is not None:
                filters["stream"] = kind.removeprefix("stream:")
            result = ledger.query(filters, ctx(who))
        assert len(result.entries) <= limit
        seqs.extend(e.seq for e in result.entries)
        if result.next_cursor is None:
            return seqs
        assert len(result.entries) == limit  # only the last page may be short
        cursor = result.next_cursor


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(ops=operations, limit=st.integers(min_value=1, max_value=4), kind=st.sampled_from([None, *KINDS]))
def test_28_list_is_exactly_what_check_allows(
    backend: Any, ops: list[tuple[Any, ...]], limit: int, kind: str | None
) -> None:
    ledger = backend.open(id=f"prop{next(_ids)}")
    try:
        admin = ctx(backend.admin)
        ledger.append_batch([Record(id=rid, stream=s, timestamp=1, payload={}) for rid, s in RECORDS], admin)
        given_grants: list[tuple[str, str, str]] = []
        for op in ops:
            if op[0] == "grant":
                _, who, res_kind, rid, scope, expiry = op
                rid = "*" if scope == "create" else rid
                expires_at = backend.clock.now + expiry if expiry is not None else None
                ledger.acl.grant(
                    [
                        {
                            "resource_kind": res_kind,
                            "resource_id": rid,
                            "principal_oid": who,
                            "scope": scope,
                            "expires_at": expires_at,
                        }
                    ],
                    admin,
                )
                given_grants.append((who, res_kind, rid))
            elif op[0] == "revoke" and given_grants:
                who, res_kind, rid = given_grants.pop(op[1] % len(given_grants))
                if (who, res_kind, rid) not in given_grants:  # the same grant may have been given twice
                    ledger.acl.revoke([{"principal_oid": who, "resource_kind": res_kind, "resource_id": rid}], admin)
            elif op[0] == "tick":
                backend.clock.now += op[1]
        entries = {e.seq: e for e in ledger.query({"limit": 1000}, admin)}
        user = {seq: e for seq, e in sorted(entries.items()) if not e.record.stream.startswith("_")}
        for who in PRINCIPALS:
            readable = [
                seq
                for seq, e in user.items()
                if ledger.acl.check(who, "read", (f"stream:{e.record.stream}", e.record.id))
            ]
            for seq, e in user.items():  # get by hash agrees with check
                assert (ledger.get(e.hash, ctx(who)) is not None) == (seq in readable)
            allowed = [seq for seq in readable if kind is None or kind == f"stream:{user[seq].record.stream}"]
            assert _pages(ledger, who, limit, kind, use_list=True) == allowed
            assert _pages(ledger, who, limit, kind, use_list=False) == allowed
    finally:
        ledger.close()
        backend.opened.remove(ledger)
