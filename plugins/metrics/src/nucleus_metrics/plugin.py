"""Entry point ``metrics`` (group ``nucleus``): a ledger enabling it counts into prometheus_client's
process-wide registry; in multiprocess mode a server's ended worker leaves no live gauge behind."""

from __future__ import annotations

import os

from nucleus_core import hookimpl
from nucleus_core.host import PluginLedger

from . import MULTIPROC_ENV, instrument


@hookimpl
def nucleus_ledger_opened(ledger: PluginLedger) -> None:
    """Count the ledger's events into the default registry (:func:`nucleus_metrics.instrument`)."""
    instrument(ledger)


@hookimpl
def nucleus_worker_exited(pid: int) -> None:
    """In multiprocess mode (:data:`~nucleus_metrics.MULTIPROC_ENV`): remove the ended worker's
    live gauge files (``nucleus_ledgers_open`` would count its ledger on), as prometheus_client
    asks of the process supervising the workers (``multiprocess.mark_process_dead``). Its counters
    and other gauges stay: they still count what it did."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
