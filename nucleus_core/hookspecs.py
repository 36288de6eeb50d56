"""Every hook a Nucleus plugin can implement. All are prefixed ``nucleus_``.

Plugins implement them with :data:`nucleus_core.hookimpl`. Registration hooks return lists of
typed spec records (:mod:`nucleus_core.specs`); the ledger, not the plugin, builds one instance
per ledger from each spec's factory. Hooks are called on the plugin manager of one ledger only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

from .specs import AclProviderSpec, ModuleSpec, StorageBackendSpec, TokenParserSpec

if TYPE_CHECKING:
    import click

PROJECT_NAME = "nucleus"

_hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@_hookspec
def nucleus_register_storage_backends() -> list[StorageBackendSpec]:  # type: ignore[empty-body]
    """Storage backends this plugin provides.

    :returns: a list of :class:`~nucleus_core.specs.StorageBackendSpec`; the ledger picks the one
        whose ``schemes`` contain its storage URL's scheme.

    .. versionadded:: 0.1
    """


@_hookspec
def nucleus_register_modules() -> list[ModuleSpec]:  # type: ignore[empty-body]
    """Domain modules this plugin provides (module lifecycle: init, start, stop).

    :returns: a list of :class:`~nucleus_core.specs.ModuleSpec`; the ledger's module registry builds,
        initializes and starts one instance per ledger, in dependency order, and stops them on close.

    .. versionadded:: 0.1
    """


@_hookspec
def nucleus_register_token_parsers() -> list[TokenParserSpec]:  # type: ignore[empty-body]
    """Token parsers (authentication) this plugin provides.

    :returns: a list of :class:`~nucleus_core.specs.TokenParserSpec`; each becomes one parser in the
        ledger's token registry.

    .. versionadded:: 0.1
    """


@_hookspec
def nucleus_register_acl_providers() -> list[AclProviderSpec]:  # type: ignore[empty-body]
    """Access-control providers this plugin provides.

    :returns: a list of :class:`~nucleus_core.specs.AclProviderSpec`. At most one provider may be
        enabled on a ledger; with none, every authenticated requester may read and write.

    .. versionadded:: 0.1
    """


@_hookspec
def nucleus_register_commands(cli: click.Group) -> None:
    """Add commands to the ``nucleus`` command line.

    :param cli: the root click group; call ``cli.add_command(...)``.

    Implemented by command plugins: entry points of the group ``nucleus.cli``, each named after
    the command it adds. The ``nucleus`` program imports only the entry point named by the command
    asked for (never for built-in commands or ``--help``) and takes from the hook the command of
    that name; built-in commands are never replaced, and a plugin that fails is reported by name.

    .. versionadded:: 0.1
    """


@_hookspec
def nucleus_ledger_opened(ledger: Any) -> None:
    """Called once after a ledger opened (verified, modules started), with the ledger.

    .. versionadded:: 0.1
    """


@_hookspec
def nucleus_ledger_closing(ledger: Any) -> None:
    """Called once when a ledger starts closing, before modules stop and storage closes.
    Exceptions are logged, never raised out of ``close()``.

    .. versionadded:: 0.1
    """
