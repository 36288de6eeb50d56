"""The development token parser."""

from __future__ import annotations

from nucleus_core import PluginContext, RequestContext
from nucleus_core.errors import ConfigurationError, TokenInvalidError
from nucleus_core.oid import is_oid

DEV_PREFIX = "dev:"
"""Every development token starts with this prefix, followed by a principal OID."""

NAME = "auth.dev"


class DevTokenParser:
    """Accepts ``dev:<oid>`` and authenticates ``<oid>`` without any secret.

    Construction refuses any environment other than exactly ``development``, so a production
    ledger configured with this parser fails to open. ``parse`` checks the environment again.
    """

    def __init__(self, context: PluginContext) -> None:
        if context.environment != "development":
            raise ConfigurationError(
                f"{NAME}: development tokens are refused on ledger {context.ledger_id!r} because its environment "
                f"is {context.environment!r}; remove {NAME} from the plugins, or set NUCLEUS_ENV=development "
                "on a development machine"
            )
        if context.settings:
            raise ConfigurationError(f"{NAME}: takes no settings, got {', '.join(sorted(map(repr, context.settings)))}")
        self._environment = context.environment

    def validate_format(self, token: str) -> bool:
        """True for tokens starting with ``dev:``."""
        return token.startswith(DEV_PREFIX)

    def parse(self, token: str) -> RequestContext:
        """The context of the OID after ``dev:``; :class:`TokenInvalidError` when it is not an OID."""
        if self._environment != "development":
            raise TokenInvalidError("development tokens are not accepted in production")
        oid = token[len(DEV_PREFIX) :]
        if not is_oid(oid):
            raise TokenInvalidError("a development token is dev:oid:<namespace>:<type>:<id>")
        return RequestContext(oid=oid, source=NAME, role=None)
