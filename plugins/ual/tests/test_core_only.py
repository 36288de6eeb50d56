"""nucleus-ual needs only nucleus-core: it declares no storage distribution and runs without one."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

DIST = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys
sys.modules["nucleus_storage_sql"] = None  # importing it now raises ImportError
from nucleus_core import RequestContext, Record, create_ledger
from nucleus_ual import UalPlugin
admin = RequestContext(oid="oid:t:user:admin", source="dev")
alice = RequestContext(oid="oid:t:user:alice", source="dev")
with create_ledger(id="t", storage="memory://", plugins=[UalPlugin()], admins=["oid:t:user:admin"]) as ledger:
    ledger.append(Record(id="n1", stream="notes", timestamp=1, payload={}), admin)
    ledger.append(Record(id="n2", stream="notes", timestamp=2, payload={}), admin)
    grant = {"resource_kind": "stream:notes", "resource_id": "n2", "principal_oid": alice.oid, "scope": "read"}
    ledger.acl.grant([grant], admin)
    print([e.record.id for e in ledger.query({}, alice)])
print(sorted(m for m, mod in sys.modules.items() if m.startswith("nucleus_storage") and mod is not None))
"""


def test_declares_only_the_core_among_nucleus_distributions() -> None:
    project = tomllib.loads((DIST / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    nucleus = [d for d in project["dependencies"] if d.startswith("nucleus")]
    assert nucleus == ["nucleus-core>=0.1.0,<0.2"]
    assert not any(d.startswith("peewee") for d in project["dependencies"])


def test_runs_with_no_storage_distribution_importable() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["['n2']", "[]"]


def test_source_imports_no_storage_distribution() -> None:
    for path in (DIST / "src").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "nucleus_storage" not in text, path
        assert "import peewee" not in text, path
