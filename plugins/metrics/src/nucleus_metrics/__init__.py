"""Nucleus metrics: a ledger's events (:mod:`nucleus_core.observe`) as Prometheus metrics.

Enabled as the plugin ``metrics`` (``plugins = ["metrics"]``), every ledger opened with it counts
into prometheus_client's process-wide registry, and ``nucleus serve`` answers ``GET /metrics``.
An application embedding the ledger instruments it itself, into any registry::

    from prometheus_client import CollectorRegistry, generate_latest
    import nucleus_metrics

    registry = CollectorRegistry()
    nucleus_metrics.instrument(ledger, registry=registry)
    ...
    text = generate_latest(registry)   # or prometheus_client.start_http_server(9100, registry=registry)

Every metric and what to alert on: ``docs/OPERATIONS.md#metrics``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from nucleus_core.host import PluginLedger

from .metrics import MULTIPROC_ENV, LedgerMetrics, NucleusMetrics, metrics_for


def instrument(ledger: PluginLedger, registry: CollectorRegistry | None = None) -> LedgerMetrics:
    """Count ``ledger``'s events into ``registry`` (default: prometheus_client's ``REGISTRY``) from
    now until it closes; returns the observer, added to ``ledger.observers``. A ledger already
    counted into that registry keeps its observer (returned again). The verification the ledger ran
    when it opened is counted at once (it ran before the observer existed); when the ledger closes,
    its series leave the registry."""
    metrics = metrics_for(registry)
    for observer in ledger.observers:
        if isinstance(observer, LedgerMetrics) and observer.metrics is metrics:
            return observer
    observer = LedgerMetrics(ledger.id, metrics)
    metrics.opened(ledger.id)
    # Adding it gives it the verification run of the ledger's open too (Observers.past).
    ledger.observers.add(observer)
    return observer


__all__ = ["MULTIPROC_ENV", "LedgerMetrics", "NucleusMetrics", "instrument", "metrics_for"]
