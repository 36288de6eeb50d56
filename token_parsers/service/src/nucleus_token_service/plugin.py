"""Entry point ``auth.service`` (group ``nucleus``)."""

from __future__ import annotations

from nucleus_core import TokenParserSpec, hookimpl

from .parser import NAME, ServiceParser


@hookimpl
def nucleus_register_token_parsers() -> list[TokenParserSpec]:
    """Register the service-to-service JWT parser."""
    return [TokenParserSpec(name=NAME, factory=ServiceParser, description="service JWTs signed with pinned keys")]
