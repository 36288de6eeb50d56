"""Expected errors read as errors, not crashes (issue 11, item 14).

Every CLI case runs the real ``nucleus`` in a subprocess; the Python cases use real SQLite files
and the real PostgreSQL server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nucleus_core import (
    ConfigurationError,
    DuplicateRecordError,
    Module,
    ModuleSpec,
    PluginError,
    Record,
    RecordRejectedError,
    RecordValidationError,
    RequestContext,
    ValidationError,
    create_ledger,
    hookimpl,
)
from nucleus_core.cli import EXIT_CONFIGURATION, EXIT_CONFLICT, EXIT_INVALID, EXIT_USAGE
from nucleus_core.errors import ModuleError

ALICE = RequestContext(oid="oid:test:user:alice", source="dev")
RECORD = {"id": "r-1", "stream": "notes", "timestamp": 1_700_000_000_000, "payload": {"n": 1}}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUCLEUS_")}
    return env | extra


def nucleus(*args: str, cwd: Path, input: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nucleus_core", *args],
        cwd=cwd,
        env=_env(**env),
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
    )


# the quickstart's second run: one clear error, no chained traceback -----------------------------
def _single_error(err: BaseException) -> None:
    assert err.__cause__ is None and err.__suppress_context__, "the driver error is chained to it"


def test_duplicate_id_on_sqlite_is_one_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    with create_ledger(id="q", storage=url) as ledger:
        ledger.append(Record(**RECORD), ALICE)
    with create_ledger(id="q", storage=url) as ledger:
        with pytest.raises(DuplicateRecordError) as info:
            ledger.append(Record(**RECORD), ALICE)
        _single_error(info.value)
        assert ledger.length() == 1


@pytest.fixture
def pg_url() -> Iterator[str]:
    pytest.importorskip("nucleus_storage_postgres")
    from nucleus_core.testing.postgres import temporary_database

    with temporary_database("nucleus_errors") as dsn:
        yield dsn


def test_duplicate_id_on_postgres_is_one_error(pg_url: str) -> None:
    from nucleus_storage_postgres import postgres_storage

    with create_ledger(id="q", storage=postgres_storage(pg_url)) as ledger:
        ledger.append(Record(**RECORD), ALICE)
        with pytest.raises(DuplicateRecordError) as info:
            ledger.append(Record(**RECORD), ALICE)
        _single_error(info.value)
        assert ledger.length() == 1


def test_quickstart_script_second_run_shows_one_error(tmp_path: Path) -> None:
    script = tmp_path / "quickstart.py"
    script.write_text(
        textwrap.dedent(
            """
            from nucleus_core import Record, RequestContext, create_ledger

            alice = RequestContext(oid="oid:onoal:user:alice", source="dev")
            with create_ledger(id="quickstart", storage="sqlite:///quickstart.db") as ledger:
                ledger.append(Record(id="proof-1", stream="proofs", timestamp=1, payload={}), alice)
            """
        ),
        encoding="utf-8",
    )
    first = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    second = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert second.returncode == 1
    assert second.stderr.count("Traceback (most recent call last)") == 1, second.stderr
    assert "IntegrityError" not in second.stderr
    assert second.stderr.rstrip().endswith(
        "nucleus_core.errors.DuplicateRecordError: record id 'proof-1' already exists in this ledger"
    )


def test_cli_duplicate_id_is_one_line_and_exit_code(tmp_path: Path) -> None:
    assert nucleus("init", cwd=tmp_path).returncode == 0
    first = nucleus("append", json.dumps(RECORD), cwd=tmp_path, NUCLEUS_AS=ALICE.oid)
    assert first.returncode == 0, first.stderr
    again = nucleus("append", json.dumps(RECORD), cwd=tmp_path, NUCLEUS_AS=ALICE.oid)
    assert again.returncode == EXIT_CONFLICT
    assert again.stderr == "Error: record id 'r-1' already exists in this ledger\n"


# Record(...) with a field left out or of the wrong type ------------------------------------------
@pytest.mark.parametrize("left_out", ["id", "stream", "timestamp", "payload"])
def test_record_without_a_required_field_names_it(left_out: str) -> None:
    fields = {k: v for k, v in RECORD.items() if k != left_out}
    with pytest.raises(RecordValidationError) as info:
        Record(**fields)  # type: ignore[arg-type]
    assert str(info.value) == f"record: missing field(s) ['{left_out}']"
    assert info.value.field == "record"


def test_record_without_any_field_names_them_all() -> None:
    with pytest.raises(RecordValidationError, match=r"missing field\(s\) \['id', 'stream', 'timestamp', 'payload'\]"):
        Record()  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("field", "value"),
    [("id", 7), ("stream", None), ("timestamp", "2026-12-01"), ("payload", "text"), ("meta", [1])],
)
def test_record_field_of_the_wrong_type_is_a_validation_error(field: str, value: Any) -> None:
    with pytest.raises(RecordValidationError) as info:
        Record(**(RECORD | {field: value}))
    assert info.value.field == field and str(info.value).startswith(f"{field}: ")


def test_record_signature_still_requires_keywords() -> None:
    record = Record(id="a", stream="s", timestamp=1, payload=[])
    assert record.meta is None and Record.from_dict(record.to_dict()) == record


# prefixes are never doubled ----------------------------------------------------------------------
def test_cli_record_error_has_its_prefix_once(tmp_path: Path) -> None:
    out = nucleus("append", '{"id":"x","stream":"s"}', cwd=tmp_path, NUCLEUS_AS=ALICE.oid)
    assert out.returncode == EXIT_INVALID
    assert out.stderr == "Error: record: missing field(s) ['payload']\n"
    batch = tmp_path / "b.jsonl"
    batch.write_text('{"id":"x","stream":"s"}\n', encoding="utf-8")
    out = nucleus("append", "--batch", str(batch), cwd=tmp_path, NUCLEUS_AS=ALICE.oid)
    assert out.stderr == "Error: line 1: record: missing field(s) ['payload']\n"


def test_error_prefixes_are_added_once() -> None:
    inner = ValidationError("must be positive", field="limit")
    assert str(ValidationError(str(inner), field="limit")) == "limit: must be positive"
    plugin = PluginError("broken", plugin_name="x", distribution="d")
    assert str(PluginError(str(plugin), plugin_name="x", distribution="d")) == "plugin 'x' (distribution d): broken"
    module = ModuleError("boom", module_id="m")
    assert str(ModuleError(str(module), module_id="m")) == "module 'm': boom"


# RecordRejectedError as docs/MODULES.md shows it ---------------------------------------------------
class _Picky(Module):
    id = "picky"
    version = "1"
    streams = ("picky",)

    def validate(self, record: Record, context: RequestContext) -> None:
        raise RecordRejectedError("must be short", module_id=self.id, record_id=record.id, field="text")


class _PickyPlugin:
    @hookimpl
    def nucleus_register_modules(self) -> list[ModuleSpec]:
        return [ModuleSpec(id="picky", factory=lambda _ctx: _Picky())]


def test_record_rejected_error_takes_the_field() -> None:
    with create_ledger(id="t", storage="memory://", plugins=[_PickyPlugin()]) as ledger:
        with pytest.raises(RecordRejectedError) as info:
            ledger.append(Record(id="a", stream="picky", timestamp=1, payload={"text": "x" * 9}), ALICE)
        assert ledger.length() == 0
    err = info.value
    assert (err.module_id, err.record_id, err.field) == ("picky", "a", "text")
    assert str(err) == "module 'picky': text: must be short"
    assert "TypeError" not in str(err)


# CLI usage errors honour --json ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["query", "--json", "--bogus"], "No such option '--bogus'."),
        (["query", "--bogus", "--json"], "No such option '--bogus'."),
        (["query", "--json", "--limit", "0"], "Invalid value for '--limit': 0 is not in the range 1<=x<=1000."),
        (["get", "--json", "--id"], "Option '--id' requires an argument."),
    ],
)
def test_usage_errors_are_json_under_json(tmp_path: Path, args: list[str], message: str) -> None:
    out = nucleus(*args, cwd=tmp_path, NUCLEUS_AS=ALICE.oid)
    assert out.returncode == EXIT_USAGE
    assert json.loads(out.stderr) == {"error": {"code": "usage", "message": message}}
    assert not (tmp_path / "nucleus.db").exists()


def test_usage_errors_without_json_stay_text(tmp_path: Path) -> None:
    out = nucleus("query", "--bogus", cwd=tmp_path, NUCLEUS_AS=ALICE.oid)
    assert out.returncode == EXIT_USAGE
    assert "Error: No such option '--bogus'." in out.stderr and "Usage:" in out.stderr


def test_json_after_double_dash_is_an_argument(tmp_path: Path) -> None:
    out = nucleus("get", "--bogus", "--", "--json", cwd=tmp_path, NUCLEUS_AS=ALICE.oid)
    assert out.returncode == EXIT_USAGE and out.stderr.startswith("Usage:")


# --since / --until: ISO 8601 as the help says ------------------------------------------------------
def test_since_and_until_take_iso_dates_and_date_times(tmp_path: Path) -> None:
    # 2026-11-30T23:00Z, 2026-12-01T00:00Z, 2026-12-01T12:00Z, 2026-12-02T00:00Z
    stamps = [1_796_079_600_000, 1_796_083_200_000, 1_796_126_400_000, 1_796_169_600_000]
    lines = "".join(
        json.dumps({"id": f"r{i}", "stream": "s", "timestamp": ts, "payload": {}}) + "\n" for i, ts in enumerate(stamps)
    )
    (tmp_path / "records.jsonl").write_text(lines, encoding="utf-8")
    env = {"NUCLEUS_AS": ALICE.oid}
    assert nucleus("init", cwd=tmp_path).returncode == 0
    assert nucleus("append", "--batch", "records.jsonl", cwd=tmp_path, **env).returncode == 0

    def ids(*args: str) -> list[str]:
        out = nucleus("query", "--json", *args, cwd=tmp_path, **env)
        assert out.returncode == 0, out.stderr
        return [e["record"]["id"] for e in json.loads(out.stdout)["entries"]]

    assert ids("--since", "2026-12-01") == ["r1", "r2", "r3"]
    assert ids("--since", "2026-12-01", "--until", "2026-12-02") == ["r1", "r2"]
    assert ids("--since", "2026-12-01T12:00:00Z") == ["r2", "r3"]
    assert ids("--since", "2026-12-01T13:00:00+01:00") == ["r2", "r3"]
    assert ids("--until", "2026-12-01T00:00:00.001+00:00") == ["r0", "r1"]
    assert ids("--since", "1796126400000") == ["r2", "r3"]
    naive = nucleus("query", "--since", "2026-12-01T12:00:00", cwd=tmp_path, **env)
    assert naive.returncode == EXIT_USAGE and "has no time zone" in naive.stderr
    bad = nucleus("query", "--since", "1st of December", cwd=tmp_path, **env)
    assert bad.returncode == EXIT_USAGE and "ISO 8601 date (2026-12-01)" in bad.stderr


# nucleus serve without nucleus-server ----------------------------------------------------------
def _site_without(tmp_path: Path, distribution: str, package: str) -> Path:
    """A site directory holding this environment's packages except one distribution."""
    import site

    source = Path(next(p for p in site.getsitepackages() if (Path(p) / "nucleus_core-0.1.0.dist-info").exists()))
    target = tmp_path / "site"
    target.mkdir()
    hidden = {f"{distribution}-", f"_editable_impl_{distribution}.pth", package}
    for item in source.iterdir():
        if not any(item.name.startswith(h) for h in hidden):
            (target / item.name).symlink_to(item)
    return target


def test_serve_without_nucleus_server_says_what_to_install(tmp_path: Path) -> None:
    site_dir = _site_without(tmp_path, "nucleus_server", "nucleus_server")
    driver = (
        "import site, sys; site.addsitedir(sys.argv.pop(1)); "
        "from nucleus_core.cli import main; sys.argv[0] = 'nucleus'; main()"
    )
    base = [sys.executable, "-S", "-c", driver, str(site_dir)]
    check = subprocess.run(
        [sys.executable, "-S", "-c", "import site, sys; site.addsitedir(sys.argv[1]); import nucleus_server", site_dir],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode != 0, "nucleus-server is still importable"
    for as_json in (False, True):
        out = subprocess.run(
            [*base, *(["serve", "--json"] if as_json else ["serve", "--dev"])],
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == EXIT_USAGE
        expected = (
            "No such command 'serve': it comes with the distribution nucleus-server, which is not installed "
            "(pip install nucleus-server)."
        )
        if as_json:
            assert json.loads(out.stderr) == {"error": {"code": "usage", "message": expected}}
        else:
            assert f"Error: {expected}" in out.stderr
    unknown = subprocess.run([*base, "servee"], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
    assert unknown.returncode == EXIT_USAGE and "No such command 'servee'" in unknown.stderr


def test_every_plugin_command_of_the_project_has_its_distribution() -> None:
    from nucleus_core.cli import PLUGIN_COMMANDS

    root = Path(__file__).resolve().parent.parent
    import tomllib

    declared: dict[str, str] = {}
    for pyproject in root.glob("*/*/pyproject.toml"):
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
        for command in data.get("entry-points", {}).get("nucleus.cli", {}):
            declared[command] = data["name"]
    assert declared == PLUGIN_COMMANDS


# auth.dev on a production configuration -------------------------------------------------------------
@pytest.mark.parametrize("how", ["flag", "config"])
def test_dev_parser_in_production_refused_before_the_banner(tmp_path: Path, how: str) -> None:
    pytest.importorskip("nucleus_server")
    args = ["serve", "--port", "0", "--ledger", "memory://"]
    if how == "flag":
        args += ["--plugin", "auth.dev"]
    else:
        (tmp_path / "nucleus.toml").write_text('[plugins."auth.dev"]\n', encoding="utf-8")
        args += ["--config", "nucleus.toml"]
    out = nucleus(*args, cwd=tmp_path)
    assert out.returncode == EXIT_CONFIGURATION, out.stderr
    assert "DEVELOPMENT MODE" not in out.stderr
    assert out.stderr.startswith("Error: auth.dev: development tokens are refused")
    assert "Traceback" not in out.stderr


# a path the system refuses ----------------------------------------------------------------------
def test_overlong_sqlite_path_is_a_clear_error(tmp_path: Path) -> None:
    long_name = "a" * 5000 + ".db"
    out = nucleus("init", "--ledger", f"sqlite:///{long_name}", cwd=tmp_path)
    assert out.returncode == EXIT_CONFIGURATION
    assert "Traceback" not in out.stderr and "OSError" not in out.stderr
    assert out.stderr.startswith("Error: sqlite path ") and out.stderr.endswith("cannot be used: File name too long\n")
    assert len(out.stderr) < 400
    with pytest.raises(ConfigurationError, match="File name too long"):
        create_ledger(id="x", storage=f"sqlite:///{tmp_path / ('d' * 300) / 'x.db'}")
    assert list(tmp_path.iterdir()) == []


def test_other_refused_paths_in_the_cli_are_one_line(tmp_path: Path) -> None:
    batch = "b" * 5000 + ".jsonl"
    out = nucleus("append", "--batch", batch, cwd=tmp_path, NUCLEUS_AS=ALICE.oid)
    assert out.returncode == EXIT_USAGE and "Traceback" not in out.stderr
    out = nucleus("export", "-o", "o" * 5000, "--ledger", "memory://", cwd=tmp_path, NUCLEUS_AS=ALICE.oid)
    assert out.returncode != 0 and "Traceback" not in out.stderr and "File name too long" in out.stderr


# Module.apply and entries its module never validated (docs/MODULES.md, "What apply sees") ---------
class _Strict(Module):
    id = "strict"
    version = "1"
    streams = ("strict",)

    def __init__(self) -> None:
        self.seen: list[int] = []

    def apply(self, entry: Any) -> None:
        if entry.record.payload != {"ok": True}:
            raise ValueError("not a payload this module writes")
        self.seen.append(entry.seq)


class _StrictPlugin:
    @hookimpl
    def nucleus_register_modules(self) -> list[ModuleSpec]:
        return [ModuleSpec(id="strict", factory=lambda _ctx: _Strict())]


def test_apply_sees_entries_written_without_the_module_and_a_raise_stops_opening(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    with create_ledger(id="m", storage=url) as ledger:  # the module is not enabled: nothing validates
        ledger.append(Record(id="a", stream="strict", timestamp=1, payload={"ok": True}), ALICE)
        ledger.append(Record(id="b", stream="strict", timestamp=1, payload={"ok": False}), ALICE)
    with pytest.raises(ModuleError, match=r"module 'strict': apply failed at entry 2: ValueError: not a payload"):
        create_ledger(id="m", storage=url, plugins=[_StrictPlugin()])
    with create_ledger(id="m", storage=url) as ledger:  # the chain itself is fine without the module
        assert ledger.verify().ok and ledger.length() == 2


def test_stateful_modules_skip_entries_they_would_refuse(tmp_path: Path) -> None:
    pytest.importorskip("nucleus_module_proof")
    url = f"sqlite:///{tmp_path / 'p.db'}"
    with create_ledger(id="p", storage=url) as ledger:
        # As a ledger written before appends to a module's stream needed the module (now refused):
        junk = Record(id="junk", stream="proof", timestamp=1, payload={"type": "nonsense"})
        ledger._write([junk], ALICE, within=None)
    with create_ledger(id="p", storage=url, plugins=["proof"]) as ledger:
        assert ledger.length() == 1
