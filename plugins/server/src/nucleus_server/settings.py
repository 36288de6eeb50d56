"""The HTTP layer's settings (:class:`ServerSettings`); the ledger's own configuration is separate."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs

from nucleus_core.errors import ConfigurationError
from nucleus_core.ledger import MAX_BATCH_SIZE

from .logs import MIN_REQUESTER_KEY_BYTES

DEFAULT_PUBLIC_PATHS = (
    "/health", "/openapi.json", "/checkpoint/key", "/checkpoint", "/checkpoint/witnesses", "/proof/consistency",
)
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_BATCH_RECORDS = 1000
DEFAULT_MAX_STREAMS = 1000
DEFAULT_MAX_STREAMS_PER_PRINCIPAL = 16
DEFAULT_STREAM_REAUTH_INTERVAL = 5.0
MAX_STREAM_KEEPALIVE = 3600
"""Most seconds ``stream_keepalive`` may be (a tail's read timeout must exceed it, see the client)."""
MIN_THREADS = 2
"""Fewest ``threads``: ``GET /entries/stream`` reads take at most half of the pool (``threads // 2``),
so at least one thread always stays for ordinary requests."""
MAX_THREADS = 256
METRICS_MODES = ("protected", "public", "off")
"""``metrics``: ``GET /metrics`` needs a token (default), needs none, or is not served."""


def _check_range(low: int, high: int) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(_inst: Any, attr: attrs.Attribute[Any], value: Any) -> None:
        if type(value) is not int or not low <= value <= high:
            raise ConfigurationError(f"server setting {attr.name!r} must be an integer from {low} to {high}")

    return check


def _check_seconds(low: float, high: float) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(_inst: Any, attr: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise ConfigurationError(
                f"server setting {attr.name!r} must be a number of seconds from {low:g} to {high:g}"
            )

    return check


def _check_threads(_inst: Any, _attr: Any, value: Any) -> None:
    if type(value) is not int or not MIN_THREADS <= value <= MAX_THREADS:
        raise ConfigurationError(
            f"server setting 'threads' must be an integer from {MIN_THREADS} to {MAX_THREADS}: entry streams "
            "take at most half of the pool, so one thread at least stays for ordinary requests"
        )


def _to_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _check_paths(_inst: Any, _attr: Any, value: tuple[str, ...]) -> None:
    for path in value:
        if not isinstance(path, str) or not path.startswith("/") or "?" in path or "#" in path:
            raise ConfigurationError(f"public path {path!r} must be an exact path starting with '/'")


def _check_realm(_inst: Any, _attr: Any, value: str) -> None:
    if not isinstance(value, str) or not value or any(c in value for c in '"\\\r\n'):
        raise ConfigurationError("server setting 'realm' must be a non-empty string without quotes or newlines")


def _check_metrics(_inst: Any, _attr: Any, value: str) -> None:
    if value not in METRICS_MODES:
        raise ConfigurationError(f"server setting 'metrics' must be one of {', '.join(METRICS_MODES)}, not {value!r}")


def _check_requester_key(_inst: Any, _attr: Any, value: bytes | None) -> None:
    if value is not None and (not isinstance(value, bytes) or len(value) < MIN_REQUESTER_KEY_BYTES):
        raise ConfigurationError(
            f"server setting 'log_requester_key' must be at least {MIN_REQUESTER_KEY_BYTES} bytes"
        )


@attrs.frozen(kw_only=True)
class ServerSettings:
    """How the HTTP layer behaves (the ledger's own configuration is separate).

    ``public_paths``: exact paths answered without a token (only ``/health``, ``/openapi.json``,
    ``/checkpoint/key``, ``/checkpoint``, ``/checkpoint/witnesses`` and ``/proof/consistency``
    serve anything without a requester; ledger routes refuse an anonymous request even when listed). ``max_body_bytes``:
    largest request body. ``max_batch_records``: most records in one batch append (at most the
    core's limit). ``threads``: size of the pool running ledger calls (2 to 256; the entry streams'
reads take at most half of it, so ordinary requests always keep a thread). ``explorer``: serve the
    ledger explorer at ``/explorer`` (its three paths are then public too: they hold no data).
    ``metrics``: ``GET /metrics`` (served when the ledger has the metrics plugin) needs a token
    (``protected``), is public (``public``) or is not served (``off``).
    ``log_requester_key``: when set, the access log's structured fields carry ``requester``, the
    keyed hash of the requester's OID (:func:`.logs.requester_hash`); None: no requester at all.
    ``max_streams``: most ``GET /entries/stream`` responses open at once (503 beyond).
    ``max_streams_per_principal``: most of them open at once for one principal (429 beyond).
    ``stream_poll_interval``: seconds between the reads of the head that notice other processes'
    commits for the open streams. ``stream_keepalive``: seconds of silence after which a stream
    sends a keep-alive comment (0.05 to 3600; the stream announces it in its
    ``X-Nucleus-Keepalive`` header). ``stream_reauth_interval``: seconds after which an open
    stream authenticates its credential again (0.05 to 3600).
    """

    realm: str = attrs.field(default="nucleus", validator=_check_realm)
    public_paths: tuple[str, ...] = attrs.field(
        default=DEFAULT_PUBLIC_PATHS, converter=_to_tuple, validator=_check_paths
    )
    max_body_bytes: int = attrs.field(default=DEFAULT_MAX_BODY_BYTES, validator=_check_range(1024, 1024**3))
    max_batch_records: int = attrs.field(default=DEFAULT_MAX_BATCH_RECORDS, validator=_check_range(1, MAX_BATCH_SIZE))
    threads: int = attrs.field(default=8, validator=_check_threads)
    max_header_bytes: int = attrs.field(default=8192, validator=_check_range(256, 65536))
    explorer: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    metrics: str = attrs.field(default="protected", validator=_check_metrics)
    log_requester_key: bytes | None = attrs.field(default=None, repr=False, validator=_check_requester_key)
    max_streams: int = attrs.field(default=DEFAULT_MAX_STREAMS, validator=_check_range(1, 100_000))
    stream_poll_interval: float = attrs.field(default=0.2, validator=_check_seconds(0.01, 60))
    stream_keepalive: float = attrs.field(default=15.0, validator=_check_seconds(0.05, MAX_STREAM_KEEPALIVE))
    max_streams_per_principal: int = attrs.field(
        default=DEFAULT_MAX_STREAMS_PER_PRINCIPAL, validator=_check_range(1, 100_000)
    )
    stream_reauth_interval: float = attrs.field(
        default=DEFAULT_STREAM_REAUTH_INTERVAL, validator=_check_seconds(0.05, 3600)
    )
