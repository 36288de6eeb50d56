"""Entry point ``metrics`` (group ``nucleus``): a ledger enabling it counts into prometheus_client's
process-wide registry."""

from __future__ import annotations

from nucleus_core import hookimpl
from nucleus_core.host import PluginLedger

from . import instrument


@hookimpl
def nucleus_ledger_opened(ledger: PluginLedger) -> None:
    """Count the ledger's events into the default registry (:func:`nucleus_metrics.instrument`)."""
    instrument(ledger)
