"""The ``nucleus`` command line (also ``python -m nucleus_core``).

Every command that opens a ledger takes ``--config FILE`` (env ``NUCLEUS_CONFIG``: the TOML file of
``nucleus serve``, whose ``[ledger]`` and ``[plugins.NAME]`` tables give the ledger, its plugins and
their settings; flags override it), ``--ledger URL`` (env ``NUCLEUS_LEDGER``; default the
embedded SQLite file ``./nucleus.db``), ``--ledger-id`` (env ``NUCLEUS_LEDGER_ID``; default
``default``) and ``--plugin NAME`` (repeatable; env ``NUCLEUS_PLUGINS``, comma-separated). Only
``init`` creates a ledger; every other command opens an existing one. Reads
and writes also need the requester, ``--as OID`` (env ``NUCLEUS_AS``). ``--json`` switches every
command to machine-readable output; errors are then a JSON object on stderr.

Exit codes (see :data:`EXIT_CODES`): 0 success; 1 any other Nucleus error; 2 usage (bad options,
no requester); 3 configuration; 4 plugin; 5 invalid input (record, query, value); 6 not found;
7 conflict (duplicate record id); 8 integrity (the ledger does not verify); 9 storage; 10 denied
(authentication or authorization); 11 a checkpoint given to check against does not verify; 12 the
ledger (or an entry with its proof) does not match a verified checkpoint (``nucleus audit``,
``nucleus proof verify``).

Commands from other distributions are added through the ``nucleus_register_commands`` hook of
plugins in the entry-point group ``nucleus.cli``, each entry point named after the command it adds.
Only the plugin of the command asked for is imported (never for built-in commands, never for
``--help``, which lists plugin commands from their entry points); one that fails is reported by
name, with exit code 4.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from typing import IO, Any, NoReturn, TypeVar
from urllib.parse import urlsplit

import attrs
import click

from .auth import RedactingFormatter
from .config import LedgerFile, load_ledger_file
from .context import ALL_SCOPES, RequestContext
from .errors import (
    AuthenticationError,
    AuthorizationError,
    CheckpointMismatchError,
    CheckpointRefusedError,
    ConfigurationError,
    ConflictError,
    IntegrityError,
    LedgerNotFoundError,
    MissingRequesterError,
    NotFoundError,
    NucleusError,
    PluginError,
    StorageError,
    ValidationError,
    prefixed,
)
from .ledger import (
    DEFAULT_SQLITE_FILE,
    MAX_BATCH_SIZE,
    Ledger,
    create_ledger,
    open_ledger,
    release_plugin,
)
from .plugins import (
    CLI_ENTRY_POINT_GROUP,
    ENTRY_POINT_GROUP,
    InstalledPlugin,
    build_plugin_manager,
    call_registration,
    cli_command_entry_points,
    installed_plugins,
    load_cli_command,
)
from .query import QueryFilters
from .records import Entry, Record
from .specs import StorageBackendSpec
from .storage import DEFAULT_QUERY_LIMIT, MAX_QUERY_LIMIT
from .tree import tree_storage
from .trusted_checkpoint import check_trusted_checkpoint, load_verifiers, read_checkpoint_file

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CONFIGURATION = 3
EXIT_PLUGIN = 4
EXIT_INVALID = 5
EXIT_NOT_FOUND = 6
EXIT_CONFLICT = 7
EXIT_INTEGRITY = 8
EXIT_STORAGE = 9
EXIT_DENIED = 10
EXIT_CHECKPOINT = 11
EXIT_MISMATCH = 12

EXIT_CODES: tuple[tuple[type[NucleusError], int], ...] = (
    (MissingRequesterError, EXIT_USAGE),
    (AuthenticationError, EXIT_DENIED),
    (AuthorizationError, EXIT_DENIED),
    (CheckpointRefusedError, EXIT_CHECKPOINT),
    (CheckpointMismatchError, EXIT_MISMATCH),
    (IntegrityError, EXIT_INTEGRITY),
    (ConflictError, EXIT_CONFLICT),
    (PluginError, EXIT_PLUGIN),
    (LedgerNotFoundError, EXIT_NOT_FOUND),
    (NotFoundError, EXIT_NOT_FOUND),
    (ConfigurationError, EXIT_CONFIGURATION),
    (ValidationError, EXIT_INVALID),
    (StorageError, EXIT_STORAGE),
    (NucleusError, EXIT_FAILURE),
)
"""Which exit code an error gets: the first class in this list that the error is an instance of."""

_JSON_META = "nucleus.json"
_ENV_LEDGER = "NUCLEUS_LEDGER"
_ENV_LEDGER_ID = "NUCLEUS_LEDGER_ID"
_ENV_PLUGINS = "NUCLEUS_PLUGINS"
_ENV_AS = "NUCLEUS_AS"
_ENV_CONFIG = "NUCLEUS_CONFIG"

F = TypeVar("F", bound=Callable[..., Any])


def exit_code_for(error: NucleusError) -> int:
    """The exit code the CLI uses for ``error``."""
    for kind, code in EXIT_CODES:
        if isinstance(error, kind):
            return code
    return EXIT_FAILURE


class CommandError(click.ClickException):
    """An expected failure: a one-line message on stderr (a JSON object with ``--json``), no traceback."""

    def __init__(self, message: str, *, exit_code: int, code: str, as_json: bool = False) -> None:
        super().__init__(message)
        # click reads ``exit_code`` from the instance; click >= 8.5 types it as a class variable,
        # so it is set in the instance dict (the same at run time, accepted by every click's types).
        self.__dict__["exit_code"] = exit_code
        self.code = code
        self.as_json = as_json

    @classmethod
    def from_error(cls, error: NucleusError, *, as_json: bool) -> CommandError:
        return cls(str(error), exit_code=exit_code_for(error), code=error.code, as_json=as_json)

    def show(self, file: IO[Any] | None = None) -> None:
        stream = file if file is not None else sys.stderr
        if self.as_json:
            click.echo(json.dumps({"error": {"code": self.code, "message": self.message}}), file=stream)
        else:
            click.echo(f"Error: {self.message}", file=stream)


def _json_wanted(ctx: click.Context | None) -> bool:
    return bool(ctx is not None and ctx.meta.get(_JSON_META))


def fail(message: str, *, exit_code: int, code: str) -> NoReturn:
    """Stop the running command with ``message`` on stderr (a JSON error object under ``--json``)
    and ``exit_code`` (one of the ``EXIT_*`` constants); ``code`` is the machine-readable error code.
    For commands added by plugins as much as for the built-in ones."""
    raise CommandError(
        message, exit_code=exit_code, code=code, as_json=_json_wanted(click.get_current_context(silent=True))
    )


_fail = fail


# options ---------------------------------------------------------------------------------------
def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[_JSON_META] = True
    return value


json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    is_eager=True,
    callback=_set_json,
    help="Machine-readable output (JSON); errors become a JSON object on stderr.",
)


@attrs.frozen(kw_only=True)
class LedgerOptions:
    """Where the ledger is and how to open it, as given on the command line or in the environment."""

    storage: str | None
    ledger_id: str
    plugins: tuple[str, ...]
    requester: str | None = None
    settings: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    """Per-plugin settings from the configuration file (``[plugins.<name>]``)."""
    admins: tuple[str, ...] = ()
    verify_on_open: bool = True
    storage_options: Mapping[str, Any] = attrs.field(factory=dict)
    max_record_bytes: int | None = None
    checkpoint: Mapping[str, Any] = attrs.field(factory=dict)
    """The fields of the ledger's :class:`~nucleus_core.checkpoints.CheckpointConfig` (``[ledger.checkpoint]``)."""
    trusted: Mapping[str, Any] = attrs.field(factory=dict)
    """The trusted checkpoint's keyword arguments (``[ledger] trusted_checkpoint`` ...,
    ``verify_from_trusted_checkpoint`` also from ``--verify-from-checkpoint``): used by the opens
    that verify."""

    @classmethod
    def resolve(
        cls,
        *,
        config_path: str | None,
        storage: str | None,
        ledger_id: str | None,
        plugins: tuple[str, ...],
        requester: str | None = None,
        verify_from_checkpoint: bool = False,
    ) -> LedgerOptions:
        """The options from the configuration file at ``config_path`` (if any) with the flags (and
        their environment variables) on top: ``--ledger`` and ``--ledger-id`` replace the file's
        values, ``--plugin`` adds to its plugins."""
        file = load_ledger_file(config_path) if config_path else LedgerFile()
        section = file.ledger
        return cls(
            storage=storage or section.storage,
            ledger_id=ledger_id or section.id,
            plugins=_split_plugins([*file.plugins, *plugins]),
            requester=requester,
            settings={name: dict(values) for name, values in file.plugins.items() if values},
            admins=section.admins,
            verify_on_open=section.verify_on_open,
            storage_options=dict(section.storage_options),
            max_record_bytes=section.max_record_bytes,
            checkpoint=section.checkpoint.config(),
            trusted=section.trusted() | ({"verify_from_trusted_checkpoint": True} if verify_from_checkpoint else {}),
        )

    def context(self) -> RequestContext:
        """The requester as a :class:`RequestContext`; refused (exit 2) when missing or malformed."""
        if self.requester is None or not self.requester.strip():
            _fail(
                f"no requester: pass --as OID or set {_ENV_AS} (for example --as oid:acme:user:alice)",
                exit_code=EXIT_USAGE,
                code=MissingRequesterError.code,
            )
        try:
            # The CLI runs with direct access to the storage; --as states who is acting, it does not
            # authenticate anyone (whoever can open the database can write it anyway). It is the
            # operator: every scope, keys included (granted here explicitly; never a default).
            return RequestContext(oid=self.requester, source="cli", scopes=ALL_SCOPES)
        except ValidationError as err:
            _fail(f"--as: {err}", exit_code=EXIT_USAGE, code=err.code)

    def open(
        self,
        *,
        verify: bool = True,
        plugins: Iterable[str] = (),
        settings: Mapping[str, Mapping[str, Any]] | None = None,
        create: bool = False,
    ) -> Ledger:
        """Open the existing ledger (verifying a persistent one unless ``verify`` is false: then
        read-only). Nothing is created unless ``create`` (``nucleus init``): storage without the
        ledger is an error listing the ledger ids it holds.

        ``plugins`` are enabled in addition to the listed ones (a command plugin enabling itself);
        ``settings`` are per-plugin settings, as for :func:`~nucleus_core.create_ledger` (a plugin's
        table here replaces the configuration file's)."""
        opener = create_ledger if create else open_ledger
        return opener(**self.config(verify=verify, plugins=plugins, settings=settings))

    def config(
        self,
        *,
        verify: bool = True,
        plugins: Iterable[str] = (),
        settings: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """The keyword arguments of :func:`~nucleus_core.open_ledger` these options give."""
        extra: dict[str, Any] = {}
        if self.max_record_bytes is not None:
            extra["max_record_bytes"] = self.max_record_bytes
        return {
            "id": self.ledger_id,
            "storage": self.storage,
            "plugins": _split_plugins([*self.plugins, *plugins]),
            "settings": {**self.settings, **(settings or {})},
            "verify_on_open": verify and self.verify_on_open,
            "admins": self.admins,
            "storage_options": self.storage_options,
            "checkpoint": dict(self.checkpoint),
            "tree_progress": TreeBuildBar(),
            # A trusted checkpoint needs verification (nothing else ties the tree to the entries): an
            # open that does not verify leaves it out (--no-verify; nucleus verify, which verifies
            # everything first and then checks the trusted checkpoint itself).
            **(self.trusted if verify else {}),
            **extra,
        }

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{DEFAULT_SQLITE_FILE}"


class TreeBuildBar:
    """The progress bar (stderr, on a terminal only) while opening builds the Merkle tree of a
    ledger written before it existed; nothing for a build of one chunk (it takes no time)."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._done = 0

    def __call__(self, done: int, total: int) -> None:
        if self._bar is None:
            if done >= total or not sys.stderr.isatty():
                return
            self._bar = click.progressbar(
                length=total, label="building the Merkle tree", file=sys.stderr, show_pos=True
            )
            self._bar.__enter__()
        self._bar.update(done - self._done)
        self._done = done
        if done >= total:
            self._bar.__exit__(None, None, None)


def _split_plugins(values: Iterable[str]) -> tuple[str, ...]:
    names: list[str] = []
    for value in values:
        for name in value.split(","):
            name = name.strip()
            if name and name not in names:
                names.append(name)
    return tuple(names)


def ledger_options(*, requester: bool) -> Callable[[F], F]:
    """Add --config, --ledger, --ledger-id, --plugin (and --as when ``requester``) and --json to a
    command; the command receives them as one :class:`LedgerOptions` argument called ``target``."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(
            config_path: str | None,
            ledger_url: str | None,
            ledger_id: str | None,
            plugins: tuple[str, ...],
            as_json: bool,
            verify_from_checkpoint: bool = False,
            as_oid: str | None = None,
            **kwargs: Any,
        ) -> Any:
            names = _split_plugins(plugins) if plugins else _split_plugins([os.environ.get(_ENV_PLUGINS, "")])
            try:
                target = LedgerOptions.resolve(
                    config_path=config_path or None,
                    storage=ledger_url or None,
                    ledger_id=ledger_id or None,
                    plugins=names,
                    requester=as_oid,
                    verify_from_checkpoint=verify_from_checkpoint,
                )
            except NucleusError as err:
                raise CommandError.from_error(err, as_json=as_json) from err
            return func(target=target, as_json=as_json, **kwargs)

        options = [
            click.option(
                "--config",
                "config_path",
                envvar=_ENV_CONFIG,
                metavar="FILE",
                help=f"TOML configuration ([ledger], [plugins.NAME] settings; the file of 'nucleus serve'); "
                f"flags override it [env {_ENV_CONFIG}].",
            ),
            click.option(
                "--ledger",
                "ledger_url",
                envvar=_ENV_LEDGER,
                metavar="URL",
                help=f"Storage URL: memory://, sqlite:///PATH, postgresql://... [env {_ENV_LEDGER}; "
                f"default sqlite:///{DEFAULT_SQLITE_FILE}]",
            ),
            click.option(
                "--ledger-id",
                envvar=_ENV_LEDGER_ID,
                help=f"Ledger id (part of every hash) [env {_ENV_LEDGER_ID}; default from --config, else 'default'].",
            ),
            click.option(
                "--plugin",
                "plugins",
                multiple=True,
                metavar="NAME",
                help=f"Enable a plugin on the ledger (repeatable, or comma-separated) [env {_ENV_PLUGINS}].",
            ),
            click.option(
                "--verify-from-checkpoint",
                is_flag=True,
                help="Open verifying only the entries after the trusted checkpoint of --config ([ledger] "
                "trusted_checkpoint) and the tree against it, not the whole chain (docs/TRANSPARENCY.md); "
                "'nucleus verify' always checks everything, and then the trusted checkpoint.",
            ),
            json_option,
        ]
        if requester:
            options.append(
                click.option("--as", "as_oid", envvar=_ENV_AS, metavar="OID", help=f"The requester [env {_ENV_AS}].")
            )
        command: Any = wrapper
        for option in reversed(options):
            command = option(command)
        return command  # type: ignore[no-any-return]

    return decorate


class TimeParam(click.ParamType):  # type: ignore[type-arg]
    """Unix milliseconds, an ISO 8601 date (``2026-12-01``: midnight UTC) or an ISO 8601 date-time
    with a time zone (``2026-12-01T12:00:00Z``, ``2026-12-01T12:00:00+02:00``)."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip()
        if text.isascii() and text.isdigit():  # ASCII only: "²" is a digit to isdigit, not to int
            return int(text)
        try:
            if _ISO_DATE.fullmatch(text):
                moment = datetime.combine(date.fromisoformat(text), dt_time(), tzinfo=UTC)
            else:
                moment = datetime.fromisoformat(text)
        except ValueError:
            self.fail(
                f"{value!r} is neither Unix milliseconds nor an ISO 8601 date (2026-12-01) or date-time "
                "(2026-12-01T12:00:00Z)",
                param,
                ctx,
            )
        if moment.tzinfo is None:
            self.fail(f"{value!r} has no time zone; add one, e.g. Z or +02:00", param, ctx)
        return (moment - _EPOCH) // timedelta(milliseconds=1)


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# output ----------------------------------------------------------------------------------------
def _entry_json(entry: Entry) -> str:
    return json.dumps(entry.to_dict(), ensure_ascii=False, separators=(",", ":"))


def _entry_line(entry: Entry) -> str:
    r = entry.record
    return f"{entry.seq:>8}  {entry.hash}  {r.timestamp}  {r.stream}  {r.id}"


def _distribution_label(ep: Any) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.metadata['Name']} {dist.version}" if dist is not None else ep.value


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False))


# the group -------------------------------------------------------------------------------------
class NucleusGroup(click.Group):
    """The root group: maps Nucleus errors to exit codes and adds commands from command plugins.

    A command plugin's entry point (group ``nucleus.cli``) is named after the command it adds.
    Only the entry point named by the command asked for is imported; ``--help`` lists plugin
    commands from their entry points without importing any. Built-in commands always win: an
    entry point named like one is never loaded."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plugin_errors: list[PluginError] = []
        self._argv_json = False

    def main(self, args: Any = None, *pargs: Any, **kwargs: Any) -> Any:
        argv = list(args) if args is not None else sys.argv[1:]
        # --json is known before parsing so that a usage error found while parsing (an unknown
        # option, a bad value) is rendered as JSON too; "--" ends the options.
        self._argv_json = "--json" in (argv[: argv.index("--")] if "--" in argv else argv)
        return super().main(argv, *pargs, **kwargs)

    def _as_json(self, ctx: click.Context | None) -> bool:
        return self._argv_json or _json_wanted(ctx)

    def _usage_error(self, err: click.UsageError, ctx: click.Context | None) -> click.ClickException:
        """A usage error as a JSON error object under --json (click's own rendering otherwise)."""
        if not self._as_json(ctx):
            return err
        return CommandError(err.format_message(), exit_code=err.exit_code, code="usage", as_json=True)

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as err:
            raise self._usage_error(err, None) from None

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        name = click.utils.make_str(args[0]) if args else ""
        if name in PLUGIN_COMMANDS and name not in self.commands and name not in cli_command_entry_points():
            distribution = PLUGIN_COMMANDS[name]
            raise click.UsageError(
                f"No such command {name!r}: it comes with the distribution {distribution}, which is not "
                f"installed (pip install {distribution}).",
                ctx,
            )
        return super().resolve_command(ctx, args)

    def _plugin_command(self, cmd_name: str) -> click.Command | None:
        available = cli_command_entry_points()
        if cmd_name not in available:
            return None
        pm = load_cli_command(cmd_name, available)
        dist = pm.distribution_of(cmd_name)
        staging = click.Group(name=self.name)
        try:
            # Through pluggy (hook wrappers work); the manager holds this one plugin only.
            pm.hook.nucleus_register_commands(cli=staging)
        except Exception as err:
            raise PluginError(
                f"nucleus_register_commands failed: {type(err).__name__}: {err}",
                plugin_name=cmd_name,
                distribution=dist,
            ) from err
        command = staging.commands.get(cmd_name)
        if command is None:
            raise PluginError(
                f"adds no command named {cmd_name!r} (a command plugin's entry point is named after its command)",
                plugin_name=cmd_name,
                distribution=dist,
            )
        return command

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        try:
            command = self._plugin_command(cmd_name)
        except PluginError as err:
            self.plugin_errors.append(err)
            raise CommandError.from_error(err, as_json=_json_wanted(ctx)) from err
        if command is not None:
            self.add_command(command, cmd_name)
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(cli_command_entry_points()))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows: list[tuple[str, str]] = []
        plugins = cli_command_entry_points()
        for name in self.list_commands(ctx):
            command = self.commands.get(name)
            if command is not None:
                if not command.hidden:
                    rows.append((name, command.get_short_help_str(limit=formatter.width - 6 - len(name))))
                continue
            dists = sorted({_distribution_label(ep) for ep in plugins.get(name, [])})
            rows.append((name, f"(command plugin from {', '.join(dists)}; 'nucleus {name} --help' for more)"))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NucleusError as err:
            raise CommandError.from_error(err, as_json=self._as_json(ctx)) from None
        except click.UsageError as err:
            raise self._usage_error(err, ctx) from None
        except OSError as err:
            if err.filename is None:
                raise
            # A path given by the user that the system refuses (too long, no permission...): one line.
            raise CommandError(
                f"{shorten_path(err.filename)}: {err.strerror or err}",
                exit_code=EXIT_STORAGE,
                code=StorageError.code,
                as_json=self._as_json(ctx),
            ) from None


PLUGIN_COMMANDS: dict[str, str] = {
    "serve": "nucleus-server", "remote": "nucleus-server", "keys": "nucleus-token-api-key",
    "witness": "nucleus-witness",
}
"""Commands of this project's own distributions, by the distribution that adds them: asked for
while it is not installed, the error says what to install."""


def shorten_path(path: object, limit: int = 120) -> str:
    """``path`` quoted for a message, its middle cut out when it is longer than ``limit``."""
    text = os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else str(path)
    if len(text) > limit:
        text = f"{text[: limit // 2]}...{text[-(limit // 2) :]} ({len(text)} characters)"
    return repr(text)


def _configure_logging(verbose: int) -> None:
    level = logging.ERROR if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("nucleus_core")
    root.handlers[:] = [h for h in root.handlers if not getattr(h, "_nucleus_cli", False)]
    handler._nucleus_cli = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)


_ROOT_HELP = """Nucleus: a verifiable, hash-chained ledger.

    Exit codes: 0 ok, 1 other error, 2 usage or no requester, 3 configuration, 4 plugin,
    5 invalid input, 6 not found, 7 conflict, 8 integrity, 9 storage, 10 denied,
    11 checkpoint refused, 12 the ledger does not match the checkpoint.
    """


# commands --------------------------------------------------------------------------------------
@click.command("init")
@ledger_options(requester=False)
def init_command(target: LedgerOptions, as_json: bool) -> None:
    """Create the ledger (and its storage) if needed, verify it and show where it is.

    The only command that creates: every other one opens an existing ledger."""
    with target.open(create=True) as ledger:
        info = {
            "ledger_id": ledger.id,
            "storage": ledger.storage.url,
            "persistent": ledger.has_storage(),
            "entries": ledger.length(),
            "head": ledger.latest_hash(),
            "plugins": list(target.plugins),
        }
    if as_json:
        _echo_json(info)
    else:
        click.echo(f"ledger {info['ledger_id']!r} ready at {info['storage']} ({info['entries']} entries)")
        if not info["persistent"]:
            click.echo("note: this storage is not persistent; it is gone when the command ends", err=True)


def _read_record(text: str, *, where: str) -> Record:
    try:
        data = json.loads(text)
    except ValueError as err:
        _fail(f"{where}: not JSON: {err}", exit_code=EXIT_INVALID, code="invalid_record")
    if isinstance(data, dict) and "timestamp" not in data:
        data["timestamp"] = time.time_ns() // 1_000_000
    try:
        return Record.from_dict(data)
    except ValidationError as err:
        _fail(prefixed(where, str(err)), exit_code=EXIT_INVALID, code=err.code)


def _read_batch(stream: IO[str]) -> list[Record]:
    records: list[Record] = []
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        if len(records) >= MAX_BATCH_SIZE:
            _fail(
                f"--batch: more than {MAX_BATCH_SIZE} records; one atomic batch holds at most that many",
                exit_code=EXIT_INVALID,
                code="invalid_record",
            )
        records.append(_read_record(line, where=f"line {number}"))
    if not records:
        _fail("--batch: the file holds no records", exit_code=EXIT_INVALID, code="invalid_record")
    return records


@click.command("append")
@click.argument("record", required=False)
@click.option(
    "--batch",
    "batch_file",
    type=click.File("r", encoding="utf-8"),
    metavar="FILE.jsonl",
    help="Append every line of FILE (one record per line, '-' for stdin) in one atomic batch.",
)
@ledger_options(requester=True)
def append_command(target: LedgerOptions, as_json: bool, record: str | None, batch_file: IO[str] | None) -> None:
    """Append a RECORD given as JSON (or read from stdin when RECORD is omitted or '-').

    A record is {"id", "stream", "payload", "timestamp"?, "meta"?}; a missing timestamp is now.
    With --batch all records are appended atomically: all or none.
    """
    ctx = target.context()
    if batch_file is not None and record is not None:
        _fail("give either RECORD or --batch, not both", exit_code=EXIT_USAGE, code="usage")
    if batch_file is not None:
        records = _read_batch(batch_file)
    else:
        text = sys.stdin.read() if record is None or record == "-" else record
        records = [_read_record(text, where="record")]
    with target.open() as ledger:
        entries = ledger.append_batch(records, ctx)
    if as_json:
        _echo_json([e.to_dict() for e in entries] if batch_file is not None else entries[0].to_dict())
    else:
        for entry in entries:
            click.echo(f"appended seq {entry.seq} {entry.hash} {entry.record.id}")


@click.command("get")
@click.argument("entry_hash", metavar="HASH", required=False)
@click.option("--id", "record_id", metavar="RECORD_ID", help="Look the entry up by record id instead of hash.")
@click.option("--no-verify", is_flag=True, help="Do not verify the chain when opening (read-only).")
@ledger_options(requester=True)
def get_command(
    target: LedgerOptions, as_json: bool, entry_hash: str | None, record_id: str | None, no_verify: bool
) -> None:
    """Show the entry with this HASH (or --id RECORD_ID). Exit code 6 when there is none."""
    if (entry_hash is None) == (record_id is None):
        _fail("give either HASH or --id RECORD_ID", exit_code=EXIT_USAGE, code="usage")
    ctx = target.context()
    with target.open(verify=not no_verify) as ledger:
        entry = ledger.get(entry_hash, ctx) if entry_hash is not None else ledger.get_by_id(record_id or "", ctx)
    if entry is None:
        what = f"hash {entry_hash}" if entry_hash is not None else f"record id {record_id!r}"
        _fail(f"no entry with {what}", exit_code=EXIT_NOT_FOUND, code="not_found")
    if as_json:
        _echo_json(entry.to_dict())
    else:
        click.echo(json.dumps(entry.to_dict(), ensure_ascii=False, indent=2))


@click.command("query")
@click.option("--stream", "streams", multiple=True, metavar="NAME", help="Only these streams (repeatable).")
@click.option("--id", "record_ids", multiple=True, metavar="RECORD_ID", help="Only these record ids (repeatable).")
@click.option(
    "--since",
    type=TimeParam(),
    help="Record timestamp >= this (Unix ms, an ISO 8601 date (UTC midnight) or date-time with a zone).",
)
@click.option(
    "--until",
    type=TimeParam(),
    help="Record timestamp < this (Unix ms, an ISO 8601 date (UTC midnight) or date-time with a zone).",
)
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_QUERY_LIMIT),
    default=DEFAULT_QUERY_LIMIT,
    show_default=True,
    help=f"Page size (at most {MAX_QUERY_LIMIT}).",
)
@click.option("--cursor", help="Continue after the previous page (its next cursor).")
@click.option("--no-verify", is_flag=True, help="Do not verify the chain when opening (read-only).")
@ledger_options(requester=True)
def query_command(
    target: LedgerOptions,
    as_json: bool,
    streams: tuple[str, ...],
    record_ids: tuple[str, ...],
    since: int | None,
    until: int | None,
    limit: int,
    cursor: str | None,
    no_verify: bool,
) -> None:
    """Entries matching the filters, one page in seq order, with the cursor of the next page."""
    ctx = target.context()
    filters = QueryFilters(
        stream=list(streams) or None,
        record_ids=list(record_ids) or None,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )
    with target.open(verify=not no_verify) as ledger:
        result = ledger.query(filters, ctx)
    if as_json:
        _echo_json({"entries": [e.to_dict() for e in result.entries], "next_cursor": result.next_cursor})
        return
    for entry in result.entries:
        click.echo(_entry_line(entry))
    if result.next_cursor is not None:
        click.echo(f"next page: --cursor {result.next_cursor}", err=True)


@click.command("verify")
@click.option(
    "--checkpoint", "checkpoint_file", type=click.Path(dir_okay=False),
    help="A signed checkpoint kept outside the database: the stored tree must extend it.",
)
@click.option("--key", "vkeys", multiple=True, help="A verifier key (vkey) for --checkpoint; repeatable.")
@click.option("--key-file", type=click.Path(dir_okay=False), help="A file of verifier keys, one per line.")
@click.option(
    "--origin",
    help="The origin the checkpoint must carry (default: the configured [ledger.checkpoint] origin, "
    "else nucleus.invalid/<ledger id>).",
)
@ledger_options(requester=False)
def verify_command(
    target: LedgerOptions,
    as_json: bool,
    checkpoint_file: str | None,
    vkeys: tuple[str, ...],
    key_file: str | None,
    origin: str | None,
) -> None:
    """Re-check every hash and link of the stored chain and its Merkle tree (and, with --checkpoint,
    or else the trusted checkpoint of --config, that the ledger extends that checkpoint). Exit code
    8 and the first bad seq on failure."""
    if checkpoint_file is None and (vkeys or key_file or origin):
        _fail("--key, --key-file and --origin go with --checkpoint", exit_code=EXIT_USAGE, code=ValidationError.code)
    trusted = target.trusted
    if checkpoint_file is None and trusted.get("trusted_checkpoint") is not None:
        # The trusted checkpoint of --config ([ledger] trusted_checkpoint): the one check a
        # self-consistent rewrite of the whole history does not pass.
        checkpoint_file = str(trusted["trusted_checkpoint"])
        vkeys = tuple(trusted.get("trusted_checkpoint_vkeys") or ())
        key_file = trusted.get("trusted_checkpoint_vkey_file")
        origin = trusted.get("trusted_checkpoint_origin")
    if origin is None:
        origin = target.checkpoint.get("origin")
    verifiers = load_verifiers(vkeys, key_file) if checkpoint_file is not None else []
    note = read_checkpoint_file(checkpoint_file) if checkpoint_file is not None else None
    with target.open(verify=False) as ledger:
        if ledger.has_storage() and not as_json:
            total = ledger.storage.count()
            with click.progressbar(
                length=total, label="verifying", file=sys.stderr, show_pos=True
            ) as bar:
                done = 0

                def progress(seq: int) -> None:
                    nonlocal done
                    bar.update(seq - done)
                    done = seq

                report = ledger.verify(progress=progress)
                bar.update(max(0, report.entries_checked - done))
        else:
            report = ledger.verify()
        if report.ok and note is not None:
            try:
                checkpoint = check_trusted_checkpoint(
                    target.ledger_id, tree_storage(ledger.storage), note, verifiers, origin=origin,
                    where=f"the checkpoint {checkpoint_file!r}",
                )
            except IntegrityError as err:
                report = attrs.evolve(report, ok=False, first_bad_seq=err.seq, reason=str(err))
            else:
                if not as_json:
                    click.echo(f"ok: the ledger extends the checkpoint at size {checkpoint.size}")
    if as_json:
        _echo_json(report.to_dict())
    elif report.ok:
        click.echo(f"ok: {report.entries_checked} entries verified; head {report.head_hash or '(empty)'}")
    if not report.ok:
        where = f"first bad seq {report.first_bad_seq}: " if report.first_bad_seq is not None else ""
        message = f"ledger {target.ledger_id!r} does not verify: {where}{report.reason}"
        if as_json:
            raise click.exceptions.Exit(EXIT_INTEGRITY)
        _fail(message, exit_code=EXIT_INTEGRITY, code=IntegrityError.code)


@click.command("export")
@click.option("--from-seq", type=click.IntRange(min=1), default=1, show_default=True, help="First seq to export.")
@click.option(
    "-o",
    "--output",
    type=click.File("w", encoding="utf-8", lazy=True),
    default="-",
    help="Write here (default stdout).",
)
@ledger_options(requester=True)
def export_command(target: LedgerOptions, as_json: bool, from_seq: int, output: IO[str]) -> None:
    """Every entry the requester may read, as JSON lines in seq order, streamed.

    Each line is {"seq", "hash", "prev_hash", "version", "appender", "auth_source", "committed_at",
    "record"} (the appender fields null for version-1 entries); the output is the same with or without --json.
    """
    ctx = target.context()
    with target.open() as ledger:
        for entry in ledger.iter_entries(ctx, from_seq=from_seq):
            output.write(_entry_json(entry))
            output.write("\n")
    output.flush()


def _enabled_plugins(target: LedgerOptions) -> tuple[dict[str, str], str | None]:
    """Which ``nucleus`` entry points a ledger with these options would load, and why; plus an
    error when a listed plugin cannot be loaded."""
    enabled = {name: "listed" for name in target.plugins}
    try:
        scheme = urlsplit(target.storage_url).scheme.lower()
    except ValueError:
        return enabled, None
    if scheme in ("", "memory"):
        return enabled, None
    try:
        pm = build_plugin_manager(target.plugins)
        specs = call_registration(pm, "nucleus_register_storage_backends", StorageBackendSpec)
    except PluginError as err:
        return enabled, str(err)
    if not any(scheme in spec.schemes for spec, _, _ in specs):
        # Mirrors the ledger: with no listed plugin for the URL's scheme it loads the plugin named after it.
        enabled.setdefault(scheme, f"storage for {scheme}://")
    return enabled, None


@click.command("plugins")
@ledger_options(requester=False)
def plugins_command(target: LedgerOptions, as_json: bool) -> None:
    """Installed plugin distributions, versions, the hooks they implement, and whether each is
    enabled for the ledger given by --ledger / --plugin (or the environment).

    Listing imports each installed plugin into a throw-away manager to find its hooks; no ledger
    uses that manager. Command plugins (group nucleus.cli) are active whenever installed.
    """
    enabled, error = _enabled_plugins(target)
    rows: list[dict[str, Any]] = []
    for group in (ENTRY_POINT_GROUP, CLI_ENTRY_POINT_GROUP):
        for plugin in installed_plugins(group=group):
            rows.append(_plugin_row(plugin, group, enabled))
    listed_missing = [
        n for n in target.plugins if not any(r["name"] == n and r["group"] == ENTRY_POINT_GROUP for r in rows)
    ]
    if as_json:
        _echo_json(
            {
                "ledger": {
                    "storage": target.storage_url,
                    "ledger_id": target.ledger_id,
                    "plugins": list(target.plugins),
                },
                "plugins": rows,
                "missing": listed_missing,
                "error": error,
            }
        )
    else:
        if not rows:
            click.echo("no Nucleus plugins are installed")
        for row in rows:
            state = f"enabled ({row['why']})" if row["enabled"] else "not enabled"
            version = f" {row['version']}" if row["version"] else ""
            click.echo(f"{row['name']} [{row['group']}] {row['distribution'] or '?'}{version}: {state}")
            if row["hooks"]:
                click.echo(f"    hooks: {', '.join(row['hooks'])}")
            if row["error"]:
                click.echo(f"    error: {row['error']}")
        for name in listed_missing:
            click.echo(f"{name}: listed for this ledger but not installed", err=True)
        if error:
            click.echo(f"Warning: {error}", err=True)
    if listed_missing or error or any(r["error"] and r["enabled"] and r["group"] == ENTRY_POINT_GROUP for r in rows):
        raise click.exceptions.Exit(EXIT_PLUGIN)


@click.command("release-plugin")
@click.argument("name", metavar="NAME")
@ledger_options(requester=True)
def release_plugin_command(target: LedgerOptions, as_json: bool, name: str) -> None:
    """Release the plugin NAME from the plugins the ledger requires (an operator's decision).

    The ledger records the plugins whose state lives in its chain and then refuses to open without
    them. This writes a new record without NAME (naming the plugin released and --as), so the ledger
    opens without it again; run it with the ledger's other plugins, not NAME. Logged."""
    ctx = target.context()
    released = release_plugin(name, context=ctx, **target.config())
    names = [p.plugin or p.name for p in released]
    if as_json:
        _echo_json({"released": [p.to_dict() for p in released], "by": ctx.oid})
    else:
        click.echo(f"released {', '.join(names)}: the ledger no longer requires it (recorded, by {ctx.oid})")


def _plugin_row(plugin: InstalledPlugin, group: str, enabled: dict[str, str]) -> dict[str, Any]:
    is_cli = group == CLI_ENTRY_POINT_GROUP
    on = is_cli or plugin.name in enabled
    return {
        "name": plugin.name,
        "group": group,
        "distribution": plugin.distribution,
        "version": plugin.version,
        "entry_point": plugin.value,
        "hooks": list(plugin.hooks),
        "enabled": on,
        "why": "command plugin" if is_cli else enabled.get(plugin.name),
        "error": plugin.error,
    }


BUILTIN_COMMANDS: tuple[click.Command, ...] = (
    init_command,
    append_command,
    get_command,
    query_command,
    verify_command,
    plugins_command,
    release_plugin_command,
    export_command,
)


def make_cli() -> NucleusGroup:
    """A fresh root group with the built-in commands (command plugins are added to it on demand).

    Built per invocation so that plugin commands never leak into a module-level object."""

    @click.group(
        cls=NucleusGroup, name="nucleus", help=_ROOT_HELP, context_settings={"help_option_names": ["-h", "--help"]}
    )
    @click.version_option(package_name="nucleus-core", prog_name="nucleus")
    @click.option("-v", "--verbose", count=True, help="Log more to stderr (-v info, -vv debug).")
    def root(verbose: int) -> None:
        _configure_logging(verbose)

    for command in BUILTIN_COMMANDS:
        root.add_command(command)
    from .cli_audit import COMMANDS as AUDIT_COMMANDS  # here: these modules import this one
    from .cli_backup import COMMANDS as COPY_COMMANDS
    from .cli_checkpoint import COMMANDS as CHECKPOINT_COMMANDS
    from .cli_import import COMMANDS as IMPORT_COMMANDS
    from .cli_tail import COMMANDS as TAIL_COMMANDS

    for command in (*COPY_COMMANDS, *IMPORT_COMMANDS, *CHECKPOINT_COMMANDS, *AUDIT_COMMANDS, *TAIL_COMMANDS):
        root.add_command(command)
    assert isinstance(root, NucleusGroup)
    return root


def main(argv: Iterable[str] | None = None) -> None:
    """Run the ``nucleus`` command line (the console script and ``python -m nucleus_core``)."""
    try:
        make_cli().main(args=list(argv) if argv is not None else None, prog_name="nucleus")
    except BrokenPipeError:
        # The reader went away (``nucleus export | head``): stop quietly, as other Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(EXIT_FAILURE)
