"""``nucleus keys create|list|revoke``: manage a ledger's API keys from the command line.

Each command opens the ledger named by ``--ledger``/``--storage`` with only this plugin enabled,
reads the pepper from the environment variable named by ``--pepper-env`` (never from a command
line argument, which other users could see in the process list) and closes the ledger again.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import click

from nucleus_core import create_ledger
from nucleus_core.errors import NucleusError

from .parser import NAME, ApiKeyParser

DEFAULT_PEPPER_ENV = "NUCLEUS_API_KEY_PEPPER"


def _ledger_options(fn: Any) -> Any:
    fn = click.option(
        "--pepper-env",
        default=DEFAULT_PEPPER_ENV,
        show_default=True,
        help="Environment variable holding the server-side pepper (32+ characters).",
    )(fn)
    fn = click.option("--storage", required=True, help="Storage URL of the ledger, e.g. sqlite:///books.db.")(fn)
    fn = click.option("--ledger", "ledger_id", required=True, help="Ledger id.")(fn)
    return fn


@contextlib.contextmanager
def _parser(ledger_id: str, storage: str, pepper_env: str) -> Iterator[ApiKeyParser]:
    try:
        with create_ledger(
            id=ledger_id, storage=storage, plugins=[NAME], settings={NAME: {"pepper_env": pepper_env}}
        ) as ledger:
            parser: ApiKeyParser = ledger.auth.parser(NAME)
            yield parser
    except NucleusError as err:
        raise click.ClickException(str(err)) from err


@click.group(name="keys")
def keys() -> None:
    """Create, list and revoke API keys (stored only as keyed hashes)."""


@keys.command("create")
@_ledger_options
@click.option("--principal", required=True, help="OID the key authenticates as (oid:<ns>:<type>:<id>).")
@click.option("--role", default=None, help="Role name carried by the key's requests.")
@click.option("--scope", "scopes", multiple=True, help="A scope (repeatable).")
@click.option("--expires-in", type=click.FloatRange(min=1), default=None, help="Lifetime in seconds.")
@click.option("--name", default="", help="A label for the key.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def create(
    ledger_id: str,
    storage: str,
    pepper_env: str,
    principal: str,
    role: str | None,
    scopes: tuple[str, ...],
    expires_in: float | None,
    name: str,
    as_json: bool,
) -> None:
    """Create a key and print it once. It cannot be shown again."""
    with _parser(ledger_id, storage, pepper_env) as parser:
        try:
            key, record = parser.create_key(principal, role=role, scopes=scopes, expires_in=expires_in, name=name)
        except NucleusError as err:
            raise click.ClickException(str(err)) from err
        if as_json:
            click.echo(json.dumps({"key": key, **record.public_dict(parser.now())}))
        else:
            click.echo(f"key id: {record.key_id}")
            click.echo(f"key:    {key}")
            click.echo("Store the key now: it is not kept anywhere and cannot be shown again.", err=True)


@keys.command("list")
@_ledger_options
@click.option("--active", is_flag=True, help="Only keys that are neither revoked nor expired.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_(ledger_id: str, storage: str, pepper_env: str, active: bool, as_json: bool) -> None:
    """List keys (ids and metadata; never secrets)."""
    with _parser(ledger_id, storage, pepper_env) as parser:
        now = parser.now()
        rows = [k.public_dict(now) for k in parser.list_keys(include_inactive=not active)]
    if as_json:
        click.echo(json.dumps(rows))
        return
    for r in rows:
        scopes = ",".join(r["scopes"]) or "-"  # type: ignore[arg-type]
        click.echo(
            f"{r['key_id']}  {r['status']:<8} {r['principal']}  role={r['role'] or '-'}  scopes={scopes}  {r['name']}"
        )


@keys.command("revoke")
@_ledger_options
@click.argument("key_id")
def revoke(ledger_id: str, storage: str, pepper_env: str, key_id: str) -> None:
    """Revoke the key KEY_ID immediately."""
    with _parser(ledger_id, storage, pepper_env) as parser:
        try:
            done = parser.revoke_key(key_id)
        except NucleusError as err:
            raise click.ClickException(str(err)) from err
    if not done:
        raise click.ClickException(f"no active API key {key_id!r}")
    click.echo(f"revoked {key_id}")
