"""Entry point ``auth.dev`` (group ``nucleus``)."""

from __future__ import annotations

from nucleus_core import TokenParserSpec, hookimpl

from .parser import NAME, DevTokenParser


@hookimpl
def nucleus_register_token_parsers() -> list[TokenParserSpec]:
    """Register the development token parser (refuses to be built outside development)."""
    return [TokenParserSpec(name=NAME, factory=DevTokenParser, description="dev:<oid> tokens, development only")]
