"""Building a ledger's own plugin manager from its allow-list, and listing installed plugins.

Entry points in the ``nucleus`` group name plugin modules (objects holding ``@hookimpl``
functions). Only entry points whose names a ledger's configuration lists are imported; an
installed but unlisted plugin is never touched. Loading is our own loop, so a listed plugin that
is missing or fails to import stops the ledger from opening with an error that names the plugin
and its distribution.
"""

from __future__ import annotations

import importlib.metadata as md
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import pluggy

from . import hookspecs
from .errors import PluginError

log = logging.getLogger(__name__)

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


def new_plugin_manager() -> pluggy.PluginManager:
    """A fresh manager with the Nucleus hookspecs and nothing registered."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return pm


def load_entry_point_plugin(
    pm: pluggy.PluginManager, name: str, *, group: str = ENTRY_POINT_GROUP, available: dict[str, list[md.EntryPoint]] | None = None
) -> Any:
    """Import the entry point ``name`` of ``group`` and register it on ``pm`` under that name."""
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
    except Exception as err:  # noqa: BLE001 - any import failure must name the plugin
        raise PluginError(f"failed to import {ep.value}: {type(err).__name__}: {err}", plugin_name=name, distribution=dist) from err
    register_plugin(pm, plugin, name=name, distribution=dist)
    return plugin


def register_plugin(pm: pluggy.PluginManager, plugin: Any, *, name: str | None = None, distribution: str | None = None) -> None:
    """Register an already-imported plugin object, validating its hooks against the specs."""
    label = name or getattr(plugin, "__name__", None) or type(plugin).__name__
    try:
        pm.register(plugin, name=name)
        pm.check_pending()
    except (ValueError, pluggy.PluginValidationError) as err:
        if pm.is_registered(plugin):
            pm.unregister(plugin)
        raise PluginError(f"is not a valid Nucleus plugin: {err}", plugin_name=label, distribution=distribution) from err
    if distribution:
        log.debug("registered plugin %s from %s", label, distribution)


def build_plugin_manager(plugins: Iterable[str | Any]) -> pluggy.PluginManager:
    """A new manager holding exactly ``plugins``: entry-point names (imported now) or plugin objects."""
    pm = new_plugin_manager()
    available = _entry_points(ENTRY_POINT_GROUP)
    for item in plugins:
        if isinstance(item, str):
            load_entry_point_plugin(pm, item, available=available)
        else:
            register_plugin(pm, item)
    return pm


def call_registration(pm: pluggy.PluginManager, hook_name: str, spec_type: type) -> list[tuple[Any, str, Any]]:
    """Call a registration hook and return ``(spec, plugin_name, distribution)`` triples, checking types."""
    out: list[tuple[Any, str, Any]] = []
    hook = getattr(pm.hook, hook_name)
    for impl in hook.get_hookimpls():
        plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)
        try:
            result = impl.function()
        except Exception as err:  # noqa: BLE001 - a failing registration must name its plugin
            raise PluginError(f"{hook_name} failed: {type(err).__name__}: {err}", plugin_name=plugin_name) from err
        if result is None:
            continue
        if not isinstance(result, (list, tuple)):
            raise PluginError(f"{hook_name} must return a list of {spec_type.__name__}", plugin_name=plugin_name)
        for spec in result:
            if not isinstance(spec, spec_type):
                raise PluginError(
                    f"{hook_name} returned {type(spec).__name__}, expected {spec_type.__name__}", plugin_name=plugin_name
                )
            out.append((spec, plugin_name, None))
    return out


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


def plugin_names(pm: pluggy.PluginManager) -> Sequence[str]:
    return [name for name, _ in pm.list_name_plugin()]
