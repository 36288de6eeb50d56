"""``nucleus import FILE.jsonl``: what ``nucleus export`` wrote, into a new, empty ledger.

The work is :func:`nucleus_core.importing.import_entries`' (every entry verified before it is
written, all in one transaction). Like ``backup`` and ``restore`` the command works on the storage
alone: the backend is built from the URL (:func:`~nucleus_core.ledger.storage_for_url`) and opened
for the ledger id, creating it when it does not exist, and the ledger's plugins are not loaded
(``--plugin`` and the configuration's plugins are ignored); their state is rebuilt from the chain
when the ledger is next opened with them. A failed import leaves the target as it was: a ledger
this command created is removed again (:class:`~nucleus_core.capabilities.DiscardableStorage`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO, Any

import click

from .capabilities import DiscardableStorage
from .cli import EXIT_USAGE, LedgerOptions, _echo_json, fail, ledger_options
from .errors import ValidationError
from .importing import DEFAULT_IMPORT_BATCH, MAX_IMPORT_BATCH, ExpectedCheckpoint, ImportReport, import_entries
from .ledger import storage_for_url
from .trusted_checkpoint import load_verifiers, read_checkpoint_file


class _Bar:
    """The progress bar on stderr (a terminal only), by bytes of the file read."""

    def __init__(self, stream: IO[bytes], total: int) -> None:
        self._stream = stream
        self._bar: Any = click.progressbar(length=total, label="importing", file=sys.stderr, show_percent=True)
        self._bar.__enter__()
        self._done = 0

    def __call__(self, _entries: int) -> None:
        position = self._stream.tell()
        self._bar.update(position - self._done)
        self._done = position

    def close(self) -> None:
        self._bar.__exit__(None, None, None)


def _run(target: LedgerOptions, stream: IO[bytes], *, bar: bool, source: str, **options: Any) -> ImportReport:
    storage = storage_for_url(target.storage, target.storage_options)
    storage.open(target.ledger_id, create=True)
    progress = None
    if bar:
        try:
            total = os.fstat(stream.fileno()).st_size
        except (OSError, ValueError):
            total = 0
        if total > 0 and stream.seekable():
            progress = _Bar(stream, total)
    try:
        report = import_entries(storage, target.ledger_id, stream, progress=progress, source=source, **options)
    except BaseException:
        # Nothing was committed; a ledger this open created (row, tables, file) goes again.
        if isinstance(storage, DiscardableStorage):
            storage.discard()
        else:
            storage.close()
        raise
    finally:
        if progress is not None:
            progress.close()
    storage.close()
    return report


@click.command("import")
@click.argument("file", metavar="FILE.jsonl", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option(
    "--batch",
    type=click.IntRange(1, MAX_IMPORT_BATCH),
    default=DEFAULT_IMPORT_BATCH,
    show_default=True,
    help="Entries written at a time, inside the import's one transaction (memory per write; not a commit).",
)
@click.option(
    "--expect-head", metavar="HASH",
    help="The head hash the source ledger had (its last entry's): a file that ends elsewhere is refused.",
)
@click.option(
    "--checkpoint", "checkpoint_file", type=click.Path(dir_okay=False),
    help="A signed checkpoint of the source ledger: the imported tree must extend it (checked before the commit).",
)
@click.option("--key", "vkeys", multiple=True, help="A verifier key (vkey) for --checkpoint; repeatable.")
@click.option("--key-file", type=click.Path(dir_okay=False), help="A file of verifier keys, one per line.")
@click.option(
    "--origin",
    help="The origin the checkpoint must carry (default: the configured [ledger.checkpoint] origin, "
    "else nucleus.invalid/<ledger id>).",
)
@ledger_options(requester=False)
def import_command(
    target: LedgerOptions,
    as_json: bool,
    file: Path,
    batch: int,
    expect_head: str | None,
    checkpoint_file: str | None,
    vkeys: tuple[str, ...],
    key_file: str | None,
    origin: str | None,
) -> None:
    """Import FILE.jsonl, written by 'nucleus export', into a new, empty ledger ('-': stdin).

    Every entry is written as it was exported (seq, hash, links, format version, appender fields,
    record), never re-appended, after it verified: seq continuity from 1, the link to the entry
    before, the hash (the ledger id is part of it: --ledger-id must be the exported ledger's), the
    format version rules and the record's canonical form; the Merkle tree is built as entries go
    in. All of it is one transaction: the first bad line is refused naming its line number and seq
    (exit code 5 for a line that is not an entry, 8 for one that does not verify), and nothing is
    imported; a ledger the command created is removed again. A target that is not empty is refused
    (exit code 7).

    A file cut short at a line boundary is a shorter chain that verifies: give --expect-head (the
    source's head hash) or --checkpoint (a signed checkpoint of the source, with --key/--key-file)
    to refuse it. Only the storage is used, no plugin is loaded: open the ledger with its plugins
    afterwards and they rebuild their state from the chain (API keys must be issued again: their
    secrets are not in the chain). A progress bar is drawn on stderr when it is a terminal.
    """
    if checkpoint_file is None and (vkeys or key_file or origin):
        fail("--key, --key-file and --origin go with --checkpoint", exit_code=EXIT_USAGE, code=ValidationError.code)
    expected = None
    if checkpoint_file is not None:
        expected = ExpectedCheckpoint(
            note=read_checkpoint_file(checkpoint_file),
            verifiers=tuple(load_verifiers(vkeys, key_file)),
            origin=origin if origin is not None else target.checkpoint.get("origin"),
            where=f"the checkpoint {checkpoint_file!r}",
        )
    bar = not as_json and sys.stderr.isatty()
    options: dict[str, Any] = {"batch": batch, "expect_head": expect_head, "checkpoint": expected}
    if str(file) == "-":
        report = _run(target, sys.stdin.buffer, bar=False, source="stdin", **options)
    else:
        with file.open("rb") as stream:
            report = _run(target, stream, bar=bar, source=repr(str(file)), **options)
    if as_json:
        _echo_json(report.to_dict())
        return
    click.echo(
        f"imported {report.entries} entries into ledger {report.ledger_id!r} at {report.storage}: "
        f"head {report.head}, tree root {report.root or '(no tree)'} "
        f"({report.seconds:.1f} s, {report.entries_per_second:.0f} entries/s)"
    )
    if report.checkpoint_size is not None:
        click.echo(f"ok: the imported ledger extends the checkpoint at size {report.checkpoint_size}")
    if target.storage_url.split(":", 1)[0].lower() == "memory":
        click.echo("note: memory:// keeps nothing: the file verified, and the import is gone now", err=True)


COMMANDS: tuple[click.Command, ...] = (import_command,)
"""The commands of this module, registered by :mod:`nucleus_core.cli`."""
