"""Entry point ``witness`` (group ``nucleus.cli``): adds ``nucleus witness``."""

from __future__ import annotations

import click

from nucleus_core import hookimpl


@hookimpl
def nucleus_register_commands(cli: click.Group) -> None:
    """Add ``nucleus witness`` (``keygen``, ``serve``)."""
    from .cli import witness_group

    cli.add_command(witness_group)
