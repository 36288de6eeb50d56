"""nucleus_core/tlog_verify.py runs alone: loaded by path, in a fresh interpreter where importing
Nucleus or any of its other dependencies fails, it verifies a checkpoint and both kinds of proof."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import nucleus_core.tlog_verify

MODULE = Path(nucleus_core.tlog_verify.__file__)

SCRIPT = r"""
import base64, importlib.abc, importlib.util, sys

BLOCKED = {"nucleus_core", "blake3", "attrs", "cattrs", "peewee", "playhouse", "orjson", "pluggy", "click",
           "jwt", "psycopg", "pymerkle"}

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked: {name}")
        return None

sys.meta_path.insert(0, Block())
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


def test_imports_nothing_else() -> None:
    tree = ast.parse(MODULE.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports"
            assert node.module is not None
            imported.add(node.module.split(".")[0])
    assert imported - set(sys.stdlib_module_names) - {"__future__"} == {"cryptography"}
