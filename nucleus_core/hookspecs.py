"""Every hook a Nucleus plugin can implement. All are prefixed ``nucleus_``.

Plugins implement them with :data:`nucleus_core.hookimpl`. Registration hooks return lists of
typed spec records (:mod:`nucleus_core.specs`); the ledger, not the plugin, builds one instance
per ledger from each spec's factory. Hooks are called on the plugin manager of one ledger only,
always through pluggy, so hook wrappers (``@hookimpl(wrapper=True)``) work on every hook.

Each hook states its calling contract:

* **fail fast**: the first plugin that raises (or returns something else than the hook's type)
  stops the call with a :class:`~nucleus_core.errors.PluginError` naming that plugin and its
  distribution; for the registration hooks the ledger then does not open. Registration hooks call
  each plugin's implementation on its own (``pm.subset_hook_caller``), so that every spec is known
  to come from its plugin: a wrapper runs around each implementation and receives, as a list of
  one result, the list that plugin returned.
* **each plugin isolated**: every plugin is called even when an earlier one failed; failures are
  reported (logged) naming the plugin, never raised to the caller.

A ledger is passed as :class:`~nucleus_core.host.PluginLedger`: what plugins may use of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

from .specs import AclProviderSpec, ModuleSpec, StorageBackendSpec, TokenParserSpec

if TYPE_CHECKING:
    import click

    from .host import PluginLedger

PROJECT_NAME = "nucleus"

_hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@_hookspec
def nucleus_register_storage_backends() -> list[StorageBackendSpec]:  # type: ignore[empty-body]
    """Storage backends this plugin provides.

    :returns: a list of :class:`~nucleus_core.specs.StorageBackendSpec`; the ledger picks the one
        whose ``schemes`` contain its storage URL's scheme.

    Calling contract: fail fast (see the module docstring).

    .. versionadded:: 0.1
    """


@_hookspec
def nucleus_register_modules() -> list[ModuleSpec]:  # type: ignore[empty-body]
    """Domain modules this plugin provides (module lifecycle: init, start, stop).

    :returns: a list of :class:`~nucleus_core.specs.ModuleSpec`; the ledger's module registry builds,
        initializes and starts one instance per ledger, in dependency order, and stops them on close.

    Calling contract: fail fast.

    .. versionadded:: 0.1
    """


@_hookspec
def nucleus_register_token_parsers() -> list[TokenParserSpec]:  # type: ignore[empty-body]
    """Token parsers (authentication) this plugin provides.

    :returns: a list of :class:`~nucleus_core.specs.TokenParserSpec`; each becomes one parser in the
        ledger's token registry.

    Calling contract: fail fast.

    .. versionadded:: 0.1
    """


@_hookspec
def nucleus_register_acl_providers() -> list[AclProviderSpec]:  # type: ignore[empty-body]
    """Access-control providers this plugin provides.

    :returns: a list of :class:`~nucleus_core.specs.AclProviderSpec`. At most one provider may be
        enabled on a ledger; with none, every authenticated requester may read and write.

    Calling contract: fail fast.

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

    Calling contract: fail fast (only the one command plugin asked for is loaded).

    .. versionadded:: 0.1
    """


@_hookspec
def nucleus_ledger_opened(ledger: PluginLedger) -> None:
    """Called once after a ledger opened (verified, modules started), with the ledger.

    ``ledger.rebuilding`` is true in the rebuild mode (``rebuild_state``: an import being finished,
    a deliberate rebuild): a plugin keeping state derived from the chain builds it from the chain
    then, instead of refusing a state that does not match it.

    Calling contract: fail fast. The exception of the first plugin that raises reaches the caller
    of ``create_ledger``/``open_ledger`` as it was raised, and the ledger is closed again.

    .. versionadded:: 0.1
    """


@_hookspec
def nucleus_ledger_closing(ledger: PluginLedger) -> None:
    """Called once when a ledger starts closing, before modules stop and storage closes.

    Calling contract: each plugin isolated, most recently registered first. Exceptions are logged
    naming the plugin, never raised out of ``close()``, and the other plugins are still called.

    .. versionadded:: 0.1
    """


@_hookspec
def nucleus_worker_exited(pid: int) -> None:
    """Called in the supervising process of a server running several worker processes (``nucleus
    serve --workers N``) once for each worker that ended: stopped with the server, died and was
    replaced, or retired (uvicorn's SIGHUP, SIGTTOU), with its process id. For what a plugin keeps
    per process outside it (``nucleus-metrics`` removes the dead worker's live gauges in
    multiprocess mode). Called on the plugin manager of the served ledger's configuration, after
    that process closed its own ledger.

    Calling contract: each plugin isolated, failures logged.

    .. versionadded:: 0.1
    """
