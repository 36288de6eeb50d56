"""The observation interface (nucleus_core.observe): which events a ledger, its token registry and
its checkpoint issuer emit, in order, with what; an observer that fails never breaks the call."""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

import pytest

from nucleus_core import Record, RequestContext, create_ledger
from nucleus_core.checkpoint import CosignatureSigner, NoteSigner
from nucleus_core.errors import ConfigurationError, DuplicateRecordError, InsufficientScopeError, TokenInvalidError
from nucleus_core.observe import (
    Appended,
    Authenticated,
    CheckpointIssued,
    Closed,
    Event,
    GroupCommitted,
    LedgerObserver,
    Observers,
    SystemAppended,
    Verified,
    WitnessResponded,
)
from nucleus_core.tokens import TokenRegistry

CTX = RequestContext(oid="oid:test:user:alice", source="dev")
READER = RequestContext(oid="oid:test:user:bob", source="dev", scopes=frozenset({"read"}))


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def observe(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


class Failing:
    def observe(self, event: Event) -> None:
        raise RuntimeError("observer bug")


def rec(rid: str) -> Record:
    return Record(id=rid, stream="s", timestamp=1, payload={"n": rid})


def test_appends_failures_verification_and_close_in_order() -> None:
    ledger = create_ledger(id="observed", storage="memory://")
    seen = Recorder()
    ledger.observers.add(seen)
    ledger.append(rec("a"), CTX)
    ledger.append_batch([rec("b"), rec("c"), rec("d")], CTX)
    with pytest.raises(DuplicateRecordError):
        ledger.append(rec("a"), CTX)
    with pytest.raises(InsufficientScopeError):
        ledger.append(rec("e"), READER)
    assert ledger.verify().ok
    ledger.close()
    appended = seen.of(Appended)
    assert [(e.records, e.outcome) for e in appended] == [
        (1, "ok"), (3, "ok"), (0, "duplicate_record"), (0, "insufficient_scope"),
    ]
    assert all(e.seconds >= 0 for e in appended)
    assert [(e.calls, e.entries) for e in seen.of(GroupCommitted)] == [(1, 1), (1, 3)]
    (verified,) = seen.of(Verified)
    assert verified.ok and verified.entries == 4
    assert isinstance(seen.events[-1], Closed)
    denials = [e for e in seen.events if type(e).__name__ == "AccessDenied"]
    assert [e.operation for e in denials] == ["append"]  # the scope refusal; a duplicate is no denial


def test_a_failing_observer_is_logged_and_the_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    ledger = create_ledger(id="observed", storage="memory://")
    seen = Recorder()
    ledger.observers.add(Failing())
    ledger.observers.add(seen)
    with caplog.at_level(logging.ERROR, logger="nucleus_core.observe"):
        entry = ledger.append(rec("a"), CTX)
    assert ledger.get(entry.hash, CTX) == entry
    assert [e.outcome for e in seen.of(Appended)] == ["ok"]
    assert "observer Failing failed on Appended" in caplog.text


def test_adding_twice_removing_and_refusing_what_is_no_observer() -> None:
    observers = Observers()
    assert not observers
    seen = Recorder()
    observers.add(seen)
    observers.add(seen)
    assert len(observers) == 1 and isinstance(seen, LedgerObserver)
    observers.remove(seen)
    assert not observers
    with pytest.raises(ConfigurationError, match="observe"):
        observers.add(object())  # type: ignore[arg-type]
    assert observers.exposition() is None


class Parser:
    """Claims tokens starting with ``t:``: ``t:ok:<id>`` is valid, any other is refused."""

    def validate_format(self, token: str) -> bool:
        return token.startswith("t:")

    def parse(self, token: str) -> RequestContext:
        if not token.startswith("t:ok:"):
            raise TokenInvalidError("not a valid t: token")
        return RequestContext(oid=f"oid:test:user:{token[5:]}", source="t")


def test_token_registry_reports_the_parser_and_outcome_never_the_token() -> None:
    registry = TokenRegistry(parsers=[("auth.t", Parser())])
    seen = Recorder()
    registry.observers.add(seen)
    registry.authenticate("t:ok:carol")
    for token in ("t:bad-secret", "other", ""):
        with pytest.raises(TokenInvalidError):
            registry.authenticate(token)
    assert seen.events == [
        Authenticated("auth.t", "ok"), Authenticated("auth.t", "invalid"), Authenticated("none", "unclaimed"),
        Authenticated("none", "invalid"),
    ]


def test_checkpoints_newly_signed_are_reported_once() -> None:
    signer = NoteSigner.generate("test.invalid/observed")
    checkpoint = {"signers": (signer,), "key_env": None, "interval": 0.0}
    ledger = create_ledger(id="observed", storage="memory://", checkpoint=checkpoint)
    seen = Recorder()
    ledger.observers.add(seen)
    ledger.append(rec("a"), CTX)
    ledger.append_batch([rec("b"), rec("c")], CTX)
    ledger.issue_checkpoint()  # the tree did not grow: the stored one, not a new one
    assert [e.size for e in seen.of(CheckpointIssued)] == [1, 3]
    ledger.close()


def test_no_observer_no_event_object() -> None:
    ledger = create_ledger(id="observed", storage="memory://")
    assert not ledger.observers and ledger.auth.observers is ledger.observers
    ledger.append(rec("a"), CTX)  # nothing to assert beyond "works": the bench measures the cost
    late = Recorder()
    ledger.observers.add(late)
    ledger.append(rec("b"), CTX)
    assert [e.records for e in late.of(Appended)] == [1]


def test_a_witness_that_cannot_be_reached_is_reported_by_its_name() -> None:
    with socket.socket() as sock:  # a port nothing listens on: the connection is refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    witness = {"url": f"http://127.0.0.1:{port}", "vkey": CosignatureSigner.generate("w1.example.org").vkey,
               "name": "w-one"}
    checkpoint = {"signers": (NoteSigner.generate("test.invalid/observed"),), "key_env": None, "interval": 0.0,
                  "witnesses": [witness], "witness_quorum": 1}
    ledger = create_ledger(id="observed", storage="memory://", checkpoint=checkpoint)
    answered = threading.Event()

    class Waiter(Recorder):
        def observe(self, event: Event) -> None:
            super().observe(event)
            if isinstance(event, WitnessResponded):
                answered.set()

    seen = Waiter()
    ledger.observers.add(seen)
    try:
        ledger.append(rec("a"), CTX)
        assert answered.wait(60)
    finally:
        ledger.close()
    assert seen.of(WitnessResponded)[0] == WitnessResponded("w-one", "unavailable")


@pytest.mark.needs_distribution("nucleus-storage-sqlite")
def test_the_verification_on_open_reaches_observers_added_later(tmp_path: Any) -> None:
    storage = f"sqlite:///{tmp_path / 'l.db'}"
    with create_ledger(id="past", storage=storage) as ledger:
        ledger.append_batch([Record(id=f"r{i}", stream="s", timestamp=1, payload={}) for i in range(3)], CTX)
        length = ledger.length()
    with create_ledger(id="past", storage=storage) as ledger:
        first, second = Recorder(), Recorder()
        ledger.observers.add(first)
        ledger.observers.add(first)  # once
        ledger.append(Record(id="r9", stream="s", timestamp=1, payload={}), CTX)
        ledger.observers.add(second)
    runs = [e for e in first.events if isinstance(e, Verified)]
    assert len(runs) == 1 and runs[0].ok and runs[0].entries == length
    assert isinstance(first.events[0], Verified) and isinstance(second.events[0], Verified)
    assert [type(e) for e in second.events] == [Verified, Closed]


def test_system_appends_are_their_own_event() -> None:
    recorder = Recorder()
    with create_ledger(id="sys", storage="memory://") as ledger:
        ledger.observers.add(recorder)
        ledger.append_system([Record(id="_a", stream="_sys", timestamp=1, payload={})], CTX)
        with pytest.raises(DuplicateRecordError):
            ledger.append_system([Record(id="_a", stream="_sys", timestamp=1, payload={})], CTX)
    kinds = [e for e in recorder.events if isinstance(e, SystemAppended | Appended)]
    assert [(type(e), e.records, e.outcome) for e in kinds] == [
        (SystemAppended, 1, "ok"), (SystemAppended, 0, "duplicate_record"),
    ]
