"""Entry point ``token`` (group ``nucleus``): registers the token module."""

from __future__ import annotations

from nucleus_core import ModuleSpec, PluginContext, hookimpl

from .module import TokenModule


def _build(_ctx: PluginContext) -> TokenModule:
    return TokenModule()


@hookimpl
def nucleus_register_modules() -> list[ModuleSpec]:
    """The token module."""
    return [ModuleSpec(id=TokenModule.id, factory=_build, description="fungible tokens: create, mint, transfer, burn")]
