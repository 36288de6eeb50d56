"""``nucleus remote``: commands on a ledger served by ``nucleus serve``, through
:class:`~nucleus_server.client.RemoteLedger` (needs ``nucleus-server[client]``).

``nucleus remote tail`` is the remote form of ``nucleus tail``: the same filters and the same JSON
lines, read from ``GET /entries/stream`` (:meth:`RemoteLedger.tail
<nucleus_server.client.RemoteLedger.tail>`). The token comes from an environment variable (never
from the command line, where other users of the machine could read it in the process list); given
the ledger's checkpoint verifier keys (from its operator, not from the server), the client verifies
every entry against a signed checkpoint before printing it.
"""

from __future__ import annotations

import json
import os
from typing import Any

import click

from nucleus_core.cli import EXIT_USAGE, fail
from nucleus_core.cli_tail import follow_options
from nucleus_core.query import QueryFilters
from nucleus_core.storage import MAX_QUERY_LIMIT

DEFAULT_TOKEN_ENV = "NUCLEUS_TOKEN"  # noqa: S105 - the variable's name, not a token


@click.group("remote")
def remote_group() -> None:
    """Commands on a ledger served by nucleus serve (over HTTP, with RemoteLedger)."""


@remote_group.command("tail")
@click.option("--url", required=True, metavar="URL", help="The server's http(s) address, e.g. http://127.0.0.1:8080.")
@click.option(
    "--token-env", default=DEFAULT_TOKEN_ENV, show_default=True, metavar="VAR",
    help="The environment variable holding the bearer token (the token itself is never an argument).",
)
@click.option("--key", "vkeys", multiple=True, metavar="VKEY",
              help="A checkpoint verifier key of the ledger (repeatable): verify every entry before printing it.")
@click.option("--key-file", type=click.Path(dir_okay=False), help="A file of verifier keys, one per line.")
@click.option("--trusted-state", type=click.Path(dir_okay=False),
              help="With keys: the file keeping the last verified checkpoint between runs (refuses a rollback).")
@click.option("--origin", help="With keys: the origin the checkpoints must carry [default: the ledger's own].")
@follow_options
@click.option(
    "--page-size", type=click.IntRange(1, MAX_QUERY_LIMIT), default=100, show_default=True,
    help="Entries the server sends at most at once.",
)
@click.option("--json", "as_json", is_flag=True, help="Errors as a JSON object on stderr (the output is JSON lines).")
def remote_tail_command(
    url: str,
    token_env: str,
    vkeys: tuple[str, ...],
    key_file: str | None,
    trusted_state: str | None,
    origin: str | None,
    streams: tuple[str, ...],
    record_ids: tuple[str, ...],
    since: int | None,
    until: int | None,
    after_seq: int | None,
    count: int | None,
    timeout: float | None,
    page_size: int,
    as_json: bool,
) -> None:
    """Follow new entries of a served ledger that the token's principal may read, one JSON line
    each (as nucleus tail and nucleus export write them), in seq order, until interrupted (or
    --count, --timeout). A dropped connection or a restarting server is followed without losing or
    repeating an entry.

    With --key/--key-file the entries are verified (each proven in a checkpoint signed by one of
    those keys; the checkpoints consistent with each other): one that does not verify stops the
    command with exit code 8 and is never printed."""
    from .client import RemoteLedger

    token = os.environ.get(token_env, "")
    if not token:
        fail(f"no token: set the environment variable {token_env} (--token-env)", exit_code=EXIT_USAGE, code="usage")
    keyed = bool(vkeys) or key_file is not None
    if not keyed and (trusted_state is not None or origin is not None):
        fail("--trusted-state and --origin go with --key or --key-file", exit_code=EXIT_USAGE, code="usage")
    options: dict[str, Any] = {}
    if keyed:
        options = {"checkpoint_vkeys": vkeys, "checkpoint_vkey_file": key_file, "trusted_state": trusted_state,
                   "origin": origin}
    filters = QueryFilters(
        stream=list(streams) or None, record_ids=list(record_ids) or None, since=since, until=until, limit=page_size
    )
    with RemoteLedger(url, token=token, **options) as remote:
        start = remote.length() if after_seq is None else after_seq
        for shown, entry in enumerate(remote.tail(start, filters, timeout=timeout), 1):
            click.echo(json.dumps(entry.to_dict(), ensure_ascii=False, separators=(",", ":")))
            if count is not None and shown >= count:
                break


COMMANDS: tuple[click.Command, ...] = (remote_group,)
