"""The CLI without --ledger keeps its ledger in ./nucleus.db, across separate processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def nucleus(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUCLEUS_")}
    return subprocess.run([sys.executable, "-m", "nucleus_core", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_cli_uses_nucleus_db_in_the_working_directory(tmp_path: Path) -> None:
    record = {"id": "cli-1", "stream": "notes", "timestamp": 1_700_000_000_000, "payload": {"text": "kept"}}
    assert nucleus(tmp_path, "init").returncode == 0
    appended = nucleus(tmp_path, "append", json.dumps(record), "--as", "oid:test:user:cli", "--json")
    assert appended.returncode == 0, appended.stderr
    assert (tmp_path / "nucleus.db").is_file()
    got = nucleus(tmp_path, "get", "--id", "cli-1", "--as", "oid:test:user:cli", "--json")  # a new process
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["record"]["payload"] == {"text": "kept"}
