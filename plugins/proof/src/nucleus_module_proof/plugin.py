"""Entry point ``proof`` (group ``nucleus``): registers the proof module."""

from __future__ import annotations

from nucleus_core import ModuleSpec, PluginContext, hookimpl

from .module import ProofModule


def _build(_ctx: PluginContext) -> ProofModule:
    return ProofModule()


@hookimpl
def nucleus_register_modules() -> list[ModuleSpec]:
    """The proof module."""
    return [ModuleSpec(id=ProofModule.id, factory=_build, description="attestations about a subject")]
