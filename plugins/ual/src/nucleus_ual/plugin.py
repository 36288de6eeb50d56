"""Entry point ``ual``: registers the Unified Access Layer as the ledger's ACL provider.

``plugins=["ual"]`` enables it with the system clock. :class:`UalPlugin` is the same plugin as an
object, for a deployment (or a test) that needs another clock: ``plugins=[UalPlugin(clock=...)]``.
"""

from __future__ import annotations

import attrs

from nucleus_core import AclProviderSpec, PluginContext, hookimpl

from .ual import ACL_STREAM, Clock, UnifiedAccessLayer, build_ual, system_clock

DESCRIPTION = "grant-based access control (UAL)"


def _factory(context: PluginContext) -> UnifiedAccessLayer:
    return build_ual(context.ledger_id, context.settings, context.storage)


@hookimpl
def nucleus_register_acl_providers() -> list[AclProviderSpec]:
    return [AclProviderSpec(name="ual", factory=_factory, description=DESCRIPTION, streams=(ACL_STREAM,))]


@attrs.frozen
class UalPlugin:
    """The ``ual`` plugin as an object, with the clock (Unix milliseconds) that decides expiry."""

    clock: Clock = system_clock

    def _factory(self, context: PluginContext) -> UnifiedAccessLayer:
        return build_ual(context.ledger_id, context.settings, context.storage, clock=self.clock)

    @hookimpl
    def nucleus_register_acl_providers(self) -> list[AclProviderSpec]:
        """The UAL, built per ledger with this object's clock."""
        return [AclProviderSpec(name="ual", factory=self._factory, description=DESCRIPTION, streams=(ACL_STREAM,))]
