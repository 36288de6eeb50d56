"""``nucleus tail``: follow the entries a ledger commits, as JSON lines (:meth:`Ledger.subscribe
<nucleus_core.ledger.Ledger.subscribe>`), including those of other processes writing to the same
database. The remote form is ``nucleus remote tail --url`` and ``RemoteLedger.tail()``
(``nucleus-server[client]``: the core does not import the server's client)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from .cli import LedgerOptions, TimeParam, _entry_json, ledger_options
from .query import QueryFilters
from .storage import MAX_QUERY_LIMIT
from .subscribe import DEFAULT_POLL_INTERVAL, MAX_POLL_INTERVAL

F = TypeVar("F", bound=Callable[..., Any])


def follow_options(func: F) -> F:
    """The options of ``nucleus tail`` that choose what to follow and when to stop (``--stream``,
    ``--id``, ``--since``, ``--until``, ``--after``, ``--count``, ``--timeout``): shared with the
    remote form (``nucleus remote tail``, nucleus-server)."""
    options = [
        click.option("--stream", "streams", multiple=True, metavar="NAME", help="Only these streams (repeatable)."),
        click.option("--id", "record_ids", multiple=True, metavar="RECORD_ID",
                     help="Only these record ids (repeatable)."),
        click.option("--since", type=TimeParam(), help="Record timestamp >= this (as for nucleus query)."),
        click.option("--until", type=TimeParam(), help="Record timestamp < this (as for nucleus query)."),
        click.option(
            "--after", "after_seq", type=click.IntRange(min=0), default=None,
            help="Start after this seq (0: from the first entry) [default: the current head, new entries only].",
        ),
        click.option("--count", type=click.IntRange(min=1), default=None, help="Stop after this many entries."),
        click.option(
            "--timeout", type=click.FloatRange(min=0), default=None,
            help="Stop after this many seconds without a new entry [default: never].",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.command("tail")
@follow_options
@click.option(
    "--poll-interval", type=click.FloatRange(0.01, MAX_POLL_INTERVAL), default=DEFAULT_POLL_INTERVAL,
    show_default=True, help="Seconds between reads for other processes' commits.",
)
@click.option(
    "--page-size", type=click.IntRange(1, MAX_QUERY_LIMIT), default=100, show_default=True,
    help="Entries read at most at once.",
)
@click.option("--no-verify", is_flag=True, help="Do not verify the chain when opening (read-only).")
@ledger_options(requester=True)
def tail_command(
    target: LedgerOptions,
    as_json: bool,
    streams: tuple[str, ...],
    record_ids: tuple[str, ...],
    since: int | None,
    until: int | None,
    after_seq: int | None,
    count: int | None,
    timeout: float | None,
    poll_interval: float,
    page_size: int,
    no_verify: bool,
) -> None:
    """Follow new entries the requester may read, one JSON line each, in seq order, until
    interrupted (or --count, --timeout). Each line is an entry as nucleus export writes it; the
    output is the same with or without --json."""
    ctx = target.context()
    filters = QueryFilters(
        stream=list(streams) or None, record_ids=list(record_ids) or None, since=since, until=until, limit=page_size
    )
    with target.open(verify=not no_verify) as ledger:
        start = ledger.length() if after_seq is None else after_seq
        shown = 0
        with ledger.subscribe(start, filters, ctx, timeout=timeout, poll_interval=poll_interval) as sub:
            for entry in sub:
                click.echo(_entry_json(entry))
                shown += 1
                if count is not None and shown >= count:
                    break


COMMANDS: tuple[click.Command, ...] = (tail_command,)
