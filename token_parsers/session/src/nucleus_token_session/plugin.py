"""Entry point ``auth.session`` (group ``nucleus``)."""

from __future__ import annotations

from nucleus_core import TokenParserSpec, hookimpl

from .parser import NAME, SessionParser


@hookimpl
def nucleus_register_token_parsers() -> list[TokenParserSpec]:
    """Register the session parser."""
    return [TokenParserSpec(name=NAME, factory=SessionParser, description="opaque nss_ session tokens, stored hashed")]
