"""nucleus_core/tlog_verify.py runs alone: loaded by path, in a fresh interpreter where importing
Nucleus or any of its other dependencies fails, it verifies a checkpoint and both kinds of proof."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import nucleus_core.tlog_verify

MODULE = Path(nucleus_core.tlog_verify.__file__)

BLOCK = r"""
import base64, importlib.abc, importlib.util, sys

BLOCKED = {"nucleus_core", "blake3", "attrs", "cattrs", "peewee", "playhouse", "orjson", "pluggy", "click",
           "jwt", "psycopg", "pymerkle"}

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked: {name}")
        return None

sys.meta_path.insert(0, Block())
"""
"""The preamble of the scripts below: importing Nucleus or its other dependencies fails."""

SCRIPT = BLOCK + r"""
spec = importlib.util.spec_from_file_location("standalone_tlog_verify", sys.argv[1])
tv = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = tv  # as importlib documents for loading a file by path
spec.loader.exec_module(tv)

origin = "sigsum.org/v1/tree/e796172b92befd62d9dc67e41c2f5bc9d3100a3023b20b1ca40288dd1c679e69"
vkey = origin + "+809da1a3+AWbguFjkYqYJ5m/nE3DIFtiEb/ED1UmaIqf+w3/bxCSn"
note = (origin + "\n6\nduZ9rbzfHhDht03cYIq9L5jfsW+851J3tSMqEn8gh+8=\n\n\u2014 " + origin + " "
        "gJ2ho75jk1mSX5qQlSuUwU/PBvExTGKmYkmKvILfet/d3crhoOu01Ay+h/dNBiWcjW56PmpytGWnCq7q4MlM27hMbw4=\n")
cp6 = tv.verify_checkpoint(note, [tv.parse_vkey(vkey)], origin=origin)
assert cp6.size == 6
b = base64.b64decode
root8 = b("XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=")
tv.verify_consistency(6, 8, cp6.root_hash, root8, [b(x) for x in (
    "DrxdNDf74tsVi58Sah0RjjCBgQMdCpSfje3t68VY72o=", "yoVOoSjtBQtBs1/8G4e46yveRh6eO1WW7Oa51ZdaCuA=",
    "037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc=")])
tv.verify_inclusion(b("QnGia+DYqE8L1UyMMC58s6O10fpngKQLzOKHNHfatlg="), 5, 8, [b(x) for x in (
    "vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms=", "yoVOoSjtBQtBs1/8G4e46yveRh6eO1WW7Oa51ZdaCuA=",
    "037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc=")], root8)
try:
    tv.verify_checkpoint(note.replace("\n6\n", "\n7\n"), [tv.parse_vkey(vkey)])
except tv.InvalidSignatureError:
    pass
else:
    raise AssertionError("a changed checkpoint verified")
try:
    import nucleus_core
except ImportError:
    pass
else:
    raise AssertionError("the import block does not work")
print("standalone ok", sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED))
"""


def test_runs_with_only_the_standard_library_and_cryptography() -> None:
    result = subprocess.run(
        [sys.executable, "-I", "-c", SCRIPT, str(MODULE)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "standalone ok []"


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """The top-level modules ``path`` imports, and the modules of its package it imports (``from .x``)."""
    imported, relative = set(), set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.module is not None
            if node.level:
                assert node.level == 1
                relative.add(node.module)
            else:
                imported.add(node.module.split(".")[0])
    return imported - set(sys.stdlib_module_names) - {"__future__"}, relative


def test_imports_nothing_else() -> None:
    assert _imports(MODULE) == ({"cryptography"}, set()), "no relative imports"

COMPANIONS = ("cosignature.py", "tlog_witness.py")
"""Modules that need tlog_verify and nothing else of Nucleus: an auditor copies them with it."""

PACKAGE_SCRIPT = BLOCK + r"""
sys.path.insert(0, sys.argv[1])
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from auditor import cosignature, tlog_verify, tlog_witness

origin = "sigsum.org/v1/tree/e796172b92befd62d9dc67e41c2f5bc9d3100a3023b20b1ca40288dd1c679e69"
note = (origin + "\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n\n\u2014 " + origin + " "
        "gJ2ho/5YBSEdA8yXbf8FM3q7xPIM/zf9YIBQB/NqHgsKb4SW8NWtV9b/WLFa4m1JtmG26MvRHNUpbGe6CQjsHF3RSA8=\n"
        "\u2014 witness.example/w1 519lMgAAAABlU/EA2RxS8OhxlkOBi9YGS/PWjxjbce+G+iw0kkDAU0FlU7uOdtAWYLRLBMBf0dz17DSktlG6"
        "BVB2MeNRyuk7uBotAw==\n")
policy = cosignature.CosignaturePolicy.from_vkeys(
    1, ["witness.example/w1+e75f6532+BAOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"])
assert [c.timestamp for c in policy.check(note)] == [1700000000]
log = tlog_verify.parse_vkey(origin + "+809da1a3+AWbguFjkYqYJ5m/nE3DIFtiEb/ED1UmaIqf+w3/bxCSn")
assert tlog_verify.verify_checkpoint(note, [log]).size == 8
try:
    policy.check(note.replace("\n8\n", "\n9\n"))
except tlog_verify.InvalidSignatureError:
    pass
else:
    raise AssertionError("a changed checkpoint verified")
body = tlog_witness.AddCheckpointRequest(old_size=0, proof=(), checkpoint=note).body()
assert tlog_witness.parse_add_checkpoint(body).checkpoint == note
print("standalone ok", sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED))
"""


def test_companions_run_with_tlog_verify_alone(tmp_path: Path) -> None:
    package = tmp_path / "auditor"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    for name in ("tlog_verify.py", *COMPANIONS):
        (package / name).write_bytes((MODULE.parent / name).read_bytes())
    result = subprocess.run(
        [sys.executable, "-I", "-c", PACKAGE_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "standalone ok []"


def test_companions_import_nothing_else() -> None:
    for name in COMPANIONS:
        imported, relative = _imports(MODULE.parent / name)
        assert imported <= {"cryptography"}, name
        assert relative <= {"tlog_verify", "cosignature"}, name
