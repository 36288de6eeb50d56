"""Entry point ``auth.connect`` (group ``nucleus``)."""

from __future__ import annotations

from nucleus_core import TokenParserSpec, hookimpl

from .parser import NAME, ConnectParser


@hookimpl
def nucleus_register_token_parsers() -> list[TokenParserSpec]:
    """Register the identity-provider JWT parser."""
    return [TokenParserSpec(name=NAME, factory=ConnectParser, description="identity-provider JWTs (JWKS or keys)")]
