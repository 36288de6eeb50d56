"""The create-only right (issue #11, item 4): ``create`` on ``<kind>/*`` lets a principal create new
resources of the kind and nothing else; she then holds what creating gives (``full`` as the
appender, plus the module's seeds) on what she creates. Two issuers of proofs are kept apart.
Run on memory://, SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nucleus_ual import Grant, Scope

from nucleus_core import Record, RequestContext
from nucleus_core.errors import AccessDeniedError, DuplicateRecordError, ValidationError

ISSUERS = ["oid:test:user:i0", "oid:test:user:i1", "oid:test:user:i2"]
SUBJECT = "oid:test:user:subject"
TARGET = "oid:test:app:verifier"
PROOF_IDS = [f"p{i}" for i in range(6)]


def ctx(oid: str) -> RequestContext:
    return RequestContext(oid=oid, source="service")


def grant(kind: str, rid: str, who: str, scope: str) -> dict[str, Any]:
    return {"resource_kind": kind, "resource_id": rid, "principal_oid": who, "scope": scope}


def issued(rid: str, issuer: str) -> Record:
    return Record(
        id=rid,
        stream="proof",
        timestamp=1_700_000_000_000,
        payload={"type": "issued", "subject": SUBJECT, "issuer": issuer, "proof_type": "kyc.basic",
                 "target": TARGET, "data": {}},
    )


def visible_ids(ledger: Any, who: str) -> dict[str, list[str]]:
    """What ``who`` sees of the proof stream through every read path."""
    listed = [e.record.id for e in ledger.acl.list(ctx(who), {"kind": "proof", "limit": 1000}).entries]
    queried = [e.record.id for e in ledger.query({"stream": "proof", "limit": 1000}, ctx(who)).entries]
    every = [e.record.id for e in ledger.iter_entries(ctx(who)) if e.record.stream == "proof"]
    by_id = [rid for rid in PROOF_IDS if ledger.get_by_id(rid, ctx(who)) is not None]
    checked = [rid for rid in PROOF_IDS if ledger.acl.check(who, "read", ("proof", rid))]
    module = ledger.modules.get("proof")
    handle = [rid for rid in PROOF_IDS if module.get(rid, ctx(who)) is not None]
    return {"list": listed, "query": queried, "iter": every, "get_by_id": by_id, "check": checked, "handle": handle}


def test_create_on_the_kind_creates_and_reads_only_its_own(backend: Any) -> None:
    ledger = backend.open(plugins=("proof",))
    admin = ctx(backend.admin)
    one, two = ISSUERS[0], ISSUERS[1]
    ledger.acl.grant([grant("proof", "*", one, "create"), grant("proof", "*", two, "create")], admin)
    acl = ledger.acl
    for who in (one, two):
        assert acl.check(who, "create", ("proof", "*")) and acl.check(who, "create", ("proof", "any-new-id"))
        assert not acl.check(who, "read", ("proof", "*")) and not acl.check(who, "write", ("proof", "*"))
    ledger.append(issued("p0", one), ctx(one))
    ledger.append(issued("p1", two), ctx(two))
    # Each issuer holds full on her own proof, nothing on the other's; the subject reads both (seeded).
    assert acl.check(one, "full", ("proof", "p0")) and not acl.check(one, "read", ("proof", "p1"))
    assert acl.check(two, "full", ("proof", "p1")) and not acl.check(two, "read", ("proof", "p0"))
    for who, own in ((one, "p0"), (two, "p1")):
        assert {path: ids == [own] for path, ids in visible_ids(ledger, who).items()} == dict.fromkeys(
            ("list", "query", "iter", "get_by_id", "check", "handle"), True
        )
    assert visible_ids(ledger, SUBJECT)["list"] == ["p0", "p1"]
    # Create is not write: she may not append to another's proof, nor revoke it.
    before = ledger.length()
    revoke = Record(id="r1", stream="proof", timestamp=1_700_000_000_001,
                    payload={"type": "revoked", "proof_id": "p1", "by": one})
    with pytest.raises(AccessDeniedError, match="write access to proof/p1 denied"):
        ledger.append(revoke, ctx(one))
    # ... nor take an id that exists (the same denial as for anyone), nor create other kinds.
    with pytest.raises(AccessDeniedError, match="write access to proof/p1 denied"):
        ledger.append(issued("p1", one), ctx(one))
    with pytest.raises(AccessDeniedError):
        ledger.append(Record(id="n1", stream="notes", timestamp=1, payload={}), ctx(one))
    assert ledger.length() == before
    # Her own proof she may revoke (full as its creator).
    ledger.append(Record(id="r0", stream="proof", timestamp=1_700_000_000_001,
                         payload={"type": "revoked", "proof_id": "p0", "by": one}), ctx(one))
    # The right survives a reopen (rebuilt from the tables; checked against the _acl stream).
    assert ledger.verify().ok
    ledger.close()
    again = backend.open(plugins=("proof",))
    assert again.verify().ok
    assert again.acl.grants_from_chain()[(one, "proof", "*")].scope is Scope.CREATE
    assert again.acl.check(one, "create", ("proof", "*")) and not again.acl.check(one, "read", ("proof", "p1"))
    again.append(issued("p2", one), ctx(one))
    assert visible_ids(again, one)["list"] == ["p0", "r0", "p2"]


def test_create_is_only_a_right_on_the_kind_and_read_on_it_is_not_create(backend: Any) -> None:
    ledger = backend.open(plugins=("proof",))
    admin = ctx(backend.admin)
    with pytest.raises(ValidationError, match="'create' is a right on proof/\\* only") as info:
        ledger.acl.grant([grant("proof", "p0", ISSUERS[0], "create")], admin)
    assert info.value.field == "scope"
    with pytest.raises(ValidationError):
        Grant(resource_kind="stream:notes", resource_id="n1", principal_oid=ISSUERS[0], scope="create")
    ledger.acl.grant([grant("proof", "*", ISSUERS[1], "read")], admin)
    assert not ledger.acl.check(ISSUERS[1], "create", ("proof", "*"))
    with pytest.raises(AccessDeniedError):
        ledger.append(issued("p0", ISSUERS[1]), ctx(ISSUERS[1]))
    # write and full on the kind allow creating, as before.
    ledger.acl.grant([grant("proof", "*", ISSUERS[2], "write")], admin)
    assert ledger.acl.check(ISSUERS[2], "create", ("proof", "*"))


def test_no_record_may_be_the_wildcard_resource(backend: Any) -> None:
    """A record with id '*' would be resource ``<kind>/*``: its creator would be seeded full on
    every resource of the kind. Refused for everyone, administrators included."""
    ledger = backend.open()
    admin = ctx(backend.admin)
    ledger.acl.grant(
        [grant("stream:notes", "*", ISSUERS[0], "create"), grant("stream:notes", "*", ISSUERS[1], "write")], admin
    )
    before = ledger.length()
    for who in (*ISSUERS[:2], backend.admin):
        with pytest.raises(ValidationError, match="resource id '\\*' is reserved"):
            ledger.append(Record(id="*", stream="notes", timestamp=1, payload={}), ctx(who))
    assert ledger.length() == before
    assert not ledger.acl.check(ISSUERS[0], "read", ("stream:notes", "x"))
    assert not ledger.acl.check(ISSUERS[1], "full", ("stream:notes", "x"))


_ids = itertools.count()

issue_op = st.tuples(st.just("issue"), st.sampled_from(ISSUERS), st.sampled_from(PROOF_IDS))
share_op = st.tuples(st.just("share"), st.sampled_from(ISSUERS), st.sampled_from(PROOF_IDS), st.sampled_from(ISSUERS))
unshare_op = st.tuples(st.just("unshare"), st.sampled_from(ISSUERS), st.sampled_from(PROOF_IDS),
                       st.sampled_from(ISSUERS))


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(ops=st.lists(st.one_of(issue_op, issue_op, share_op, unshare_op), max_size=12))
def test_several_issuers_on_one_kind_see_exactly_what_they_created_and_were_granted(
    backend: Any, ops: list[tuple[str, ...]]
) -> None:
    ledger = backend.open(id=f"create{next(_ids)}", plugins=("proof",))
    try:
        admin = ctx(backend.admin)
        ledger.acl.grant([grant("proof", "*", who, "create") for who in ISSUERS], admin)
        creator: dict[str, str] = {}  # proof id -> its issuer
        shared: dict[tuple[str, str], str] = {}  # (proof id, principal) -> scope granted
        for op in ops:
            if op[0] == "issue":
                _, who, rid = op
                if rid in creator:  # taken: nothing written
                    length = ledger.length()
                    if creator[rid] == who:  # her own proof: she may read it, so the conflict is hers
                        with pytest.raises(DuplicateRecordError):
                            ledger.append(issued(rid, who), ctx(who))
                    else:  # another's: denied like any other refusal
                        with pytest.raises(AccessDeniedError, match=f"write access to proof/{rid} denied"):
                            ledger.append(issued(rid, who), ctx(who))
                    assert ledger.length() == length
                else:
                    ledger.append(issued(rid, who), ctx(who))
                    creator[rid] = who
            elif op[0] == "share":
                _, who, rid, other = op
                if other == who:
                    continue  # (a grant to oneself replaces one's own grant: not what is tested here)
                if creator.get(rid) == who:  # the creator holds full: she may grant
                    ledger.acl.grant([grant("proof", rid, other, "read")], ctx(who))
                    shared[(rid, other)] = "read"
                else:
                    with pytest.raises(AccessDeniedError):
                        ledger.acl.grant([grant("proof", rid, other, "read")], ctx(who))
            else:
                _, who, rid, other = op
                if creator.get(rid) == who and (rid, other) in shared:
                    ledger.acl.revoke([grant("proof", rid, other, "read")], ctx(who))
                    del shared[(rid, other)]
        order = [e.record.id for e in ledger.query({"stream": "proof", "limit": 1000}, admin).entries]
        for who in ISSUERS:
            expected = [rid for rid in order if creator.get(rid) == who or (rid, who) in shared]
            seen = visible_ids(ledger, who)
            for path in ("list", "query", "iter"):
                assert seen[path] == expected, (who, path)
            for path in ("get_by_id", "check", "handle"):
                assert seen[path] == sorted(expected, key=PROOF_IDS.index), (who, path)
            assert ledger.acl.check(who, "create", ("proof", "*"))
            assert not ledger.acl.check(who, "read", ("proof", "*"))
        assert ledger.verify().ok  # the grants table agrees with the _acl stream
    finally:
        ledger.close()
        backend.opened.remove(ledger)
