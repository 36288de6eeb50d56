"""The configuration file of a ledger: TOML, structured strictly (unknown keys refused).

Every ``nucleus`` command reads it with ``--config FILE`` (or ``NUCLEUS_CONFIG``), and ``nucleus
serve`` reads the same file: this module owns the ledger's part (``[ledger]`` and ``[plugins.*]``),
the server owns ``[server]``. Command-line flags override the file. Example (every key optional)::

    [ledger]
    id = "main"
    storage = "sqlite:////var/lib/nucleus/main.db"
    admins = ["oid:acme:user:root"]
    # max_record_bytes = 1048576
    # verify_on_open = true
    # storage_options = {}
    # A signed checkpoint kept outside the database (docs/TRANSPARENCY.md, "Keeping a checkpoint"):
    # trusted_checkpoint = "/etc/nucleus/kept/checkpoint.txt"
    # trusted_checkpoint_vkey_file = "/etc/nucleus/kept/vkeys.txt"   # or trusted_checkpoint_vkeys = [...]
    # trusted_checkpoint_origin = "ledger.example.com/main"         # default: [ledger.checkpoint] origin
    # verify_from_trusted_checkpoint = false   # open verifying only what the checkpoint does not cover
    # group_commit_max_calls = 64                  # concurrent appends per shared commit; 1: off
    # group_commit_max_entries = 10000             # records per shared commit
    # group_commit_window = 0.001                  # seconds the next commit may wait for more calls

    # Signed checkpoints (docs/TRANSPARENCY.md); every key optional.
    [ledger.checkpoint]
    origin = "ledger.example.com/main"            # default: nucleus.invalid/<ledger id>
    key_files = ["/etc/nucleus/checkpoint.key"]   # one signer key per file, mode 0600
    # key_env = "NUCLEUS_CHECKPOINT_KEY"          # keys, one per line; "" reads no variable
    # insecure_key_permissions = false            # accept key files others may read
    # interval = 1.0                              # least seconds between checkpoints after commits
    # witness_quorum = 2                          # with witnesses: how many must cosign (k of n)
    # witness_timeout = 10.0                      # seconds per network operation of a witness

    # Witnesses each checkpoint is submitted to (c2sp.org/tlog-witness), one table each.
    # [[ledger.checkpoint.witnesses]]
    # url = "https://witness.example.com/"        # its submission prefix (POST <url>/add-checkpoint)
    # vkey = "witness.example.com+1234abcd+B..."  # its cosignature verifier key
    # name = "example"                            # optional: how log lines name it
    # timeout = 5.0                               # optional: instead of witness_timeout

    # Enabled plugins, in this order (token parsers are tried in it), each with its settings.
    [plugins."auth.api_key"]
    pepper_env = "NUCLEUS_API_KEY_PEPPER"
    [plugins.ual]
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import attrs
import cattrs

from .checkpoints import DEFAULT_CHECKPOINT_INTERVAL, DEFAULT_KEY_ENV
from .errors import ConfigurationError
from .witnessing import DEFAULT_WITNESS_TIMEOUT

SERVER_SECTIONS = ("server",)
"""Top-level sections that belong to ``nucleus serve``: ledger commands accept them unread."""


@attrs.frozen(kw_only=True)
class WitnessSection:
    """One ``[[ledger.checkpoint.witnesses]]`` entry (:class:`~nucleus_core.witnessing.WitnessConfig`)."""

    url: str
    vkey: str
    name: str | None = None
    timeout: float | None = None

    def config(self) -> dict[str, Any]:
        """The fields of :class:`~nucleus_core.witnessing.WitnessConfig` this entry gives."""
        return {"url": self.url, "vkey": self.vkey, "name": self.name, "timeout": self.timeout}


@attrs.frozen(kw_only=True)
class CheckpointSection:
    """``[ledger.checkpoint]``: how checkpoints are signed (:class:`~nucleus_core.checkpoints.CheckpointConfig`;
    ``key_env = ""`` reads no environment variable)."""

    origin: str | None = None
    key_files: tuple[str, ...] = ()
    key_env: str = DEFAULT_KEY_ENV
    insecure_key_permissions: bool = False
    interval: float = DEFAULT_CHECKPOINT_INTERVAL
    witnesses: tuple[WitnessSection, ...] = ()
    witness_quorum: int | None = None
    witness_timeout: float = DEFAULT_WITNESS_TIMEOUT

    def config(self) -> dict[str, Any]:
        """The fields of :class:`~nucleus_core.checkpoints.CheckpointConfig` this section gives."""
        return {
            "origin": self.origin,
            "key_files": self.key_files,
            "key_env": self.key_env or None,
            "insecure_key_permissions": self.insecure_key_permissions,
            "interval": self.interval,
            "witnesses": tuple(w.config() for w in self.witnesses),
            "witness_quorum": self.witness_quorum,
            "witness_timeout": self.witness_timeout,
        }


@attrs.frozen(kw_only=True)
class LedgerSection:
    """``[ledger]``: which ledger to open and how."""

    id: str = "default"
    storage: str | None = None
    admins: tuple[str, ...] = ()
    max_record_bytes: int | None = None
    verify_on_open: bool = True
    storage_options: dict[str, Any] = attrs.field(factory=dict)
    checkpoint: CheckpointSection = attrs.field(factory=CheckpointSection)
    group_commit_max_calls: int | None = None
    group_commit_max_entries: int | None = None
    group_commit_window: float | None = None

    trusted_checkpoint: str | None = None
    trusted_checkpoint_vkeys: tuple[str, ...] = ()
    trusted_checkpoint_vkey_file: str | None = None
    trusted_checkpoint_origin: str | None = None
    verify_from_trusted_checkpoint: bool = False

    def trusted(self) -> dict[str, Any]:
        """The trusted-checkpoint keyword arguments of :func:`~nucleus_core.open_ledger` it sets."""
        values = {
            "trusted_checkpoint": self.trusted_checkpoint,
            "trusted_checkpoint_vkeys": self.trusted_checkpoint_vkeys,
            "trusted_checkpoint_vkey_file": self.trusted_checkpoint_vkey_file,
            "trusted_checkpoint_origin": self.trusted_checkpoint_origin,
            "verify_from_trusted_checkpoint": self.verify_from_trusted_checkpoint,
        }
        return {name: value for name, value in values.items() if value}


@attrs.frozen(kw_only=True)
class LedgerFile:
    """The ledger's part of a configuration file: ``[ledger]`` and ``[plugins.<name>]`` (the enabled
    plugins, in order, each with its settings)."""

    ledger: LedgerSection = attrs.field(factory=LedgerSection)
    plugins: dict[str, dict[str, Any]] = attrs.field(factory=dict)

    def ledger_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`~nucleus_core.create_ledger` / :func:`~nucleus_core.open_ledger`."""
        return ledger_kwargs(self.ledger, self.plugins)


def ledger_kwargs(ledger: LedgerSection, plugins: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Keyword arguments for :func:`~nucleus_core.create_ledger` from a ``[ledger]`` section and the
    ``[plugins]`` tables."""
    kwargs: dict[str, Any] = {
        "id": ledger.id,
        "storage": ledger.storage,
        "plugins": list(plugins),
        "settings": {name: dict(settings) for name, settings in plugins.items() if settings},
        "admins": ledger.admins,
        "verify_on_open": ledger.verify_on_open,
        "storage_options": ledger.storage_options,
        "checkpoint": ledger.checkpoint.config(),
        **ledger.trusted(),
    }
    for name in ("max_record_bytes", "group_commit_max_calls", "group_commit_max_entries", "group_commit_window"):
        value = getattr(ledger, name)
        if value is not None:
            kwargs[name] = value
    return kwargs


def _strict(kind: type) -> Any:
    def structure(value: Any, _type: Any) -> Any:
        if type(value) is not kind:
            raise TypeError(f"must be {kind.__name__}, got {type(value).__name__}")
        return value

    return structure


def make_converter() -> cattrs.Converter:
    """A private converter: unknown keys refused, no silent coercion (``"false"`` is not a bool)."""
    converter = cattrs.Converter(forbid_extra_keys=True)
    for kind in (str, int, bool):
        converter.register_structure_hook(kind, _strict(kind))

    def number(value: Any, _type: Any) -> float:
        if type(value) not in (int, float):
            raise TypeError(f"must be a number, got {type(value).__name__}")
        return float(value)

    converter.register_structure_hook(float, number)

    def string_list(value: Any, _type: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise TypeError("must be a list of strings")
        return tuple(value)

    converter.register_structure_hook_func(lambda t: t == tuple[str, ...], string_list)

    def plugin_table(value: Any, _type: Any) -> dict[str, dict[str, Any]]:
        if not isinstance(value, dict):
            raise TypeError("[plugins] must be a table of plugin names")
        for name, settings in value.items():
            if not isinstance(settings, dict):
                raise TypeError(f"plugins.{name} must be a table of settings (write [plugins.{name}])")
        return {name: dict(settings) for name, settings in value.items()}

    converter.register_structure_hook_func(lambda t: t == dict[str, dict[str, Any]], plugin_table)
    return converter


def structure_strictly(data: Any, kind: type[Any], *, source: str) -> Any:
    """Structure ``data`` as ``kind`` with :func:`make_converter`; a :class:`ConfigurationError`
    naming every bad key."""
    try:
        return make_converter().structure(data, kind)
    except cattrs.BaseValidationError as err:
        problems = "; ".join(cattrs.transform_error(err, path="config"))
        raise ConfigurationError(f"{source}: {problems}") from None


def read_toml(path: str | Path) -> dict[str, Any]:
    """The parsed TOML file at ``path``; a :class:`ConfigurationError` when missing, unreadable or invalid."""
    file = Path(path)
    try:
        with file.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigurationError(f"configuration file {str(file)!r} does not exist") from None
    except OSError as err:
        raise ConfigurationError(f"configuration file {str(file)!r} cannot be read: {err.strerror}") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigurationError(f"configuration file {str(file)!r} is not valid TOML: {err}") from err


def structure_ledger_file(
    data: Any, *, source: str = "configuration", other_sections: Collection[str] = SERVER_SECTIONS
) -> LedgerFile:
    """The :class:`LedgerFile` of parsed TOML. Sections named in ``other_sections`` belong to another
    command and are left unread; any other unknown key is refused."""
    if not isinstance(data, dict):
        raise ConfigurationError(f"{source}: must be a table")
    ours = {k: v for k, v in data.items() if k not in other_sections}
    return structure_strictly(ours, LedgerFile, source=source)  # type: ignore[no-any-return]


def load_ledger_file(path: str | Path) -> LedgerFile:
    """Read and structure the configuration file at ``path`` (its ``[server]`` section is not read)."""
    return structure_ledger_file(read_toml(path), source=str(path))
