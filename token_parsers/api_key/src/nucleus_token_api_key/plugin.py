"""Entry point ``auth.api_key`` (groups ``nucleus`` and ``nucleus.cli``)."""

from __future__ import annotations

import click

from nucleus_core import TokenParserSpec, hookimpl

from .cli import keys
from .parser import NAME, ApiKeyParser


@hookimpl
def nucleus_register_token_parsers() -> list[TokenParserSpec]:
    """Register the API key parser."""
    return [TokenParserSpec(name=NAME, factory=ApiKeyParser, description="nuk_ API keys stored as keyed hashes")]


@hookimpl
def nucleus_register_commands(cli: click.Group) -> None:
    """Add ``nucleus keys create|list|revoke``."""
    cli.add_command(keys)
