"""A third-party module distribution installed with pip, enabled only through configuration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

PYPROJECT = """
[build-system]
requires = ["hatchling>=1.24"]
build-backend = "hatchling.build"

[project]
name = "acme-nucleus-counter"
version = "1.2.3"
requires-python = ">=3.11"
dependencies = []

[project.entry-points.nucleus]
acme_counter = "acme_counter.plugin"

[tool.hatch.build.targets.wheel]
packages = ["src/acme_counter"]
"""

PLUGIN = """
from nucleus_core import Module, ModuleSpec, RecordRejectedError, hookimpl


class CounterModule(Module):
    id = "acme_counter"
    version = "1.2.3"
    streams = ("acme",)

    def __init__(self):
        self.limit = None
        self.count = 0

    def init(self, ctx):
        self.limit = ctx.settings["limit"]

    def validate(self, record, context):
        if self.count >= self.limit:
            raise RecordRejectedError("limit reached", module_id=self.id, record_id=record.id)

    def apply(self, entry):
        self.count += 1


@hookimpl
def nucleus_register_modules():
    return [ModuleSpec(id="acme_counter", factory=lambda ctx: CounterModule())]
"""

PROBE = """
import json, sys
from nucleus_core import Record, RecordRejectedError, RequestContext, create_ledger

enabled = sys.argv[1] == "enabled"
ctx = RequestContext(oid="oid:acme:user:alice", source="service")
plugins = ["acme_counter"] if enabled else []
ledger = create_ledger(id="third", storage="memory://", plugins=plugins, settings={"acme_counter": {"limit": 1}})
out = {"modules": ledger.modules.list(), "imported": "acme_counter" in sys.modules}
if enabled:
    out["meta"] = [(m.id, m.version, m.state.value) for m in ledger.modules.metadata()]
    ledger.append(Record(id="a1", stream="acme", timestamp=1, payload={}), ctx)
    try:
        ledger.append(Record(id="a2", stream="acme", timestamp=1, payload={}), ctx)
    except RecordRejectedError as err:
        out["refused"] = str(err)
    out["length"] = ledger.length()
ledger.close()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory):
    src = tmp_path_factory.mktemp("acme_src")
    (src / "pyproject.toml").write_text(PYPROJECT)
    pkg = src / "src" / "acme_counter"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "plugin.py").write_text(PLUGIN)
    target = tmp_path_factory.mktemp("acme_site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(src)],
        check=True,
        timeout=300,
        capture_output=True,
    )
    return target


def run_probe(site, mode):
    env = dict(os.environ, PYTHONPATH=str(site))
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PROBE), mode], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_installed_module_enabled_through_configuration(site_dir):
    out = run_probe(site_dir, "enabled")
    assert out["modules"] == ["acme_counter"]
    assert out["meta"] == [["acme_counter", "1.2.3", "started"]]
    assert "module 'acme_counter'" in out["refused"] and "limit reached" in out["refused"]
    assert out["length"] == 1


@pytest.mark.slow
def test_installed_but_unlisted_module_is_never_loaded(site_dir):
    out = run_probe(site_dir, "disabled")
    assert out == {"modules": [], "imported": False}


def test_installed_domain_modules_are_not_loaded_unless_listed():
    code = (
        "import sys; from nucleus_core import create_ledger, RequestContext;"
        "l = create_ledger(id='x', storage='memory://');"
        "print(l.modules.list(), sorted(m for m in sys.modules if m.startswith('nucleus_module_')))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert proc.stdout.strip() == "[] []"
