"""The ``_ledger`` record of required plugins (findings 3, 4 and 5 of the issue 11 review): every new
persistent ledger gets one, reads never write one, a write merges with the chain's newest record and
is refused when that names a plugin this process has not enabled, and a plugin leaves it only by an
explicit, recorded release. Real SQLite files; the CLI as real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nucleus_core import PluginError, Record, RequestContext, create_ledger, open_ledger, release_plugin
from nucleus_core.testing.sqlite_file import newest_plugins_record, stored_streams

pytest.importorskip("nucleus_storage_sqlite")
pytest.importorskip("nucleus_module_asset")
pytest.importorskip("nucleus_module_token")
pytest.importorskip("nucleus_module_proof")

CTX = RequestContext(oid="oid:test:user:alice", source="auth.service")


def names(payload: dict[str, Any]) -> list[str]:
    return [p["name"] for p in payload["plugins"]]


def nucleus(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUCLEUS_")}
    env["NUCLEUS_LEDGER"] = f"sqlite:///{tmp_path / 'n.db'}"
    return subprocess.run(
        [sys.executable, "-m", "nucleus_core", *args], env=env, capture_output=True, text=True, timeout=120
    )


# finding 3: a process with an outdated list ----------------------------------------------------
def test_a_write_merges_with_the_newest_record_and_refuses_plugins_not_enabled(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    create_ledger(id="l", storage=url, plugins=["asset"]).close()
    a = open_ledger(id="l", storage=url, plugins=["asset", "token"])
    b = open_ledger(id="l", storage=url, plugins=["asset", "proof"])
    try:
        b.append(Record(id="b1", stream="s", payload={}, timestamp=1), CTX)
        assert names(newest_plugins_record(tmp_path / "l.db")) == ["asset", "proof"]
        with pytest.raises(PluginError, match="'proof'") as refused:
            a.append(Record(id="a1", stream="s", payload={}, timestamp=2), CTX)
        assert "nothing was written" in str(refused.value)
        assert [s for _, s in stored_streams(tmp_path / "l.db")].count("s") == 1
    finally:
        a.close()
        b.close()
    with pytest.raises(PluginError, match="'proof'"):  # the plugin B recorded stays required
        open_ledger(id="l", storage=url, plugins=["asset", "token"])
    with open_ledger(id="l", storage=url, plugins=["asset", "proof", "token"]) as ledger:
        ledger.append(Record(id="a1", stream="s", payload={}, timestamp=2), CTX)
    assert names(newest_plugins_record(tmp_path / "l.db")) == ["asset", "proof", "token"]  # merged, none dropped


# finding 4: every new ledger records its list ----------------------------------------------------
def test_a_plain_record_in_a_module_stream_is_refused_without_the_module(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    with create_ledger(id="e", storage=url) as ledger:
        for stream in ("token", "asset", "proof", "connect_grant"):
            with pytest.raises(PluginError, match=f"stream '{stream}' belongs to the '{stream}' module"):
                ledger.append(Record(id=f"x-{stream}", stream=stream, payload={}, timestamp=1), CTX)
        assert ledger.length() == 0
    with open_ledger(id="e", storage=url) as ledger:  # still opens without any module
        assert ledger.verify().ok


def test_cli_plain_records_in_module_stream_names_keep_a_new_ledger_readable(tmp_path: Path) -> None:
    assert nucleus(tmp_path, "init").returncode == 0
    record = {"id": "t1", "stream": "token", "payload": {"x": 1}, "timestamp": 1}
    out = nucleus(tmp_path, "append", "--as", "oid:a:user:bob", json.dumps(record))
    assert out.returncode == 4 and "enable it (--plugin token" in out.stderr
    verify = nucleus(tmp_path, "verify")
    assert verify.returncode == 0, verify.stderr
    query = nucleus(tmp_path, "query", "--as", "oid:a:user:bob", "--stream", "token")
    assert query.returncode == 0, query.stderr


# finding 5: reads never write; an explicit, recorded release ---------------------------------------
def test_cli_a_read_with_an_extra_plugin_writes_nothing(tmp_path: Path) -> None:
    assert nucleus(tmp_path, "init").returncode == 0
    before = stored_streams(tmp_path / "n.db")
    out = nucleus(tmp_path, "verify", "--plugin", "ual")
    assert out.returncode == 0, out.stderr
    assert nucleus(tmp_path, "query", "--as", "oid:a:user:bob", "--plugin", "asset").returncode == 0
    assert stored_streams(tmp_path / "n.db") == before
    plain = nucleus(tmp_path, "verify")
    assert plain.returncode == 0, plain.stderr


def test_cli_release_plugin_is_recorded_and_the_ledger_opens_without_it(tmp_path: Path) -> None:
    assert nucleus(tmp_path, "init", "--plugin", "asset").returncode == 0
    assert nucleus(tmp_path, "verify").returncode == 4  # asset is required
    enabled = nucleus(tmp_path, "release-plugin", "asset", "--plugin", "asset", "--as", "oid:a:user:op")
    assert enabled.returncode != 0 and "enabled" in enabled.stderr
    unknown = nucleus(tmp_path, "release-plugin", "token", "--plugin", "asset", "--as", "oid:a:user:op")
    assert unknown.returncode != 0 and "does not require" in unknown.stderr
    out = nucleus(tmp_path, "release-plugin", "asset", "--as", "oid:a:user:op")
    assert out.returncode == 0, out.stderr
    payload = newest_plugins_record(tmp_path / "n.db")
    assert payload["plugins"] == [] and payload["by"] == "oid:a:user:op"
    assert [p["name"] for p in payload["released"]] == ["asset"]
    assert nucleus(tmp_path, "verify").returncode == 0


def test_release_plugin_in_python_keeps_the_others(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    create_ledger(id="p", storage=url, plugins=["asset", "token"]).close()
    with pytest.raises(PluginError, match="'asset'"):  # every other required plugin is still needed
        release_plugin("token", context=CTX, id="p", storage=url)
    released = release_plugin("token", context=CTX, id="p", storage=url, plugins=["asset"])
    assert [p.name for p in released] == ["token"]
    assert names(newest_plugins_record(tmp_path / "p.db")) == ["asset"]
    with open_ledger(id="p", storage=url, plugins=["asset"]) as ledger:
        assert ledger.verify().ok
