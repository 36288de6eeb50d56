"""Plugin loading: real distributions pip-installed into a temporary directory, loaded by entry point.

``tests/core/fixtures/example_plugin`` is a small well-behaved plugin (a ``notes`` module and a
``nucleus notes`` command); ``tests/core/fixtures/broken_plugins`` holds one entry point per way a
plugin can be broken. Both are installed once per run with ``pip install --no-deps --target``.
Every hookspec has a ``test_hook_<name>`` test here (``tests/test_docs.py`` checks that).
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nucleus_core import (
    AccessDeniedError,
    AclProviderSpec,
    AuthenticatedPolicy,
    ConfigurationError,
    MemoryStorage,
    PluginContext,
    PluginError,
    Record,
    RecordRejectedError,
    RequestContext,
    StorageBackendSpec,
    TokenParserSpec,
    create_ledger,
    hookimpl,
)
from nucleus_core.plugins import CLI_ENTRY_POINT_GROUP, ENTRY_POINT_GROUP, installed_plugins

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_PACKAGES = ("nucleus_example_plugin", "nucleus_broken_plugins")
CTX = RequestContext(oid="oid:test:user:alice", source="dev")


def _purge_fixture_modules() -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in FIXTURE_PACKAGES:
            del sys.modules[name]


def _fixture_modules() -> list[str]:
    return sorted(name for name in sys.modules if name.split(".")[0] in FIXTURE_PACKAGES)


@pytest.fixture(scope="module")
def plugin_target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both fixture distributions, really built and installed (no dependencies) into one directory."""
    target = tmp_path_factory.mktemp("plugins")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--disable-pip-version-check",
            "--no-input",
            "--target",
            str(target),
            str(FIXTURES / "example_plugin"),
            str(FIXTURES / "broken_plugins"),
        ],
        check=True,
        capture_output=True,
    )
    assert (target / "nucleus_example_plugin-0.1.0.dist-info").is_dir()
    return target


@pytest.fixture
def installed(plugin_target: Path) -> Iterator[Path]:
    """Put the installed fixtures on sys.path for this test only, with none of their modules imported."""
    _purge_fixture_modules()
    sys.path.insert(0, str(plugin_target))
    importlib.invalidate_caches()
    try:
        yield plugin_target
    finally:
        sys.path.remove(str(plugin_target))
        importlib.invalidate_caches()
        _purge_fixture_modules()


def _env(target: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUCLEUS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


def _nucleus(target: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nucleus_core", *args],
        env=_env(target),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


# loading through entry points ------------------------------------------------------------------
def test_example_plugin_loads_through_its_entry_point(installed: Path) -> None:
    eps = {ep.name: ep for ep in md.entry_points(group=ENTRY_POINT_GROUP)}
    assert eps["example"].value == "nucleus_example_plugin.plugin"
    with create_ledger(id="ex", storage="memory://", plugins=["example"], settings={"notes": {"max_length": 5}}) as led:
        module_file = Path(sys.modules["nucleus_example_plugin.plugin"].__file__ or "")
        assert module_file.is_relative_to(installed)
        assert led.plugin_manager.distribution_of("example") == "nucleus-example-plugin"
        assert led.modules.list() == ["notes"]
        led.append(Record(id="n1", stream="notes", timestamp=1, payload={"text": "short"}), CTX)
        with pytest.raises(RecordRejectedError, match="longer than 5"):
            led.append(Record(id="n2", stream="notes", timestamp=2, payload={"text": "too long"}), CTX)
        assert led.length() == 1
        assert led.get_by_id("n2", CTX) is None


def test_installed_but_unlisted_plugin_is_never_imported(installed: Path) -> None:
    assert _fixture_modules() == []
    names = {ep.name for ep in md.entry_points(group=ENTRY_POINT_GROUP)}
    assert {"example", "broken-import", "wrong-type"} <= names
    with create_ledger(id="plain", storage="memory://") as led:
        led.append(Record(id="a", stream="notes", timestamp=1, payload={"anything": 1}), CTX)
        assert led.plugin_manager.get_plugins() == set()
    assert _fixture_modules() == []
    # Enabling one plugin imports that plugin only, never its installed neighbours.
    with create_ledger(id="one", storage="memory://", plugins=["example"]):
        pass
    assert _fixture_modules() == ["nucleus_example_plugin", "nucleus_example_plugin.plugin"]


def test_unlisted_plugin_not_imported_in_a_fresh_interpreter(plugin_target: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        from nucleus_core import create_ledger
        with create_ledger(id="fresh", storage="memory://"):
            pass
        print(sorted(m for m in sys.modules if m.startswith(("nucleus_example", "nucleus_broken"))))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=_env(plugin_target), capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_listed_plugin_that_is_missing_is_refused(installed: Path) -> None:
    with pytest.raises(PluginError, match="not installed") as info:
        create_ledger(id="x", storage="memory://", plugins=["example", "no-such-plugin"])
    assert info.value.plugin_name == "no-such-plugin"
    assert "example" in str(info.value)  # the message lists what is installed


def test_plugin_that_fails_to_import_names_plugin_and_distribution(installed: Path, tmp_path: Path) -> None:
    storage = MemoryStorage()
    with pytest.raises(PluginError) as info:
        create_ledger(id="x", storage=storage, plugins=["example", "broken-import"])
    err = info.value
    assert err.plugin_name == "broken-import"
    assert err.distribution == "nucleus-broken-plugins"
    assert "'broken-import'" in str(err) and "nucleus-broken-plugins" in str(err)
    assert "ModuleNotFoundError" in str(err) and "nucleus_this_module_does_not_exist" in str(err)
    assert isinstance(err.__cause__, ModuleNotFoundError)
    # The ledger never opened: its storage was not touched.
    assert storage.count() == 0 and storage.head() is None


def test_plugin_whose_attribute_is_missing_names_it(installed: Path) -> None:
    with pytest.raises(PluginError, match="no_such_attribute") as info:
        create_ledger(id="x", storage="memory://", plugins=["missing-attr"])
    assert (info.value.plugin_name, info.value.distribution) == ("missing-attr", "nucleus-broken-plugins")


@pytest.mark.needs_distribution("nucleus-storage-sqlite")
def test_persistent_ledger_does_not_open_when_a_plugin_fails(installed: Path, tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    with pytest.raises(PluginError, match="broken-import"):
        create_ledger(id="x", storage=f"sqlite:///{db}", plugins=["broken-import"])
    assert not db.exists()


def test_hook_returning_the_wrong_type_is_refused(installed: Path) -> None:
    with pytest.raises(
        PluginError, match=r"nucleus_register_modules must return a list of ModuleSpec, got dict"
    ) as info:
        create_ledger(id="x", storage="memory://", plugins=["wrong-type"])
    assert (info.value.plugin_name, info.value.distribution) == ("wrong-type", "nucleus-broken-plugins")


def test_hook_returning_a_list_of_the_wrong_records_is_refused() -> None:
    class Plugin:
        @hookimpl
        def nucleus_register_token_parsers(self) -> list[Any]:
            return ["not a spec"]

    with pytest.raises(PluginError, match="returned str, expected TokenParserSpec"):
        create_ledger(id="x", storage="memory://", plugins=[Plugin()])


def test_unknown_hook_with_the_nucleus_prefix_is_refused(installed: Path) -> None:
    with pytest.raises(PluginError, match="unknown hook 'nucleus_register_storage_backend'") as info:
        create_ledger(id="x", storage="memory://", plugins=["unknown-hook"])
    assert info.value.distribution == "nucleus-broken-plugins"


def test_hookimpl_with_an_argument_the_hook_lacks_is_refused(installed: Path) -> None:
    with pytest.raises(PluginError, match="database") as info:
        create_ledger(id="x", storage="memory://", plugins=["bad-argument"])
    assert info.value.plugin_name == "bad-argument"


def test_hook_function_without_hookimpl_is_refused(installed: Path) -> None:
    with pytest.raises(PluginError, match="nucleus_register_modules look like hooks but are not decorated"):
        create_ledger(id="x", storage="memory://", plugins=["undecorated"])


def test_same_plugin_object_twice_is_refused() -> None:
    class Plugin:
        @hookimpl
        def nucleus_register_modules(self) -> list[Any]:
            return []

    plugin = Plugin()
    with pytest.raises(PluginError, match="not a valid Nucleus plugin"):
        create_ledger(id="x", storage="memory://", plugins=[plugin, plugin])


def test_each_ledger_has_its_own_plugin_manager(installed: Path) -> None:
    with (
        create_ledger(id="a", storage="memory://", plugins=["example"]) as a,
        create_ledger(id="b", storage="memory://") as b,
        create_ledger(id="c", storage="memory://", plugins=["example"], settings={"notes": {"max_length": 3}}) as c,
    ):
        assert a.plugin_manager is not b.plugin_manager and a.plugin_manager is not c.plugin_manager
        assert a.plugin_manager.get_plugin("example") is not None
        assert b.plugin_manager.get_plugin("example") is None
        assert b.modules.list() == []
        # b has no notes module: anything goes in its "notes" stream; a still refuses.
        b.append(Record(id="x", stream="notes", timestamp=1, payload=[1, 2]), CTX)
        with pytest.raises(RecordRejectedError):
            a.append(Record(id="x", stream="notes", timestamp=1, payload=[1, 2]), CTX)
        # a and c share the plugin module but not its instances or settings.
        note_a, note_c = a.modules.get("notes"), c.modules.get("notes")
        assert note_a is not note_c
        a.append(Record(id="y", stream="notes", timestamp=1, payload={"text": "four"}), CTX)
        with pytest.raises(RecordRejectedError, match="longer than 3"):
            c.append(Record(id="y", stream="notes", timestamp=1, payload={"text": "four"}), CTX)
        assert (note_a.appended, note_c.appended) == (1, 0)  # type: ignore[attr-defined]


# one test per hookspec -------------------------------------------------------------------------
class _ScratchStorage:
    """A plugin object providing the ``scratch://`` scheme (in memory)."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def _make(self, url: str, options: Any) -> MemoryStorage:
        self.urls.append(url)
        return MemoryStorage(url)

    @hookimpl
    def nucleus_register_storage_backends(self) -> list[StorageBackendSpec]:
        return [StorageBackendSpec(name="scratch", schemes=("scratch",), factory=self._make)]


def test_hook_nucleus_register_storage_backends() -> None:
    plugin = _ScratchStorage()
    with create_ledger(id="s", storage="scratch://here", plugins=[plugin]) as led:
        assert plugin.urls == ["scratch://here"]
        assert led.storage.url == "scratch://here"
        led.append(Record(id="a", stream="s", timestamp=1, payload={}), CTX)
        assert led.verify().ok
    with pytest.raises(ConfigurationError, match="several storage backends claim scratch://"):
        create_ledger(id="s", storage="scratch://here", plugins=[_ScratchStorage(), _ScratchStorage()])


def test_a_scheme_with_no_installed_backend_names_the_entry_point_to_install() -> None:
    # The core holds no table of backends: the hint comes from the entry point the scheme names.
    with pytest.raises(ConfigurationError) as info:
        create_ledger(id="s", storage="scratch://here")
    message = str(info.value)
    assert "needs a storage plugin for scratch:// that is not installed" in message
    assert "'nucleus' entry point 'scratch'" in message and "docs/PLUGINS.md" in message


def test_hook_nucleus_register_modules(installed: Path) -> None:
    with create_ledger(id="m", storage="memory://", plugins=["example"]) as led:
        assert [m.id for m in led.modules.metadata()] == ["notes"]
        assert led.modules.metadata()[0].streams == ("notes",)
        with pytest.raises(RecordRejectedError, match="text"):
            led.append(Record(id="bad", stream="notes", timestamp=1, payload={"txt": "x"}), CTX)
        assert led.length() == 0


class _NeverParser:
    """A token parser that claims no token."""

    def validate_format(self, token: str) -> bool:
        return False

    def parse(self, token: str) -> RequestContext | None:
        return None


def test_hook_nucleus_register_token_parsers() -> None:
    seen: list[PluginContext] = []

    def make(context: PluginContext) -> _NeverParser:
        seen.append(context)
        return _NeverParser()

    class Parsers:
        @hookimpl
        def nucleus_register_token_parsers(self) -> list[TokenParserSpec]:
            return [TokenParserSpec(name="demo", factory=make)]

    with create_ledger(id="t", storage="memory://", plugins=[Parsers()]) as led:
        assert [s.name for s in led.token_parsers] == ["demo"]
        assert [c.ledger_id for c in seen] == ["t"]
    with pytest.raises(ConfigurationError, match="registered twice: demo"):
        create_ledger(id="t", storage="memory://", plugins=[Parsers(), Parsers()])


class _ReadOnlyPolicy(AuthenticatedPolicy):
    def authorize_append(self, records: Any, context: RequestContext, tx: Any) -> None:
        raise AccessDeniedError(f"{context.oid} may not append here")


def test_hook_nucleus_register_acl_providers() -> None:
    contexts: list[PluginContext] = []

    def make(context: PluginContext) -> _ReadOnlyPolicy:
        contexts.append(context)
        return _ReadOnlyPolicy()

    class Acl:
        @hookimpl
        def nucleus_register_acl_providers(self) -> list[AclProviderSpec]:
            return [AclProviderSpec(name="readonly", factory=make)]

    with create_ledger(id="acl", storage="memory://", plugins=[Acl()], settings={"readonly": {"k": 1}}) as led:
        assert isinstance(led.policy, _ReadOnlyPolicy)
        assert contexts[0].ledger_id == "acl" and dict(contexts[0].settings) == {"k": 1}
        with pytest.raises(AccessDeniedError):
            led.append(Record(id="a", stream="s", timestamp=1, payload={}), CTX)
        assert led.length() == 0
    with pytest.raises(ConfigurationError, match="at most one access-control provider"):
        create_ledger(id="acl", storage="memory://", plugins=[Acl(), Acl()])


def test_hook_nucleus_register_commands(plugin_target: Path, tmp_path: Path) -> None:
    result = _nucleus(plugin_target, "notes", "hello", "world", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"text": "hello world"}
    assert "notes" in _nucleus(plugin_target, "--help", cwd=tmp_path).stdout


def test_hook_nucleus_ledger_opened() -> None:
    class Watcher:
        def __init__(self) -> None:
            self.opened: list[Any] = []

        @hookimpl
        def nucleus_ledger_opened(self, ledger: Any) -> None:
            self.opened.append((ledger.id, ledger.closed))

    watcher = Watcher()
    with create_ledger(id="w", storage="memory://", plugins=[watcher]):
        assert watcher.opened == [("w", False)]


def test_hook_nucleus_ledger_closing(caplog: pytest.LogCaptureFixture) -> None:
    class Watcher:
        def __init__(self, fail: bool) -> None:
            self.fail = fail
            self.closing: list[int] = []

        @hookimpl
        def nucleus_ledger_closing(self, ledger: Any) -> None:
            self.closing.append(ledger.storage.count())
            if self.fail:
                raise RuntimeError("closing failed")

    # pluggy calls the most recently registered plugin first: the failing one runs before the quiet one.
    quiet, noisy = Watcher(fail=False), Watcher(fail=True)
    led = create_ledger(id="w", storage="memory://", plugins=[quiet, noisy])
    led.append(Record(id="a", stream="s", timestamp=1, payload={}), CTX)
    with caplog.at_level(logging.ERROR, logger="nucleus_core"):
        led.close()  # a failing closing hook is logged, never raised, and does not stop the others
    led.close()
    assert quiet.closing == [1] and noisy.closing == [1]
    assert led.closed
    assert "nucleus_ledger_closing failed: RuntimeError: closing failed" in caplog.text


def test_hook_nucleus_worker_exited() -> None:
    from nucleus_core.plugins import call_each

    class Watcher:
        def __init__(self, fail: bool) -> None:
            self.fail = fail
            self.ended: list[int] = []

        @hookimpl
        def nucleus_worker_exited(self, pid: int) -> None:
            self.ended.append(pid)
            if self.fail:
                raise RuntimeError("cleanup failed")

    # Called by a multi-worker server's supervisor on the served ledger's plugin manager (each
    # plugin isolated: the failing one is reported, the other still runs; the end-to-end test with
    # a real server is plugins/metrics/tests/test_workers.py).
    quiet, noisy = Watcher(fail=False), Watcher(fail=True)
    with create_ledger(id="w", storage="memory://", plugins=[quiet, noisy]) as led:
        pm = led.plugin_manager
    [error] = call_each(pm, "nucleus_worker_exited", pid=4242)
    assert quiet.ended == [4242] and noisy.ended == [4242]
    assert "nucleus_worker_exited failed: RuntimeError: cleanup failed" in str(error)


# command plugins -------------------------------------------------------------------------------
def test_broken_command_plugins_do_not_break_other_commands(plugin_target: Path, tmp_path: Path) -> None:
    # Built-in commands never load command plugins: an entry point named "append" would fail to import.
    init = _nucleus(plugin_target, "init", "--ledger", "memory://", cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    assert "broken" not in init.stderr

    # --help lists plugin commands from their entry points without importing any of them.
    listing = _nucleus(plugin_target, "--help", cwd=tmp_path)
    assert listing.returncode == 0
    assert "Warning" not in listing.stderr and "broken" not in listing.stderr
    commands = listing.stdout.split("Commands:")[1]
    for name in ("notes", "clash-ok", "broken-cli", "raising-cli", "verify", "append"):
        assert f"\n  {name} " in commands
    assert "command plugin from nucleus-broken-plugins 0.1.0" in commands

    # Each broken plugin fails by name, with the plugin exit code, only when its command is asked for.
    broken = _nucleus(plugin_target, "broken-cli", cwd=tmp_path)
    assert broken.returncode == 4
    assert "plugin 'broken-cli' (distribution nucleus-broken-plugins): failed to import" in broken.stderr
    raising = _nucleus(plugin_target, "raising-cli", cwd=tmp_path)
    assert raising.returncode == 4
    assert "plugin 'raising-cli' (distribution nucleus-broken-plugins): nucleus_register_commands failed" in (
        raising.stderr
    )
    misnamed = _nucleus(plugin_target, "misnamed-cli", cwd=tmp_path)
    assert misnamed.returncode == 4 and "adds no command named 'misnamed-cli'" in misnamed.stderr

    # The plugin adding "clash-ok" also tries "verify": only the command its entry point names is taken.
    assert _nucleus(plugin_target, "clash-ok", cwd=tmp_path).stdout.strip() == "clash-ok ran"
    verify = _nucleus(plugin_target, "verify", "--ledger", "memory://", cwd=tmp_path)
    assert verify.returncode == 0 and verify.stdout.startswith("ok: 0 entries verified")
    append = _nucleus(plugin_target, "append", "--ledger", "memory://", cwd=tmp_path)
    assert "broken" not in append.stderr and "import" not in append.stderr

    unknown = _nucleus(plugin_target, "no-such-command", cwd=tmp_path)
    assert unknown.returncode == 2 and "No such command 'no-such-command'" in unknown.stderr


def test_running_a_plugin_command_imports_no_other_command_plugin(plugin_target: Path, tmp_path: Path) -> None:
    # A marker-free check: with the broken plugins installed, running "notes" would fail or warn if
    # any other command plugin were imported along with it.
    result = _nucleus(plugin_target, "notes", "hi", cwd=tmp_path)
    assert result.returncode == 0 and result.stderr == ""


def test_plugins_command_lists_distributions_hooks_and_enabled(plugin_target: Path, tmp_path: Path) -> None:
    result = _nucleus(plugin_target, "plugins", "--ledger", "memory://", "--plugin", "example", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    rows = {(r["group"], r["name"]): r for r in data["plugins"]}
    example = rows[(ENTRY_POINT_GROUP, "example")]
    assert example["distribution"] == "nucleus-example-plugin" and example["version"] == "0.1.0"
    assert example["hooks"] == ["nucleus_register_modules"]
    assert example["enabled"] is True and example["why"] == "listed"
    broken = rows[(ENTRY_POINT_GROUP, "broken-import")]
    assert broken["enabled"] is False and "ModuleNotFoundError" in broken["error"]
    assert rows[(ENTRY_POINT_GROUP, "wrong-type")]["hooks"] == ["nucleus_register_modules"]
    assert rows[(CLI_ENTRY_POINT_GROUP, "notes")]["hooks"] == ["nucleus_register_commands"]
    assert rows[(CLI_ENTRY_POINT_GROUP, "notes")]["enabled"] is True
    assert data["missing"] == []

    human = _nucleus(plugin_target, "plugins", "--ledger", "memory://", "--plugin", "example", cwd=tmp_path)
    assert "example [nucleus] nucleus-example-plugin 0.1.0: enabled (listed)" in human.stdout
    assert "broken-import [nucleus] nucleus-broken-plugins 0.1.0: not enabled" in human.stdout


def test_plugins_command_fails_for_a_listed_broken_or_missing_plugin(plugin_target: Path, tmp_path: Path) -> None:
    broken = _nucleus(plugin_target, "plugins", "--ledger", "memory://", "--plugin", "broken-import,nope", cwd=tmp_path)
    assert broken.returncode == 4
    assert "broken-import [nucleus] nucleus-broken-plugins 0.1.0: enabled (listed)" in broken.stdout
    assert "nope: listed for this ledger but not installed" in broken.stderr


def test_installed_plugins_lists_without_importing_when_asked(installed: Path) -> None:
    names = {p.name: p for p in installed_plugins(inspect_hooks=False)}
    assert names["example"].distribution == "nucleus-example-plugin" and names["example"].hooks == ()
    assert _fixture_modules() == []
