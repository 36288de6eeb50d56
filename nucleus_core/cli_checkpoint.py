"""``nucleus checkpoint keygen FILE`` and ``nucleus checkpoint key``: the checkpoint signing keys;
``nucleus checkpoint get``: a signed checkpoint the ledger issued, to keep.

The first two do not open the ledger: the key name and the origin come from the configuration
(``[ledger.checkpoint]``, ``--config``) and the ledger id alone, and the keys from the key files and
the environment variable it names (:class:`~nucleus_core.checkpoints.CheckpointConfig`). A signer
key is written to its file and never printed; what is printed is the verifier key (vkey), which is
public. docs/TRANSPARENCY.md explains how keys are kept and rotated.
"""

from __future__ import annotations

from pathlib import Path

import click

from .audit import open_read_only
from .audit_http import HttpLedgerReader
from .capabilities import CheckpointStorage
from .checkpoint import NoteSigner, default_origin, validate_origin, write_key_file
from .checkpoints import CheckpointConfig, CheckpointKeys, checkpoint_config
from .cli import EXIT_CONFIGURATION, CommandError, LedgerOptions, _echo_json, fail, ledger_options
from .errors import ConfigurationError, NotFoundError, NucleusError, ValidationError


def _keys(target: LedgerOptions) -> CheckpointKeys:
    return _config(target).load(target.ledger_id)


def _config(target: LedgerOptions) -> CheckpointConfig:
    return checkpoint_config(dict(target.checkpoint))


@click.group("checkpoint")
def checkpoint_group() -> None:
    """Signed checkpoints: make and show the signing keys, get a checkpoint to keep (docs/TRANSPARENCY.md)."""


@checkpoint_group.command("keygen")
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", help="The key's name [default: the ledger's checkpoint origin].")
@ledger_options(requester=False)
def keygen_command(target: LedgerOptions, as_json: bool, path: Path, name: str | None) -> None:
    """Write a new Ed25519 signing key to FILE (mode 0600; an existing FILE is never overwritten)
    and print its verifier key, the line verifiers are given.

    Name it after the origin (the default) so that checkpoints follow c2sp.org/tlog-checkpoint.
    Then configure FILE in [ledger.checkpoint] key_files (or put its content in
    NUCLEUS_CHECKPOINT_KEY)."""
    origin = _config(target).origin
    if name is None:
        name = origin if origin is not None else default_origin(target.ledger_id)
    try:
        signer = NoteSigner.generate(validate_origin(name))
    except ValidationError as err:
        fail(f"--name {name!r}: {err}", exit_code=EXIT_CONFIGURATION, code=err.code)
    write_key_file(path, signer)
    if as_json:
        _echo_json({"path": str(path), "name": signer.name, "key_id": f"{signer.key_id:08x}", "vkey": signer.vkey})
        return
    click.echo(f"wrote a new signer key to {path} (keep it secret); its verifier key:", err=True)
    click.echo(signer.vkey)


@checkpoint_group.command("key")
@ledger_options(requester=False)
def key_command(target: LedgerOptions, as_json: bool) -> None:
    """Print the verifier keys of the configured signing keys, one per line (what GET
    /checkpoint/key serves); fails when no key is configured."""
    keys = _keys(target)
    if as_json:
        _echo_json({"origin": keys.origin, "vkeys": list(keys.vkeys)})
        return
    if not keys.signers:
        fail(
            "no checkpoint signing key is configured ([ledger.checkpoint] key_files, or the variable "
            f"{_config(target).key_env or '(none)'}); make one with 'nucleus checkpoint keygen FILE'",
            exit_code=EXIT_CONFIGURATION,
            code="configuration_error",
        )
    for vkey in keys.vkeys:
        click.echo(vkey)


@checkpoint_group.command("get")
@click.option("--size", type=click.IntRange(min=0), help="The checkpoint issued at this size [default: the latest].")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write it to this file (default stdout).")
@click.option("--url", help="Ask a running nucleus serve at this http(s) address (GET /checkpoint) instead.")
@ledger_options(requester=False)
def get_command(target: LedgerOptions, as_json: bool, size: int | None, output: Path | None, url: str | None) -> None:
    """Print a signed checkpoint the ledger issued, exactly as stored (its bytes): the one to keep
    for a later 'nucleus audit' or 'nucleus proof verify'. The database is opened read-only and
    nothing is verified here (the keys are the auditor's, given to those commands)."""
    try:
        note = _stored_note(target, size) if url is None else HttpLedgerReader(url).checkpoint(size)
    except NucleusError as err:
        raise CommandError.from_error(err, as_json=as_json) from err
    if output is not None:
        output.write_bytes(note)
    elif as_json:
        _echo_json({"checkpoint": note.decode("utf-8")})
    else:
        click.echo(note, nl=False)


def _stored_note(target: LedgerOptions, size: int | None) -> bytes:
    storage = open_read_only(target.storage_url, target.ledger_id, target.storage_options)
    try:
        if not isinstance(storage, CheckpointStorage):
            raise ConfigurationError(f"storage {storage.url} keeps no checkpoints")
        store = storage.checkpoint_store()
        if size is not None:
            note = store.get(size)
            if note is None:
                raise NotFoundError(f"no checkpoint was issued at size {size}")
            return note.encode("utf-8")
        latest = store.latest()
        if latest is None:
            raise NotFoundError(f"ledger {target.ledger_id!r} holds no checkpoint yet (is a signing key configured?)")
        return latest[1].encode("utf-8")
    finally:
        storage.close()


COMMANDS: tuple[click.Command, ...] = (checkpoint_group,)
"""The commands of this module, registered by :mod:`nucleus_core.cli`."""
