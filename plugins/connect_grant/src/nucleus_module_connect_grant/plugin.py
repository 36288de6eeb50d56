"""Entry point ``connect_grant`` (group ``nucleus``): registers the connect-grant module."""

from __future__ import annotations

from nucleus_core import ModuleSpec, PluginContext, hookimpl

from .module import ConnectGrantModule


def _build(_ctx: PluginContext) -> ConnectGrantModule:
    return ConnectGrantModule()


@hookimpl
def nucleus_register_modules() -> list[ModuleSpec]:
    """The connect-grant module."""
    return [ModuleSpec(id=ConnectGrantModule.id, factory=_build, description="consent given by a subject to an app")]
