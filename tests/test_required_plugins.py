"""A ledger records the plugins whose state lives in its chain (the `_ledger` stream) and refuses to
open without them: access control, token parsers with chain state (API keys), modules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nucleus_core import (
    MemoryStorage,
    Module,
    ModuleSpec,
    PluginError,
    Record,
    RequestContext,
    TokenParserSpec,
    ValidationError,
    create_ledger,
    hookimpl,
    open_ledger,
)
from nucleus_core.context import ALL_SCOPES
from nucleus_core.testing.sqlite_file import newest_plugins_record, stored_streams

pytest.importorskip("nucleus_storage_sqlite")
pytest.importorskip("nucleus_token_api_key")
pytest.importorskip("nucleus_module_asset")

PEPPER = {"auth.api_key": {"pepper": "a-test-pepper-of-more-than-32-characters!"}}
CTX = RequestContext(oid="oid:test:user:alice", source="auth.service", scopes=ALL_SCOPES)  # keys: explicit


def plugins_payload(path: Path) -> list[dict[str, Any]]:
    payload = newest_plugins_record(path)
    assert payload["type"] == "plugins"
    return payload["plugins"]  # type: ignore[no-any-return]


def test_an_api_key_ledger_refuses_to_open_without_its_parser(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    with create_ledger(id="k", storage=url, plugins=["auth.api_key"], settings=PEPPER) as ledger:
        ledger.auth.parser("auth.api_key").create_key("oid:test:user:bob", context=CTX)
    before = stored_streams(tmp_path / "k.db")
    assert [s for _, s in before] == ["_ledger", "_api_keys"]
    assert plugins_payload(tmp_path / "k.db") == [
        {
            "kind": "token_parser",
            "name": "auth.api_key",
            "plugin": "auth.api_key",
            "distribution": "nucleus-token-api-key",
        }
    ]
    with pytest.raises(PluginError) as refused:
        open_ledger(id="k", storage=url)
    message = str(refused.value)
    assert refused.value.plugin_name == "auth.api_key" and refused.value.distribution == "nucleus-token-api-key"
    assert "--plugin auth.api_key" in message and "pip install" not in message  # installed: enable it
    assert stored_streams(tmp_path / "k.db") == before
    with open_ledger(id="k", storage=url, plugins=["auth.api_key"], settings=PEPPER) as ledger:
        assert ledger.verify().ok


def test_a_module_ledger_refuses_to_open_without_its_module(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    create_ledger(id="a", storage=url, plugins=["asset"]).close()
    with pytest.raises(PluginError, match=r"module 'asset'.*--plugin asset"):
        create_ledger(id="a", storage=url)
    # Enabling more plugins is fine; the record is only written when the set grows.
    with create_ledger(id="a", storage=url, plugins=["asset"]) as ledger:
        assert ledger.length() == 1


def test_a_plugin_enabled_later_is_recorded_with_the_next_write_only(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    with create_ledger(id="l", storage=url) as ledger:  # no chain-state plugin: nothing recorded
        ledger.append(Record(id="r1", stream="s", payload={}, timestamp=1), CTX)
    assert stored_streams(tmp_path / "l.db") == [(1, "s")]
    with open_ledger(id="l", storage=url, plugins=["asset"]) as ledger:  # opening writes nothing
        assert stored_streams(tmp_path / "l.db") == [(1, "s")]
        entry = ledger.append(Record(id="r2", stream="s", payload={}, timestamp=2), CTX)
        assert entry.seq == 3  # the _ledger record went first, in the same transaction
    assert stored_streams(tmp_path / "l.db") == [(1, "s"), (2, "_ledger"), (3, "s")]
    assert [p["name"] for p in plugins_payload(tmp_path / "l.db")] == ["asset"]
    with pytest.raises(PluginError, match="'asset'"):
        open_ledger(id="l", storage=url)


def test_a_read_only_open_never_records(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    with create_ledger(id="r", storage=url) as ledger:
        ledger.append(Record(id="r1", stream="s", payload={}, timestamp=1), CTX)
    with open_ledger(id="r", storage=url, plugins=["asset"], verify_on_open=False) as ledger:
        assert ledger.read_only
    assert stored_streams(tmp_path / "r.db") == [(1, "s")]


def test_a_ledger_without_the_record_requires_the_plugins_of_its_streams() -> None:
    storage = MemoryStorage()
    with create_ledger(id="m", storage=storage, plugins=["auth.api_key"], settings=PEPPER) as ledger:
        ledger.auth.parser("auth.api_key").create_key("oid:test:user:bob", context=CTX)
    with pytest.raises(PluginError, match=r"holds entries of their streams.*auth\.api_key"):
        create_ledger(id="m", storage=storage)


class Notes(Module):
    id = "notes"
    version = "1"
    streams = ("notes",)


class NotesPlugin:
    @hookimpl
    def nucleus_register_modules(self) -> list[ModuleSpec]:
        return [ModuleSpec(id="notes", factory=lambda _ctx: Notes())]


def test_a_plugin_object_is_recorded_by_its_spec_name(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    create_ledger(id="o", storage=url, plugins=[NotesPlugin()]).close()
    assert plugins_payload(tmp_path / "o.db") == [
        {"kind": "module", "name": "notes", "plugin": None, "distribution": None}
    ]
    with pytest.raises(PluginError, match="module 'notes' \\(a plugin object"):
        open_ledger(id="o", storage=url)
    open_ledger(id="o", storage=url, plugins=[NotesPlugin()]).close()


def test_a_spec_declares_only_system_streams() -> None:
    with pytest.raises(ValidationError, match="system stream"):
        TokenParserSpec(name="x", factory=lambda _ctx: None, streams=("plain",))
