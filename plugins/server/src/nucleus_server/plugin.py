"""Entry points ``serve`` and ``remote`` (group ``nucleus.cli``): add ``nucleus serve`` and
``nucleus remote`` (``remote tail``)."""

from __future__ import annotations

import click

from nucleus_core import hookimpl


@hookimpl
def nucleus_register_commands(cli: click.Group) -> None:
    """Add ``nucleus serve`` and ``nucleus remote``."""
    from .cli import serve_command
    from .remote_cli import remote_group

    cli.add_command(serve_command)
    cli.add_command(remote_group)
