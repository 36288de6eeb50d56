"""Entry point ``ual``: registers the Unified Access Layer as the ledger's ACL provider."""

from __future__ import annotations

from nucleus_core import AclProviderSpec, PluginContext, hookimpl

from .ual import UnifiedAccessLayer, build_ual


def _factory(context: PluginContext) -> UnifiedAccessLayer:
    return build_ual(context.ledger_id, context.settings, context.storage)


@hookimpl
def nucleus_register_acl_providers() -> list[AclProviderSpec]:
    return [AclProviderSpec(name="ual", factory=_factory, description="grant-based access control (UAL)")]
