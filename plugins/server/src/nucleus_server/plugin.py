"""Entry point ``server`` (group ``nucleus.cli``): adds ``nucleus serve``."""

from __future__ import annotations

import click

from nucleus_core import hookimpl


@hookimpl
def nucleus_register_commands(cli: click.Group) -> None:
    """Add ``nucleus serve``."""
    from .cli import serve_command

    cli.add_command(serve_command)
