"""``nucleus keys create|list|revoke``: manage a ledger's API keys from the command line.

The commands take the options every ``nucleus`` command takes (``--ledger``/``NUCLEUS_LEDGER``,
``--ledger-id``/``NUCLEUS_LEDGER_ID``, ``--plugin``/``NUCLEUS_PLUGINS``, ``--as``/``NUCLEUS_AS``,
``--json``) through :func:`nucleus_core.cli.ledger_options`, and exit with the same codes. The
ledger is opened with the listed plugins plus ``auth.api_key``. The pepper is read from the
environment variable named by ``--pepper-env`` (never from a command line argument, which other
users could see in the process list). A key is printed once, by ``create``, and never again.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator

import click

from nucleus_core.cli import EXIT_NOT_FOUND, CommandError, LedgerOptions, fail, ledger_options
from nucleus_core.errors import NucleusError
from nucleus_core.requester_log import loggable_oid

from .parser import NAME, ApiKeyParser

log = logging.getLogger(__name__)

DEFAULT_PEPPER_ENV = "NUCLEUS_API_KEY_PEPPER"

pepper_env_option = click.option(
    "--pepper-env",
    default=DEFAULT_PEPPER_ENV,
    show_default=True,
    metavar="VAR",
    help="Environment variable holding the server-side pepper (32+ characters).",
)


@contextlib.contextmanager
def _parser(target: LedgerOptions, pepper_env: str, *, as_json: bool) -> Iterator[ApiKeyParser]:
    """The API key parser of the ledger ``target`` names (opened, verified, closed afterwards).

    Nucleus errors become :class:`CommandError` with the CLI's exit code here, so the commands
    behave the same when the ``keys`` group is used outside the ``nucleus`` root group."""
    # The configuration file's [plugins."auth.api_key"] settings stand unless --pepper-env is given.
    click_ctx = click.get_current_context(silent=True)
    explicit = click_ctx is not None and click_ctx.get_parameter_source("pepper_env") not in (
        None,
        click.core.ParameterSource.DEFAULT,
    )
    settings = {NAME: {"pepper_env": pepper_env}} if explicit or NAME not in target.settings else {}
    try:
        with target.open(plugins=[NAME], settings=settings) as ledger:
            parser: ApiKeyParser = ledger.auth.parser(NAME)
            yield parser
    except NucleusError as err:
        raise CommandError.from_error(err, as_json=as_json) from err


@click.group(name="keys")
def keys() -> None:
    """Create, list and revoke API keys (stored only as keyed hashes)."""


@keys.command("create")
@click.option("--principal", required=True, help="OID the key authenticates as (oid:<ns>:<type>:<id>).")
@click.option("--role", default=None, help="Role name carried by the key's requests.")
@click.option("--scope", "scopes", multiple=True, help="A scope (repeatable).")
@click.option("--expires-in", type=click.FloatRange(min=1), default=None, help="Lifetime in seconds.")
@click.option("--name", default="", help="A label for the key.")
@pepper_env_option
@ledger_options(requester=True)
def create(
    target: LedgerOptions,
    as_json: bool,
    pepper_env: str,
    principal: str,
    role: str | None,
    scopes: tuple[str, ...],
    expires_in: float | None,
    name: str,
) -> None:
    """Create a key and print it once. It cannot be shown again."""
    requester = target.context()
    actor = requester.oid
    with _parser(target, pepper_env, as_json=as_json) as parser:
        key, record = parser.create_key(
            principal, role=role, scopes=scopes, expires_in=expires_in, name=name, context=requester
        )
        info = record.public_dict(parser.now())
    log.info("API key %s for %s created by %s", record.key_id, loggable_oid(principal), loggable_oid(actor))
    if as_json:
        click.echo(json.dumps({"key": key, **info}))
    else:
        click.echo(f"key id: {record.key_id}")
        click.echo(f"key:    {key}")
        click.echo("Store the key now: it is not kept anywhere and cannot be shown again.", err=True)


@keys.command("list")
@click.option("--active", is_flag=True, help="Only keys that are neither revoked nor expired.")
@pepper_env_option
@ledger_options(requester=True)
def list_(target: LedgerOptions, as_json: bool, pepper_env: str, active: bool) -> None:
    """List keys (ids and metadata; never secrets)."""
    requester = target.context()
    with _parser(target, pepper_env, as_json=as_json) as parser:
        now = parser.now()
        rows = [k.public_dict(now) for k in parser.list_keys(include_inactive=not active, context=requester)]
    if as_json:
        click.echo(json.dumps(rows))
        return
    for r in rows:
        scopes = ",".join(r["scopes"]) or "-"  # type: ignore[arg-type]
        click.echo(
            f"{r['key_id']}  {r['status']:<8} {r['principal']}  role={r['role'] or '-'}  scopes={scopes}  {r['name']}"
        )


@keys.command("revoke")
@click.argument("key_id")
@pepper_env_option
@ledger_options(requester=True)
def revoke(target: LedgerOptions, as_json: bool, pepper_env: str, key_id: str) -> None:
    """Revoke the key KEY_ID immediately. Exit code 6 when there is no such active key."""
    requester = target.context()
    actor = requester.oid
    with _parser(target, pepper_env, as_json=as_json) as parser:
        done = parser.revoke_key(key_id, context=requester)
    if not done:
        fail(f"no active API key {key_id!r}", exit_code=EXIT_NOT_FOUND, code="not_found")
    log.info("API key %s revoked by %s", key_id, loggable_oid(actor))
    if as_json:
        click.echo(json.dumps({"key_id": key_id, "revoked": True}))
    else:
        click.echo(f"revoked {key_id}")
