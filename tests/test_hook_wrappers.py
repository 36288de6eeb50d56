"""Hook wrappers (``@hookimpl(wrapper=True)`` and pluggy's older ``hookwrapper=True``) work on every
hook: the core calls registration and notification hooks through pluggy, one plugin's
implementation at a time, so each spec stays attributed to the plugin that returned it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from typing import Any

import attrs
import pluggy
import pytest

from nucleus_core import PluginContext, PluginError, Record, RequestContext, TokenParserSpec, create_ledger, hookimpl
from nucleus_core.host import PluginLedger

CTX = RequestContext(oid="oid:test:user:alice", source="dev")


class DropParser:
    """Removes the token parser called ``name`` from what any plugin registers."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[list[list[str]]] = []

    @hookimpl(wrapper=True)
    def nucleus_register_token_parsers(self) -> Generator[None, list[list[TokenParserSpec]], list[list[Any]]]:
        results = yield
        self.seen.append([[spec.name for spec in specs] for specs in results])
        return [[spec for spec in specs if spec.name != self.name] for specs in results]


def test_a_wrapper_changes_what_a_registration_hook_returns() -> None:
    wrapper = DropParser("auth.dev")
    with create_ledger(id="w", storage="memory://", plugins=["auth.dev", wrapper], environment="development") as led:
        assert led.auth.names == []
    # It ran around the dev plugin's implementation, seeing that plugin's list on its own.
    assert [["auth.dev"]] in wrapper.seen
    with create_ledger(id="w", storage="memory://", plugins=["auth.dev"], environment="development") as led:
        assert led.auth.names == ["auth.dev"]


class CountBuilds:
    """Wraps every token parser factory, counting the instances the ledger builds."""

    def __init__(self) -> None:
        self.built: list[str] = []

    def _counting(self, name: str, factory: Callable[[PluginContext], Any]) -> Callable[[PluginContext], Any]:
        def build(context: PluginContext) -> Any:
            self.built.append(name)
            return factory(context)

        return build

    @hookimpl(hookwrapper=True)
    def nucleus_register_token_parsers(self) -> Generator[None, pluggy.Result[list[list[TokenParserSpec]]], None]:
        outcome = yield
        wrapped = [
            [attrs.evolve(spec, factory=self._counting(spec.name, spec.factory)) for spec in specs]
            for specs in outcome.get_result()
        ]
        outcome.force_result(wrapped)


def test_an_old_style_hookwrapper_replaces_factories_and_the_ledger_uses_them() -> None:
    counter = CountBuilds()
    with create_ledger(id="w", storage="memory://", plugins=["auth.dev", counter], environment="development") as led:
        assert counter.built == ["auth.dev"]  # the ledger built its one parser through the wrapped factory
        ctx = led.auth.authenticate("dev:oid:test:user:bob")
        assert ctx is not None and ctx.oid == "oid:test:user:bob"


class FailingWrapper:
    @hookimpl(wrapper=True)
    def nucleus_register_token_parsers(self) -> Generator[None, list[list[TokenParserSpec]], list[list[Any]]]:
        yield
        raise RuntimeError("wrapper broke")


def test_a_failing_wrapper_is_named_not_the_plugin_it_wraps() -> None:
    wrapper = FailingWrapper()
    with pytest.raises(PluginError) as caught:
        create_ledger(id="w", storage="memory://", plugins=["auth.dev", wrapper])
    assert caught.value.plugin_name == str(id(wrapper))  # pluggy's name for a plugin object
    assert "nucleus_register_token_parsers failed: RuntimeError: wrapper broke" in str(caught.value)


def test_a_failing_plugin_under_a_wrapper_is_named() -> None:
    class Broken:
        @hookimpl
        def nucleus_register_token_parsers(self) -> list[TokenParserSpec]:
            raise ValueError("no parsers today")

    broken, wrapper = Broken(), DropParser("auth.dev")
    with pytest.raises(PluginError) as caught:
        create_ledger(id="w", storage="memory://", plugins=[broken, wrapper])
    assert caught.value.plugin_name == str(id(broken))
    assert "ValueError: no parsers today" in str(caught.value)


def test_a_wrapper_of_the_closing_hook_runs_around_each_plugin_on_its_own(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    class Closing:
        def __init__(self, name: str, fail: bool) -> None:
            self.name, self.fail = name, fail

        @hookimpl
        def nucleus_ledger_closing(self, ledger: PluginLedger) -> None:
            calls.append(f"{self.name}:{ledger.storage.count()}")
            if self.fail:
                raise RuntimeError("closing failed")

    class Around:
        @hookimpl(wrapper=True)
        def nucleus_ledger_closing(self, ledger: PluginLedger) -> Generator[None, None, None]:
            calls.append("before")
            try:
                yield
            finally:
                calls.append("after")

    led = create_ledger(id="w", storage="memory://", plugins=[Closing("a", False), Closing("b", True), Around()])
    led.append(Record(id="r", stream="s", timestamp=1, payload={}), CTX)
    with caplog.at_level(logging.ERROR, logger="nucleus_core"):
        led.close()  # b fails: logged naming it, and a is still told (each plugin isolated)
    assert "nucleus_ledger_closing failed: RuntimeError: closing failed" in caplog.text
    assert calls == ["before", "b:1", "after", "before", "a:1", "after"]


@attrs.define(eq=True)
class UnhashableDrop:
    """A plugin object that cannot be hashed (attrs ``eq`` without ``hash``): wrappers work for it too."""

    names: list[str]

    @hookimpl(wrapper=True)
    def nucleus_register_token_parsers(self) -> Generator[None, list[list[TokenParserSpec]], list[list[Any]]]:
        results = yield
        return [[spec for spec in specs if spec.name not in self.names] for specs in results]


def test_wrappers_work_when_a_plugin_object_is_unhashable() -> None:
    plugin = UnhashableDrop(names=["auth.dev"])
    with pytest.raises(TypeError):
        hash(plugin)
    with create_ledger(id="w", storage="memory://", plugins=["auth.dev", plugin], environment="development") as led:
        assert led.auth.names == []
