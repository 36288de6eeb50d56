"""Building a ledger's own plugin manager from its allow-list, and listing installed plugins.

Entry points in the ``nucleus`` group name plugin modules (objects holding ``@hookimpl``
functions). Only entry points whose names a ledger's configuration lists are imported; an
installed but unlisted plugin is never touched. Loading is our own loop, so a listed plugin that
is missing or fails to import stops the ledger from opening with an error that names the plugin
and its distribution.
"""

from __future__ import annotations

import importlib.metadata as md
import inspect
import logging
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import attrs
import pluggy

from . import hookspecs
from .errors import PluginError

log = logging.getLogger(__name__)

_S = TypeVar("_S")

ENTRY_POINT_GROUP = "nucleus"
"""Entry-point group for ledger plugins (storage, modules, token parsers, ACL providers)."""

CLI_ENTRY_POINT_GROUP = "nucleus.cli"
"""Entry-point group for plugins that only add CLI commands (loaded by the ``nucleus`` command)."""


def _entry_points(group: str) -> dict[str, list[md.EntryPoint]]:
    found: dict[str, list[md.EntryPoint]] = {}
    for ep in md.entry_points(group=group):
        found.setdefault(ep.name, []).append(ep)
    return found


def _dist_name(ep: md.EntryPoint) -> str | None:
    dist = getattr(ep, "dist", None)
    return dist.metadata["Name"] if dist is not None else None


HOOK_PREFIX = "nucleus_"
"""Every Nucleus hook name starts with this prefix."""


class NucleusPluginManager(pluggy.PluginManager):
    """A pluggy manager with the Nucleus hookspecs that also remembers, for error messages, which
    distribution each plugin was loaded from. One per ledger (and one per CLI invocation)."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self.distributions: dict[str, str | None] = {}

    def distribution_of(self, name: str) -> str | None:
        """The distribution the plugin registered as ``name`` came from (None when not from an entry point)."""
        return self.distributions.get(name)


def new_plugin_manager() -> NucleusPluginManager:
    """A fresh manager with the Nucleus hookspecs and nothing registered."""
    return NucleusPluginManager()


def load_entry_point_plugin(
    pm: pluggy.PluginManager,
    name: str,
    *,
    group: str = ENTRY_POINT_GROUP,
    available: dict[str, list[md.EntryPoint]] | None = None,
) -> Any:
    """Import the entry point ``name`` of ``group`` and register it on ``pm`` under that name.

    Raises :class:`PluginError` naming the plugin (and its distribution when known) when the entry
    point is not installed, is provided by several distributions, fails to import, or does not
    validate against the hookspecs.
    """
    if pm.get_plugin(name) is not None:
        return pm.get_plugin(name)
    eps = (available if available is not None else _entry_points(group)).get(name)
    if not eps:
        known = sorted(available if available is not None else _entry_points(group))
        hint = f"installed: {', '.join(known)}" if known else "no Nucleus plugins are installed"
        raise PluginError(f"is not installed ({hint})", plugin_name=name)
    if len(eps) > 1:
        dists = sorted(filter(None, (_dist_name(e) for e in eps)))
        raise PluginError(f"is provided by several distributions: {', '.join(dists)}", plugin_name=name)
    ep = eps[0]
    dist = _dist_name(ep)
    try:
        plugin = ep.load()
    except Exception as err:
        raise PluginError(
            f"failed to import {ep.value}: {type(err).__name__}: {err}", plugin_name=name, distribution=dist
        ) from err
    register_plugin(pm, plugin, name=name, distribution=dist)
    return plugin


def _undecorated_hooks(pm: pluggy.PluginManager, plugin: Any) -> list[str]:
    """Functions named like hooks (``nucleus_...``) that lack the ``@hookimpl`` marker: pluggy would
    silently ignore them, which hides a forgotten decorator."""
    found = []
    for attr in dir(plugin):
        if not attr.startswith(HOOK_PREFIX):
            continue
        value = getattr(plugin, attr, None)
        if inspect.isroutine(value) and pm.parse_hookimpl_opts(plugin, attr) is None:
            found.append(attr)
    return found


def register_plugin(
    pm: pluggy.PluginManager, plugin: Any, *, name: str | None = None, distribution: str | None = None
) -> None:
    """Register an already-imported plugin object, validating its hooks against the specs.

    Refused with :class:`PluginError`: a ``nucleus_`` function without ``@hookimpl``, a hookimpl
    whose name is not a Nucleus hook, a hookimpl asking for arguments the hook does not have, and
    an object registered twice.
    """
    label = name or getattr(plugin, "__name__", None) or type(plugin).__name__
    undecorated = _undecorated_hooks(pm, plugin)
    if undecorated:
        raise PluginError(
            f"{', '.join(undecorated)} look like hooks but are not decorated with @nucleus_core.hookimpl",
            plugin_name=label,
            distribution=distribution,
        )
    try:
        pm.register(plugin, name=name)
        pm.check_pending()
    except (ValueError, pluggy.PluginValidationError) as err:
        if pm.is_registered(plugin):
            pm.unregister(plugin)
        raise PluginError(
            f"is not a valid Nucleus plugin: {err}", plugin_name=label, distribution=distribution
        ) from err
    registered_as = pm.get_name(plugin)
    if isinstance(pm, NucleusPluginManager) and registered_as is not None:
        pm.distributions[registered_as] = distribution
    log.debug("registered plugin %s (distribution %s)", label, distribution or "none")


def build_plugin_manager(plugins: Iterable[str | Any]) -> NucleusPluginManager:
    """A new manager holding exactly ``plugins``: entry-point names (imported now) or plugin objects.

    Entry points that are not named are never imported."""
    pm = new_plugin_manager()
    available = _entry_points(ENTRY_POINT_GROUP)
    for item in plugins:
        if isinstance(item, str):
            load_entry_point_plugin(pm, item, available=available)
        else:
            register_plugin(pm, item)
    return pm


def _is_wrapper(impl: pluggy.HookImpl) -> bool:
    return bool(impl.wrapper or impl.hookwrapper)


def _code_of(function: Any) -> Any:
    function = inspect.unwrap(getattr(function, "__func__", function))
    return getattr(function, "__code__", None)


def _culprit(impls: Sequence[pluggy.HookImpl], err: BaseException, default: Any) -> Any:
    """The plugin whose hook function (an implementation or a wrapper) raised ``err``: the innermost
    frame of its traceback that runs one of ``impls``; ``default`` when none does."""
    codes = {_code_of(impl.function): impl.plugin for impl in impls}
    found = default
    tb = err.__traceback__
    while tb is not None:
        found = codes.get(tb.tb_frame.f_code, found)
        tb = tb.tb_next
    return found


def _hashable(plugin: Any) -> bool:
    try:
        hash(plugin)
    except TypeError:
        return False
    return True


def _call_one(pm: pluggy.PluginManager, hook_name: str, impl: pluggy.HookImpl, kwargs: dict[str, Any]) -> Any:
    """Call ``impl`` (one plugin's implementation of ``hook_name``) alone, through pluggy: the hook
    wrappers of every plugin run around it, the other plugins' implementations are left out.
    Returns what pluggy returns: the list of results.

    ``pm.subset_hook_caller`` does this, but keeps the plugins in a set: with an unhashable plugin
    object (an attrs class with ``eq`` and an unhashable field) the same plugins are registered, in
    the same order, on a throw-away manager instead."""
    impls = getattr(pm.hook, hook_name).get_hookimpls()
    if all(_hashable(i.plugin) for i in impls):
        others = [i.plugin for i in impls if not _is_wrapper(i) and i.plugin is not impl.plugin]
        return pm.subset_hook_caller(hook_name, remove_plugins=others)(**kwargs)
    keep = {id(i.plugin) for i in impls if _is_wrapper(i)} | {id(impl.plugin)}
    solo = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    solo.add_hookspecs(hookspecs)
    for name, plugin in pm.list_name_plugin():
        if id(plugin) in keep:
            solo.register(plugin, name=name)
    return getattr(solo.hook, hook_name)(**kwargs)


def _error(pm: pluggy.PluginManager, hook_name: str, plugin: Any, message: str) -> PluginError:
    name = pm.get_name(plugin) or repr(plugin)
    dist = pm.distribution_of(name) if isinstance(pm, NucleusPluginManager) else None
    return PluginError(f"{hook_name} {message}", plugin_name=name, distribution=dist)


def call_registration(
    pm: pluggy.PluginManager, hook_name: str, spec_type: type[_S], **kwargs: Any
) -> list[tuple[_S, str, str | None]]:
    """Call a registration hook and return ``(spec, plugin_name, distribution)`` triples, checking types.

    Fail fast: the first implementation that raises, or whose result is not a list of ``spec_type``,
    raises :class:`PluginError` naming its plugin. Each plugin's implementation is called on its
    own, through pluggy, so that every spec is known to come from its plugin: hook wrappers
    (``@hookimpl(wrapper=True)``) run around each implementation and see, as a list of one result,
    what that plugin returns (and may change it). An exception raised by a wrapper names the
    wrapper's plugin."""
    out: list[tuple[_S, str, str | None]] = []
    hook = getattr(pm.hook, hook_name)
    impls = hook.get_hookimpls()
    for impl in impls:
        if _is_wrapper(impl):
            continue
        plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)
        dist = pm.distribution_of(plugin_name) if isinstance(pm, NucleusPluginManager) else None
        try:
            results = _call_one(pm, hook_name, impl, kwargs)
        except Exception as err:
            culprit = _culprit(impls, err, impl.plugin)
            raise _error(pm, hook_name, culprit, f"failed: {type(err).__name__}: {err}") from err
        wanted = spec_type.__name__
        if not isinstance(results, list) or len(results) > 1:
            raise _error(pm, hook_name, impl.plugin, "was turned by a hook wrapper into more than one result")
        result = results[0] if results else None
        if result is None:
            continue
        if not isinstance(result, (list, tuple)):
            raise _error(pm, hook_name, impl.plugin, f"must return a list of {wanted}, got {type(result).__name__}")
        for spec in result:
            if not isinstance(spec, spec_type):
                raise _error(pm, hook_name, impl.plugin, f"returned {type(spec).__name__}, expected {wanted}")
            out.append((spec, plugin_name, dist))
    return out


def call_each(pm: pluggy.PluginManager, hook_name: str, **kwargs: Any) -> list[PluginError]:
    """Call every implementation of a notification hook on its own, most recently registered first.

    Each plugin isolated: a failing implementation does not stop the others: its exception is
    returned as a :class:`PluginError` naming the plugin (the original exception is its
    ``__cause__``). Each call goes through pluggy, so hook wrappers run around each implementation."""
    errors: list[PluginError] = []
    impls = getattr(pm.hook, hook_name).get_hookimpls()
    for impl in reversed(impls):
        if _is_wrapper(impl):
            continue
        try:
            _call_one(pm, hook_name, impl, kwargs)
        except Exception as err:  # noqa: BLE001 - reported to the caller, naming the plugin
            error = _error(pm, hook_name, _culprit(impls, err, impl.plugin), f"failed: {type(err).__name__}: {err}")
            error.__cause__ = err
            errors.append(error)
    return errors


@attrs.frozen(kw_only=True)
class InstalledPlugin:
    """An installed entry point of the ``nucleus`` group, for ``nucleus plugins``."""

    name: str
    distribution: str | None
    version: str | None
    value: str
    hooks: tuple[str, ...] = ()
    error: str | None = None


def installed_plugins(*, inspect_hooks: bool = True, group: str = ENTRY_POINT_GROUP) -> list[InstalledPlugin]:
    """List installed plugins. With ``inspect_hooks`` each is imported (into a throw-away manager)
    to list the hooks it implements; nothing is enabled for any ledger."""
    result: list[InstalledPlugin] = []
    for name, eps in sorted(_entry_points(group).items()):
        for ep in eps:
            dist = getattr(ep, "dist", None)
            hooks: tuple[str, ...] = ()
            error = None
            if inspect_hooks:
                pm = new_plugin_manager()
                try:
                    load_entry_point_plugin(pm, name, group=group, available={name: [ep]})
                    plugin = pm.get_plugin(name)
                    hooks = tuple(sorted(h.name for h in pm.get_hookcallers(plugin) or ()))
                except PluginError as err:
                    error = str(err)
            result.append(
                InstalledPlugin(
                    name=name,
                    distribution=dist.metadata["Name"] if dist else None,
                    version=dist.version if dist else None,
                    value=ep.value,
                    hooks=hooks,
                    error=error,
                )
            )
    return result


def cli_command_entry_points() -> dict[str, list[md.EntryPoint]]:
    """Installed command plugins (entry-point group ``nucleus.cli``) by entry-point name, which is
    the name of the command the plugin adds. Nothing is imported."""
    return _entry_points(CLI_ENTRY_POINT_GROUP)


def load_cli_command(name: str, available: dict[str, list[md.EntryPoint]] | None = None) -> NucleusPluginManager:
    """Import only the command plugin whose entry point is called ``name`` into a fresh manager.

    Raises :class:`PluginError` (naming the plugin and its distribution) when it is missing, provided
    twice, fails to import or is not a valid plugin.
    """
    pm = new_plugin_manager()
    load_entry_point_plugin(pm, name, group=CLI_ENTRY_POINT_GROUP, available=available)
    return pm


