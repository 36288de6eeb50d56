"""Entry point ``auth.api_key`` (groups ``nucleus`` and ``nucleus.cli``)."""

from __future__ import annotations

import click

from nucleus_core import TokenParserSpec, hookimpl
from nucleus_core.host import PluginLedger

from .cli import keys
from .parser import NAME, STREAM, ApiKeyParser


@hookimpl
def nucleus_register_token_parsers() -> list[TokenParserSpec]:
    """Register the API key parser."""
    return [
        TokenParserSpec(
            name=NAME, factory=ApiKeyParser, description="nuk_ API keys stored as keyed hashes", streams=(STREAM,)
        )
    ]


@hookimpl
def nucleus_register_commands(cli: click.Group) -> None:
    """Add ``nucleus keys create|list|revoke``."""
    cli.add_command(keys)


@hookimpl
def nucleus_ledger_opened(ledger: PluginLedger) -> None:
    """Bind the ledger's API key parser to it: creations and revocations go to its ``_api_keys``
    stream, and the key table is compared with that stream (differences are logged and the keys
    concerned refused). The parser is the ledger's own (``ledger.auth``), so nothing is kept here."""
    if NAME in ledger.auth.names:
        parser: ApiKeyParser = ledger.auth.parser(NAME)
        parser.bind(ledger)
