"""Meta-tests over the repository's distributions: lockstep versions, unique import packages,
declared entry points, typed packages, and the dev requirements listing every one of them."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

import nucleus_core
from nucleus_core import AclProviderSpec, ModuleSpec, StorageBackendSpec, TokenParserSpec
from nucleus_core.plugins import build_plugin_manager, call_registration

ROOT = Path(__file__).resolve().parents[1]
DIST_DIRS = sorted(
    p.parent
    for folder in ("storage_backends", "plugins", "token_parsers")
    for p in (ROOT / folder).glob("*/pyproject.toml")
)


def _project(path: Path) -> dict:
    return tomllib.loads((path / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_there_are_plugin_distributions() -> None:
    assert len(DIST_DIRS) >= 10


def test_plugin_folders_are_not_python_packages() -> None:
    for folder in ("storage_backends", "plugins", "token_parsers"):
        assert not (ROOT / folder / "__init__.py").exists()


@pytest.mark.parametrize("dist", DIST_DIRS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_distribution_layout(dist: Path) -> None:
    project = _project(dist)
    assert project["version"] == nucleus_core.__version__, "versions move in lockstep while 0.x"
    assert re.fullmatch(r"nucleus-[a-z0-9-]+", project["name"])
    assert any(d.startswith("nucleus-core") for d in project["dependencies"]), "must depend on nucleus-core"
    assert (dist / "README.md").is_file()
    packages = [p for p in (dist / "src").iterdir() if p.is_dir() and (p / "__init__.py").exists()]
    assert len(packages) == 1, "one import package per distribution"
    package = packages[0]
    assert package.name.startswith("nucleus_") and package.name != "nucleus_core"
    assert (package / "py.typed").is_file()
    assert any((dist / "tests").glob("test_*.py")), "every distribution has its own tests"
    for target in project.get("entry-points", {}).get("nucleus", {}).values():
        assert target.split(":")[0].split(".")[0] == package.name, "entry points point into the own package"


NUCLEUS_ENTRY_POINTS = [
    (dist, name)
    for dist in DIST_DIRS
    for name in _project(dist).get("entry-points", {}).get("nucleus", {})
]


@pytest.mark.parametrize(
    ("dist", "ep_name"), NUCLEUS_ENTRY_POINTS, ids=lambda v: v if isinstance(v, str) else v.relative_to(ROOT).as_posix()
)
def test_entry_points_are_named_after_what_they_register(dist: Path, ep_name: str) -> None:
    # The pattern docs/PLUGINS.md ("Entry points") documents: a `nucleus` entry point is named
    # after the spec its plugin registers (the token parser's or ACL provider's spec name, the
    # module's id), a storage plugin's after a URL scheme its backend serves, one entry point per
    # scheme, so that a storage URL finds its backend with no table in the core.
    pm = build_plugin_manager([ep_name])
    found = {
        hook: [spec for spec, _, _ in call_registration(pm, hook, kind)]
        for hook, kind in (
            ("nucleus_register_storage_backends", StorageBackendSpec),
            ("nucleus_register_token_parsers", TokenParserSpec),
            ("nucleus_register_acl_providers", AclProviderSpec),
            ("nucleus_register_modules", ModuleSpec),
        )
    }
    storage = found.pop("nucleus_register_storage_backends")
    if storage:
        schemes = {scheme for spec in storage for scheme in spec.schemes}
        declared = {name for d, name in NUCLEUS_ENTRY_POINTS if d == dist}
        assert declared == schemes, "a storage distribution declares one entry point per scheme it serves"
        return
    names = [getattr(spec, "name", None) or spec.id for specs in found.values() for spec in specs]
    if not names:
        # A plugin that registers nothing only takes part in the ledger's lifecycle (nucleus-metrics
        # observes every ledger that enables it): it must implement a lifecycle hook.
        lifecycle = (pm.hook.nucleus_ledger_opened, pm.hook.nucleus_ledger_closing)
        assert any(hook.get_hookimpls() for hook in lifecycle), f"{ep_name} registers nothing and implements no hook"
        return
    assert names == [ep_name], f"{ep_name} registers {names}"


def test_import_packages_are_unique() -> None:
    names = [p.name for d in DIST_DIRS for p in (d / "src").iterdir() if (p / "__init__.py").exists()]
    assert len(names) == len(set(names))


def test_core_version_matches_pyproject() -> None:
    core = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert core["version"] == nucleus_core.__version__


def test_dev_requirements_list_every_distribution() -> None:
    lines = (ROOT / "requirements-dev.txt").read_text(encoding="utf-8").splitlines()
    listed = {
        line.split()[1].split("[")[0].rstrip("/")
        for line in lines
        if line.startswith("-e ") and not line.startswith("-e .")
    }
    expected = {d.relative_to(ROOT).as_posix() for d in DIST_DIRS}
    assert expected <= listed, f"missing from requirements-dev.txt: {sorted(expected - listed)}"


def test_mypy_checks_every_distribution() -> None:
    """``python -m mypy`` (run by CI) checks the core and every distribution's import package, found
    through its ``src`` folder on mypy's path (not through how it happens to be installed)."""
    mypy = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    assert mypy["strict"] is True
    packages = {p.name for d in DIST_DIRS for p in (d / "src").iterdir() if (p / "__init__.py").exists()}
    assert set(mypy["packages"]) == packages | {"nucleus_core"}
    paths = {p.replace("$MYPY_CONFIG_FILE_DIR/", "", 1) for p in mypy["mypy_path"]}
    assert paths == {(d / "src").relative_to(ROOT).as_posix() for d in DIST_DIRS}


def test_uv_workspace_knows_every_distribution() -> None:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    sources = root["tool"]["uv"]["sources"]
    names = {_project(d)["name"] for d in DIST_DIRS} | {"nucleus-core"}
    assert names == {name for name, src in sources.items() if src == {"workspace": True}}
    dev = {req.split("[")[0].split(">")[0] for req in root["dependency-groups"]["dev"]}
    assert names - {"nucleus-core"} <= dev


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_modules(package_dir: Path) -> set[str]:
    import ast

    found: set[str] = set()
    for path in package_dir.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("dist", [Path(ROOT), *DIST_DIRS], ids=lambda p: p.relative_to(ROOT).as_posix() or "core")
def test_every_imported_distribution_is_declared(dist: Path) -> None:
    """A distribution's own code imports only the standard library, itself and what it declares
    (as a dependency or an extra): an undeclared dependency cannot hide behind the shared dev install."""
    import importlib.metadata as md
    import sys

    project = _project(dist)
    declared = {_normalize(re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0]) for req in project["dependencies"]}
    for extra in project.get("optional-dependencies", {}).values():
        declared |= {_normalize(re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0]) for req in extra}
    declared.add(_normalize(project["name"]))
    owners = md.packages_distributions()
    source = dist / "nucleus_core" if dist == ROOT else next(p for p in (dist / "src").iterdir() if p.is_dir())
    undeclared = {}
    for module in _imported_modules(source) - set(sys.stdlib_module_names) - {"__future__"}:
        dists = {_normalize(d) for d in owners.get(module, [])}
        if not dists:
            if (ROOT / module).is_dir() or any((d / "src" / module).is_dir() for d in DIST_DIRS):
                dists = {_normalize(module.replace("_", "-"))}
            else:
                continue  # not installed here: an optional import guarded at run time
        if not dists & declared:
            undeclared[module] = sorted(dists)
    # The core imports these lazily, only when a SQL storage plugin (which declares peewee) or a JWT
    # parser (which declares pyjwt[crypto]) is in use, or for its test helpers (pytest, psycopg).
    if dist == ROOT:
        for optional in ("peewee", "playhouse", "jwt", "pytest", "psycopg"):
            undeclared.pop(optional, None)
    assert not undeclared, f"{project['name']} imports undeclared distributions: {undeclared}"


ARCHITECTURE_DOC = ROOT / "docs" / "ARCHITECTURE.md"


def _architecture_table() -> dict[str, tuple[str, str, set[str]]]:
    """The rows of the table under docs/ARCHITECTURE.md's "What each may import": distribution ->
    (folder, import package, the Nucleus distributions it may import)."""
    text = ARCHITECTURE_DOC.read_text(encoding="utf-8")
    section = text.split("\n## What each may import\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[str, str, set[str]]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[0].startswith("nucleus-"):
            continue
        name, folder, package, allowed = cells
        rows[name] = (folder.strip("`"), package.strip("`"), set(re.findall(r"nucleus-[a-z0-9-]+", allowed)))
    return rows


def _declared_nucleus(project: dict) -> set[str]:
    """The Nucleus distributions a distribution's code may import: its dependencies and extras, less
    its ``test`` extra (what only its tests need, see .ci/dist-tests)."""
    reqs = list(project["dependencies"])
    for name, extra in project.get("optional-dependencies", {}).items():
        if name != "test":
            reqs.extend(extra)
    names = {_normalize(re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0]) for req in reqs}
    return {n for n in names if n.startswith("nucleus-")}


def test_architecture_import_rules() -> None:
    """docs/ARCHITECTURE.md states what each distribution may import of Nucleus. Its table names
    every distribution with its folder and import package; each row's list is exactly the Nucleus
    distributions that distribution declares (dependencies and extras), and its code imports no
    other Nucleus package (the core none at all)."""
    table = _architecture_table()
    dists = {_project(d)["name"]: d for d in [ROOT, *DIST_DIRS]}
    assert set(table) == set(dists), "the table lists every distribution, and only those"
    packages = {"nucleus-core": "nucleus_core"} | {
        _project(d)["name"]: next(p.name for p in (d / "src").iterdir() if (p / "__init__.py").exists())
        for d in DIST_DIRS
    }
    wrong = {}
    for name, dist in dists.items():
        folder, package, allowed = table[name]
        assert folder == (dist.relative_to(ROOT).as_posix() or "."), f"{name}: folder"
        assert package == packages[name], f"{name}: import package"
        assert allowed == _declared_nucleus(_project(dist)) - {name}, f"{name}: the page and pyproject.toml disagree"
        source = ROOT / "nucleus_core" if dist == ROOT else dist / "src" / package
        imported = {m for m in _imported_modules(source) if m.startswith("nucleus_")} - {package}
        permitted = {packages[a] for a in allowed}
        if imported - permitted:
            wrong[name] = sorted(imported - permitted)
    assert not wrong, f"imports the architecture page does not allow: {wrong}"
