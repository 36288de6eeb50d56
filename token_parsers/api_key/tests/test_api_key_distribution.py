"""The auth.api_key distribution: entry point, spec and version lockstep with the core."""

from __future__ import annotations

from importlib.metadata import entry_points, version

import nucleus_core
from nucleus_core import TokenParserSpec

DIST = "nucleus-token-api-key"


def test_entry_point_registers_one_parser_spec() -> None:
    (ep,) = [e for e in entry_points(group="nucleus") if e.name == "auth.api_key"]
    assert ep.dist is not None and ep.dist.metadata["Name"] == DIST
    specs = ep.load().nucleus_register_token_parsers()
    assert [type(s) for s in specs] == [TokenParserSpec] and specs[0].name == "auth.api_key"


def test_version_is_in_lockstep_with_the_core() -> None:
    assert version(DIST) == nucleus_core.__version__


def test_cli_entry_point_adds_the_keys_group() -> None:
    import click

    (ep,) = [e for e in entry_points(group="nucleus.cli") if e.name == "keys"]
    root = click.Group("nucleus")
    ep.load().nucleus_register_commands(root)
    assert sorted(root.commands["keys"].commands) == ["create", "list", "revoke"]  # type: ignore[attr-defined]
