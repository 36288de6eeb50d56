"""Plugins a ledger cannot open without: those whose state lives in its chain.

Access control (an ACL provider), token parsers that keep state in system streams (the API key
parser's ``_api_keys``) and domain modules keep state in the ledger's own chain. Opened without
them, the ledger would serve that state as plain data and accept writes nobody checks (every
entry, ``_acl`` and ``_api_keys`` included, readable and writable by anyone). So the ledger
records them in its chain, in the system stream ``_ledger`` (a record
``{"type": "plugins", "plugins": [...]}``, hash-chained like every entry), and refuses to open
when one of them is not enabled.

A new persistent ledger with such plugins gets the record when it is created; after that, only
writes add to it (merged, inside their transaction, with the newest record), never a
read, and a plugin leaves it only by an operator's explicit release
(:func:`~nucleus_core.ledger.release_plugin`, ``nucleus release-plugin``), recorded in the chain.

A ledger written before this record existed is protected by what its chain holds: entries in the
streams of the known first-party plugins (:data:`KNOWN_STATE_STREAMS`) require those plugins; that
is why a record in a known module's stream is refused while the module is not enabled.
"""

from __future__ import annotations

import importlib.metadata as md
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from .errors import ConfigurationError, PluginError
from .records import Record
from .storage import MAX_QUERY_LIMIT, StorageBackend, StorageQuery

PLUGINS_STREAM = "_ledger"
"""The core's system stream: the record of the plugins a ledger requires."""

PLUGINS_RECORD_TYPE = "plugins"

ACCESS_CONTROL = "access_control"
TOKEN_PARSER = "token_parser"  # noqa: S105 - a kind of plugin, not a secret
MODULE = "module"
KINDS = {ACCESS_CONTROL: "access control", TOKEN_PARSER: "token parser", MODULE: "module"}


@attrs.frozen(kw_only=True)
class RequiredPlugin:
    """A plugin whose state lives in a ledger's chain: its ``kind``, the ``name`` of its spec (the
    ACL provider's or token parser's name, the module id), the entry point that enables it
    (``plugin``, None for a plugin object) and its distribution."""

    kind: str
    name: str
    plugin: str | None = None
    distribution: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.name)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "plugin": self.plugin, "distribution": self.distribution}

    @classmethod
    def from_dict(cls, data: object) -> RequiredPlugin:
        if not isinstance(data, Mapping) or not isinstance(data.get("kind"), str) or data["kind"] not in KINDS:
            raise ConfigurationError(f"the {PLUGINS_STREAM} record lists a plugin it cannot read: {data!r}")
        name, plugin, dist = data.get("name"), data.get("plugin"), data.get("distribution")
        if not isinstance(name, str) or not all(v is None or isinstance(v, str) for v in (plugin, dist)):
            raise ConfigurationError(f"the {PLUGINS_STREAM} record lists a plugin it cannot read: {data!r}")
        return cls(kind=data["kind"], name=name, plugin=plugin, distribution=dist)


KNOWN_STATE_STREAMS: Mapping[str, RequiredPlugin] = {
    "_acl": RequiredPlugin(kind=ACCESS_CONTROL, name="ual", plugin="ual", distribution="nucleus-ual"),
    "_api_keys": RequiredPlugin(
        kind=TOKEN_PARSER, name="auth.api_key", plugin="auth.api_key", distribution="nucleus-token-api-key"
    ),
    "asset": RequiredPlugin(kind=MODULE, name="asset", plugin="asset", distribution="nucleus-module-asset"),
    "token": RequiredPlugin(kind=MODULE, name="token", plugin="token", distribution="nucleus-module-token"),
    "proof": RequiredPlugin(kind=MODULE, name="proof", plugin="proof", distribution="nucleus-module-proof"),
    "connect_grant": RequiredPlugin(
        kind=MODULE, name="connect_grant", plugin="connect_grant", distribution="nucleus-module-connect-grant"
    ),
}
"""For ledgers without a ``_ledger`` record (written before it existed): a stream holding entries
means its plugin is required."""


def recorded_plugins(storage: StorageBackend) -> tuple[tuple[RequiredPlugin, ...], bool]:
    """The plugins ``storage``'s ledger requires, and whether a ``_ledger`` record says so (False:
    inferred from the streams present). The latest record wins; each lists the whole set."""
    latest: Record | None = None
    after = 0
    while True:
        rows = storage.query(StorageQuery(streams=(PLUGINS_STREAM,), after_seq=after, limit=MAX_QUERY_LIMIT))
        for row in rows:
            record = Record.from_canonical(row.canonical, seq=row.seq)
            if isinstance(record.payload, Mapping) and record.payload.get("type") == PLUGINS_RECORD_TYPE:
                latest = record
        if len(rows) < MAX_QUERY_LIMIT:
            break
        after = rows[-1].seq
    if latest is not None:
        assert isinstance(latest.payload, Mapping)
        listed = latest.payload.get("plugins")
        if not isinstance(listed, list):
            raise ConfigurationError(f"the {PLUGINS_STREAM} record {latest.id!r} has no list of plugins")
        return tuple(RequiredPlugin.from_dict(item) for item in listed), True
    inferred = [
        plugin
        for stream, plugin in KNOWN_STATE_STREAMS.items()
        if storage.query(StorageQuery(streams=(stream,), limit=1))
    ]
    return tuple(inferred), False


def merged(recorded: Iterable[RequiredPlugin], enabled: Iterable[RequiredPlugin]) -> list[RequiredPlugin]:
    """Every plugin of ``recorded`` and ``enabled`` once (enabled wins: its entry point and
    distribution are the current ones), sorted by kind and name."""
    out = {p.key: p for p in recorded}
    out.update({p.key: p for p in enabled})
    return [out[k] for k in sorted(out)]


def match_plugins(plugins: Iterable[RequiredPlugin], name: str | None) -> list[RequiredPlugin]:
    """The plugins of ``plugins`` that ``name`` names: by entry point or by spec name."""
    return [p for p in plugins if name is not None and name in (p.plugin, p.name)]


def plugins_record(
    plugins: Sequence[RequiredPlugin],
    *,
    seq: int,
    timestamp: int,
    released: Sequence[RequiredPlugin] = (),
    by: str | None = None,
) -> Record:
    """The ``_ledger`` record listing ``plugins``, for the entry at ``seq``; a release
    (:func:`~nucleus_core.ledger.release_plugin`) also names the plugins ``released`` and who
    released them (``by``)."""
    payload: dict[str, Any] = {"type": PLUGINS_RECORD_TYPE, "plugins": [p.to_dict() for p in plugins]}
    if released:
        payload["released"] = [p.to_dict() for p in released]
        payload["by"] = by
    return Record(id=f"{PLUGINS_STREAM}:plugins:{seq}", stream=PLUGINS_STREAM, timestamp=timestamp, payload=payload)


def missing_plugins_error(
    ledger_id: str, missing: Sequence[RequiredPlugin], *, recorded: bool, writing: bool = False
) -> PluginError:
    """The error refusing to open ``ledger_id`` without ``missing`` (or, ``writing``, to write to it:
    its chain came to require them after this process opened it): what each is, its distribution,
    and how to install and enable it."""
    installed = {ep.name for ep in md.entry_points(group="nucleus")}
    parts = []
    for p in missing:
        what = f"{KINDS[p.kind]} {p.name!r}"
        dist = p.distribution or "its distribution"
        if p.plugin is None:
            parts.append(f"{what} (a plugin object, from {dist}): pass it in plugins=[...]")
            continue
        install = "" if p.plugin in installed else f"install it (pip install {dist}), then "
        table = f'"{p.plugin}"' if "." in p.plugin else p.plugin
        parts.append(
            f"{what}: {install}enable it with --plugin {p.plugin} (or NUCLEUS_PLUGINS), "
            f'[plugins.{table}] in the configuration file, or plugins=["{p.plugin}"] in Python'
        )
    why = "its chain records them" if recorded else "its chain holds entries of their streams"
    first = missing[0]
    if writing:
        return PluginError(
            f"ledger {ledger_id!r} now requires plugins this process has not enabled (another process "
            f"recorded them in its chain since this one opened it); nothing was written. Missing: {'; '.join(parts)}",
            plugin_name=first.plugin or first.name,
            distribution=first.distribution,
        )
    return PluginError(
        f"ledger {ledger_id!r} does not open without the plugins whose state lives in its chain ({why}); "
        f"nothing was read or written. Missing: {'; '.join(parts)}",
        plugin_name=first.plugin or first.name,
        distribution=first.distribution,
    )
