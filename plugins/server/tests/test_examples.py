"""Every script in examples/ runs (as a subprocess, in a scratch directory) and succeeds."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
NEEDS = {
    "embedded_sqlite.py": ["nucleus_storage_sqlite"],
    "modules.py": ["nucleus_storage_sqlite", "nucleus_module_proof"],
    "auth_ual.py": ["nucleus_storage_sqlite", "nucleus_token_api_key", "nucleus_ual"],
    "remote_client.py": ["nucleus_storage_sqlite", "nucleus_token_dev", "httpx"],
    "transparency.py": ["nucleus_storage_sqlite", "nucleus_token_dev", "nucleus_witness", "httpx"],
    "verifying_client.py": ["nucleus_storage_sqlite", "nucleus_token_dev", "httpx"],
}
EXPECT = {
    "embedded_sqlite.py": "verified True 5 entries",
    "modules.py": "status after revocation: ProofStatus.REVOKED",
    "auth_ual.py": "bob after alice's grant: ['alice-note']",
    "remote_client.py": "verify: True 4 entries; length 4",
    "transparency.py": "two witnesses down: size 7: refused (1 of the 2 cosignatures required)\n"
    "latest that meets the policy: size 6: accepted, cosigned by 2 of 3 (w1.example.org, w2.example.org)\n"
    "verifying client: entries 1-6 proven in a checkpoint 2 witnesses cosigned\n"
    "verifying client: a page with entry 7 refused, no such checkpoint covers it yet",
    "verifying_client.py": "rollback: trusted 6, presented 3",
}


def test_every_example_is_covered() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(NEEDS) == sorted(EXPECT)


@pytest.mark.parametrize("name", sorted(NEEDS))
def test_example_runs(name: str, tmp_path: Path) -> None:
    missing = [m for m in NEEDS[name] if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUCLEUS_")}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert EXPECT[name] in result.stdout
