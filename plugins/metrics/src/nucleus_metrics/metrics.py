"""The Prometheus metrics of Nucleus ledgers and the observer that keeps them.

One :class:`NucleusMetrics` per :class:`~prometheus_client.CollectorRegistry` holds every metric
(each with the label ``ledger``: the ledger's id); one :class:`LedgerMetrics` per ledger is the
ledger's observer (:class:`~nucleus_core.observe.LedgerObserver`) and fills them from the ledger's
events. Label values come only from the events, which carry no record content, record id, hash,
OID, token or raw path (:mod:`nucleus_core.observe`).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

from nucleus_core.errors import ConfigurationError
from nucleus_core.observe import (
    OK,
    AccessDenied,
    Appended,
    Authenticated,
    CheckpointIssued,
    Closed,
    Event,
    GroupCommitted,
    HttpRequest,
    StorageFailed,
    SystemAppended,
    Verified,
    WitnessResponded,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""With this variable set (before the process imports prometheus_client), metrics live in files in
that folder, one per process, and a scrape of any worker sums every worker's (prometheus_client's
multiprocess mode)."""

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 10000)
GROUP_CALLS_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
VERIFY_BUCKETS = (0.01, 0.1, 1.0, 10.0, 60.0, 300.0, 1800.0, 7200.0)
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class NucleusMetrics:
    """Every Nucleus metric, registered in one registry (see ``docs/OPERATIONS.md#metrics``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        r = registry
        self.appends = Counter(
            "nucleus_appends", "Append calls (append, append_batch), by outcome: ok or the error code",
            ["ledger", "outcome"], registry=r,
        )
        self.appended_records = Counter(
            "nucleus_appended_records", "Records committed by append calls", ["ledger"], registry=r
        )
        self.append_batch_size = Histogram(
            "nucleus_append_batch_size", "Records per successful append call", ["ledger"],
            buckets=BATCH_BUCKETS, registry=r,
        )
        self.append_seconds = Histogram(
            "nucleus_append_duration_seconds", "Seconds per successful append call (checks, transaction, commit)",
            ["ledger"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.system_appends = Counter(
            "nucleus_system_appends", "append_system calls of plugins (records in system streams: access-control "
            "grants, API key changes), by outcome: ok or the error code", ["ledger", "outcome"], registry=r,
        )
        self.system_records = Counter(
            "nucleus_system_appended_records", "System records committed by append_system calls", ["ledger"],
            registry=r,
        )
        self.group_calls = Histogram(
            "nucleus_group_commit_calls", "Append calls committed together in one storage transaction",
            ["ledger"], buckets=GROUP_CALLS_BUCKETS, registry=r,
        )
        self.group_records = Histogram(
            "nucleus_group_commit_records", "Records committed together in one storage transaction",
            ["ledger"], buckets=BATCH_BUCKETS, registry=r,
        )
        self.denials = Counter(
            "nucleus_access_denials", "Requests access control refused (append) or hid an existing entry from (read)",
            ["ledger", "operation"], registry=r,
        )
        self.verifications = Counter(
            "nucleus_verifications", "Verification runs, by outcome (ok, failed)", ["ledger", "outcome"], registry=r
        )
        self.verify_seconds = Histogram(
            "nucleus_verification_duration_seconds", "Seconds per verification run", ["ledger"],
            buckets=VERIFY_BUCKETS, registry=r,
        )
        self.checkpoints = Counter(
            "nucleus_checkpoints_issued", "Checkpoints newly signed and stored", ["ledger"], registry=r
        )
        self.checkpoint_size = Gauge(
            "nucleus_checkpoint_size", "Tree size of the latest checkpoint this process issued", ["ledger"],
            registry=r, multiprocess_mode="max",
        )
        self.checkpoint_time = Gauge(
            "nucleus_checkpoint_last_issued_timestamp_seconds",
            "Unix time of the latest checkpoint this process issued",
            ["ledger"], registry=r, multiprocess_mode="max",
        )
        self.witness = Counter(
            "nucleus_witness_responses", "Checkpoint submissions to witnesses, by configured witness name and outcome "
            "(cosigned, refused, unavailable, error)", ["ledger", "witness", "outcome"], registry=r,
        )
        self.storage_errors = Counter(
            "nucleus_storage_errors", "Storage errors by operation and kind (the error code)",
            ["ledger", "operation", "kind"], registry=r,
        )
        self.authentications = Counter(
            "nucleus_authentications", "Token decisions by the parser that claimed the token (none: no parser did) "
            "and outcome (ok, invalid, expired, unavailable, unclaimed)", ["ledger", "parser", "outcome"], registry=r,
        )
        self.http_requests = Counter(
            "nucleus_http_requests", "HTTP requests by method, route template (unmatched: no route) and status",
            ["ledger", "method", "route", "status"], registry=r,
        )
        self.http_seconds = Histogram(
            "nucleus_http_request_duration_seconds", "Seconds per HTTP request, by method and route template",
            ["ledger", "method", "route"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.open_ledgers = Gauge(
            "nucleus_ledgers_open", "Ledgers open with metrics in this process (all workers: summed)", registry=r,
            multiprocess_mode="livesum",
        )
        self._per_ledger = [
            m for m in vars(self).values() if isinstance(m, Counter | Gauge | Histogram) and m is not self.open_ledgers
        ]
        self._open: dict[str, int] = {}  # ledger id -> its open observers in this registry
        self._open_lock = threading.Lock()

    def opened(self, ledger_id: str) -> None:
        """A ledger ``ledger_id`` is counted here from now on."""
        with self._open_lock:
            self._open[ledger_id] = self._open.get(ledger_id, 0) + 1
        self.open_ledgers.inc()

    def closed(self, ledger_id: str) -> None:
        """A ledger ``ledger_id`` closed: when no other ledger of that id is open (in this registry),
        every series labelled with it goes, so that a process opening and closing ledgers does not
        grow its registry without end. Not in multiprocess mode (:data:`MULTIPROC_ENV`): there each
        process's values live in its files, which prometheus_client cannot remove a series from."""
        with self._open_lock:
            left = self._open.get(ledger_id, 0) - 1
            if left > 0:
                self._open[ledger_id] = left
            else:
                self._open.pop(ledger_id, None)
            if left <= 0 and not os.environ.get(MULTIPROC_ENV):
                for metric in self._per_ledger:
                    metric.remove_by_labels({"ledger": ledger_id})
        self.open_ledgers.dec()


_lock = threading.Lock()
# The metrics of each registry, built with the first ledger observed into it: prometheus_client
# refuses a metric name registered twice, and every ledger of a process shares the registry by
# design (the default one is process-wide). Keyed weakly: a registry dropped takes its metrics.
_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, NucleusMetrics] = weakref.WeakKeyDictionary()


def metrics_for(registry: CollectorRegistry | None = None) -> NucleusMetrics:
    """The Nucleus metrics in ``registry`` (default: prometheus_client's process-wide ``REGISTRY``),
    registered there on first use."""
    registry = REGISTRY if registry is None else registry
    if not isinstance(registry, CollectorRegistry):
        raise ConfigurationError(f"registry must be a prometheus_client CollectorRegistry, not {registry!r}")
    with _lock:
        metrics = _by_registry.get(registry)
        if metrics is None:
            metrics = _by_registry[registry] = NucleusMetrics(registry)
        return metrics


class LedgerMetrics:
    """The observer of one ledger (``ledger.observers``) that counts its events into
    :class:`NucleusMetrics`; also renders the registry for ``GET /metrics``
    (:class:`~nucleus_core.observe.MetricsExposition`)."""

    def __init__(self, ledger_id: str, metrics: NucleusMetrics) -> None:
        self.ledger_id = ledger_id
        self.metrics = metrics
        m, lid = metrics, ledger_id
        # Children of the labels known now, bound once (a labels() look-up per event costs more).
        self._appends_ok = m.appends.labels(lid, OK)
        self._records = m.appended_records.labels(lid)
        self._batch = m.append_batch_size.labels(lid)
        self._append_seconds = m.append_seconds.labels(lid)
        self._group_calls = m.group_calls.labels(lid)
        self._group_records = m.group_records.labels(lid)
        self._dispatch: dict[type[Any], Callable[[Any], None]] = {
            Appended: self._appended,
            SystemAppended: self._system_appended,
            GroupCommitted: self._group_committed,
            AccessDenied: lambda e: m.denials.labels(lid, e.operation).inc(),
            Verified: self._verified,
            CheckpointIssued: self._checkpoint,
            WitnessResponded: lambda e: m.witness.labels(lid, e.witness, e.outcome).inc(),
            StorageFailed: lambda e: m.storage_errors.labels(lid, e.operation, e.kind).inc(),
            Authenticated: lambda e: m.authentications.labels(lid, e.parser, e.outcome).inc(),
            HttpRequest: self._http,
            Closed: lambda _e: m.closed(lid),
        }

    @property
    def registry(self) -> CollectorRegistry:
        return self.metrics.registry

    def observe(self, event: Event) -> None:
        handler = self._dispatch.get(type(event))
        if handler is not None:  # an event kind newer than this plugin: ignored
            handler(event)

    def _appended(self, event: Appended) -> None:
        if event.outcome != OK:
            self.metrics.appends.labels(self.ledger_id, event.outcome).inc()
            return
        self._appends_ok.inc()
        self._records.inc(event.records)
        self._batch.observe(event.records)
        self._append_seconds.observe(event.seconds)

    def _system_appended(self, event: SystemAppended) -> None:
        self.metrics.system_appends.labels(self.ledger_id, event.outcome).inc()
        if event.outcome == OK:
            self.metrics.system_records.labels(self.ledger_id).inc(event.records)

    def _group_committed(self, event: GroupCommitted) -> None:
        self._group_calls.observe(event.calls)
        self._group_records.observe(event.entries)

    def _verified(self, event: Verified) -> None:
        self.metrics.verifications.labels(self.ledger_id, OK if event.ok else "failed").inc()
        self.metrics.verify_seconds.labels(self.ledger_id).observe(event.seconds)

    def _checkpoint(self, event: CheckpointIssued) -> None:
        self.metrics.checkpoints.labels(self.ledger_id).inc()
        self.metrics.checkpoint_size.labels(self.ledger_id).set(event.size)
        self.metrics.checkpoint_time.labels(self.ledger_id).set_to_current_time()

    def _http(self, event: HttpRequest) -> None:
        method = event.method if event.method in HTTP_METHODS else "other"
        self.metrics.http_requests.labels(self.ledger_id, method, event.route, str(event.status)).inc()
        self.metrics.http_seconds.labels(self.ledger_id, method, event.route).observe(event.seconds)

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The registry in the format ``accept`` asks for (the Prometheus text format by default;
        OpenMetrics when asked). In multiprocess mode (:data:`MULTIPROC_ENV`) over the default
        registry: every worker's metrics, summed."""
        registry = self.metrics.registry
        if registry is REGISTRY and os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        encoder, content_type = choose_encoder(accept or "")
        return encoder(registry), content_type
