"""``nucleus backup DEST`` and ``nucleus restore SRC``: verified copies of a ledger's storage.

The work is the storage backend's: a backend that can copy itself offers
:class:`~nucleus_core.capabilities.CopyableStorage` (``backup(dest, *, overwrite, ledger_id)`` and
``restore(src, *, ledger_id)``; the SQLite backend does, with SQLite's
online backup API; both check the copy before it counts and return a report with ``to_dict()``).
For a backend without them (PostgreSQL: use ``pg_dump``; ``memory://``: nothing persists) the
commands say what to do instead.

Both commands work on the storage alone: the backend is built from the URL
(:func:`~nucleus_core.ledger.storage_for_url`, found as a ledger finds it) and never opened as a
ledger, so the ledger's plugins (access control, modules, token parsers) are not loaded and their
secrets (an API key pepper...) are not needed; ``--plugin`` and the configuration's plugins are
ignored. A restore needs nothing of the target: a damaged, garbage or missing file is replaced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import click

from .capabilities import CopyableStorage
from .cli import EXIT_CONFIGURATION, LedgerOptions, _echo_json, fail, ledger_options
from .ledger import storage_for_url


def _unsupported(command: str, why: str) -> NoReturn:
    fail(f"nucleus {command}: {why}", exit_code=EXIT_CONFIGURATION, code="unsupported_storage")


def _check_scheme(target: LedgerOptions, command: str) -> None:
    """Refuse, before connecting to anything, storage that is known not to copy itself."""
    url = target.storage_url
    scheme = url.split(":", 1)[0].lower()
    if scheme == "memory":
        _unsupported(command, f"{url} keeps nothing beyond the process: there is nothing to {_VERBS[command]}")
    if scheme in ("postgresql", "postgres"):
        _unsupported(
            command,
            "PostgreSQL ledgers are backed up with pg_dump and restored with pg_restore, then the restored "
            "copy is checked with 'nucleus verify' (docs/DEPLOYMENT.md, 'Backups')",
        )


def _copyable(target: LedgerOptions, command: str) -> CopyableStorage:
    """The storage backend of ``target``, built from its URL and not opened (no ledger, no plugins)."""
    storage = storage_for_url(target.storage, target.storage_options)
    if not isinstance(storage, CopyableStorage):
        kind = type(storage).__name__
        _unsupported(command, f"the storage backend of {storage.url} cannot copy itself ({kind} has no {command}())")
    return storage


_VERBS = {"backup": "back up", "restore": "restore"}


def _report(as_json: bool, verb: str, report: Any) -> None:
    data = report.to_dict()
    if as_json:
        _echo_json(data)
        return
    click.echo(f"{verb} {data['path']} ({data['bytes']} bytes), verified:")
    for ledger_id, info in data["ledgers"].items():
        click.echo(f"  ledger {ledger_id!r}: {info['entries']} entries, head {info['head'] or '(empty)'}")


@click.command("backup")
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--overwrite", is_flag=True, help="Replace DEST if it exists (only with a copy that verified).")
@ledger_options(requester=False)
def backup_command(target: LedgerOptions, as_json: bool, dest: Path, overwrite: bool) -> None:
    """Write a verified copy of the ledger's storage to DEST while writers go on.

    For SQLite: the whole file (every ledger in it), read-only, with SQLite's online backup API,
    then checked (integrity check, every ledger's chain, and the head the ledger had when the copy
    began) before it is renamed to DEST; a copy that fails is removed. Only the storage is used:
    no plugin is loaded and no plugin secret is needed. PostgreSQL: see docs/DEPLOYMENT.md.
    """
    _check_scheme(target, "backup")
    storage = _copyable(target, "backup")
    report = storage.backup(str(dest), overwrite=overwrite, ledger_id=target.ledger_id)
    _report(as_json, "backup written to", report)


@click.command("restore")
@click.argument("src", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@ledger_options(requester=False)
def restore_command(target: LedgerOptions, as_json: bool, src: Path) -> None:
    """Replace the ledger's storage with the backup SRC, verified before anything is replaced.

    For SQLite: SRC is copied and checked like a backup (it must hold entries of --ledger-id), then
    renamed over the ledger's file (every ledger of the file at once) and checked again. The old
    file is never opened: a damaged, garbage or missing one is replaced. No plugin is loaded and no
    plugin secret is needed. Stop every process that has the ledger open first. PostgreSQL: see
    docs/DEPLOYMENT.md.
    """
    _check_scheme(target, "restore")
    report = _copyable(target, "restore").restore(str(src), ledger_id=target.ledger_id)
    _report(as_json, "restored", report)


COMMANDS: tuple[click.Command, ...] = (backup_command, restore_command)
"""The commands of this module, registered by :mod:`nucleus_core.cli`."""
