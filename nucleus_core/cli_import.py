"""``nucleus import FILE.jsonl``: what ``nucleus export`` wrote, into a new, empty ledger.

The work is :func:`nucleus_core.importing.import_ledger`'s, in two steps: the entries, every one
verified before it is written, in one transaction of the storage alone (the backend built from the
URL, :func:`~nucleus_core.ledger.storage_for_url`, opened for the ledger id, creating it), marked as
an unfinished import; then the ledger opened with its configured plugins (the configuration and
``--plugin``, as every command opens it) in the rebuild mode, where they build their state from the
chain (grants and resource index, API key rows marked ``not-imported``, modules), and verified in
full, plugins' checks included, which removes the mark. A failed import leaves the target as it
was: the ledger this command created is removed again
(:class:`~nucleus_core.capabilities.DiscardableStorage`). ``nucleus import --finish`` runs the
second step alone, for an import interrupted between the two (an ordinary open refuses such a
ledger and says so).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO, Any

import click

from .cli import EXIT_USAGE, LedgerOptions, _echo_json, fail, ledger_options
from .errors import ValidationError
from .importing import (
    DEFAULT_IMPORT_BATCH,
    MAX_IMPORT_BATCH,
    ExpectedCheckpoint,
    ImportReport,
    finish_import,
    import_ledger,
)
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
    progress = None
    if bar:
        try:
            total = os.fstat(stream.fileno()).st_size
        except (OSError, ValueError):
            total = 0
        if total > 0 and stream.seekable():
            progress = _Bar(stream, total)
    try:
        return import_ledger(stream, progress=progress, source=source, **options, **target.config())
    finally:
        if progress is not None:
            progress.close()


@click.command("import")
@click.argument(
    "file", metavar="[FILE.jsonl]", required=False, type=click.Path(dir_okay=False, allow_dash=True, path_type=Path)
)
@click.option(
    "--finish", is_flag=True,
    help="Finish an import interrupted after its entries were written (no FILE): build the plugins' state "
    "from the chain and verify the ledger.",
)
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
    file: Path | None,
    finish: bool,
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
    in, all in one transaction. Then the ledger is opened with its plugins (the configuration's and
    --plugin's: give those the ledger will run with) and they build their state from the chain,
    appending nothing: the access-control grants and resource index, the modules' state, and a row
    per API key marked 'not-imported' (its secret is not in the chain: it never authenticates;
    issue the keys again and revoke the old ids). The ledger is then verified in full, plugins'
    checks included. The first bad line is refused naming its line number and seq (exit code 5 for
    a line that is not an entry, 8 for one that does not verify, the chain or a plugin's stream,
    such as a malformed _acl entry), and nothing is imported: the ledger the command created is
    removed again. A target that is not empty is refused (exit code 7).

    An import interrupted after its entries were written leaves a ledger that an ordinary open
    refuses (exit code 7), saying so: run 'nucleus import --finish' with the same options (no
    FILE) to build the plugins' state and verify it.

    A file cut short at a line boundary is a shorter chain that verifies: give --expect-head (the
    source's head hash) or --checkpoint (a signed checkpoint of the source, with --key/--key-file)
    to refuse it. A progress bar is drawn on stderr when it is a terminal.
    """
    if finish:
        if file is not None or checkpoint_file or vkeys or key_file or origin or expect_head:
            fail("--finish takes no FILE, --expect-head nor --checkpoint (the entries are in already)",
                 exit_code=EXIT_USAGE, code=ValidationError.code)
        verified = finish_import(**target.config())
        if as_json:
            _echo_json({"ledger_id": target.ledger_id, "finished": True, "entries": verified.entries_checked,
                        "head": verified.head_hash})
        else:
            click.echo(
                f"finished the import into ledger {target.ledger_id!r}: its plugins' state is built from the chain "
                f"and it verifies ({verified.entries_checked} entries, head {verified.head_hash})"
            )
        return
    if file is None:
        fail("missing FILE.jsonl (or --finish)", exit_code=EXIT_USAGE, code=ValidationError.code)
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
    options: dict[str, Any] = {"batch": batch, "expect_head": expect_head, "expect_checkpoint": expected}
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
    click.echo("ok: its plugins' state is built from the chain and the ledger verifies with them")
    if target.storage_url.split(":", 1)[0].lower() == "memory":
        click.echo("note: memory:// keeps nothing: the file verified, and the import is gone now", err=True)


COMMANDS: tuple[click.Command, ...] = (import_command,)
"""The commands of this module, registered by :mod:`nucleus_core.cli`."""
