"""Entry point ``asset`` (group ``nucleus``): registers the asset module."""

from __future__ import annotations

from nucleus_core import ModuleSpec, PluginContext, hookimpl

from .module import AssetModule


def _build(_ctx: PluginContext) -> AssetModule:
    return AssetModule()


@hookimpl
def nucleus_register_modules() -> list[ModuleSpec]:
    """The asset module."""
    return [ModuleSpec(id=AssetModule.id, factory=_build, description="assets: issued, transferred, revoked")]
