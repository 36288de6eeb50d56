"""The auth.service distribution: entry point, spec and version lockstep with the core."""

from __future__ import annotations

from importlib.metadata import entry_points, version

import nucleus_core
from nucleus_core import TokenParserSpec

DIST = "nucleus-token-service"


def test_entry_point_registers_one_parser_spec() -> None:
    (ep,) = [e for e in entry_points(group="nucleus") if e.name == "auth.service"]
    assert ep.dist is not None and ep.dist.metadata["Name"] == DIST
    specs = ep.load().nucleus_register_token_parsers()
    assert [type(s) for s in specs] == [TokenParserSpec] and specs[0].name == "auth.service"


def test_version_is_in_lockstep_with_the_core() -> None:
    assert version(DIST) == nucleus_core.__version__
