"""The module registry: lifecycle, dependency order, failures, stop, handles, runtime, append path."""

from __future__ import annotations

import gc
import logging
import subprocess
import sys
import textwrap

import pytest

from nucleus_core import (
    Module,
    ModuleError,
    ModuleSpec,
    ModuleState,
    Record,
    RecordRejectedError,
    RequestContext,
    ValidationError,
    create_ledger,
    hookimpl,
)
from nucleus_core.modules import LedgerRuntime, ModuleContext, SeedGrant

ALICE = RequestContext(oid="oid:test:user:alice", source="service")


class Probe(Module):
    """A module that records every hook call in a shared journal and fails where told."""

    def __init__(self, mid, journal, *, depends_on=(), streams=(), fail_in=(), refuse=None):
        self.id = mid
        self.depends_on = tuple(depends_on)
        self.streams = tuple(streams)
        self.journal = journal
        self.fail_in = set(fail_in)
        self.refuse = refuse
        self.settings = None
        self.applied = []

    def _hook(self, name):
        self.journal.append(f"{name}:{self.id}")
        if name in self.fail_in:
            raise RuntimeError(f"{self.id} fails in {name}")

    def init(self, ctx):
        self.settings = dict(ctx.settings)
        self._hook("init")

    def start(self, ctx):
        self._hook("start")

    def stop(self, ctx):
        self._hook("stop")

    def validate(self, record, context):
        self.journal.append(f"validate:{record.id}")
        if self.refuse == "validate" and record.payload.get("bad"):
            raise RecordRejectedError("payload is bad", module_id=self.id, record_id=record.id)
        if self.refuse == "valueerror" and record.payload.get("bad"):
            raise ValueError("plain bad value")

    def before_append(self, records, context):
        self.journal.append(f"before:{len(records)}")
        if self.refuse == "before":
            raise ValidationError("batch too dull", field="payload")

    def after_append(self, entries, context):
        self.journal.append(f"after:{[e.seq for e in entries]}")
        if "after_append" in self.fail_in:
            raise RuntimeError("after_append exploded")


class Plugin:
    """A plugin object (passed in ``plugins=[...]``) registering the given module instances."""

    def __init__(self, *modules):
        self.modules = modules

    @hookimpl
    def nucleus_register_modules(self):
        return [ModuleSpec(id=m.id, factory=lambda _ctx, m=m: m) for m in self.modules]


def open_ledger(*modules, **kwargs):
    return create_ledger(id="mods", storage="memory://", plugins=[Plugin(*modules)], **kwargs)


def rec(rid, stream="things", **payload):
    return Record(id=rid, stream=stream, timestamp=1, payload=payload)


# lifecycle -------------------------------------------------------------------------------------


def test_dependencies_init_and_start_first_and_stop_last():
    journal = []
    a = Probe("a", journal, depends_on=["b"])
    b = Probe("b", journal, depends_on=["c"])
    c = Probe("c", journal)
    ledger = open_ledger(a, b, c)
    assert journal == ["init:c", "init:b", "init:a", "start:c", "start:b", "start:a"]
    assert {m.id: m.state for m in ledger.modules.metadata()} == dict.fromkeys("abc", ModuleState.STARTED)
    journal.clear()
    ledger.close()
    assert journal == ["stop:a", "stop:b", "stop:c"]
    assert {m.id: m.state for m in ledger.modules.metadata()} == dict.fromkeys("abc", ModuleState.STOPPED)
    ledger.close()
    assert journal == ["stop:a", "stop:b", "stop:c"], "close stops modules exactly once"


def test_settings_come_from_the_ledger_configuration():
    m = Probe("m", [])
    ledger = open_ledger(m, settings={"m": {"limit": 3}, "other": {"x": 1}})
    assert m.settings == {"limit": 3}
    ledger.close()


def test_dependency_cycle_names_the_modules():
    journal = []
    with pytest.raises(ModuleError, match=r"dependency cycle: (a -> b -> a|b -> a -> b)"):
        open_ledger(Probe("a", journal, depends_on=["b"]), Probe("b", journal, depends_on=["a"]))
    assert journal == []


def test_missing_dependency_names_both_modules():
    with pytest.raises(ModuleError, match=r"module 'a'.*'ghost'.*not enabled") as info:
        open_ledger(Probe("a", [], depends_on=["ghost"]))
    assert info.value.module_id == "a"


def test_failing_init_stops_initialized_modules_in_reverse_and_ledger_does_not_open():
    journal = []
    mods = [Probe("c", journal), Probe("b", journal, depends_on=["c"]), Probe("d", journal, depends_on=["b"])]
    mods.append(Probe("a", journal, depends_on=["d"], fail_in={"init"}))
    mods.append(Probe("z", journal, depends_on=["a"]))
    with pytest.raises(ModuleError, match=r"module 'a': init failed: RuntimeError: a fails in init") as info:
        open_ledger(*mods)
    assert info.value.module_id == "a"
    assert journal == ["init:c", "init:b", "init:d", "init:a", "stop:d", "stop:b", "stop:c"]


def test_failing_start_stops_every_initialized_module_in_reverse():
    journal = []
    c = Probe("c", journal)
    b = Probe("b", journal, depends_on=["c"], fail_in={"start"})
    a = Probe("a", journal, depends_on=["b"])
    with pytest.raises(ModuleError, match=r"module 'b': start failed") as info:
        open_ledger(a, b, c)
    assert info.value.module_id == "b"
    assert journal == ["init:c", "init:b", "init:a", "start:c", "start:b", "stop:a", "stop:b", "stop:c"]


def test_stop_failures_are_logged_never_raised_and_every_stop_runs(caplog):
    journal = []
    ledger = open_ledger(
        Probe("a", journal, fail_in={"stop"}), Probe("b", journal, fail_in={"stop"}), Probe("c", journal)
    )
    journal.clear()
    with caplog.at_level(logging.ERROR, logger="nucleus_core.modules"):
        ledger.close()
    assert sorted(journal) == ["stop:a", "stop:b", "stop:c"]
    assert "module 'a' failed to stop" in caplog.text and "module 'b' failed to stop" in caplog.text
    states = {m.id: m.state for m in ledger.modules.metadata()}
    assert states == {"a": ModuleState.FAILED, "b": ModuleState.FAILED, "c": ModuleState.STOPPED}


def test_registering_after_start_or_twice_is_an_error():
    ledger = open_ledger(Probe("a", []))
    ctx = ModuleContext(ledger=ledger, settings={}, logger=logging.getLogger("x"))
    with pytest.raises(ModuleError, match="after the registry was initialized"):
        ledger.modules.register(Probe("late", []), ctx)
    assert ledger.modules.list() == ["a"]
    ledger.close()
    with pytest.raises(ModuleError, match=r"module 'a': is registered twice"):
        open_ledger(Probe("a", []), Probe("a", []))


def test_a_stream_has_one_owner_and_must_be_a_user_stream():
    with pytest.raises(ModuleError, match="already owned by module 'a'"):
        open_ledger(Probe("a", [], streams=["s"]), Probe("b", [], streams=["s"]))
    with pytest.raises(ModuleError, match="cannot own stream '_sys'"):
        open_ledger(Probe("a", [], streams=["_sys"]))


def test_module_spec_id_must_match_module_id():
    class Liar:
        @hookimpl
        def nucleus_register_modules(self):
            return [ModuleSpec(id="honest", factory=lambda _ctx: Probe("other", []))]

    with pytest.raises(Exception, match="built a module with id 'other'"):
        create_ledger(id="mods", storage="memory://", plugins=[Liar()])


# interpreter exit and garbage collection -----------------------------------------------------

EXIT_SCRIPT = """
import sys
from nucleus_core import Module, ModuleSpec, create_ledger, hookimpl

class Tracker(Module):
    id = "tracker"
    def __init__(self, path):
        self.path = path
    def stop(self, ctx):
        with open(self.path, "a") as f:
            f.write("stopped\\n")

class Plugin:
    @hookimpl
    def nucleus_register_modules(self):
        return [ModuleSpec(id="tracker", factory=lambda ctx: Tracker(sys.argv[1]))]

ledger = create_ledger(id="exit", storage="memory://", plugins=[Plugin()])
if sys.argv[2] == "close":
    ledger.close()
    ledger.close()
KEEP = ledger  # never closed in "leave" mode: stopped at interpreter exit
"""


@pytest.mark.parametrize("mode", ["leave", "close"])
def test_modules_stop_exactly_once_at_interpreter_exit(tmp_path, mode):
    script = tmp_path / "exit_script.py"
    script.write_text(textwrap.dedent(EXIT_SCRIPT))
    marker = tmp_path / "stops.txt"
    subprocess.run([sys.executable, str(script), str(marker), mode], check=True, timeout=60)
    assert marker.read_text() == "stopped\n"


def test_an_unclosed_ledger_that_is_collected_stops_its_modules():
    journal = []
    ledger = open_ledger(Probe("a", journal))
    journal.clear()
    del ledger
    gc.collect()
    assert journal == ["stop:a"]


# handles and runtime ---------------------------------------------------------------------------


class OtherModule(Module):
    id = "other"


def test_typed_handles():
    probe = Probe("probe", [])
    ledger = open_ledger(probe, OtherModule())
    assert ledger.modules.get("probe") is probe
    assert ledger.modules.get("probe", Probe) is probe
    assert isinstance(ledger.modules.get("other", OtherModule), OtherModule)
    with pytest.raises(ModuleError, match=r"module 'probe': is a Probe, not a OtherModule"):
        ledger.modules.get("probe", OtherModule)
    with pytest.raises(ModuleError, match=r"module 'nope'.*known modules: other, probe"):
        ledger.modules.get("nope")
    assert ledger.modules.state("probe") is ModuleState.STARTED
    meta = {m.id: m for m in ledger.modules.metadata()}
    assert (meta["other"].version, meta["other"].state) == ("0", ModuleState.STARTED)
    ledger.close()


def test_runtime_view_offers_list_and_get_only():
    probe = Probe("probe", [])
    ledger = open_ledger(probe)
    runtime = ledger.runtime
    assert isinstance(runtime, LedgerRuntime)
    assert runtime.list() == ["probe"]
    assert runtime.get("probe", Probe) is probe
    assert [m.id for m in runtime.metadata()] == ["probe"]
    for name in ("register", "init_all", "start_all", "stop_all", "validate", "committed", "catch_up"):
        assert not hasattr(runtime, name), name
    with pytest.raises(AttributeError, match="read-only"):
        runtime.anything = 1
    with pytest.raises(AttributeError):
        runtime.__dict__  # noqa: B018 - slots only, nothing to reach through
    with pytest.raises(ModuleError, match="known modules: probe"):
        runtime.get("missing")
    ledger.close()


# append path -----------------------------------------------------------------------------------


def test_module_refusal_names_module_and_writes_nothing():
    journal = []
    ledger = open_ledger(Probe("things", journal, streams=["things"], refuse="validate"))
    ledger.append(rec("ok1"), ALICE)
    length, head = ledger.length(), ledger.latest_hash()
    with pytest.raises(RecordRejectedError, match=r"module 'things'.*payload is bad") as info:
        ledger.append_batch([rec("ok2"), rec("bad1", bad=True)], ALICE)
    assert info.value.module_id == "things" and info.value.record_id == "bad1"
    assert (ledger.length(), ledger.latest_hash()) == (length, head)
    assert ledger.get_by_id("ok2", ALICE) is None
    ledger.close()


def test_plain_value_errors_and_before_append_refusals_become_record_rejections():
    ledger = open_ledger(Probe("things", [], streams=["things"], refuse="valueerror"))
    with pytest.raises(RecordRejectedError, match=r"module 'things'.*ValueError: plain bad value"):
        ledger.append(rec("x", bad=True), ALICE)
    assert ledger.length() == 0
    ledger.close()
    ledger = open_ledger(Probe("things", [], streams=["things"], refuse="before"))
    with pytest.raises(RecordRejectedError, match=r"module 'things'.*batch too dull"):
        ledger.append(rec("y"), ALICE)
    assert ledger.length() == 0
    ledger.close()


def test_only_owned_streams_are_validated_and_hooks_run_in_order():
    journal = []
    ledger = open_ledger(Probe("things", journal, streams=["things"]))
    journal.clear()
    ledger.append_batch([rec("t1"), rec("o1", stream="other"), rec("t2")], ALICE)
    assert journal == ["validate:t1", "validate:t2", "before:2", "after:[1, 3]"]
    ledger.close()


def test_after_append_failure_is_logged_and_the_entry_stays(caplog):
    ledger = open_ledger(Probe("things", [], streams=["things"], fail_in={"after_append"}))
    with caplog.at_level(logging.ERROR, logger="nucleus_core.modules"):
        entry = ledger.append(rec("t1"), ALICE)
    assert "after_append failed (entries stay committed)" in caplog.text
    assert ledger.get_by_id("t1", ALICE) == entry
    assert ledger.length() == 1
    ledger.close()


class Counter(Module):
    """A stateful module: counts entries in its stream; refuses once the limit is reached."""

    id = "counter"
    streams = ("counted",)

    def __init__(self, limit=None):
        self.count = 0
        self.staged = 0
        self.limit = limit
        self.seen = []

    def begin_batch(self):
        self.staged = self.count

    def validate(self, record, context):
        if self.limit is not None and self.staged >= self.limit:
            raise RecordRejectedError("limit reached", module_id=self.id, record_id=record.id)
        self.staged += 1

    def end_batch(self):
        self.staged = 0

    def apply(self, entry):
        self.count += 1
        self.seen.append(entry.seq)


@pytest.mark.needs_distribution("nucleus-storage-sqlite")
def test_derived_state_is_rebuilt_on_open_and_follows_other_writers(tmp_path):
    url = f"sqlite:///{tmp_path / 'counted.db'}"
    first = create_ledger(id="cnt", storage=url, plugins=["sqlite", Plugin(Counter())])
    first.append_batch([rec("c1", stream="counted"), rec("x1", stream="other"), rec("c2", stream="counted")], ALICE)
    counter = first.modules.get("counter", Counter)
    assert counter.seen == [2, 4]  # seq 1 is the ledger's _ledger record of its plugins
    second = create_ledger(id="cnt", storage=url, plugins=["sqlite", Plugin(Counter(limit=3))])
    limited = second.modules.get("counter", Counter)
    assert limited.seen == [2, 4], "rebuilt from the chain on open"
    first.append(rec("c3", stream="counted"), ALICE)
    # The second ledger has not seen c3; its write path catches up before validating.
    with pytest.raises(RecordRejectedError, match="limit reached"):
        second.append(rec("c4", stream="counted"), ALICE)
    assert limited.seen == [2, 4, 5]
    assert second.length() == 5
    first.close()
    second.close()


@pytest.mark.needs_distribution("nucleus-storage-sqlite")
def test_a_system_append_does_not_skip_what_other_writers_committed(tmp_path):
    """A system append (e.g. an access grant) validates nothing, yet folding in its own entries
    after the commit must not move past entries other writers committed before it (the derived
    state would miss them for good: stale handle answers, and validation against stale state)."""
    url = f"sqlite:///{tmp_path / 'counted.db'}"
    first = create_ledger(id="cnt", storage=url, plugins=["sqlite", Plugin(Counter())])
    second = create_ledger(id="cnt", storage=url, plugins=["sqlite", Plugin(Counter(limit=2))])
    limited = second.modules.get("counter", Counter)
    first.append(rec("c1", stream="counted"), ALICE)
    first.append(rec("c2", stream="counted"), ALICE)
    second.append_system([rec("s1", stream="_probe")], ALICE)
    assert limited.seen == [2, 3], "the entries the other writer committed were folded in"
    with pytest.raises(RecordRejectedError, match="limit reached"):
        second.append(rec("c3", stream="counted"), ALICE)
    first.close()
    second.close()


@pytest.mark.needs_distribution("nucleus-storage-sqlite")
@pytest.mark.needs_distribution("nucleus-module-token")
def test_no_double_spend_after_a_system_append_between_two_writers(tmp_path):
    from nucleus_module_token import TokenModule

    url = f"sqlite:///{tmp_path / 'bank.db'}"
    bob = RequestContext(oid="oid:test:user:bob", source="service")
    first = create_ledger(id="bank", storage=url, plugins=["sqlite", "token"])
    second = create_ledger(id="bank", storage=url, plugins=["sqlite", "token"])

    def token(rid, **payload):
        return Record(id=rid, stream="token", timestamp=1000, payload=payload)

    first.append(token("c", type="created", token_id="EUR", issuer=ALICE.oid, symbol="EUR", decimals=2), ALICE)
    first.append(token("m", type="minted", token_id="EUR", tx_id="t1", to=ALICE.oid, amount=10), ALICE)
    second.append(  # second catches up (seq 3) and spends the 10
        token("x1", type="transferred", token_id="EUR", tx_id="t2", to=bob.oid, amount=10, **{"from": ALICE.oid}),
        ALICE,
    )
    first.append(token("m2", type="minted", token_id="EUR", tx_id="t3", to=ALICE.oid, amount=5), ALICE)
    second.append_system([rec("s1", stream="_probe")], ALICE)  # must not skip first's mint of 5
    assert second.modules.get("token", TokenModule).balance("EUR", ALICE.oid, ALICE) == 5
    with pytest.raises(RecordRejectedError, match="holds 5"):
        second.append(
            token("x2", type="transferred", token_id="EUR", tx_id="t4", to=bob.oid, amount=6, **{"from": ALICE.oid}),
            ALICE,
        )
    first.close()
    second.close()


def test_seed_grants_and_resource_ids_for_access_control():
    class Kinded(Module):
        id = "kinded"
        streams = ("kinded",)
        resource_kind = "thing"

        def seed_grants(self, record):
            return [SeedGrant(principal_oid=record.payload["who"], scope="read")]

    ledger = open_ledger(Kinded(), Probe("plain", [], streams=["plain"]))
    r = rec("k1", stream="kinded", who="oid:test:user:bob")
    assert ledger.modules.resource_of(r) == ("thing", "k1")
    assert ledger.modules.seed_grants(r) == [SeedGrant(principal_oid="oid:test:user:bob", scope="read")]
    assert ledger.modules.resource_of(rec("p1", stream="plain")) is None
    assert ledger.modules.resource_of(rec("n1", stream="nobody")) is None
    assert ledger.modules.seed_grants(rec("n1", stream="nobody")) == []
    with pytest.raises(ValidationError, match="scope"):
        SeedGrant(principal_oid="oid:test:user:bob", scope="admin")
    with pytest.raises(ValidationError, match="principal_oid"):
        SeedGrant(principal_oid="bob", scope="read")
    ledger.close()


def test_modules_are_per_ledger():
    one = open_ledger(Probe("a", []))
    two = create_ledger(id="two", storage="memory://")
    assert one.modules.list() == ["a"] and two.modules.list() == []
    one.close()
    two.close()
