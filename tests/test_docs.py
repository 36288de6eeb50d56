"""Meta-tests that keep the docs honest: docs/PLUGINS.md and the plugin tests about the hookspecs, and
every snippet of README.md and docs/*.md about what it shows (run as printed)."""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import attrs
import pytest

from nucleus_core import hookspecs
from nucleus_core.plugins import HOOK_PREFIX, new_plugin_manager

ROOT = Path(__file__).resolve().parent.parent
PLUGINS_DOC = ROOT / "docs" / "PLUGINS.md"
PLUGIN_TESTS = Path(__file__).resolve().parent / "core" / "test_plugins.py"


def _hookspec_names() -> list[str]:
    pm = new_plugin_manager()
    return sorted(name for name in dir(pm.hook) if name.startswith(HOOK_PREFIX))


HOOKS = _hookspec_names()


def test_every_hookspec_is_found() -> None:
    declared = sorted(n for n in vars(hookspecs) if n.startswith(HOOK_PREFIX) and callable(getattr(hookspecs, n)))
    assert declared == HOOKS
    assert len(HOOKS) >= 7


@pytest.mark.parametrize("hook", HOOKS)
def test_hookspec_is_documented_in_plugins_md(hook: str) -> None:
    headings = re.findall(r"^### (\S+)$", PLUGINS_DOC.read_text(encoding="utf-8"), flags=re.MULTILINE)
    assert hook in headings, f"docs/PLUGINS.md has no '### {hook}' section"


@pytest.mark.parametrize("hook", HOOKS)
def test_hookspec_has_a_test(hook: str) -> None:
    tree = ast.parse(PLUGIN_TESTS.read_text(encoding="utf-8"))
    tests = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert f"test_hook_{hook}" in tests, f"tests/core/test_plugins.py has no test_hook_{hook}"


@pytest.mark.parametrize("hook", HOOKS)
def test_hookspec_has_a_docstring(hook: str) -> None:
    doc = getattr(hookspecs, hook).__doc__ or ""
    assert "versionadded" in doc and len(doc.split()) > 8


def test_documented_hooks_exist() -> None:
    headings = re.findall(r"^### (nucleus_\S+)$", PLUGINS_DOC.read_text(encoding="utf-8"), flags=re.MULTILINE)
    assert sorted(headings) == HOOKS


def test_python_examples_in_plugins_md_compile() -> None:
    blocks = re.findall(r"```python\n(.*?)```", PLUGINS_DOC.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert len(blocks) >= 4
    for block in blocks:
        compile(block, str(PLUGINS_DOC), "exec")


# Every fenced block of README.md and docs/*.md runs as printed ------------------------------------
#
# The blocks of one document run in order in one fresh folder, each in a real subprocess, the way a
# reader would type them: ``sh`` blocks with bash (``set -euo pipefail``; the environment they
# export carries over to the document's later blocks), ``python`` blocks with ``python``. Both run
# in a virtual environment of the document's own that sees this environment's packages, so that a
# block installing something (docs/PLUGINS.md installs its example plugin) changes only that one.
# ``toml`` and ``json`` blocks are parsed. An HTML comment on the line before a block says more:
#
# - ``<!-- doc-test: skip: REASON -->``: not run (python still compiles, toml and json still parse);
#   for blocks that install packages or need infrastructure the tests do not have (named in REASON).
# - ``<!-- doc-test: file PATH -->``: written to PATH in the folder, for the blocks after it; a
#   ``nucleus.toml`` is also loaded as a ``nucleus serve`` configuration.
# - ``<!-- doc-test: with nucleus serve --dev -->``: the document's text says the server runs; the
#   test starts ``nucleus serve --dev`` in the folder (port 8080, or another free port written
#   into the blocks when 8080 is taken) and stops it when the document is done.
#
# ``text`` blocks (formats, output samples, pseudo-code) are never run; ``sql`` blocks need a skip
# marker. A block with any other info string, or none, fails the test: a block is run or marked.

RUN_DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "token_parsers/api_key/README.md"]
DOC_PORT = 8080
_MARKER = re.compile(r"<!-- doc-test: (.+?) -->")
_KINDS = {"python", "sh", "toml", "json", "sql", "text"}


@attrs.frozen
class Block:
    doc: Path
    line: int
    kind: str
    code: str
    marker: str | None

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def doc_blocks(doc: Path) -> list[Block]:
    lines = doc.read_text(encoding="utf-8").split("\n")
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        if not lines[i].startswith("```"):
            i += 1
            continue
        start = i
        fence = re.match(r"`{3,}", lines[i])
        assert fence is not None
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith(fence.group(0)))
        before = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        found = _MARKER.fullmatch(before.strip())
        blocks.append(
            Block(
                doc=doc,
                line=start + 1,
                kind=lines[i][len(fence.group(0)) :].strip(),
                code="\n".join(lines[start + 1 : end]) + "\n",
                marker=found.group(1) if found else None,
            )
        )
        i = end + 1
    return blocks


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def doc_venv(where: Path) -> Path:
    """A virtual environment whose ``python`` also sees this one's packages (through a .pth file),
    with a ``nucleus`` command of its own; what is installed into it stays in it. Its bin folder."""
    import site

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=120)
    bindir = where / "bin"
    site_packages = next((where / "lib").glob("python*/site-packages"))
    parents = "; ".join(f"site.addsitedir({p!r})" for p in site.getsitepackages())
    (site_packages / "_doc_test_parent.pth").write_text(f"import site; {parents}\n", encoding="utf-8")
    nucleus = bindir / "nucleus"
    # As pip writes a console script: the guard keeps `nucleus serve --workers`'s spawned worker
    # processes, which import the main script again, from running the command anew.
    nucleus.write_text(
        f"#!{bindir / 'python'}\nfrom nucleus_core.cli import main\n\nif __name__ == '__main__':\n    main()\n",
        encoding="utf-8",
    )
    nucleus.chmod(0o755)
    return bindir


class DocSession:
    """One document's folder, environment and (when asked for) server."""

    def __init__(self, folder: Path, scratch: Path) -> None:
        self.folder = folder
        self.scratch = scratch
        self.bindir = doc_venv(scratch / "venv")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("NUCLEUS_", "VIRTUAL_ENV"))}
        self.env["PATH"] = os.pathsep.join([str(self.bindir), self.env.get("PATH", "")])
        self.server: subprocess.Popen[str] | None = None
        self.port = DOC_PORT
        self.count = 0

    def text(self, code: str) -> str:
        return code if self.port == DOC_PORT else code.replace(f"127.0.0.1:{DOC_PORT}", f"127.0.0.1:{self.port}")

    def start_server(self) -> None:
        if self.server is not None:
            return
        # 8080 as printed when it is free; another free port otherwise, or when 8080 was taken
        # between the check and the server's bind (the server then exits).
        for port in (DOC_PORT if _port_free(DOC_PORT) else _free_port(), _free_port()):
            if self._serve_on(port):
                return
        pytest.fail(f"nucleus serve --dev did not come up: {(self.scratch / 'server.log').read_text()}")

    def _serve_on(self, port: int) -> bool:
        self.port = port
        command = ["nucleus", "serve", "--dev"] + ([] if port == DOC_PORT else ["--port", str(port)])
        log_file = self.scratch / "server.log"
        with log_file.open("w", encoding="utf-8") as log:
            self.server = subprocess.Popen(
                command, cwd=self.folder, env=self.env, stdout=log, stderr=subprocess.STDOUT, text=True
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.server.poll() is None:
            # Ours only once uvicorn says it bound the port (another server may answer there).
            if f"Uvicorn running on http://127.0.0.1:{port}" in log_file.read_text(encoding="utf-8"):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                        if answer.status == 200:
                            return True
                except OSError:
                    pass
            time.sleep(0.2)
        self.stop_server()
        return False

    def stop_server(self) -> None:
        if self.server is None:
            return
        self.server.send_signal(signal.SIGINT)
        try:
            self.server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()
        self.server = None

    def run(self, block: Block) -> None:
        self.count += 1
        code = self.text(block.code)
        if block.kind == "python":
            script = self.scratch / f"block{self.count}.py"
            script.write_text(code, encoding="utf-8")
            command = [str(self.bindir / "python"), str(script)]
        else:
            dump = self.scratch / f"env{self.count}"
            script = self.scratch / f"block{self.count}.sh"
            # The trap keeps the block's own exit status (a failing "a && b" on its last line fails it).
            script.write_text(
                f'set -euo pipefail\ntrap "env -0 > {shlex.quote(str(dump))}" EXIT\n{code}', encoding="utf-8"
            )
            command = ["bash", str(script)]
        out = subprocess.run(command, cwd=self.folder, env=self.env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, (
            f"{block.where} ({block.kind}) failed with exit code {out.returncode}:\n{code}\n"
            f"--- stdout\n{out.stdout}\n--- stderr\n{out.stderr}"
        )
        if block.kind == "sh":
            pairs = (item.split("=", 1) for item in dump.read_text(encoding="utf-8").split("\0") if "=" in item)
            self.env = {k: v for k, v in pairs if k not in ("SHLVL", "_", "PWD", "OLDPWD")}


def check_data(block: Block, folder: Path) -> None:
    if block.kind == "python":
        compile(block.code, block.where, "exec")
    elif block.kind == "toml":
        tomllib.loads(block.code)
    elif block.kind == "json":
        json.loads(block.code)
    if block.marker is not None and block.marker.startswith("file "):
        path = folder / block.marker.removeprefix("file ").strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block.code, encoding="utf-8")
        if path.name == "nucleus.toml":
            from nucleus_server.config import load_config

            load_config(path)


@pytest.mark.parametrize("doc", RUN_DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_block_is_run_or_marked(doc: Path) -> None:
    for block in doc_blocks(doc):
        assert block.kind in _KINDS, (
            f"{block.where}: a ```{block.kind} block is neither run nor marked; use one of {sorted(_KINDS)} "
            "(text for formats, output samples and pseudo-code)"
        )
        marker = block.marker or ""
        assert marker in ("", "with nucleus serve --dev") or re.fullmatch(r"skip: \S.*|file \S+", marker), (
            f"{block.where}: unknown marker {marker!r}"
        )
        if block.kind == "sql":
            assert marker.startswith("skip:"), f"{block.where}: SQL is not run here; mark it skip: with the reason"


@pytest.mark.parametrize("doc", RUN_DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_doc_snippets_run_as_printed(doc: Path, tmp_path: Path) -> None:
    folder, scratch = tmp_path / "work", tmp_path / "scratch"
    folder.mkdir()
    scratch.mkdir()
    session = DocSession(folder, scratch)
    try:
        for block in doc_blocks(doc):
            if block.kind == "text":
                continue
            check_data(block, folder)
            marker = block.marker or ""
            if marker.startswith(("skip:", "file ")) or block.kind not in ("python", "sh"):
                continue
            if marker == "with nucleus serve --dev":
                session.start_server()
            session.run(block)
    finally:
        session.stop_server()
