"""Meta-tests that keep docs/PLUGINS.md and the plugin tests honest about the hookspecs."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from nucleus_core import hookspecs
from nucleus_core.plugins import HOOK_PREFIX, new_plugin_manager

ROOT = Path(__file__).resolve().parent.parent
PLUGINS_DOC = ROOT / "docs" / "PLUGINS.md"
PLUGIN_TESTS = Path(__file__).resolve().parent / "test_plugins.py"


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
    assert f"test_hook_{hook}" in tests, f"tests/test_plugins.py has no test_hook_{hook}"


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
